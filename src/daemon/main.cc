// devstreamsd: command line and start-up.
#include <cstdio>

#include "common/json_fields.h"
#include "common/log.h"
#include "common/platform.h"
#include "common/program.h"
#include "common/service.h"
#include "common/service_notify.h"
#include "daemon/daemon.h"

namespace {

int runDaemon(int argc, char** argv) {
  ds::program::CommandLine cl;
  int exitCode = 0;
  auto loaded = ds::program::startUp(
      {"devstreamsd", "SOCKS5 and port forwards to devices through a devstreams hub",
       ds::platform::defaultConfigFile("devstreams.yaml"), "daemon"},
      argc, argv, cl, &ds::config::loadDaemon, exitCode);
  if (!loaded) return exitCode;
  const std::string& configPath = cl.configPath;
  ds::config::DaemonConfig& cfg = *loaded;
  if (cl.check) {
    std::printf("%s: ok (SOCKS on %s, %zu forwards)\n", configPath.c_str(),
                cfg.socksListen.toString().c_str(), cfg.forwards.size());
    return 0;
  }
  return ds::program::run<ds::daemon::Daemon>(
      cfg, [](ds::Loop&, ds::daemon::Daemon&) { return nullptr; },
      // Ready once the hub's service channel is up, or once its first attempt has had the
      // opener's connect bound: the proxy answers either way (SOCKS errors while the hub is away).
      [](ds::daemon::Daemon& daemon, auto sinceStart) {
        const nlohmann::json st = daemon.status();
        const nlohmann::json& hubState = st.contains("hub") ? st["hub"] : st;
        bool connected = ds::boolField(hubState, "connected", false);
        bool tried = sinceStart >= ds::hubclient::StreamOpener::Options{}.connectTimeout;
        std::string hub =
            connected ? "hub connected" : "hub: " + ds::stringField(hubState, "last_error", "?");
        uint64_t streams = ds::uintField(st, "streams", 0);
        return ds::service::State{connected || tried,
                                  hub + ", " +
                                      ds::service::countOf(static_cast<size_t>(streams), "stream") +
                                      ", proxy on " + ds::stringField(st, "listen")};
      });
}

}  // namespace

int main(int argc, char** argv) {
  ds::platform::initProcess();
  return ds::service::run("devstreamsd", argc, argv, &runDaemon);
}
