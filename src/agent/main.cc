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
// SIGHUP re-reads the configuration file and replaces the allow-list; on any error the old list
// stays and the error (file:line:column) is logged. Streams already open are not touched.
class Reloader {
 public:
  Reloader(ds::Loop& loop, std::string path, ds::agent::Agent& agent)
      : path_(std::move(path)),
        agent_(agent),
        event_(evsignal_new(loop.base(), SIGHUP, &Reloader::onSighup, this)) {
    event_add(event_.get(), nullptr);
  }

 private:
  static void onSighup(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Reloader*>(arg);
    LOG_INFO("SIGHUP: reloading the allow-list from %s", self->path_.c_str());
    try {
      ds::config::AgentConfig fresh = ds::config::loadAgent(self->path_);
      std::string err;
      if (!self->agent_.setAllowList(std::move(fresh.allow), err)) {
        LOG_ERROR("reload failed, keeping the current allow-list: %s", err.c_str());
      }
    } catch (const ds::config::Error& e) {
      LOG_ERROR("reload failed, keeping the current allow-list: %s", e.what());
    }
  }

  std::string path_;
  ds::agent::Agent& agent_;
  ds::EventPtr event_;
};
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
  return ds::program::run<ds::agent::Agent>(
      cfg,
      [&](ds::Loop& loop, ds::agent::Agent& agent) {
#ifdef SIGHUP
        return std::make_unique<Reloader>(loop, configPath, agent);
#else  // Windows has none: the service is restarted to reload
        (void)loop, (void)agent;
        return nullptr;
#endif
      },
      // Ready once the hub link is up, or once the first attempt has had its connect_timeout: a
      // service that waits for an unreachable hub is running as configured, and says so.
      [&](ds::agent::Agent& agent, auto sinceStart) {
        bool online = agent.online();
        bool tried = sinceStart >= cfg.connectTimeout;
        return ds::service::State{online || tried,
                                  cfg.deviceId + (online ? " online, " : " connecting to hub, ") +
                                      ds::service::countOf(agent.streams(), "stream")};
      });
}

}  // namespace

int main(int argc, char** argv) {
  ds::platform::initProcess();
  return ds::service::run("devstreams-agent", argc, argv, &runAgent);
}
