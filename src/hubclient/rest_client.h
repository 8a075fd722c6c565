// One REST client for the hub's API and the daemon's control API: requests are formatted one
// way (formatRequest), the hub is reached over HTTPS (through HTTPS_PROXY unless NO_PROXY
// covers it), and the daemon's control API over its Unix socket (a named pipe on Windows).
// Used by the daemon (GET /api/v1/devices), `devstreams hub ...` and `devstreams status` and
// friends; stream initiation sends its POST through the same formatter.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/event.h"
#include "hubclient/hub_client.h"

namespace ds::hubclient {

struct RestRequest {
  std::string method;         // GET, POST, PUT, DELETE
  std::string target;         // origin form: path and query
  std::string body;           // JSON text; empty: none
  std::string authorization;  // empty: no Authorization field
  std::string userAgent;      // empty: no User-Agent field
  bool acceptJson = false;    // Accept: application/json
};

// The request bytes: request line; Host; Authorization, User-Agent and Accept when set;
// Content-Type: application/json with a body; Content-Length with a body or for POST and PUT;
// Connection: close; the body. `host` is the Host value ("name:port", "[v6]:port").
std::string formatRequest(const RestRequest& r, const std::string& host);

struct RestResult {
  std::string error;  // transport failure; empty when an answer was read
  int status = 0;
  std::string body;
  bool ok() const { return error.empty(); }
};
using RestDone = std::function<void(RestResult&&)>;

// One request to the hub at `hub` (its proxy included). `done` runs once, from the loop. Null,
// without calling `done`, when no TLS connection can be created.
ExchangePtr callHub(Loop& loop, const HubTarget& hub, const RestRequest& request,
                    std::chrono::milliseconds timeout, RestDone done);

// The hub of a configuration: a TLS context trusting `ca`, the target for `hubUrl`, and the
// proxy: `proxyUrl` when set, else HTTPS_PROXY unless NO_PROXY covers the hub. False with
// `err` set (never holding a proxy password). `proxySource` names where the proxy came from.
struct HubSettings {
  std::string hubUrl, serverName, resourceHost, ca;
  std::string proxyUrl;  // the agent's `proxy:` key; empty: the environment
};
bool setUpHub(const HubSettings& s, SslCtxPtr& ssl, HubTarget& out, std::string& err,
              const char** proxySource = nullptr);

// Blocking: one request to the hub on a private loop, signed with a service policy's key.
// False with `err` set when no answer was read.
class HubRestClient {
 public:
  HubRestClient(std::string policy, std::string key)
      : policy_(std::move(policy)), key_(std::move(key)) {}
  bool init(const HubSettings& s, std::string& err) { return setUpHub(s, ssl_, target_, err); }
  const HubTarget& target() const { return target_; }
  bool call(RestRequest request, RestResult& out, std::string& err,
            std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  std::string policy_, key_;
  Loop loop_;
  SslCtxPtr ssl_;
  HubTarget target_;
};

// The daemon's control socket when its configuration names none: on POSIX
// $XDG_RUNTIME_DIR/devstreams/daemon.sock when XDG_RUNTIME_DIR is set (and absolute), else
// /run/devstreams/daemon.sock; on Windows the named pipe \\.\pipe\devstreamsd.
std::string defaultControlSocket();

// Blocking: one request to the daemon's control API at `socketPath`; the whole exchange is
// bounded by `timeout` and the answer by 16 MiB. False with `err` set when no complete answer
// was read; when the daemon cannot be reached, `err` names the socket and asks whether
// devstreamsd is running.
bool callLocal(const std::string& socketPath, RestRequest request, RestResult& out,
               std::string& err, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace ds::hubclient
