// Leveled logging: "<time> <program> <LEVEL> message" on stderr.
#include "common/log.h"

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <string>

namespace ds {
namespace {
std::atomic<int> gLevel{static_cast<int>(Level::Info)};
std::string gProgram = "devstreams";

const char* levelName(Level l) {
  switch (l) {
    case Level::Debug:
      return "DEBUG";
    case Level::Info:
      return "INFO";
    case Level::Warn:
      return "WARN";
    case Level::Error:
      return "ERROR";
  }
  return "?";
}
// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  }
  return n;
}
}  // namespace

std::string escapeForLog(std::string_view msg) {
  std::string out;
  out.reserve(msg.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < msg.size();) {
    auto c = static_cast<unsigned char>(msg[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t n = utf8Len(msg, i)) {
        out.append(msg.substr(i, n));
        i += n;
        continue;
      }
    }
    if (c == '\\') {
      out += "\\\\";
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    ++i;
  }
  return out;
}

void setLogLevel(Level level) { gLevel = static_cast<int>(level); }
Level logLevel() { return static_cast<Level>(gLevel.load()); }
void setLogProgram(std::string_view name) { gProgram = name; }

void logLine(Level level, std::string_view msg) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &t);
  // One record, one line: whatever a peer put in a message (CR, LF, escapes, invalid UTF-8)
  // is written escaped, so it can neither forge records nor reach a terminal raw.
  std::string line = escapeForLog(msg);
  std::fprintf(stderr, "%s.%03ld %s %s %s\n", stamp, ts.tv_nsec / 1000000, gProgram.c_str(),
               levelName(level), line.c_str());
}

void logFatal(std::string_view msg) {
  logLine(Level::Error, msg);
  std::abort();
}

}  // namespace ds
