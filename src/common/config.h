// Configuration: one YAML file holds the `hub:`, `agent:` and `daemon:` sections (plus a shared
// top-level `log_level:`); each program loads only its own section. A separate YAML file holds the
// hub's device and policy registry. Every error names the file, and where a position is known,
// its 1-based line and column, so that an operator can go straight to the offending text.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ds::config {

// what() is "path:line:column: message" (1-based), or "path: message" for whole-file problems.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class LogLevel { Debug, Info, Warn, Error };

// Accepts exactly "debug", "info", "warn" and "error".
std::optional<LogLevel> parseLogLevel(std::string_view s);
std::string_view toString(LogLevel level);

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  // "host:port", with an IPv6 host in brackets.
  std::string toString() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// "127.0.0.1:1080", "[::1]:1080", "localhost:8443". Port 0 is accepted so that tests can bind
// ephemeral ports.
std::optional<Endpoint> parseEndpoint(std::string_view s);

// "500ms", "60s", "2m", "1h" or a plain integer of seconds; never negative.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view s);

// "16384", "512B", "64KiB", "1MiB", "1GiB".
std::optional<uint64_t> parseSize(std::string_view s);

struct Url {
  std::string scheme;  // lower case
  std::string host;    // without IPv6 brackets
  uint16_t port = 0;   // the scheme's default when absent: 443 for wss/https, 80 for ws/http
  friend bool operator==(const Url&, const Url&) = default;
};

// "scheme://host[:port][/]"; no user info, path, query or fragment. Only ws, wss, http and https
// are known schemes.
std::optional<Url> parseUrl(std::string_view s);

// IoT Hub's rule: 1..128 characters of [A-Za-z0-9-.%_*?!(),:=@$'].
bool isValidDeviceId(std::string_view id);

// 1..64 characters of [A-Za-z0-9._-].
bool isValidPolicyName(std::string_view name);

// Strict, padded standard base64 that decodes to at least 16 bytes.
bool isValidKey(std::string_view base64);

struct HubConfig {
  Endpoint listen{"127.0.0.1", 8443};
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
  uint64_t maxStreams = 10000;                      // concurrent streams on the hub
  uint64_t maxStreamsPerDevice = 1000;              // concurrent streams per device
  uint64_t maxPendingHandshakes = 1000;             // streams not yet paired
  uint64_t newStreamsPerSecond = 100;               // per service policy (token bucket)
  uint64_t auditKeep = 100000;                      // stream audit records kept
  // Limits on what strangers can hold (docs/security.md).
  uint64_t maxConnections = 20000;               // open connections, all kinds
  uint64_t maxConnectionsPerAddress = 4096;      // open connections from one source address
  uint64_t maxTlsHandshakes = 256;               // TLS handshakes in progress
  uint64_t maxStreamsPerPolicy = 5000;           // concurrent streams of one service policy
  uint64_t maxPendingPerPolicy = 500;            // streams of one policy not yet paired
  std::chrono::seconds maxTokenLifetime{86400};  // SAS tokens expiring further ahead: 401
  // /metrics and /healthz: also (or only) on a plain-HTTP listener of their own, and/or only
  // with "Authorization: Bearer <metrics_token>" on the main listener.
  std::optional<Endpoint> metricsListen;
  std::string metricsToken;
  LogLevel logLevel = LogLevel::Info;
};

// One entry of an agent's allow-list: a host (name or address, IPv6 without brackets; an address
// may carry a prefix length, "192.168.1.0/24") and a port or an inclusive port range. Written
// "127.0.0.1:22", "localhost:8000-8100", "[::1]:22", "192.168.1.0/24:80". The agent compiles and
// matches rules on addresses (src/agent/allow_list.h).
struct AllowRule {
  std::string host;
  uint16_t portMin = 0, portMax = 0;
  // The host compared as text (names case-insensitively) and the port within the range.
  bool matches(std::string_view host, uint16_t port) const;
  std::string toString() const;
  friend bool operator==(const AllowRule&, const AllowRule&) = default;
};

// "host:port" or "host:first-last" (1 <= first <= last <= 65535); host may be "address/prefix".
std::optional<AllowRule> parseAllowRule(std::string_view s);

struct AgentConfig {
  std::string hubUrl;       // "wss://host[:port]" (https accepted too), required
  std::string ca;           // PEM file of the CA to trust, required
  std::string serverName;   // TLS SNI and verification name; default: host of hubUrl
  std::string hubHostname;  // SAS resource host; default: host of hubUrl
  std::string deviceId;     // required
  std::string deviceKey;    // base64, required
  std::vector<AllowRule> allow{{"127.0.0.1", 22, 22}};  // targets the agent may connect to
  std::vector<Endpoint> nameservers;  // DNS servers for target names; empty: /etc/resolv.conf
  std::string proxy;  // "http://[user:pass@]host[:port]"; empty: HTTPS_PROXY/NO_PROXY decide
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds reconnectMin{1000}, reconnectMax{30000};
  std::chrono::milliseconds keepalive{20000};         // control-channel ping interval
  std::chrono::milliseconds keepaliveTimeout{60000};  // silence after which the channel is dead
  uint64_t maxStreams = 256;                          // concurrent streams (pending and open)
  uint64_t highWatermark = 256 * 1024;
  LogLevel logLevel = LogLevel::Info;
};

struct Forward {
  Endpoint listen;
  std::string device;
  uint16_t port = 0;
  friend bool operator==(const Forward&, const Forward&) = default;
};

// A proxy user (SOCKS5 RFC 1929 and HTTP Basic).
struct User {
  std::string name, password;
  friend bool operator==(const User&, const User&) = default;
};

// An extra name for a device: "web.lab" -> dev01, port 8080 (0: the port the client asked for).
struct Alias {
  std::string name;  // lower case
  std::string device;
  uint16_t port = 0;
  friend bool operator==(const Alias&, const Alias&) = default;
};

// Whether `host` names only the loopback interface ("localhost", 127.0.0.0/8, "::1").
bool isLoopbackHost(std::string_view host);

struct DaemonConfig {
  std::string hubUrl;                   // "https://host[:port]" or "wss://host[:port]", required
  std::string ca;                       // required
  std::string serverName, hubHostname;  // defaults: host of hubUrl
  std::string policy;                   // service policy name (SAS skn), required
  std::string key;                      // base64 policy key, required
  Endpoint socksListen{"127.0.0.1", 1080};  // SOCKS5, SOCKS4a and HTTP proxy on one port
  std::vector<User> users;  // when any: every client authenticates; required beyond loopback
  std::chrono::milliseconds clientTimeout{10000};  // a client's proxy negotiation
  std::string suffix = ".hub";                     // "dev01.hub" -> device "dev01"
  std::vector<Alias> aliases;                      // extra names of devices
  bool direct = false;            // other destinations: plain outbound TCP instead of 0x02
  std::string controlSocket;      // Unix socket of the control API; empty: the default path
  std::string controlGroup;       // group of the socket (mode 0660); empty: mode 0600
  std::vector<Forward> forwards;  // static port forwards
  std::chrono::milliseconds handshakeTimeout{60000};
  uint64_t highWatermark = 256 * 1024;
  uint64_t maxClients = 8192;            // open client connections (proxy port and forwards)
  uint64_t maxClientsPerAddress = 2048;  // from one source address
  LogLevel logLevel = LogLevel::Info;
};

struct Device {
  std::string id, primaryKey, secondaryKey;  // secondaryKey may be empty
  bool enabled = true;
};

struct Policy {
  std::string name, key;
  std::vector<std::string> permissions;  // each one of "connect", "registry-read", "registry-write"
};

struct Registry {
  std::vector<Device> devices;
  std::vector<Policy> policies;
};

// Read and validate `path`; all throw Error. Relative paths inside are resolved against the
// directory of `path`. Only the program's own section is validated, so that a mistake in another
// program's section does not stop this one.
HubConfig loadHub(const std::string& path);
AgentConfig loadAgent(const std::string& path);
DaemonConfig loadDaemon(const std::string& path);
Registry loadRegistry(const std::string& path);

// The same from text already in memory; `path` names the text in errors and anchors relative paths.
HubConfig parseHub(std::string_view text, const std::string& path);
AgentConfig parseAgent(std::string_view text, const std::string& path);
DaemonConfig parseDaemon(std::string_view text, const std::string& path);
Registry parseRegistry(std::string_view text, const std::string& path);

}  // namespace ds::config
