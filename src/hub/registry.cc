// The hub's registry on SQLite: connection setup, schema migrations and the prepared statements
// behind each operation.
#include "hub/registry.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <limits>
#include <utility>

#include "common/config.h"
#include "hub/lifecycle.h"
#include "hub/registry_schema.h"

namespace ds::hub {
namespace {

constexpr std::array<std::string_view, 3> kPermissions = {"connect", "registry-read",
                                                          "registry-write"};

template <size_t N>
bool isOneOf(const std::array<std::string_view, N>& names, std::string_view s) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

int64_t nowSeconds() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

// BEGIN IMMEDIATE; rolled back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    if (active_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  bool begin() {
    return active_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  bool commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return false;
    active_ = false;
    return true;
  }

 private:
  sqlite3* db_;
  bool active_ = false;
};

}  // namespace

void SqliteClose::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void SqliteFinalize::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

bool PolicyRecord::allows(std::string_view permission) const {
  return std::find(permissions.begin(), permissions.end(), permission) != permissions.end();
}

namespace {

// '*' matches any run of characters (none included), '?' one character, anything else itself.
// Iterative with one backtrack point, so linear in practice and never recursive.
bool globMatch(std::string_view pattern, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == s[i])) {
      ++p;
      ++i;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

bool PolicyRecord::reaches(std::string_view device) const {
  if (devices.empty()) return true;
  return std::any_of(devices.begin(), devices.end(),
                     [&](const std::string& d) { return globMatch(d, device); });
}

const char* dbResultName(DbResult r) {
  switch (r) {
    case DbResult::Ok:
      return "ok";
    case DbResult::NotFound:
      return "not-found";
    case DbResult::Exists:
      return "exists";
    case DbResult::Invalid:
      return "invalid";
    case DbResult::Error:
      return "error";
  }
  return "unknown";
}

// One use of a cached prepared statement: binds parameters in order, steps, reads columns, and
// resets the statement (ending its read) when it goes out of scope. Failures are recorded in the
// registry's lastError_.
class Registry::Query {
 public:
  Query(const Registry& r, const char* sql) : r_(r), stmt_(r.statement(sql)) {}
  ~Query() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int64_t v) {
    if (ready()) check(sqlite3_bind_int64(stmt_, ++index_, v));
    return *this;
  }
  Query& bind(std::string_view v) {
    // A null pointer would bind SQL NULL; an empty view must still bind ''.
    const char* data = v.data() != nullptr ? v.data() : "";
    if (ready()) {
      check(sqlite3_bind_text64(stmt_, ++index_, data, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    }
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or the (extended) error code, which is also recorded.
  int step() {
    if (!ready()) return SQLITE_ERROR;
    int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      failed_ = true;
      r_.sqlFail();
    }
    return rc;
  }
  bool row() { return step() == SQLITE_ROW; }
  bool done() { return step() == SQLITE_DONE; }
  bool failed() const { return failed_ || stmt_ == nullptr; }

  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (p == nullptr) return {};
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  bool ready() const { return stmt_ != nullptr && !failed_; }
  void check(int rc) {
    if (rc != SQLITE_OK) {
      failed_ = true;
      r_.sqlFail();
    }
  }

  const Registry& r_;
  sqlite3_stmt* stmt_;
  int index_ = 0;
  bool failed_ = false;
};

Registry::Registry(SqlitePtr db) : db_(std::move(db)) {}
Registry::~Registry() = default;

std::unique_ptr<Registry> Registry::open(const std::string& path, std::string& err) {
  return openWithMigrations(path, registryMigrations(), err);
}

std::unique_ptr<Registry> Registry::openWithMigrations(const std::string& path,
                                                       std::span<const std::string_view> migrations,
                                                       std::string& err) {
  auto failWith = [&](const std::string& message) {
    err = path + ": " + message;
    return nullptr;
  };
  if (migrations.size() > static_cast<size_t>(INT_MAX)) return failWith("too many migrations");
  const int target = static_cast<int>(migrations.size());

  // The registry holds every key: it is created 0600 whatever the umask (SQLite gives its WAL
  // and shared-memory files the same mode), and an existing one readable by others is narrowed.
  if (path != ":memory:" && !path.starts_with("file:")) {
    // Failing here is left to SQLite, which says why in its own words below.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      struct stat st {};
      if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) ::fchmod(fd, 0600);
      ::close(fd);
    }
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  SqlitePtr db(raw);
  if (rc != SQLITE_OK) return failWith(db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc));
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 2000);
  std::unique_ptr<Registry> r(new Registry(std::move(db)));

  if (!r->exec("PRAGMA foreign_keys = ON")) return failWith(r->lastError_);
  {
    // The first statement that reads the file: a file that is not a database fails here.
    Query q(*r, "PRAGMA journal_mode = WAL");
    if (!q.row()) {
      return failWith(r->lastError_.empty() ? "cannot set the journal mode" : r->lastError_);
    }
    std::string mode = q.text(0);
    // In-memory databases have no file name and cannot use WAL.
    const char* file = sqlite3_db_filename(r->db_.get(), "main");
    if (mode != "wal" && file != nullptr && *file != '\0') {
      return failWith("cannot use the WAL journal (journal mode is " + mode + ")");
    }
  }
  if (!r->exec("PRAGMA synchronous = NORMAL")) return failWith(r->lastError_);

  for (;;) {
    int version = r->schemaVersion();
    if (version < 0) return failWith(r->lastError_);
    if (version > target) {
      return failWith("registry schema version " + std::to_string(version) +
                      " is newer than this program (" + std::to_string(target) + ")");
    }
    if (version == target) break;
    // Another process may migrate at the same time: decide again under the write lock.
    Transaction tx(r->db_.get());
    if (!tx.begin()) return failWith(sqlite3_errmsg(r->db_.get()));
    version = r->schemaVersion();
    if (version < 0) return failWith(r->lastError_);
    if (version >= target) continue;  // rolled back by tx; checked again above
    const int next = version + 1;
    std::string script(migrations[static_cast<size_t>(version)]);
    if (!r->exec(script.c_str())) {
      return failWith("migrating to schema version " + std::to_string(next) + ": " + r->lastError_);
    }
    std::string bump = "PRAGMA user_version = " + std::to_string(next);
    if (!r->exec(bump.c_str()) || !tx.commit()) {
      return failWith("migrating to schema version " + std::to_string(next) + ": " +
                      sqlite3_errmsg(r->db_.get()));
    }
  }
  r->lastError_.clear();
  return r;
}

sqlite3_stmt* Registry::statement(const char* sql) const {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second.get();
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
      SQLITE_OK) {
    sqlite3_finalize(raw);
    sqlFail();
    return nullptr;
  }
  return statements_.emplace(sql, SqliteStmtPtr(raw)).first->second.get();
}

bool Registry::exec(const char* sql) const {
  if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) == SQLITE_OK) return true;
  sqlFail();
  return false;
}

DbResult Registry::fail(DbResult r, std::string message) const {
  lastError_ = std::move(message);
  return r;
}

DbResult Registry::sqlFail() const {
  lastError_ = sqlite3_errmsg(db_.get());
  return DbResult::Error;
}

int Registry::schemaVersion() const {
  lastError_.clear();
  Query q(*this, "PRAGMA user_version");
  if (!q.row()) return -1;
  return static_cast<int>(q.integer(0));
}

// --- Devices ---

DbResult Registry::addDevice(const DeviceRecord& d) {
  lastError_.clear();
  if (!config::isValidDeviceId(d.id)) {
    return fail(DbResult::Invalid, "invalid device id " + quoted(d.id));
  }
  if (!config::isValidKey(d.primaryKey)) {
    return fail(DbResult::Invalid, "invalid primary key for device " + quoted(d.id));
  }
  if (!d.secondaryKey.empty() && !config::isValidKey(d.secondaryKey)) {
    return fail(DbResult::Invalid, "invalid secondary key for device " + quoted(d.id));
  }
  if (d.created < 0 || d.lastSeen < 0) {
    return fail(DbResult::Invalid, "negative time for device " + quoted(d.id));
  }
  Query q(*this,
          "INSERT INTO devices (id, primary_key, secondary_key, enabled, created, last_seen) "
          "VALUES (?, ?, ?, ?, ?, ?)");
  q.bind(d.id).bind(d.primaryKey).bind(d.secondaryKey).bind(int64_t{d.enabled ? 1 : 0});
  q.bind(d.created != 0 ? d.created : nowSeconds()).bind(d.lastSeen);
  int rc = q.step();
  if (rc == SQLITE_DONE) return DbResult::Ok;
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return fail(DbResult::Exists, "device " + quoted(d.id) + " already exists");
  }
  return DbResult::Error;
}

namespace {

template <class Q>
DeviceRecord readDevice(const Q& q) {
  DeviceRecord d;
  d.id = q.text(0);
  d.primaryKey = q.text(1);
  d.secondaryKey = q.text(2);
  d.enabled = q.integer(3) != 0;
  d.created = q.integer(4);
  d.lastSeen = q.integer(5);
  return d;
}

}  // namespace

std::optional<DeviceRecord> Registry::device(std::string_view id) const {
  lastError_.clear();
  Query q(*this,
          "SELECT id, primary_key, secondary_key, enabled, created, last_seen FROM devices "
          "WHERE id = ?");
  q.bind(id);
  if (!q.row()) return std::nullopt;
  return readDevice(q);
}

std::optional<std::string> Registry::deviceIdIgnoringCase(std::string_view id) const {
  lastError_.clear();
  Query q(*this, "SELECT id FROM devices WHERE id = ? COLLATE NOCASE LIMIT 2");
  q.bind(id);
  if (!q.row()) return std::nullopt;
  std::string found = q.text(0);
  if (q.row()) return std::nullopt;  // ambiguous
  return found;
}

std::vector<DeviceRecord> Registry::devices() const {
  lastError_.clear();
  Query q(*this,
          "SELECT id, primary_key, secondary_key, enabled, created, last_seen FROM devices "
          "ORDER BY id");
  std::vector<DeviceRecord> out;
  while (q.row()) out.push_back(readDevice(q));
  if (q.failed()) out.clear();
  return out;
}

DbResult Registry::removeDevice(std::string_view id) {
  lastError_.clear();
  Query q(*this, "DELETE FROM devices WHERE id = ?");
  if (!q.bind(id).done()) return DbResult::Error;
  if (sqlite3_changes(db_.get()) == 0) return fail(DbResult::NotFound, "no device " + quoted(id));
  return DbResult::Ok;
}

DbResult Registry::setEnabled(std::string_view id, bool enabled) {
  lastError_.clear();
  Query q(*this, "UPDATE devices SET enabled = ? WHERE id = ?");
  if (!q.bind(int64_t{enabled ? 1 : 0}).bind(id).done()) return DbResult::Error;
  if (sqlite3_changes(db_.get()) == 0) return fail(DbResult::NotFound, "no device " + quoted(id));
  return DbResult::Ok;
}

DbResult Registry::setKeys(std::string_view id, const std::string& primary,
                           const std::string& secondary) {
  lastError_.clear();
  if (!config::isValidKey(primary)) {
    return fail(DbResult::Invalid, "invalid primary key for device " + quoted(id));
  }
  if (!secondary.empty() && !config::isValidKey(secondary)) {
    return fail(DbResult::Invalid, "invalid secondary key for device " + quoted(id));
  }
  Query q(*this, "UPDATE devices SET primary_key = ?, secondary_key = ? WHERE id = ?");
  if (!q.bind(primary).bind(secondary).bind(id).done()) return DbResult::Error;
  if (sqlite3_changes(db_.get()) == 0) return fail(DbResult::NotFound, "no device " + quoted(id));
  return DbResult::Ok;
}

DbResult Registry::touchLastSeen(std::string_view id, int64_t when) {
  lastError_.clear();
  if (when < 0) return fail(DbResult::Invalid, "negative time for device " + quoted(id));
  Query q(*this, "UPDATE devices SET last_seen = ? WHERE id = ?");
  if (!q.bind(when).bind(id).done()) return DbResult::Error;
  if (sqlite3_changes(db_.get()) == 0) return fail(DbResult::NotFound, "no device " + quoted(id));
  return DbResult::Ok;
}

// --- Policies ---

DbResult Registry::addPolicy(const PolicyRecord& p) {
  lastError_.clear();
  if (!config::isValidPolicyName(p.name)) {
    return fail(DbResult::Invalid, "invalid policy name " + quoted(p.name));
  }
  if (!config::isValidKey(p.key)) {
    return fail(DbResult::Invalid, "invalid key for policy " + quoted(p.name));
  }
  // Each list: every entry `valid` (else it is `bad`), none twice; `kind` names an entry.
  auto checkList = [&](const std::vector<std::string>& list, auto valid, const char* bad,
                       const char* kind) {
    for (size_t i = 0; i < list.size(); ++i) {
      auto seen = list.begin() + static_cast<ptrdiff_t>(i);
      const char* fault = !valid(list[i])                                  ? bad
                          : std::find(list.begin(), seen, list[i]) != seen ? "duplicate"
                                                                           : nullptr;
      if (fault) {
        return fail(DbResult::Invalid, std::string(fault) + " " + kind + " " + quoted(list[i]) +
                                           " for policy " + quoted(p.name));
      }
    }
    return DbResult::Ok;
  };
  DbResult r = checkList(
      p.permissions, [](const std::string& s) { return isOneOf(kPermissions, s); }, "unknown",
      "permission");
  if (r == DbResult::Ok) {
    r = checkList(
        p.devices, [](const std::string& s) { return config::isValidDeviceId(s); }, "invalid",
        "device pattern");
  }
  if (r != DbResult::Ok) return r;

  Transaction tx(db_.get());
  if (!tx.begin()) return sqlFail();
  {
    Query q(*this, "INSERT INTO policies (name, key) VALUES (?, ?)");
    int rc = q.bind(p.name).bind(p.key).step();
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return fail(DbResult::Exists, "policy " + quoted(p.name) + " already exists");
    }
    if (rc != SQLITE_DONE) return DbResult::Error;
  }
  for (size_t i = 0; i < p.permissions.size(); ++i) {
    Query q(*this,
            "INSERT INTO policy_permissions (policy, position, permission) VALUES (?, ?, ?)");
    if (!q.bind(p.name).bind(static_cast<int64_t>(i)).bind(p.permissions[i]).done()) {
      return DbResult::Error;
    }
  }
  for (size_t i = 0; i < p.devices.size(); ++i) {
    Query q(*this, "INSERT INTO policy_devices (policy, position, pattern) VALUES (?, ?, ?)");
    if (!q.bind(p.name).bind(static_cast<int64_t>(i)).bind(p.devices[i]).done()) {
      return DbResult::Error;
    }
  }
  if (!tx.commit()) return sqlFail();
  return DbResult::Ok;
}

bool Registry::readPolicyDevices(std::vector<PolicyRecord>& policies) const {
  if (policies.empty()) return true;
  bool one = policies.size() == 1;  // each authenticated request: its rows only, by the key
  Query q(*this,
          one ? "SELECT policy, pattern FROM policy_devices WHERE policy = ? ORDER BY position"
              : "SELECT policy, pattern FROM policy_devices ORDER BY policy, position");
  if (one) q.bind(policies.front().name);
  while (q.row()) {
    std::string name = q.text(0);
    auto it = std::find_if(policies.begin(), policies.end(),
                           [&](const PolicyRecord& p) { return p.name == name; });
    if (it != policies.end()) it->devices.push_back(q.text(1));
  }
  if (q.failed()) policies.clear();
  return !q.failed();
}

std::vector<PolicyRecord> Registry::readPolicies(Query& q) const {
  // Rows are (name, key, permission or NULL), grouped by name and in permission order.
  std::vector<PolicyRecord> out;
  while (q.row()) {
    std::string name = q.text(0);
    if (out.empty() || out.back().name != name) out.push_back({std::move(name), q.text(1), {}});
    if (!q.isNull(2)) out.back().permissions.push_back(q.text(2));
  }
  if (q.failed()) out.clear();
  return out;
}

std::optional<PolicyRecord> Registry::policy(std::string_view name) const {
  lastError_.clear();
  Query q(*this,
          "SELECT p.name, p.key, pp.permission FROM policies p "
          "LEFT JOIN policy_permissions pp ON pp.policy = p.name "
          "WHERE p.name = ? ORDER BY pp.position");
  q.bind(name);
  auto found = readPolicies(q);
  if (found.empty() || !readPolicyDevices(found)) return std::nullopt;
  return std::move(found.front());
}

std::vector<PolicyRecord> Registry::policies() const {
  lastError_.clear();
  Query q(*this,
          "SELECT p.name, p.key, pp.permission FROM policies p "
          "LEFT JOIN policy_permissions pp ON pp.policy = p.name "
          "ORDER BY p.name, pp.position");
  auto all = readPolicies(q);
  readPolicyDevices(all);
  return all;
}

DbResult Registry::removePolicy(std::string_view name) {
  lastError_.clear();
  // The permissions go with it (ON DELETE CASCADE).
  Query q(*this, "DELETE FROM policies WHERE name = ?");
  if (!q.bind(name).done()) return DbResult::Error;
  if (sqlite3_changes(db_.get()) == 0) {
    return fail(DbResult::NotFound, "no policy " + quoted(name));
  }
  return DbResult::Ok;
}

bool Registry::empty() const {
  lastError_.clear();
  Query q(*this,
          "SELECT NOT EXISTS (SELECT 1 FROM devices) AND NOT EXISTS (SELECT 1 FROM policies)");
  if (!q.row()) return false;
  return q.integer(0) != 0;
}

// --- Audit ---

DbResult Registry::addAudit(const AuditRecord& a) { return addAudits({a}); }

DbResult Registry::addAudits(const std::vector<AuditRecord>& records) {
  lastError_.clear();
  // The outcomes are the stream lifecycle's (one list, in lifecycle.h).
  for (const AuditRecord& a : records) {
    if (!isOutcomeName(a.outcome)) {
      return fail(DbResult::Invalid, "unknown stream outcome " + quoted(a.outcome));
    }
  }
  if (records.empty()) return DbResult::Ok;
  Transaction tx(db_.get());
  if (!tx.begin()) return sqlFail();
  for (const AuditRecord& a : records) {
    if (insertAudit(a) != DbResult::Ok) return DbResult::Error;
  }
  return tx.commit() ? DbResult::Ok : sqlFail();
}

DbResult Registry::insertAudit(const AuditRecord& a) {
  Query q(*this,
          "INSERT INTO audit (stream_id, policy, device, host, port, start_ms, end_ms, "
          "bytes_to_device, bytes_from_device, outcome, reason, caller_user, stream_name) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  q.bind(a.streamId).bind(a.policy).bind(a.device).bind(a.host).bind(int64_t{a.port});
  q.bind(a.startMs).bind(a.endMs);
  q.bind(static_cast<int64_t>(a.bytesToDevice)).bind(static_cast<int64_t>(a.bytesFromDevice));
  q.bind(a.outcome).bind(a.reason).bind(a.user).bind(a.name);
  return q.done() ? DbResult::Ok : DbResult::Error;
}

std::vector<AuditRecord> Registry::recentAudit(size_t limit) const {
  lastError_.clear();
  std::vector<AuditRecord> out;
  if (limit == 0) return out;
  Query q(*this,
          "SELECT stream_id, policy, device, host, port, start_ms, end_ms, bytes_to_device, "
          "bytes_from_device, outcome, reason, caller_user, stream_name FROM audit "
          "ORDER BY start_ms DESC, id DESC LIMIT ?");
  q.bind(static_cast<int64_t>(
      std::min<uint64_t>(limit, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
  while (q.row()) {
    AuditRecord a;
    a.streamId = q.text(0);
    a.policy = q.text(1);
    a.device = q.text(2);
    a.host = q.text(3);
    a.port = static_cast<uint16_t>(q.integer(4));
    a.startMs = q.integer(5);
    a.endMs = q.integer(6);
    a.bytesToDevice = static_cast<uint64_t>(q.integer(7));
    a.bytesFromDevice = static_cast<uint64_t>(q.integer(8));
    a.outcome = q.text(9);
    a.reason = q.text(10);
    a.user = q.text(11);
    a.name = q.text(12);
    out.push_back(std::move(a));
  }
  if (q.failed()) out.clear();
  return out;
}

DbResult Registry::pruneAudit(size_t keep) {
  lastError_.clear();
  Query q(*this,
          "DELETE FROM audit WHERE id IN (SELECT id FROM audit "
          "ORDER BY start_ms DESC, id DESC LIMIT -1 OFFSET ?)");
  q.bind(static_cast<int64_t>(
      std::min<uint64_t>(keep, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
  return q.done() ? DbResult::Ok : DbResult::Error;
}

}  // namespace ds::hub
