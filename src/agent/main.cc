// devstreams-agent: command line and start-up.
#include <csignal>
#include <cstdio>

#include "agent/agent.h"
#include "common/log.h"
#include "common/platform.h"
#include "common/program.h"
#include "common/service.h"
#include "common/service_notify.h"

namespace {

#ifdef SIGHUP
struct SighupContext {
  std::string path;
  ds::agent::Agent* agent;
};

// SIGHUP re-reads the configuration file and replaces the allow-list; on any error the old list
// stays and the error (file:line:column) is logged. Streams already open are not touched.
void onSighup(evutil_socket_t, short, void* arg) {
  auto* ctx = static_cast<SighupContext*>(arg);
  LOG_INFO("SIGHUP: reloading the allow-list from %s", ctx->path.c_str());
  try {
    ds::config::AgentConfig fresh = ds::config::loadAgent(ctx->path);
    std::string err;
    if (!ctx->agent->setAllowList(std::move(fresh.allow), err)) {
      LOG_ERROR("reload failed, keeping the current allow-list: %s", err.c_str());
    }
  } catch (const ds::config::Error& e) {
    LOG_ERROR("reload failed, keeping the current allow-list: %s", e.what());
  }
}
#endif

int runAgent(int argc, char** argv) {
  ds::program::CommandLine cl;
  int exitCode = 0;
  auto loaded = ds::program::startUp({"devstreams-agent", "device side of devstreams",
                                      ds::platform::defaultConfigFile("agent.yaml"), "agent"},
                                     argc, argv, cl, &ds::config::loadAgent, exitCode);
  if (!loaded) return exitCode;
  const std::string& configPath = cl.configPath;
  ds::config::AgentConfig& cfg = *loaded;
  if (std::string err; !ds::agent::compileRules(cfg.allow, err)) {
    std::fprintf(stderr, "devstreams-agent: %s: %s\n", configPath.c_str(), err.c_str());
    return 2;
  }
  if (cl.check) {
    std::printf("%s: ok (device %s, %zu allowed targets)\n", configPath.c_str(),
                cfg.deviceId.c_str(), cfg.allow.size());
    return 0;
  }
  ds::Loop loop;
  auto agent = ds::program::start<ds::agent::Agent>(loop, cfg);
  if (!agent) return 1;
  // Ready once the hub link is up, or once the first attempt has had its connect_timeout: a
  // service that waits for an unreachable hub is running as configured, and says so.
  auto started = std::chrono::steady_clock::now();
  ds::service::Notifier notifier(loop, [&] {
    bool online = agent->online();
    bool tried = std::chrono::steady_clock::now() - started >= cfg.connectTimeout;
    return ds::service::State{online || tried,
                              cfg.deviceId + (online ? " online, " : " connecting to hub, ") +
                                  ds::service::countOf(agent->streams(), "stream")};
  });
#ifdef SIGHUP  // Windows has none: the service is restarted to reload
  SighupContext hup{configPath, agent.get()};
  ds::EventPtr sighup(evsignal_new(loop.base(), SIGHUP, &onSighup, &hup));
  event_add(sighup.get(), nullptr);
#endif
  ds::program::runUntilSignal(loop, notifier, [&] { agent->shutdown(); });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ds::platform::initProcess();
  return ds::service::run("devstreams-agent", argc, argv, &runAgent);
}
