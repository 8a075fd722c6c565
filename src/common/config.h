// Configuration values shared by every program's settings (src/<program>/settings.h): the error
// type, log levels, durations, sizes, and the syntax of device ids, policy names and keys, which
// the hub's registry and API check as well. Reading YAML is in common/yaml_reader.h; addresses
// and URLs in common/net.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace ds::config {

// what() is "path:line:column: message" (1-based), or "path: message" for whole-file problems.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class LogLevel { Debug, Info, Warn, Error };

// Accepts exactly "debug", "info", "warn" and "error".
std::optional<LogLevel> parseLogLevel(std::string_view s);
std::string_view toString(LogLevel level);

// "500ms", "60s", "2m", "1h" or a plain integer of seconds; never negative.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view s);

// "16384", "512B", "64KiB", "1MiB", "1GiB".
std::optional<uint64_t> parseSize(std::string_view s);

// IoT Hub's rule: 1..128 characters of [A-Za-z0-9-.%_*?!(),:=@$'].
bool isValidDeviceId(std::string_view id);

// 1..64 characters of [A-Za-z0-9._-].
bool isValidPolicyName(std::string_view name);

// Strict, padded standard base64 that decodes to at least 16 bytes.
bool isValidKey(std::string_view base64);

}  // namespace ds::config
