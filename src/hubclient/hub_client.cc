// Hub protocol client: HTTPS stream initiation and WebSocket upgrades with SAS or stream tokens.
#include "hubclient/hub_client.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/sas.h"
#include "common/tls.h"
#include "common/ws_frame.h"

namespace ds::hubclient {

using json = nlohmann::json;

namespace {

constexpr int64_t kTokenLifetime = 3600;

std::string hostHeader(const HubTarget& t) {
  bool v6 = t.host.find(':') != std::string::npos;
  return (v6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
}

std::string deviceToken(const HubTarget& t, const std::string& id, const std::string& key) {
  return sas::makeToken(t.resourceHost + "/devices/" + id, key, std::time(nullptr) + kTokenLifetime)
      .value_or("");
}

// The path of a URL ("wss://h:p/a/b" -> "/a/b").
std::string urlPath(const std::string& url) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

ExchangePtr upgrade(Loop& loop, const HubTarget& t, const std::string& path,
                    const std::string& authorization, const WsLimits& limits,
                    std::chrono::milliseconds timeout, WsDone done) {
  std::string key = ws::randomHandshakeKey();
  std::string req = wshs::clientRequest(
      hostHeader(t), path, key, {"Authorization: " + authorization, "User-Agent: devstreams/0.1"});
  BufferEventPtr bev = tls::newClient(loop, t.ssl, t.serverName);
  if (!bev) {
    done(nullptr, "cannot create TLS connection");
    return nullptr;
  }
  auto ex = std::make_unique<HttpExchange>(
      loop, std::move(bev), t.host, t.port, std::move(req), timeout,
      [&loop, key, limits, done = std::move(done)](HttpResult&& r) {
        if (!r.ok()) return done(nullptr, r.error);
        std::string err;
        if (!wshs::checkServerResponse(r.response, key, err)) {
          json body = json::parse(r.body, nullptr, false);
          std::string detail = body.is_object() ? body.value("message", "") : "";
          return done(nullptr, "HTTP " + std::to_string(r.response.status) + " " +
                                   r.response.reason + (detail.empty() ? "" : ": " + detail));
        }
        done(std::make_unique<WsConnection>(loop, std::move(r.upgraded), WsConnection::Role::Client,
                                            limits, nullptr),
             {});
      });
  ex->start();
  return ex;
}

}  // namespace

bool makeTarget(const std::string& hubUrl, const std::string& serverName,
                const std::string& resourceHost, SSL_CTX* ssl, HubTarget& out, std::string& err) {
  auto url = config::parseUrl(hubUrl);
  if (!url) {
    err = "invalid hub URL '" + hubUrl + "'";
    return false;
  }
  out.host = url->host;
  out.port = url->port;
  out.serverName = serverName.empty() ? url->host : serverName;
  out.resourceHost = resourceHost.empty() ? url->host : resourceHost;
  out.ssl = ssl;
  return true;
}

ExchangePtr initiateStream(Loop& loop, const HubTarget& hub, const std::string& policy,
                           const std::string& key, const std::string& device,
                           const std::string& host, uint16_t port,
                           std::chrono::milliseconds timeout,
                           std::function<void(InitiateResult&&)> done) {
  std::string body = json{{"port", port}, {"host", host}}.dump();
  std::string auth =
      sas::makeToken(hub.resourceHost, key, std::time(nullptr) + kTokenLifetime, policy)
          .value_or("");
  std::string req =
      "POST /api/v1/devices/" + sas::urlEncode(device) +
      "/streams HTTP/1.1\r\nHost: " + hostHeader(hub) + "\r\nAuthorization: " + auth +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  BufferEventPtr bev = tls::newClient(loop, hub.ssl, hub.serverName);
  if (!bev) {
    done(InitiateResult{0, "tls", "cannot create TLS connection", {}});
    return nullptr;
  }
  auto ex = std::make_unique<HttpExchange>(
      loop, std::move(bev), hub.host, hub.port, std::move(req), timeout,
      [done = std::move(done)](HttpResult&& r) {
        InitiateResult out;
        if (!r.ok()) {
          out.code = "hub_unreachable";
          out.message = r.error;
          return done(std::move(out));
        }
        out.status = r.response.status;
        json body = json::parse(r.body, nullptr, false);
        if (out.status == 200) {
          if (body.is_object() && body.value("stream_id", "") != "" &&
              body.value("url", "") != "" && body.value("token", "") != "") {
            out.grant = {body["stream_id"], body["url"], body["token"]};
          } else {
            out.status = 0;
            out.code = "bad_response";
            out.message = "hub answered 200 without stream_id, url and token";
          }
          return done(std::move(out));
        }
        if (body.is_object()) {
          out.code = body.value("error", "");
          out.message = body.value("message", "");
        }
        if (out.code.empty()) out.code = "http_" + std::to_string(out.status);
        done(std::move(out));
      });
  ex->start();
  return ex;
}

ExchangePtr openStream(Loop& loop, const HubTarget& hub, const std::string& url,
                       const std::string& token, const WsLimits& limits,
                       std::chrono::milliseconds timeout, WsDone done) {
  HubTarget t = hub;
  auto parsed = config::parseUrl(url.substr(0, url.find('/', url.find("://") + 3)));
  if (!parsed) {
    done(nullptr, "hub gave an invalid stream URL");
    return nullptr;
  }
  // A streaming endpoint on another host is verified under its own name.
  if (parsed->host != hub.host) t.serverName = parsed->host;
  t.host = parsed->host;
  t.port = parsed->port;
  return upgrade(loop, t, urlPath(url), "Bearer " + token, limits, timeout, std::move(done));
}

ExchangePtr openControl(Loop& loop, const HubTarget& hub, const std::string& deviceId,
                        const std::string& deviceKey, const WsLimits& limits,
                        std::chrono::milliseconds timeout, WsDone done) {
  return upgrade(loop, hub, "/api/v1/devices/" + sas::urlEncode(deviceId) + "/control",
                 deviceToken(hub, deviceId, deviceKey), limits, timeout, std::move(done));
}

}  // namespace ds::hubclient
