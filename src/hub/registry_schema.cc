// The registry's schema, one migration a version (registry_schema.h).
#include "hub/registry_schema.h"

#include "hub/registry.h"

namespace ds::hub {
namespace {

// kMigrations[i] takes the schema from version i to version i + 1; each runs in its own
// transaction together with the matching PRAGMA user_version. A new version is one more entry
// here (and Registry::kSchemaVersion bumped to match). Entries are never edited once released.
constexpr std::string_view kMigrations[] = {
    // 1: devices, service policies with their permissions, and the stream audit log.
    R"sql(
CREATE TABLE devices (
  id TEXT NOT NULL PRIMARY KEY,
  primary_key TEXT NOT NULL,
  secondary_key TEXT NOT NULL DEFAULT '',
  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created INTEGER NOT NULL,
  last_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE policies (
  name TEXT NOT NULL PRIMARY KEY,
  key TEXT NOT NULL
);
CREATE TABLE policy_permissions (
  policy TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  permission TEXT NOT NULL,
  PRIMARY KEY (policy, position),
  UNIQUE (policy, permission)
) WITHOUT ROWID;
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  stream_id TEXT NOT NULL,
  policy TEXT NOT NULL,
  device TEXT NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  bytes_to_device INTEGER NOT NULL,
  bytes_from_device INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX audit_start_ms ON audit (start_ms);
)sql",
    // 2: a policy may be limited to a set of devices (ids or globs; none: every device), and
    // the audit log names the user a daemon asserted and the stream's name.
    R"sql(
CREATE TABLE policy_devices (
  policy TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  pattern TEXT NOT NULL,
  PRIMARY KEY (policy, position),
  UNIQUE (policy, pattern)
) WITHOUT ROWID;
ALTER TABLE audit ADD COLUMN caller_user TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN stream_name TEXT NOT NULL DEFAULT '';
)sql",
};
static_assert(std::size(kMigrations) == Registry::kSchemaVersion,
              "Registry::kSchemaVersion must equal the number of migrations");

}  // namespace

std::span<const std::string_view> registryMigrations() { return kMigrations; }

}  // namespace ds::hub
