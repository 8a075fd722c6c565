// The start-up and shut-down every long-running program (hub, agent, daemon) shares: its command
// line (-c/--config, --check), reading its configuration file, and running its loop until
// SIGINT or SIGTERM. Each program's main() keeps only what is its own. Header-only: CLI11 is
// linked by the programs, not by ds_common.
#pragma once

#include <CLI/CLI.hpp>  // header-only; only the programs include this file
#ifndef _WIN32
#include <signal.h>
#endif
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/event.h"
#include "common/log.h"
#include "common/service.h"
#include "common/service_notify.h"

namespace ds::program {

struct CommandLine {
  std::string configPath;
  bool check = false;
};

// Adds -c/--config (the file's section `section`) and --check to `app`.
inline void addOptions(CLI::App& app, CommandLine& cl, const std::string& section) {
  app.add_option("-c,--config", cl.configPath, "configuration file (section '" + section + "')");
  app.add_flag("--check", cl.check, "validate the configuration and exit");
}

// Reads the configuration with `load(path)`. A config::Error (file:line:column) is reported as
// a start-up error (service::startError) and gives nullopt: the program then exits with 2.
template <class Load>
auto loadConfig(const std::string& path, Load load) -> std::optional<decltype(load(path))> {
  try {
    return load(path);
  } catch (const config::Error& e) {
    service::startError(e.what());
    return std::nullopt;
  }
}

// Sets the log level the configuration asks for and starts the program's object,
// `Program(loop, cfg)` and its start(); null after reporting a start-up error (the program then
// exits with 1).
template <class Program, class Config>
std::unique_ptr<Program> start(Loop& loop, const Config& cfg) {
  setLogLevel(static_cast<Level>(cfg.logLevel));
  auto program = std::make_unique<Program>(loop, cfg);
  std::string err;
  if (!program->start(err)) {
    service::startError(err);
    return nullptr;
  }
  return program;
}

// Who the program is, for its command line and its messages.
struct Identity {
  const char* name;         // "devstreams-agent"
  const char* description;  // the line --help shows after the name
  std::string defaultConfig;
  const char* section;  // of the configuration file
};

// Parses the command line into `cl` and reads the configuration with `load` (as loadConfig()).
// Without a configuration, `exitCode` says how the program ends now: 0 after --help, 2 for a
// bad command line or a bad configuration (the man pages' codes).
template <class Load>
auto startUp(const Identity& who, int argc, char** argv, CommandLine& cl, Load load, int& exitCode)
    -> std::optional<decltype(load(cl.configPath))> {
  CLI::App app{std::string(who.name) + ": " + who.description};
  cl.configPath = who.defaultConfig;
  addOptions(app, cl, who.section);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exitCode = app.exit(e) == 0 ? 0 : 2;
    return std::nullopt;
  }
  setLogProgram(who.name);
  auto cfg = loadConfig(cl.configPath, load);
  if (!cfg) exitCode = 2;
  return cfg;
}

// SIGINT and SIGTERM held (blocked) from before the program starts until the loop handles
// them: a stop request that arrives while the program is starting (its port may already be
// open) waits and then ends it cleanly instead of killing it. Nothing to hold on Windows, where
// stop requests come through the console handler or the service manager.
class HoldStopSignals {
 public:
#ifndef _WIN32
  HoldStopSignals() {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    held_ = pthread_sigmask(SIG_BLOCK, &stop, &before_) == 0;
  }
  void release() {
    if (held_) pthread_sigmask(SIG_SETMASK, &before_, nullptr);
    held_ = false;
  }
#else
  HoldStopSignals() = default;
  void release() {}
#endif
  ~HoldStopSignals() { release(); }
  HoldStopSignals(const HoldStopSignals&) = delete;
  HoldStopSignals& operator=(const HoldStopSignals&) = delete;

 private:
#ifndef _WIN32
  sigset_t before_{};
  bool held_ = false;
#endif
};

// Runs `loop` until SIGINT or SIGTERM, which log the signal, tell the service manager the
// program is stopping, call `shutdown` and end the loop once its output is flushed. The program
// is reported running once the signals are set (a stop request then ends the loop); `held`
// signals are let through from then on.
inline void runUntilSignal(Loop& loop, service::Notifier& notifier,
                           const std::function<void()>& shutdown, HoldStopSignals& held) {
  loop.onSignals([&loop, &notifier, shutdown](int sig) {
    LOG_INFO("signal %d: shutting down", sig);
    notifier.stopping("shutting down");
    shutdown();
    loop.stopWhenFlushed();
  });
  held.release();
  service::reportRunning();  // after onSignals: a stop request now ends the loop
  loop.run();
}

// Starts `Program(loop, cfg)` and runs it until SIGINT or SIGTERM; the exit code (1 when it
// did not start). Once it started, `onStarted(loop, program)` adds what the program needs beyond
// that (what it returns is kept until the loop ends); `status(program, sinceStart)` is the
// service::State the service manager is told.
template <class Program, class Config, class OnStarted, class Status>
int run(const Config& cfg, OnStarted onStarted, Status status) {
  HoldStopSignals held;
  Loop loop;
  auto program = start<Program>(loop, cfg);
  if (!program) return 1;
  [[maybe_unused]] auto added = onStarted(loop, *program);
  const auto started = std::chrono::steady_clock::now();
  service::Notifier notifier(
      loop, [&] { return status(*program, std::chrono::steady_clock::now() - started); });
  runUntilSignal(
      loop, notifier, [&] { program->shutdown(); }, held);
  return 0;
}

}  // namespace ds::program
