// devstreams-hub: command line and start-up.
#include <cstdio>

#include "common/log.h"
#include "common/platform.h"
#include "common/program.h"
#include "hub/hub.h"
#include "hub/settings.h"

namespace {

int runHub(int argc, char** argv) {
  ds::program::CommandLine cl;
  int exitCode = 0;
  auto loaded = ds::program::startUp(
      {"devstreams-hub", "main and streaming endpoint of devstreams", "/etc/devstreams/hub.yaml",
       "hub"},
      argc, argv, cl,
      [](const std::string& path) {
        ds::config::HubConfig cfg = ds::config::loadHub(path);
        if (!cfg.bootstrapRegistry.empty()) ds::config::loadRegistrySeed(cfg.bootstrapRegistry);
        return cfg;
      },
      exitCode);
  if (!loaded) return exitCode;
  ds::config::HubConfig& cfg = *loaded;
  if (cl.check) {
    std::printf("%s: ok\n", cl.configPath.c_str());
    return 0;
  }
  return ds::program::run<ds::hub::Hub>(
      cfg,
      [&](ds::Loop&, ds::hub::Hub& hub) {
        LOG_INFO("listening on %s:%u, registry %s", cfg.listen.host.c_str(), hub.port(),
                 cfg.registry.c_str());
        return nullptr;
      },
      [&](ds::hub::Hub& hub, auto) {
        return ds::service::State{
            true, "listening on " + cfg.listen.host + ":" + std::to_string(hub.port()) + ", " +
                      ds::service::countOf(hub.devicesOnline(), "device") + " online, " +
                      ds::service::countOf(hub.streamCount(), "stream")};
      });
}

}  // namespace

// The hub is Linux-only: service::run names the program for start-up errors and runs runHub.
int main(int argc, char** argv) {
  ds::platform::initProcess();
  return ds::service::run("devstreams-hub", argc, argv, &runHub);
}
