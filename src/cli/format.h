// Output helpers shared by the CLI's commands: human-readable sizes and ages, aligned tables, and
// typed reads of JSON answers that tolerate missing or mistyped fields.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ds::cli {

// "512B", "1.2KiB", "3.4MiB" ... (binary units, one decimal, no blank so table cells stay words).
std::string humanBytes(uint64_t n);
// "0s", "3s", "59s", "2m05s", "1h02m", "2d03h"; negative and non-finite values count as 0.
std::string humanAge(double seconds);
// Columns separated by two spaces, one line per row, no trailing blanks.
std::string formatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// A string field ("" when missing or null; other types as their JSON text).
std::string str(const nlohmann::json& j, const char* key);
// An integer field (0 when missing or not a number).
int64_t num(const nlohmann::json& j, const char* key);
// A number field as double (0 when missing or not a number).
double real(const nlohmann::json& j, const char* key);
// A boolean field (false when missing or not a boolean).
bool flag(const nlohmann::json& j, const char* key);

}  // namespace ds::cli
