// `devstreams hub ...`: administration of a hub over its REST API (devices, keys, streams),
// signed with the service policy of the `daemon:` section of a configuration file.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace ds::cli {

class HubAdmin {
 public:
  // Adds the `hub` subcommand and its tree to `app`.
  explicit HubAdmin(CLI::App& app);
  HubAdmin(const HubAdmin&) = delete;
  HubAdmin& operator=(const HubAdmin&) = delete;

  // True when the parsed command line chose a `hub` command.
  bool chosen() const;
  // Runs the chosen command; returns the process exit code (0 ok, 1 failed, 2 usage).
  int run();

 private:
  enum class Command { None, Add, List, Show, Remove, Rotate, Disable, Enable, Streams };

  CLI::App* hub_ = nullptr;
  Command command_ = Command::None;
  std::string configPath_;
  std::string deviceId_;
  std::string agentConfig_;
  std::vector<std::string> allow_;
  bool secondary_ = false;
  bool json_ = false;
  unsigned limit_ = 50;
};

}  // namespace ds::cli
