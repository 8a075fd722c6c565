// devstreams-hub: command line and start-up.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/log.h"
#include "common/service_notify.h"
#include "hub/hub.h"
#include "hub/settings.h"

int main(int argc, char** argv) {
  CLI::App app{"devstreams-hub: main and streaming endpoint of devstreams"};
  std::string configPath = "/etc/devstreams/hub.yaml";
  app.add_option("-c,--config", configPath, "configuration file (section 'hub')");
  bool check = false;
  app.add_flag("--check", check, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  ds::setLogProgram("devstreams-hub");
  ds::config::HubConfig cfg;
  try {
    cfg = ds::config::loadHub(configPath);
    if (!cfg.bootstrapRegistry.empty()) ds::config::loadRegistrySeed(cfg.bootstrapRegistry);
  } catch (const ds::config::Error& e) {
    std::fprintf(stderr, "devstreams-hub: %s\n", e.what());
    return 2;
  }
  if (check) {
    std::printf("%s: ok\n", configPath.c_str());
    return 0;
  }
  ds::setLogLevel(static_cast<ds::Level>(cfg.logLevel));

  ds::Loop loop;
  ds::hub::Hub hub(loop, cfg);
  std::string err;
  if (!hub.start(err)) {
    std::fprintf(stderr, "devstreams-hub: %s\n", err.c_str());
    return 1;
  }
  LOG_INFO("listening on %s:%u, registry %s", cfg.listen.host.c_str(), hub.port(),
           cfg.registry.c_str());
  std::string where = cfg.listen.host + ":" + std::to_string(hub.port());
  ds::service::Notifier notifier(loop, [&] {
    return ds::service::State{
        true, "listening on " + where + ", " + ds::service::countOf(hub.devicesOnline(), "device") +
                  " online, " + ds::service::countOf(hub.streamCount(), "stream")};
  });
  loop.onSignals([&](int sig) {
    LOG_INFO("signal %d: shutting down", sig);
    notifier.stopping("shutting down");
    hub.shutdown();
    loop.stopWhenFlushed();
  });
  loop.run();
  return 0;
}
