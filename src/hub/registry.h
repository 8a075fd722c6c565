// The hub's registry: devices, service policies and the stream audit log in one SQLite file in the
// hub's state folder. All calls are synchronous and made on the hub's single thread. The schema is
// versioned by PRAGMA user_version and brought up to date by migrations when the file is opened.
// Nothing here throws: every operation returns its result, and lastError() says what went wrong.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace ds::hub {

struct DeviceRecord {
  std::string id, primaryKey, secondaryKey;  // secondaryKey may be empty
  bool enabled = true;
  int64_t created = 0;   // unix seconds; addDevice() fills in the current time when 0
  int64_t lastSeen = 0;  // unix seconds; 0 = never
  friend bool operator==(const DeviceRecord&, const DeviceRecord&) = default;
};

struct PolicyRecord {
  std::string name, key;
  std::vector<std::string> permissions;  // each one of "connect", "registry-read", "registry-write"
  // The devices its streams may reach: ids, or globs where '*' stands for any run of characters
  // and '?' for one. Empty: every device.
  std::vector<std::string> devices{};
  // Whether the policy holds `permission` (exact name; no permission implies another).
  bool allows(std::string_view permission) const;
  // Whether `device` is in the policy's device set.
  bool reaches(std::string_view device) const;
  friend bool operator==(const PolicyRecord&, const PolicyRecord&) = default;
};

// One stream, as recorded when it ends. Byte counts are stored bit for bit in SQLite's signed
// 64-bit integers, so every uint64_t value round-trips.
struct AuditRecord {
  std::string streamId, policy, device, host;
  uint16_t port = 0;
  int64_t startMs = 0, endMs = 0;  // unix milliseconds
  uint64_t bytesToDevice = 0, bytesFromDevice = 0;
  std::string outcome;  // "ok", "rejected", "refused", "timeout", "offline", "error", "cancelled"
  std::string reason;
  std::string user{};  // the user the service's daemon asserted, if any
  std::string name{};  // the stream's name, if the caller gave one
  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

enum class DbResult { Ok, NotFound, Exists, Invalid, Error };

// "ok", "not-found", "exists", "invalid", "error".
const char* dbResultName(DbResult r);

// RAII for SQLite handles: sqlite3_close_v2 and sqlite3_finalize.
struct SqliteClose {
  void operator()(sqlite3* db) const;
};
struct SqliteFinalize {
  void operator()(sqlite3_stmt* stmt) const;
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteClose>;
using SqliteStmtPtr = std::unique_ptr<sqlite3_stmt, SqliteFinalize>;

class Registry {
 public:
  // The schema this program writes; equal to the number of migrations in registry.cc.
  static constexpr int kSchemaVersion = 2;

  // Opens or creates the file and migrates it to kSchemaVersion. nullptr with `err` set on failure;
  // the message names the path and SQLite's error. A schema newer than this program knows is an
  // error ("registry schema version N is newer than this program (M)").
  static std::unique_ptr<Registry> open(const std::string& path, std::string& err);

  // open() with an explicit list of migrations: migrations[i] is the SQL script that takes the
  // schema from version i to version i + 1. open() passes the program's own list; tests pass a
  // longer one to exercise an upgrade the program does not have yet.
  static std::unique_ptr<Registry> openWithMigrations(const std::string& path,
                                                      std::span<const std::string_view> migrations,
                                                      std::string& err);

  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // PRAGMA user_version; -1 if it cannot be read.
  int schemaVersion() const;

  // Exists on a duplicate id; Invalid on a bad id, a bad primary key, a secondary key that is
  // neither empty nor valid, or negative times.
  DbResult addDevice(const DeviceRecord& d);
  std::optional<DeviceRecord> device(std::string_view id) const;
  // The id of the one device whose id equals `id` ignoring ASCII case; none when no device or
  // more than one does.
  std::optional<std::string> deviceIdIgnoringCase(std::string_view id) const;
  std::vector<DeviceRecord> devices() const;  // ordered by id
  DbResult removeDevice(std::string_view id);
  DbResult setEnabled(std::string_view id, bool enabled);
  // `secondary` may be empty.
  DbResult setKeys(std::string_view id, const std::string& primary, const std::string& secondary);
  DbResult touchLastSeen(std::string_view id, int64_t when);

  // Exists on a duplicate name; Invalid on a bad name or key, an unknown or repeated
  // permission, or a device pattern that is no device id. Permissions and devices keep their
  // order.
  DbResult addPolicy(const PolicyRecord& p);
  std::optional<PolicyRecord> policy(std::string_view name) const;
  std::vector<PolicyRecord> policies() const;  // ordered by name
  DbResult removePolicy(std::string_view name);

  // No devices and no policies. False when the question cannot be answered (see lastError()).
  bool empty() const;

  // Invalid on an unknown outcome.
  DbResult addAudit(const AuditRecord& a);
  // All of `records` in one transaction (one commit instead of one per row): all or none.
  // Invalid, and nothing stored, when one has an unknown outcome.
  DbResult addAudits(const std::vector<AuditRecord>& records);
  // Newest first: by startMs, then by insertion.
  std::vector<AuditRecord> recentAudit(size_t limit) const;
  // Deletes audit rows beyond the newest `keep` (in recentAudit() order).
  DbResult pruneAudit(size_t keep);

  // Every call clears it and sets it when the call fails (also for Invalid, NotFound and Exists),
  // so after a query that returned nothing, an empty lastError() means there was nothing to find.
  const std::string& lastError() const { return lastError_; }

 private:
  class Query;
  explicit Registry(SqlitePtr db);

  // A cached prepared statement for `sql` (a string literal), or nullptr with lastError_ set.
  sqlite3_stmt* statement(const char* sql) const;
  bool exec(const char* sql) const;
  DbResult fail(DbResult r, std::string message) const;
  DbResult sqlFail() const;
  // One audit row, inside the caller's transaction.
  DbResult insertAudit(const AuditRecord& a);
  std::vector<PolicyRecord> readPolicies(Query& q) const;
  bool readPolicyDevices(std::vector<PolicyRecord>& policies) const;

  SqlitePtr db_;  // declared first: the statements below are finalized before it closes
  mutable std::map<const char*, SqliteStmtPtr> statements_;
  mutable std::string lastError_;
};

}  // namespace ds::hub
