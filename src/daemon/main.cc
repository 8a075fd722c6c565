// devstreamsd: command line and start-up.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/log.h"
#include "common/service_notify.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  CLI::App app{"devstreamsd: SOCKS5 and port forwards to devices through a devstreams hub"};
  std::string configPath = "/etc/devstreams/devstreams.yaml";
  app.add_option("-c,--config", configPath, "configuration file (section 'daemon')");
  bool check = false;
  app.add_flag("--check", check, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  ds::setLogProgram("devstreamsd");
  ds::config::DaemonConfig cfg;
  try {
    cfg = ds::config::loadDaemon(configPath);
  } catch (const ds::config::Error& e) {
    std::fprintf(stderr, "devstreamsd: %s\n", e.what());
    return 2;
  }
  if (check) {
    std::printf("%s: ok (SOCKS on %s, %zu forwards)\n", configPath.c_str(),
                cfg.socksListen.toString().c_str(), cfg.forwards.size());
    return 0;
  }
  ds::setLogLevel(static_cast<ds::Level>(cfg.logLevel));
  ds::Loop loop;
  ds::daemon::Daemon daemon(loop, cfg);
  std::string err;
  if (!daemon.start(err)) {
    std::fprintf(stderr, "devstreamsd: %s\n", err.c_str());
    return 1;
  }
  // Ready once the hub's service channel is up, or once its first attempt has had the
  // opener's connect bound: the proxy answers either way (SOCKS errors while the hub is away).
  auto started = std::chrono::steady_clock::now();
  ds::service::Notifier notifier(loop, [&] {
    nlohmann::json st = daemon.status();
    bool connected = st["hub"]["connected"].get<bool>();
    bool tried = std::chrono::steady_clock::now() - started >=
                 ds::hubclient::StreamOpener::Options{}.connectTimeout;
    std::string hub =
        connected ? "hub connected" : "hub: " + st["hub"]["last_error"].get<std::string>();
    return ds::service::State{connected || tried,
                              hub + ", " +
                                  ds::service::countOf(st["streams"].get<size_t>(), "stream") +
                                  ", proxy on " + st["listen"].get<std::string>()};
  });
  loop.onSignals([&](int sig) {
    LOG_INFO("signal %d: shutting down", sig);
    notifier.stopping("shutting down");
    daemon.shutdown();
    loop.stopWhenFlushed();
  });
  loop.run();
  return 0;
}
