// The daemon's settings: the `daemon:` section of the configuration file (proxy port, users,
// names and aliases, forwards, control socket). The CLI reads it too, for the hub's address and
// the service credentials. Loading follows common/yaml_reader.h: every error names
// file:line:column.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/net.h"

namespace ds::config {

// A port forward: connections to `listen` become streams to port (or the Unix socket) on host
// as `device` sees it.
struct Forward {
  net::Endpoint listen;
  std::string device;
  uint16_t port = 0;         // 0 with socketPath
  std::string host{};        // on the device's network; empty: its loopback (127.0.0.1)
  std::string socketPath{};  // a Unix socket on the device instead of host:port
  friend bool operator==(const Forward&, const Forward&) = default;
};

// A proxy user (SOCKS5 RFC 1929 and HTTP Basic).
struct User {
  std::string name, password;
  friend bool operator==(const User&, const User&) = default;
};

// An extra name for a device: "web.lab" -> dev01, port 8080 (0: the port the client asked for),
// host 192.168.1.10 (empty: the device's loopback) or a Unix socket on it (the port ignored).
struct Alias {
  std::string name;  // lower case
  std::string device;
  uint16_t port = 0;
  std::string host{};
  std::string socketPath{};
  friend bool operator==(const Alias&, const Alias&) = default;
};

struct DaemonConfig {
  std::string hubUrl;                   // "https://host[:port]" or "wss://host[:port]", required
  std::string ca;                       // required
  std::string serverName, hubHostname;  // defaults: host of hubUrl
  std::string policy;                   // service policy name (SAS skn), required
  std::string key;                      // base64 policy key, required
  net::Endpoint socksListen{"127.0.0.1", 1080};  // SOCKS5, SOCKS4a and HTTP proxy on one port
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
  // Streams as channels on the service channel when the hub selects it (docs/mux.md); false:
  // one WebSocket per stream, as with a hub that does not.
  bool multiplex = true;
  LogLevel logLevel = LogLevel::Info;
};

// A host on a device's network: a DNS name, an IPv4 or an IPv6 address (without brackets).
bool isValidTargetHost(std::string_view host);
// A Unix socket on a device: an absolute path of at most 107 bytes without control characters.
bool isValidSocketPath(std::string_view path);

// Read and validate `path` (throws Error). Relative paths inside are resolved against the
// directory of `path`. Only the `daemon:` section is validated, so that a mistake in another
// program's section does not stop the daemon.
DaemonConfig loadDaemon(const std::string& path);

// The same from text already in memory; `path` names the text in errors and anchors relative paths.
DaemonConfig parseDaemon(std::string_view text, const std::string& path);

}  // namespace ds::config
