// Leveled logging to stderr (one line per record, journal-friendly). Secrets never go in here:
// callers log key names and token prefixes, never keys or whole tokens.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace ds {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void setLogLevel(Level level);
Level logLevel();
void setLogProgram(std::string_view name);
// Writes one record; `msg` is escaped with escapeForLog.
void logLine(Level level, std::string_view msg);
// `msg` with control characters and invalid UTF-8 written as \xNN: peer-controlled text can
// never forge a record or reach a terminal raw. Backslashes stay as they are (Windows paths).
std::string escapeForLog(std::string_view msg);
[[noreturn]] void logFatal(std::string_view msg);
// Where formatted lines ("<time> <program> <LEVEL> message\n") go instead of stderr; null
// restores stderr. Set once at start-up (platform::logToFile, the Windows service).
using LogSink = void (*)(Level level, std::string_view line);
void setLogSink(LogSink sink);

}  // namespace ds

// printf-style formatting keeps the call sites short; format checking is done by the compiler.
#define DS_LOG(level, ...)                                               \
  do {                                                                   \
    if (static_cast<int>(level) >= static_cast<int>(::ds::logLevel())) { \
      char ds_log_buf_[1024];                                            \
      std::snprintf(ds_log_buf_, sizeof ds_log_buf_, __VA_ARGS__);       \
      ::ds::logLine(level, ds_log_buf_);                                 \
    }                                                                    \
  } while (0)
#define LOG_DEBUG(...) DS_LOG(::ds::Level::Debug, __VA_ARGS__)
#define LOG_INFO(...) DS_LOG(::ds::Level::Info, __VA_ARGS__)
#define LOG_WARN(...) DS_LOG(::ds::Level::Warn, __VA_ARGS__)
#define LOG_ERROR(...) DS_LOG(::ds::Level::Error, __VA_ARGS__)
