// devstreams-hub: command line and start-up.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/config.h"
#include "common/log.h"
#include "hub/hub.h"

int main(int argc, char** argv) {
  CLI::App app{"devstreams-hub: main and streaming endpoint of devstreams"};
  std::string configPath = "/etc/devstreams/hub.yaml";
  app.add_option("-c,--config", configPath, "configuration file (section 'hub')");
  bool check = false;
  app.add_flag("--check", check, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  ds::setLogProgram("devstreams-hub");
  ds::config::HubConfig cfg;
  ds::config::Registry registry;
  try {
    cfg = ds::config::loadHub(configPath);
    registry = ds::config::loadRegistry(cfg.registry);
  } catch (const ds::config::Error& e) {
    std::fprintf(stderr, "devstreams-hub: %s\n", e.what());
    return 2;
  }
  if (check) {
    std::printf("%s: ok (%zu devices, %zu policies)\n", configPath.c_str(), registry.devices.size(),
                registry.policies.size());
    return 0;
  }
  ds::setLogLevel(static_cast<ds::Level>(cfg.logLevel));

  ds::Loop loop;
  ds::hub::Hub hub(loop, cfg, registry);
  std::string err;
  if (!hub.start(err)) {
    std::fprintf(stderr, "devstreams-hub: %s\n", err.c_str());
    return 1;
  }
  LOG_INFO("listening on %s:%u (%zu devices, %zu policies)", cfg.listen.host.c_str(), hub.port(),
           registry.devices.size(), registry.policies.size());
  loop.onSignals([&](int sig) {
    LOG_INFO("signal %d: shutting down", sig);
    hub.shutdown();
    loop.stop();
  });
  loop.run();
  return 0;
}
