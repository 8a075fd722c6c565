// The hub's settings: the `hub:` section of the configuration file, and the registry seed, a
// YAML file of devices and policies imported once into an empty registry (`bootstrap_registry`).
// Loading follows common/yaml_reader.h: every error names file:line:column.
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

struct HubConfig {
  net::Endpoint listen{"127.0.0.1", 8443};
  std::string hostname = "localhost";  // the name in SAS resources ("<hostname>/devices/<id>")
  std::string publicUrl;               // default "wss://<hostname>:<listen port>"
  std::string stateDir;                // registry and generated TLS files; default: config's dir
  std::string cert, key;               // PEM paths; both empty: the hub makes a CA and cert
  std::vector<std::string> tlsNames;   // SANs of a generated cert; default hostname, 127.0.0.1, ::1
  std::string registry;                // SQLite file; default <stateDir>/registry.db
  std::string bootstrapRegistry;       // YAML imported once into an empty registry (optional)
  std::chrono::milliseconds handshakeTimeout{60000};
  std::chrono::milliseconds requestTimeout{10000};  // reading an HTTP head
  std::chrono::milliseconds keepalive{20000};       // control-channel ping interval
  std::chrono::milliseconds idleTimeout{0};         // per stream without traffic; 0 = off
  uint64_t maxFrame = 1 << 20;                      // largest WebSocket frame payload accepted
  uint64_t maxMessage = 1 << 20;                    // largest reassembled text message
  uint64_t maxHeaderBytes = 16 * 1024;              // largest HTTP request head
  uint64_t highWatermark = 256 * 1024;              // relay backpressure
  uint64_t streamMemory = 1ull << 30;               // multiplexed receive windows, hub-wide
  uint64_t maxStreams = 10000;                      // concurrent streams on the hub
  uint64_t maxStreamsPerDevice = 1000;              // concurrent streams per device
  uint64_t maxPendingHandshakes = 1000;             // streams not yet paired
  uint64_t newStreamsPerSecond = 100;               // per service policy (token bucket)
  uint64_t auditKeep = 100000;                      // stream audit records kept
  // Streams multiplexed on the control and service channels of clients that offer it
  // (docs/mux.md); off: every stream has its own WebSocket per side.
  bool multiplex = true;
  // Limits on what strangers can hold (docs/security.md).
  uint64_t maxConnections = 20000;               // open connections, all kinds
  uint64_t maxConnectionsPerAddress = 4096;      // open connections from one source address
  uint64_t maxTlsHandshakes = 256;               // TLS handshakes in progress
  uint64_t maxTlsHandshakesPerAddress = 32;      // of them from one source address
  uint64_t maxStreamsPerPolicy = 5000;           // concurrent streams of one service policy
  uint64_t maxPendingPerPolicy = 500;            // streams of one policy not yet paired
  std::chrono::seconds maxTokenLifetime{86400};  // SAS tokens expiring further ahead: 401
  // /metrics and /healthz: also (or only) on a plain-HTTP listener of their own, and/or only
  // with "Authorization: Bearer <metrics_token>" on the main listener.
  std::optional<net::Endpoint> metricsListen;
  std::string metricsToken;
  LogLevel logLevel = LogLevel::Info;
};

// What a bootstrap registry file holds (not the registry itself: that is hub/registry.h).
struct RegistrySeed {
  struct Device {
    std::string id, primaryKey, secondaryKey;  // secondaryKey may be empty
    bool enabled = true;
  };
  struct Policy {
    std::string name, key;
    std::vector<std::string>
        permissions;  // each one of "connect", "registry-read", "registry-write"
    // The devices the policy's streams may reach: ids or globs ('*', '?'); empty: every device.
    std::vector<std::string> devices;
  };
  std::vector<Device> devices;
  std::vector<Policy> policies;
};

// Read and validate `path`; both throw Error. Relative paths inside are resolved against the
// directory of `path`. Only the `hub:` section is validated, so that a mistake in another
// program's section does not stop the hub.
HubConfig loadHub(const std::string& path);
RegistrySeed loadRegistrySeed(const std::string& path);

// The same from text already in memory; `path` names the text in errors and anchors relative paths.
HubConfig parseHub(std::string_view text, const std::string& path);
RegistrySeed parseRegistrySeed(std::string_view text, const std::string& path);

}  // namespace ds::config
