// The client side of the hub protocol, used by the daemon (stream initiation, streaming
// endpoint) and the agent (control channel, streaming endpoint).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/event.h"
#include "common/http_exchange.h"
#include "common/ws_conn.h"

namespace ds::hubclient {

// An HTTP proxy that hub connections go through with CONNECT (corporate networks).
struct ProxyTarget {
  std::string host;
  uint16_t port = 0;           // 0: no proxy
  std::string user, password;  // Basic credentials; empty: none
  bool enabled() const { return port != 0; }
};

// Parses "http://[user:password@]host[:port]" (port default 3128; user and password
// percent-decoded, '+' staying '+'; one trailing '/' allowed). Only http://: TLS to the proxy
// itself is not supported. False with `err` when it is not such a URL; `out` is then untouched
// and `err` never repeats the URL (it may hold a password).
bool parseProxyUrl(std::string_view url, ProxyTarget& out, std::string& err);

// The proxy for connections to `host` from the environment: HTTPS_PROXY (or https_proxy)
// unless NO_PROXY (or no_proxy) lists the host (comma-separated, whitespace trimmed, case
// ignored, an entry's ":port" ignored; exact names, ".suffix", "*.suffix" or "suffix" domain
// matches, "*" for all; IP literals compared as text, no CIDR). The upper-case name wins; an
// empty value counts as unset. Not enabled when none applies; false with `err` when
// HTTPS_PROXY is set but malformed.
bool proxyFromEnvironment(const std::string& host, ProxyTarget& out, std::string& err);

// Where the hub is and how to trust it.
struct HubTarget {
  std::string host;  // to connect to
  uint16_t port = 443;
  std::string serverName;    // certificate name to verify and SNI
  std::string resourceHost;  // host part of SAS resources
  SSL_CTX* ssl = nullptr;    // client context with the hub's CA
  ProxyTarget proxy;         // when enabled, every connection is tunnelled through it
};

// "host:port" of the target ("[v6]:port"): its Host value.
std::string authority(const HubTarget& t);
// The exchange's form of a proxy (Basic credentials encoded).
HttpProxy exchangeProxy(const ProxyTarget& p);

struct StreamGrant {
  std::string streamId, url, token;
};

struct InitiateResult {
  int status = 0;       // HTTP status; 0 when the hub could not be reached
  std::string code;     // the hub's error code ("device_unknown", "not_allowed", ...) or transport
  std::string message;  // human-readable detail
  StreamGrant grant;    // when status == 200
};

using ExchangePtr = std::unique_ptr<HttpExchange>;
using WsDone = std::function<void(std::unique_ptr<WsConnection> ws, std::string error)>;

// What a stream is asked for: host:port, or a Unix socket, on `device`, and for whom.
struct StreamTarget {
  std::string device;
  std::string host = "127.0.0.1";  // as the device resolves it
  uint16_t port = 0;
  std::string socketPath{};  // a Unix socket on the device instead of host:port
  std::string user{};        // the proxy user the daemon authenticated; "" for none
  std::string name{};        // the alias or forward the stream comes from, for the audit log
};

// Asks the hub for a stream to `t` (service policy SAS). `done` runs once.
ExchangePtr initiateStream(Loop& loop, const HubTarget& hub, const std::string& policy,
                           const std::string& key, const StreamTarget& t,
                           std::chrono::milliseconds timeout,
                           const std::function<void(InitiateResult&&)>& done);
// The same for host:port on `device`, without user or name.
ExchangePtr initiateStream(Loop& loop, const HubTarget& hub, const std::string& policy,
                           const std::string& key, const std::string& device,
                           const std::string& host, uint16_t port,
                           std::chrono::milliseconds timeout,
                           const std::function<void(InitiateResult&&)>& done);

// Opens one side of a stream at the streaming endpoint `url` with its one-time token.
ExchangePtr openStream(Loop& loop, const HubTarget& hub, const std::string& url,
                       const std::string& token, const WsLimits& limits,
                       std::chrono::milliseconds timeout, WsDone done);

// Opens a device's control channel (device SAS). With `multiplex` it offers the mux subprotocol
// (mux_channel.h); the connection's protocol() says whether the hub selected it.
ExchangePtr openControl(Loop& loop, const HubTarget& hub, const std::string& deviceId,
                        const std::string& deviceKey, const WsLimits& limits,
                        std::chrono::milliseconds timeout, WsDone done, bool multiplex = false);

// Opens a service control channel (service policy SAS with `connect`): pipelined stream
// initiations as JSON messages (docs/protocol.md).
// `multiplex` as for openControl.
ExchangePtr openServiceControl(Loop& loop, const HubTarget& hub, const std::string& policy,
                               const std::string& key, const WsLimits& limits,
                               std::chrono::milliseconds timeout, WsDone done,
                               bool multiplex = false);

// The SAS token a service policy signs its requests with (valid for an hour).
std::string serviceToken(const HubTarget& hub, const std::string& policy, const std::string& key);

// Builds a HubTarget from a configured hub URL; false with `err` when the URL is unusable.
bool makeTarget(const std::string& hubUrl, const std::string& serverName,
                const std::string& resourceHost, SSL_CTX* ssl, HubTarget& out, std::string& err);

}  // namespace ds::hubclient
