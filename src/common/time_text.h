// Times as people and JSON consumers read them.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace ds {

// ISO 8601 in UTC ("2026-11-29T17:00:00Z") of Unix seconds; "?" when it cannot be shown.
inline std::string isoUtc(int64_t unixSeconds) {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace ds
