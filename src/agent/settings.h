// The agent's settings: the `agent:` section of the configuration file, with its allow-list
// rules as written. Loading follows common/yaml_reader.h: every error names file:line:column.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/net.h"

namespace ds::config {

// One entry of an agent's allow-list: a host (name or address, IPv6 without brackets; an address
// may carry a prefix length, "192.168.1.0/24") and a port or an inclusive port range, or a Unix
// socket. Written "127.0.0.1:22", "localhost:8000-8100", "[::1]:22", "192.168.1.0/24:80",
// "unix:/run/app.sock", or as a mapping that names the callers it admits:
// `{to: "127.0.0.1:22", from: [ops, "support/alice"]}`. The agent compiles and matches rules on
// addresses (src/agent/allow_list.h).
struct AllowRule {
  std::string host;
  uint16_t portMin = 0, portMax = 0;
  std::string path{};  // a Unix socket (absolute); then host is empty and the ports 0
  // The callers admitted: a policy name ("ops") or a policy and the user its daemon asserted
  // ("support/alice"); empty: every caller.
  std::vector<std::string> from{};
  // The host compared as text (names case-insensitively) and the port within the range.
  bool matches(std::string_view host, uint16_t port) const;
  std::string toString() const;
  friend bool operator==(const AllowRule&, const AllowRule&) = default;
};

// "host:port" or "host:first-last" (1 <= first <= last <= 65535); host may be "address/prefix";
// or "unix:" and an absolute path (at most proto::kMaxSocketPath bytes of printable ASCII
// without spaces).
std::optional<AllowRule> parseAllowRule(std::string_view s);

// Whether `s` may stand in a rule's `from`: a policy name (isValidPolicyName) alone, or followed
// by '/' and a user name of 1..255 printable ASCII bytes without ':'.
bool isValidCaller(std::string_view s);

struct AgentConfig {
  std::string hubUrl;       // "wss://host[:port]" (https accepted too), required
  std::string ca;           // PEM file of the CA to trust, required
  std::string serverName;   // TLS SNI and verification name; default: host of hubUrl
  std::string hubHostname;  // SAS resource host; default: host of hubUrl
  std::string deviceId;     // required
  std::string deviceKey;    // base64, required
  std::vector<AllowRule> allow{{"127.0.0.1", 22, 22}};  // targets the agent may connect to
  std::vector<net::Endpoint> nameservers;  // DNS servers for target names; empty: /etc/resolv.conf
  std::string proxy;  // "http://[user:pass@]host[:port]"; empty: HTTPS_PROXY/NO_PROXY decide
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds reconnectMin{1000}, reconnectMax{30000};
  std::chrono::milliseconds keepalive{20000};         // control-channel ping interval
  std::chrono::milliseconds keepaliveTimeout{60000};  // silence after which the channel is dead
  uint64_t maxStreams = 256;                          // concurrent streams (pending and open)
  uint64_t highWatermark = 256 * 1024;
  // Offer streams multiplexed on the control channel (docs/mux.md); the hub decides.
  bool multiplex = true;
  LogLevel logLevel = LogLevel::Info;
};

// Read and validate `path` (throws Error). Relative paths inside are resolved against the
// directory of `path`. Only the `agent:` section is validated, so that a mistake in another
// program's section does not stop the agent.
AgentConfig loadAgent(const std::string& path);

// The same from text already in memory; `path` names the text in errors and anchors relative paths.
AgentConfig parseAgent(std::string_view text, const std::string& path);

}  // namespace ds::config
