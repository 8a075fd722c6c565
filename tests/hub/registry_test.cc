// Tests for the hub's SQLite registry: devices, policies, the audit log, schema migrations,
// restart survival and the failures open() reports.
#include "hub/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hub/registry_schema.h"

namespace ds::hub {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kKeyA[] = "MDEyMzQ1Njc4OWFiY2RlZg==";  // 16 bytes
constexpr char kKeyB[] = "ZmVkY2JhOTg3NjU0MzIxMA==";
constexpr char kKeyC[] = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";  // 32 bytes

// Runs one SQL statement on the file directly, beside the registry; returns the first column of the
// first row as text ("" when there is none), or "ERROR: ..." when the statement fails.
std::string rawQuery(const fs::path& file, const std::string& sql) {
  sqlite3* raw = nullptr;
  sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  SqlitePtr db(raw);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    return std::string("ERROR: ") + sqlite3_errmsg(db.get());
  }
  SqliteStmtPtr stmt(st);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) {
    auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    return text != nullptr ? text : "";
  }
  if (rc == SQLITE_DONE) return "";
  return std::string("ERROR: ") + sqlite3_errmsg(db.get());
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    std::uniform_int_distribution<uint64_t> dist;
    dir_ = fs::temp_directory_path() / ("ds-registry-test-" + std::to_string(dist(rd)));
    ASSERT_TRUE(fs::create_directory(dir_)) << dir_;
    path_ = dir_ / "registry.db";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<Registry> openOrFail() {
    std::string err;
    auto r = Registry::open(path_.string(), err);
    EXPECT_NE(r, nullptr) << err;
    EXPECT_EQ(err, "");
    return r;
  }

  static DeviceRecord dev(std::string id, int64_t created = 1700000000) {
    DeviceRecord d;
    d.id = std::move(id);
    d.primaryKey = kKeyA;
    d.secondaryKey = kKeyB;
    d.created = created;
    return d;
  }

  static AuditRecord audit(std::string streamId, int64_t startMs) {
    AuditRecord a;
    a.streamId = std::move(streamId);
    a.policy = "ops";
    a.device = "dev01";
    a.host = "127.0.0.1";
    a.port = 22;
    a.startMs = startMs;
    a.endMs = startMs + 1500;
    a.bytesToDevice = 100;
    a.bytesFromDevice = 200;
    a.outcome = "ok";
    return a;
  }

  static std::vector<std::string> streamIds(const std::vector<AuditRecord>& records) {
    std::vector<std::string> ids;
    for (const auto& a : records) ids.push_back(a.streamId);
    return ids;
  }

  fs::path dir_, path_;
};

TEST_F(RegistryTest, FreshFileIsAtCurrentSchemaWithWalJournal) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->schemaVersion(), Registry::kSchemaVersion);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(rawQuery(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(rawQuery(path_, "PRAGMA user_version"), std::to_string(Registry::kSchemaVersion));
}

TEST_F(RegistryTest, DevicesAddGetListRemove) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addDevice(dev("dev02")), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->addDevice(dev("dev01")), DbResult::Ok) << r->lastError();
  DeviceRecord noSecondary = dev("Dev03");
  noSecondary.secondaryKey.clear();
  noSecondary.enabled = false;
  EXPECT_EQ(r->addDevice(noSecondary), DbResult::Ok) << r->lastError();

  auto d = r->device("dev01");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, dev("dev01"));
  EXPECT_EQ(r->device("Dev03"), noSecondary);

  std::vector<std::string> ids;
  for (const auto& x : r->devices()) ids.push_back(x.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"Dev03", "dev01", "dev02"}));  // byte order

  EXPECT_EQ(r->removeDevice("dev01"), DbResult::Ok);
  EXPECT_FALSE(r->device("dev01").has_value());
  EXPECT_EQ(r->lastError(), "");  // nothing to find is not a failure
  EXPECT_EQ(r->removeDevice("dev01"), DbResult::NotFound);
  EXPECT_THAT(r->lastError(), HasSubstr("dev01"));
  EXPECT_EQ(r->devices().size(), 2u);
  EXPECT_FALSE(r->device("DEV02").has_value());  // ids are case-sensitive
}

TEST_F(RegistryTest, DuplicateDeviceIsExists) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  DeviceRecord other = dev("dev01");
  other.primaryKey = kKeyC;
  EXPECT_EQ(r->addDevice(other), DbResult::Exists);
  EXPECT_THAT(r->lastError(), HasSubstr("already exists"));
  EXPECT_EQ(r->device("dev01")->primaryKey, kKeyA);  // the first one is untouched
}

TEST_F(RegistryTest, BadDeviceIdsAreInvalid) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  for (const std::string& id : {std::string(), std::string(129, 'a'), std::string("a/b"),
                                std::string("a b"), std::string("a\nb")}) {
    EXPECT_EQ(r->addDevice(dev(id)), DbResult::Invalid) << "'" << id << "'";
    EXPECT_THAT(r->lastError(), HasSubstr("invalid device id"));
  }
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->addDevice(dev(std::string(128, 'a'))), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->addDevice(dev("a-.%_*?!(),:=@$'")), DbResult::Ok) << r->lastError();
}

TEST_F(RegistryTest, DeviceKeysAreValidated) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  DeviceRecord d = dev("dev01");
  for (const char* bad : {"", "not base64!", "AAAA", "MDEyMzQ1Njc4OWFiY2RlZg"}) {
    d.primaryKey = bad;
    EXPECT_EQ(r->addDevice(d), DbResult::Invalid) << bad;
    EXPECT_THAT(r->lastError(), HasSubstr("primary key"));
    EXPECT_THAT(r->lastError(), ::testing::Not(HasSubstr(kKeyB)));  // keys never in messages
  }
  d.primaryKey = kKeyA;
  d.secondaryKey = "AAAA";
  EXPECT_EQ(r->addDevice(d), DbResult::Invalid);
  EXPECT_THAT(r->lastError(), HasSubstr("secondary key"));
  d.secondaryKey = kKeyC;
  EXPECT_EQ(r->addDevice(d), DbResult::Ok) << r->lastError();
}

TEST_F(RegistryTest, NegativeTimesAreInvalid) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addDevice(dev("dev01", -5)), DbResult::Invalid);
  ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  EXPECT_EQ(r->touchLastSeen("dev01", -1), DbResult::Invalid);
}

TEST_F(RegistryTest, EnableAndDisable) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  EXPECT_EQ(r->setEnabled("dev01", false), DbResult::Ok);
  EXPECT_FALSE(r->device("dev01")->enabled);
  EXPECT_EQ(r->setEnabled("dev01", false), DbResult::Ok);  // already disabled: still Ok
  EXPECT_EQ(r->setEnabled("dev01", true), DbResult::Ok);
  EXPECT_TRUE(r->device("dev01")->enabled);
  EXPECT_EQ(r->setEnabled("nope", true), DbResult::NotFound);
}

TEST_F(RegistryTest, SetKeys) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  EXPECT_EQ(r->setKeys("dev01", kKeyC, kKeyA), DbResult::Ok);
  EXPECT_EQ(r->device("dev01")->primaryKey, kKeyC);
  EXPECT_EQ(r->device("dev01")->secondaryKey, kKeyA);
  EXPECT_EQ(r->setKeys("dev01", kKeyB, ""), DbResult::Ok);
  EXPECT_EQ(r->device("dev01")->primaryKey, kKeyB);
  EXPECT_EQ(r->device("dev01")->secondaryKey, "");
  EXPECT_EQ(r->setKeys("dev01", "", kKeyA), DbResult::Invalid);
  EXPECT_EQ(r->setKeys("dev01", kKeyA, "AAAA"), DbResult::Invalid);
  EXPECT_EQ(r->device("dev01")->primaryKey, kKeyB);  // unchanged by the rejected calls
  EXPECT_EQ(r->setKeys("nope", kKeyA, kKeyB), DbResult::NotFound);
}

TEST_F(RegistryTest, CreatedDefaultsToNowAndLastSeenIsTouched) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  auto before = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  ASSERT_EQ(r->addDevice(dev("dev01", 0)), DbResult::Ok);
  auto after = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  auto d = r->device("dev01");
  ASSERT_TRUE(d);
  EXPECT_GE(d->created, before);
  EXPECT_LE(d->created, after);
  EXPECT_EQ(d->lastSeen, 0);  // never

  EXPECT_EQ(r->touchLastSeen("dev01", 1700000123), DbResult::Ok);
  EXPECT_EQ(r->device("dev01")->lastSeen, 1700000123);
  EXPECT_EQ(r->touchLastSeen("nope", 1700000123), DbResult::NotFound);
}

TEST_F(RegistryTest, PoliciesRoundTrip) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  PolicyRecord ops{"ops", kKeyA, {"registry-write", "connect", "registry-read"}};
  PolicyRecord none{"audit.only", kKeyB, {}};
  PolicyRecord ci{"ci-runner_1", kKeyC, {"connect"}};
  EXPECT_EQ(r->addPolicy(ops), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->addPolicy(none), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->addPolicy(ci), DbResult::Ok) << r->lastError();

  EXPECT_EQ(r->policy("ops"), ops);  // permissions keep their order
  EXPECT_EQ(r->policy("audit.only"), none);
  EXPECT_FALSE(r->policy("nope").has_value());
  EXPECT_EQ(r->lastError(), "");
  EXPECT_EQ(r->policies(), (std::vector<PolicyRecord>{none, ci, ops}));

  EXPECT_EQ(r->addPolicy({"ops", kKeyB, {"connect"}}), DbResult::Exists);
  EXPECT_EQ(r->policy("ops"), ops);  // the failed insert left nothing behind

  EXPECT_EQ(r->removePolicy("ops"), DbResult::Ok);
  EXPECT_EQ(r->removePolicy("ops"), DbResult::NotFound);
  // The old permissions went with the policy (foreign keys are on).
  EXPECT_EQ(rawQuery(path_, "SELECT count(*) FROM policy_permissions WHERE policy = 'ops'"), "0");
  PolicyRecord again{"ops", kKeyB, {"registry-read"}};
  EXPECT_EQ(r->addPolicy(again), DbResult::Ok);
  EXPECT_EQ(r->policy("ops"), again);
}

TEST_F(RegistryTest, BadPoliciesAreInvalid) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addPolicy({"", kKeyA, {"connect"}}), DbResult::Invalid);
  EXPECT_EQ(r->addPolicy({std::string(65, 'p'), kKeyA, {"connect"}}), DbResult::Invalid);
  EXPECT_EQ(r->addPolicy({"a/b", kKeyA, {"connect"}}), DbResult::Invalid);
  EXPECT_EQ(r->addPolicy({"ops", "AAAA", {"connect"}}), DbResult::Invalid);
  EXPECT_EQ(r->addPolicy({"ops", kKeyA, {"connect", "admin"}}), DbResult::Invalid);
  EXPECT_THAT(r->lastError(), HasSubstr("unknown permission 'admin'"));
  EXPECT_EQ(r->addPolicy({"ops", kKeyA, {"connect", "connect"}}), DbResult::Invalid);
  EXPECT_THAT(r->lastError(), HasSubstr("duplicate permission 'connect'"));
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->addPolicy({std::string(64, 'p'), kKeyA, {"connect"}}), DbResult::Ok);
}

TEST_F(RegistryTest, AuditRecentAndPrune) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->recentAudit(10).empty());
  ASSERT_EQ(r->addAudit(audit("s-b", 2000)), DbResult::Ok) << r->lastError();
  ASSERT_EQ(r->addAudit(audit("s-a", 1000)), DbResult::Ok);
  ASSERT_EQ(r->addAudit(audit("s-c1", 3000)), DbResult::Ok);
  ASSERT_EQ(r->addAudit(audit("s-c2", 3000)), DbResult::Ok);  // same start: later insertion first
  ASSERT_EQ(r->addAudit(audit("s-d", 4000)), DbResult::Ok);

  EXPECT_EQ(streamIds(r->recentAudit(100)),
            (std::vector<std::string>{"s-d", "s-c2", "s-c1", "s-b", "s-a"}));
  EXPECT_EQ(streamIds(r->recentAudit(2)), (std::vector<std::string>{"s-d", "s-c2"}));
  EXPECT_TRUE(r->recentAudit(0).empty());

  EXPECT_EQ(r->pruneAudit(4), DbResult::Ok);
  EXPECT_EQ(streamIds(r->recentAudit(100)),
            (std::vector<std::string>{"s-d", "s-c2", "s-c1", "s-b"}));
  EXPECT_EQ(r->pruneAudit(10), DbResult::Ok);  // fewer rows than kept: nothing goes
  EXPECT_EQ(r->recentAudit(100).size(), 4u);
  EXPECT_EQ(r->pruneAudit(2), DbResult::Ok);  // the tie at 3000 is split by insertion order
  EXPECT_EQ(streamIds(r->recentAudit(100)), (std::vector<std::string>{"s-d", "s-c2"}));
  ASSERT_EQ(r->addAudit(audit("s-e", 500)), DbResult::Ok);  // old start time, newest insertion
  EXPECT_EQ(r->pruneAudit(2), DbResult::Ok);
  EXPECT_EQ(streamIds(r->recentAudit(100)), (std::vector<std::string>{"s-d", "s-c2"}));
  EXPECT_EQ(r->pruneAudit(0), DbResult::Ok);
  EXPECT_TRUE(r->recentAudit(100).empty());
}

TEST_F(RegistryTest, AuditFieldsRoundTrip) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  AuditRecord a = audit("3f2b9c", 1700000000123);
  a.host = "::1";
  a.port = 65535;
  a.bytesToDevice = std::numeric_limits<uint64_t>::max();
  a.bytesFromDevice = (uint64_t{1} << 63) + 7;
  a.outcome = "timeout";
  a.reason = "device did not connect within 10s";
  a.user = "alice";
  a.name = "nightly backup";
  ASSERT_EQ(r->addAudit(a), DbResult::Ok) << r->lastError();
  AuditRecord rejected = audit("", 1700000000999);  // refused before a stream existed
  rejected.outcome = "rejected";
  rejected.reason = "policy lacks 'connect'";
  ASSERT_EQ(r->addAudit(rejected), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->recentAudit(5), (std::vector<AuditRecord>{rejected, a}));

  for (const char* outcome :
       {"ok", "rejected", "refused", "timeout", "offline", "idle", "error", "cancelled"}) {
    AuditRecord x = audit("s", 1);
    x.outcome = outcome;
    EXPECT_EQ(r->addAudit(x), DbResult::Ok) << outcome;
  }
  AuditRecord bad = audit("s", 1);
  bad.outcome = "maybe";
  EXPECT_EQ(r->addAudit(bad), DbResult::Invalid);
  bad.outcome = "";
  EXPECT_EQ(r->addAudit(bad), DbResult::Invalid);
}

TEST_F(RegistryTest, AuditBatchesAreStoredWholeOrNotAtAll) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addAudits({}), DbResult::Ok);
  // Rows of one batch keep their order: the later of a tie in start time comes first.
  ASSERT_EQ(r->addAudits({audit("b-1", 1000), audit("b-2", 1000), audit("b-3", 900)}), DbResult::Ok)
      << r->lastError();
  EXPECT_EQ(streamIds(r->recentAudit(10)), (std::vector<std::string>{"b-2", "b-1", "b-3"}));
  // One bad row refuses the whole batch.
  AuditRecord bad = audit("b-bad", 2000);
  bad.outcome = "maybe";
  EXPECT_EQ(r->addAudits({audit("b-4", 2000), bad}), DbResult::Invalid);
  EXPECT_NE(r->lastError().find("maybe"), std::string::npos) << r->lastError();
  EXPECT_EQ(r->recentAudit(10).size(), 3u);
  std::vector<AuditRecord> many;
  for (int i = 0; i < 500; ++i) many.push_back(audit("m" + std::to_string(i), 3000 + i));
  ASSERT_EQ(r->addAudits(many), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->recentAudit(1000).size(), 503u);
  EXPECT_EQ(r->recentAudit(1).front().streamId, "m499");
}

TEST_F(RegistryTest, EmptyMeansNoDevicesAndNoPolicies) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  ASSERT_EQ(r->addAudit(audit("s", 1)), DbResult::Ok);
  EXPECT_TRUE(r->empty());  // the audit log does not count
  ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  EXPECT_FALSE(r->empty());
  ASSERT_EQ(r->removeDevice("dev01"), DbResult::Ok);
  EXPECT_TRUE(r->empty());
  ASSERT_EQ(r->addPolicy({"ops", kKeyA, {"connect"}}), DbResult::Ok);
  EXPECT_FALSE(r->empty());
  ASSERT_EQ(r->removePolicy("ops"), DbResult::Ok);
  EXPECT_TRUE(r->empty());
}

TEST_F(RegistryTest, ReopenKeepsEverything) {
  DeviceRecord d1 = dev("dev01");
  DeviceRecord d2 = dev("dev02");
  d2.enabled = false;
  d2.lastSeen = 1700000500;
  PolicyRecord ops{"ops", kKeyC, {"connect", "registry-read"}};
  AuditRecord a1 = audit("s1", 10), a2 = audit("s2", 20);
  {
    auto r = openOrFail();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->addDevice(d1), DbResult::Ok);
    ASSERT_EQ(r->addDevice(d2), DbResult::Ok);
    ASSERT_EQ(r->addPolicy(ops), DbResult::Ok);
    ASSERT_EQ(r->addAudit(a1), DbResult::Ok);
    ASSERT_EQ(r->addAudit(a2), DbResult::Ok);
  }
  for (int round = 0; round < 2; ++round) {
    auto r = openOrFail();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->schemaVersion(), Registry::kSchemaVersion);
    EXPECT_EQ(r->devices(), (std::vector<DeviceRecord>{d1, d2}));
    EXPECT_EQ(r->policies(), std::vector<PolicyRecord>{ops});
    EXPECT_EQ(r->recentAudit(10), (std::vector<AuditRecord>{a2, a1}));
    EXPECT_FALSE(r->empty());
  }
}

TEST_F(RegistryTest, EmptyVersionZeroFileIsMigrated) {
  { std::ofstream(path_, std::ios::binary); }
  ASSERT_TRUE(fs::exists(path_));
  ASSERT_EQ(fs::file_size(path_), 0u);
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->schemaVersion(), Registry::kSchemaVersion);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->addDevice(dev("dev01")), DbResult::Ok) << r->lastError();
}

TEST_F(RegistryTest, UpgradeToANewerSchemaKeepsData) {
  PolicyRecord ops{"ops", kKeyA, {"connect"}};
  {
    auto r = openOrFail();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
    ASSERT_EQ(r->addPolicy(ops), DbResult::Ok);
    ASSERT_EQ(r->addAudit(audit("s1", 10)), DbResult::Ok);
  }
  // A program one version ahead: the file is at this program's version, so only the last
  // script runs (the others stand in for versions already applied).
  const std::string_view future[] = {
      "-- version 1: already applied",
      "-- version 2: already applied",
      "ALTER TABLE devices ADD COLUMN note TEXT NOT NULL DEFAULT 'none';",
  };
  static_assert(std::size(future) == Registry::kSchemaVersion + 1);
  {
    std::string err;
    auto r = Registry::openWithMigrations(path_.string(), future, err);
    ASSERT_NE(r, nullptr) << err;
    EXPECT_EQ(r->schemaVersion(), 3);
    EXPECT_EQ(r->devices(), std::vector<DeviceRecord>{dev("dev01")});
    EXPECT_EQ(r->policy("ops"), ops);
    EXPECT_EQ(streamIds(r->recentAudit(10)), std::vector<std::string>{"s1"});
    EXPECT_EQ(r->addDevice(dev("dev02")), DbResult::Ok) << r->lastError();
  }
  EXPECT_EQ(rawQuery(path_, "SELECT note FROM devices WHERE id = 'dev01'"), "none");
  EXPECT_EQ(rawQuery(path_, "PRAGMA user_version"), "3");

  // This program knows version 2 only and refuses the upgraded file rather than misread it.
  std::string err;
  EXPECT_EQ(Registry::open(path_.string(), err), nullptr);
  EXPECT_THAT(err, HasSubstr(path_.string()));
  EXPECT_THAT(err, HasSubstr("registry schema version 3 is newer than this program (2)"));
}

TEST_F(RegistryTest, AVersionOneFileIsMigratedWithItsData) {
  // A registry written by the release before device sets: only the first migration.
  PolicyRecord ops{"ops", kKeyA, {"connect"}};
  {
    std::string err;
    auto r = Registry::openWithMigrations(path_.string(), registryMigrations().first(1), err);
    ASSERT_NE(r, nullptr) << err;
    ASSERT_EQ(r->schemaVersion(), 1);
    ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok) << r->lastError();
    ASSERT_EQ(rawQuery(path_, "INSERT INTO policies (name, key) VALUES ('ops', '" +
                                  std::string(kKeyA) + "')"),
              "");
    ASSERT_EQ(rawQuery(path_, "INSERT INTO policy_permissions VALUES ('ops', 0, 'connect')"), "");
    ASSERT_EQ(rawQuery(path_,
                       "INSERT INTO audit (stream_id, policy, device, host, port, start_ms, "
                       "end_ms, bytes_to_device, bytes_from_device, outcome, reason) VALUES "
                       "('s1', 'ops', 'dev01', '127.0.0.1', 22, 5, 6, 1, 2, 'ok', '')"),
              "");
  }
  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->schemaVersion(), Registry::kSchemaVersion);
  EXPECT_EQ(r->policy("ops"), ops);  // no device set: every device
  EXPECT_TRUE(r->policy("ops")->reaches("anything"));
  auto audit = r->recentAudit(5);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].user, "");
  EXPECT_EQ(audit[0].name, "");
}

TEST_F(RegistryTest, PolicyDeviceSetsRoundTripAndAreChecked) {
  auto r = openOrFail();
  ASSERT_TRUE(r);
  PolicyRecord acme{"acme", kKeyA, {"connect"}, {"acme-*", "gw.site?", "dev01"}};
  ASSERT_EQ(r->addPolicy(acme), DbResult::Ok) << r->lastError();
  PolicyRecord all{"ops", kKeyB, {"connect"}};
  ASSERT_EQ(r->addPolicy(all), DbResult::Ok) << r->lastError();
  EXPECT_EQ(r->policy("acme"), acme);  // patterns keep their order
  EXPECT_EQ(r->policies(), (std::vector<PolicyRecord>{acme, all}));
  EXPECT_EQ(r->addPolicy({"bad", kKeyC, {"connect"}, {"a/b"}}), DbResult::Invalid);
  EXPECT_THAT(r->lastError(), HasSubstr("invalid device pattern 'a/b'"));
  EXPECT_EQ(r->addPolicy({"dup", kKeyC, {"connect"}, {"x*", "x*"}}), DbResult::Invalid);
  EXPECT_EQ(r->removePolicy("acme"), DbResult::Ok);
  EXPECT_EQ(rawQuery(path_, "SELECT count(*) FROM policy_devices"), "0");
}

TEST(PolicyDevices, GlobsAndIds) {
  PolicyRecord p{"acme", "", {}, {"acme-*", "gw.site?", "dev01", "*-lab-*"}};
  for (const char* yes : {"acme-", "acme-01", "acme-x.y", "gw.site1", "dev01", "a-lab-b"}) {
    EXPECT_TRUE(p.reaches(yes)) << yes;
  }
  for (const char* no :
       {"acme", "xacme-1", "gw.site", "gw.site12", "dev011", "Dev01", "lab-b", ""}) {
    EXPECT_FALSE(p.reaches(no)) << no;
  }
  PolicyRecord every{"ops", "", {}};
  EXPECT_TRUE(every.reaches("whatever"));
  // A pattern with many stars is still linear, not exponential.
  PolicyRecord stars{"s", "", {}, {"*a*a*a*a*a*a*a*a*a*a*b"}};
  EXPECT_FALSE(stars.reaches(std::string(100, 'a')));
}

TEST_F(RegistryTest, FailedMigrationRollsBack) {
  {
    auto r = openOrFail();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->addDevice(dev("dev01")), DbResult::Ok);
  }
  // The versions this program has stand as applied; the next one fails halfway.
  std::vector<std::string_view> broken(Registry::kSchemaVersion, "-- already applied");
  broken.push_back("CREATE TABLE extra (x INTEGER); DELETE FROM devices; THIS IS NOT SQL;");
  std::string err;
  EXPECT_EQ(Registry::openWithMigrations(path_.string(), broken, err), nullptr);
  EXPECT_THAT(err, HasSubstr(path_.string()));
  EXPECT_THAT(err, HasSubstr("migrating to schema version " +
                             std::to_string(Registry::kSchemaVersion + 1)));
  EXPECT_THAT(err, HasSubstr("syntax error"));

  auto r = openOrFail();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->schemaVersion(), Registry::kSchemaVersion);
  EXPECT_TRUE(r->device("dev01").has_value());
  EXPECT_THAT(rawQuery(path_, "SELECT count(*) FROM extra"), HasSubstr("no such table"));
}

TEST_F(RegistryTest, NewerSchemaIsRefused) {
  { ASSERT_TRUE(openOrFail()); }
  ASSERT_EQ(rawQuery(path_, "PRAGMA user_version = 7"), "");
  std::string err;
  EXPECT_EQ(Registry::open(path_.string(), err), nullptr);
  EXPECT_THAT(err, HasSubstr(path_.string()));
  EXPECT_THAT(err, HasSubstr("registry schema version 7 is newer than this program (" +
                             std::to_string(Registry::kSchemaVersion) + ")"));
  EXPECT_EQ(rawQuery(path_, "PRAGMA user_version"), "7");  // left as it was
}

TEST_F(RegistryTest, CorruptFileIsAnError) {
  {
    std::ofstream out(path_, std::ios::binary);
    std::mt19937 gen(42);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(gen() & 0xff));
  }
  std::string err;
  EXPECT_EQ(Registry::open(path_.string(), err), nullptr);
  EXPECT_THAT(err, HasSubstr(path_.string()));
  EXPECT_THAT(err, HasSubstr("not a database"));
}

TEST_F(RegistryTest, UnopenablePathIsAnError) {
  std::string missing = (dir_ / "no-such-folder" / "registry.db").string();
  std::string err;
  EXPECT_EQ(Registry::open(missing, err), nullptr);
  EXPECT_THAT(err, HasSubstr(missing));
  EXPECT_THAT(err, HasSubstr("unable to open"));
  EXPECT_FALSE(fs::exists(dir_ / "no-such-folder"));
}

TEST_F(RegistryTest, FileIsCreatedOwnerOnlyWhateverTheUmask) {
  std::string path = (dir_ / "open.db").string();
  mode_t old = ::umask(0);
  std::string err;
  auto r = Registry::open(path, err);
  ::umask(old);
  ASSERT_NE(r, nullptr) << err;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // An existing registry readable by others is narrowed when opened.
  r.reset();
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  r = Registry::open(path, err);
  ASSERT_NE(r, nullptr) << err;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(DbResultTest, Names) {
  const std::pair<DbResult, std::string_view> names[] = {{DbResult::Ok, "ok"},
                                                         {DbResult::NotFound, "not-found"},
                                                         {DbResult::Exists, "exists"},
                                                         {DbResult::Invalid, "invalid"},
                                                         {DbResult::Error, "error"}};
  for (const auto& [result, name] : names) EXPECT_EQ(dbResultName(result), name);
}

}  // namespace
}  // namespace ds::hub

namespace ds::hub {
namespace {

TEST(PolicyPermissions, OnlyExactNamesAreGranted) {
  PolicyRecord p{"ops", "key", {"connect", "registry-read"}};
  EXPECT_TRUE(p.allows("connect"));
  EXPECT_TRUE(p.allows("registry-read"));
  // Reading does not imply writing, and no prefix or case variant counts.
  EXPECT_FALSE(p.allows("registry-write"));
  EXPECT_FALSE(p.allows("registry"));
  EXPECT_FALSE(p.allows("Connect"));
  EXPECT_FALSE(p.allows(""));
  PolicyRecord none{"none", "key", {}};
  EXPECT_FALSE(none.allows("connect"));
}

}  // namespace
}  // namespace ds::hub
