// Leveled logging: "<time> <program> <LEVEL> message" on stderr.
#include "common/log.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <string>

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
}  // namespace

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
  if (LogSink sink = gSink.load()) {
    char line[1280];
    int n =
        std::snprintf(line, sizeof line, "%s.%03ld %s %s %.*s\n", stamp, ts.tv_nsec / 1000000,
                      gProgram.c_str(), levelName(level), static_cast<int>(msg.size()), msg.data());
    if (n > 0) sink(level, std::string_view(line, std::min(sizeof line - 1, size_t(n))));
    return;
  }
  std::fprintf(stderr, "%s.%03ld %s %s %.*s\n", stamp, ts.tv_nsec / 1000000, gProgram.c_str(),
               levelName(level), static_cast<int>(msg.size()), msg.data());
}

void logFatal(std::string_view msg) {
  logLine(Level::Error, msg);
  std::abort();
}

}  // namespace ds
