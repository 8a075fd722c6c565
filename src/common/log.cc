// Leveled logging: "<time> <program> <LEVEL> message" on stderr.
#include "common/log.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "common/platform.h"

namespace ds {
namespace {
std::atomic<int> gLevel{static_cast<int>(Level::Info)};
std::string gProgram = "devstreams";
std::atomic<LogSink> gSink{nullptr};

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
    if (c >= 0x20 && c < 0x7f) {
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
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
    ++i;
  }
  return out;
}

void setLogLevel(Level level) { gLevel = static_cast<int>(level); }
Level logLevel() { return static_cast<Level>(gLevel.load()); }
void setLogProgram(std::string_view name) { gProgram = name; }
void setLogSink(LogSink sink) { gSink = sink; }

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
  if (LogSink sink = gSink.load()) {
    char text[1280];
    int n = std::snprintf(text, sizeof text, "%s.%03ld %s %s %s\n", stamp, ts.tv_nsec / 1000000,
                          gProgram.c_str(), levelName(level), line.c_str());
    if (n > 0) sink(level, std::string_view(text, std::min(sizeof text - 1, size_t(n))));
    return;
  }
  std::fprintf(stderr, "%s.%03ld %s %s %s\n", stamp, ts.tv_nsec / 1000000, gProgram.c_str(),
               levelName(level), line.c_str());
}

void logFatal(std::string_view msg) {
  logLine(Level::Error, msg);
  std::abort();
}

namespace platform {
namespace {
FILE* gLogFile = nullptr;
bool gAlsoStderr = true;
void fileSink(Level, std::string_view line) {
  if (gAlsoStderr) std::fwrite(line.data(), 1, line.size(), stderr);
  std::fwrite(line.data(), 1, line.size(), gLogFile);
  std::fflush(gLogFile);
}
}  // namespace

bool logToFile(const std::string& path, bool alsoStderr, std::string& err) {
#ifdef _WIN32
  const char* mode = "ab";  // no O_CLOEXEC flag on Windows; binary keeps lines as written
#else
  const char* mode = "ae";  // close-on-exec
#endif
  FILE* f = std::fopen(path.c_str(), mode);
  if (!f) {
    err = "cannot open log file " + path + ": " + std::strerror(errno);
    return false;
  }
  if (gLogFile) std::fclose(gLogFile);
  gLogFile = f;
  gAlsoStderr = alsoStderr;
  setLogSink(&fileSink);
  return true;
}
}  // namespace platform

}  // namespace ds
