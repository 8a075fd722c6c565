// The registry's SQLite schema as migrations: entry i takes the schema from version i to i + 1.
#pragma once

#include <span>
#include <string_view>

namespace ds::hub {

std::span<const std::string_view> registryMigrations();

}  // namespace ds::hub
