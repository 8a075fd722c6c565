// Configuration values: log levels, durations, sizes and the syntax of ids and keys.
#include "common/config.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <string>

namespace ds::config {
namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAlnum(char c) { return isDigit(c) || isAlpha(c); }

// Parses a non-empty run of decimal digits, rejecting signs, spaces and overflow.
std::optional<uint64_t> parseUnsigned(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) return std::nullopt;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

std::optional<LogLevel> parseLogLevel(std::string_view s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  return std::nullopt;
}

std::string_view toString(LogLevel level) {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

namespace {

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// "<digits><unit>", the unit one of `units`: the number times the unit's factor, or nullopt for
// any other unit and for a product above `max`.
std::optional<uint64_t> parseScaled(std::string_view s, std::initializer_list<Unit> units,
                                    uint64_t max) {
  size_t digits = 0;
  while (digits < s.size() && isDigit(s[digits])) ++digits;
  auto n = parseUnsigned(s.substr(0, digits));
  if (!n) return std::nullopt;
  auto unit = std::find_if(units.begin(), units.end(),
                           [&](const Unit& u) { return u.name == s.substr(digits); });
  if (unit == units.end() || *n > max / unit->factor) return std::nullopt;
  return *n * unit->factor;
}

}  // namespace

std::optional<std::chrono::milliseconds> parseDuration(std::string_view s) {
  // Capping at 2^31-1 seconds keeps every duration representable as a 32-bit count of seconds
  // and far from overflow when converted to finer clocks.
  constexpr uint64_t kMaxMs = uint64_t{std::numeric_limits<int32_t>::max()} * 1000;
  auto ms = parseScaled(
      s, {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}}, kMaxMs);
  if (!ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*ms));
}

std::optional<uint64_t> parseSize(std::string_view s) {
  return parseScaled(s, {{"", 1}, {"B", 1}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}},
                     std::numeric_limits<uint64_t>::max());
}

bool isValidDeviceId(std::string_view id) {
  static constexpr std::string_view kSpecial = "-.%_*?!(),:=@$'";
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return isAlnum(c) || kSpecial.find(c) != std::string_view::npos;
  });
}

bool isValidPolicyName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool isValidKey(std::string_view b64) {
  if (b64.empty() || b64.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && b64[b64.size() - 1 - pad] == '=') ++pad;
  for (size_t i = 0; i < b64.size() - pad; ++i) {
    char c = b64[i];
    if (!isAlnum(c) && c != '+' && c != '/') return false;
  }
  // Unused low bits of the last symbol must be zero, or two spellings would name one key.
  if (pad > 0) {
    const char last = b64[b64.size() - 1 - pad];
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto bits = kAlphabet.find(last);
    if ((pad == 1 && (bits & 0x3) != 0) || (pad == 2 && (bits & 0xf) != 0)) return false;
  }
  return b64.size() / 4 * 3 - pad >= 16;
}

}  // namespace ds::config
