// Hub protocol client: HTTPS stream initiation and WebSocket upgrades with SAS or stream tokens.
#include "hubclient/hub_client.h"

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <optional>

#include "common/mux_channel.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/sas.h"
#include "common/tls.h"
#include "common/ws_frame.h"
#include "hubclient/rest_client.h"

namespace ds::hubclient {

namespace {

constexpr int64_t kTokenLifetime = 3600;

std::string deviceToken(const HubTarget& t, const std::string& id, const std::string& key) {
  return sas::makeToken(t.resourceHost + "/devices/" + id, key, std::time(nullptr) + kTokenLifetime)
      .value_or("");
}

// Strict percent-decoding for URL user info: %XX in either hex case, '+' stays '+' (unlike
// form decoding). nullopt when a '%' is not followed by two hex digits.
std::optional<std::string> percentDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const char* env(const char* upper, const char* lowerName) {
  const char* v = std::getenv(upper);
  if (!v || !*v) v = std::getenv(lowerName);
  return v && *v ? v : nullptr;
}

// Whether one NO_PROXY entry covers `host` (both lower case, no brackets).
bool noProxyEntryMatches(std::string_view entry, const std::string& host) {
  if (entry == "*") return true;
  // An optional port ("name:port", "[v6]:port") is ignored; a bare IPv6 address has several ':'.
  if (!entry.empty() && entry.front() == '[') {
    auto close = entry.find(']');
    if (close == std::string_view::npos) return false;
    entry = entry.substr(1, close - 1);
  } else if (auto colon = entry.find(':'); colon != std::string_view::npos &&
                                           entry.find(':', colon + 1) == std::string_view::npos) {
    entry = entry.substr(0, colon);
  }
  if (entry.starts_with("*.")) entry.remove_prefix(1);
  while (entry.starts_with('.')) entry.remove_prefix(1);
  if (entry.empty()) return false;
  std::string e = lower(entry);
  if (host == e) return true;
  return host.size() > e.size() && host.ends_with(e) && host[host.size() - e.size() - 1] == '.';
}

ExchangePtr upgrade(Loop& loop, const HubTarget& t, const std::string& path,
                    const std::string& authorization, const WsLimits& limits,
                    std::chrono::milliseconds timeout, WsDone done, std::string protocol = {}) {
  std::string key = ws::randomHandshakeKey();
  std::vector<std::string> headers{"Authorization: " + authorization, "User-Agent: devstreams/0.1"};
  if (!protocol.empty()) headers.push_back("Sec-WebSocket-Protocol: " + protocol);
  std::string req = wshs::clientRequest(authority(t), path, key, headers);
  BufferEventPtr bev = tls::newClient(loop, t.ssl, t.serverName);
  if (!bev) {
    done(nullptr, "cannot create TLS connection");
    return nullptr;
  }
  auto ex = std::make_unique<HttpExchange>(
      loop, std::move(bev), t.host, t.port, std::move(req), timeout,
      [&loop, key, limits, protocol = std::move(protocol), done = std::move(done)](HttpResult&& r) {
        if (!r.ok()) return done(nullptr, r.error);
        std::string err, selected;
        if (!wshs::checkServerResponse(r.response, key, err, protocol, &selected)) {
          auto a = proto::parseAnswerBody(r.response.status, r.body);
          std::string detail = r.response.status == 101 ? err : a ? a->message : std::string();
          return done(nullptr, "HTTP " + std::to_string(r.response.status) + " " +
                                   r.response.reason + (detail.empty() ? "" : ": " + detail));
        }
        auto ws = std::make_unique<WsConnection>(loop, std::move(r.upgraded),
                                                 WsConnection::Role::Client, limits, nullptr);
        ws->setProtocol(std::move(selected));
        done(std::move(ws), {});
      });
  if (t.proxy.enabled()) ex->viaProxy(exchangeProxy(t.proxy));
  ex->start();
  return ex;
}

}  // namespace

HttpProxy exchangeProxy(const ProxyTarget& p) {
  HttpProxy out{p.host, p.port, {}};
  if (!p.user.empty() || !p.password.empty()) {
    out.authorization = "Basic " + sas::base64Encode(p.user + ":" + p.password);
  }
  return out;
}

std::string authority(const HubTarget& t) { return net::formatHostPort(t.host, t.port); }

bool parseProxyUrl(std::string_view url, ProxyTarget& out, std::string& err) {
  // Messages never repeat the URL: it may hold a password.
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || lower(url.substr(0, kScheme.size())) != kScheme) {
    err = lower(url.substr(0, 8)) == "https://"
              ? "proxy URL must start with http:// (TLS to the proxy is not supported)"
              : "proxy URL must look like http://[user:password@]host[:port]";
    return false;
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto at = rest.rfind('@');
  ProxyTarget p;
  if (at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = info.find(':');
    auto user = percentDecode(info.substr(0, colon));
    auto pass = colon == std::string_view::npos ? std::optional<std::string>("")
                                                : percentDecode(info.substr(colon + 1));
    if (!user || !pass) {
      err = "proxy URL has a bad %-escape in its user name or password";
      return false;
    }
    if (user->empty()) {
      err = "proxy URL has a password but no user name";
      return false;
    }
    if (user->find(':') != std::string::npos) {
      err = "proxy user name must not contain ':' (RFC 7617)";
      return false;
    }
    p.user = std::move(*user);
    p.password = std::move(*pass);
  }
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    err = "proxy URL must not have a path, query or fragment";
    return false;
  }
  bool hasPort = !rest.empty() && rest.front() == '[' ? rest.find("]:") != std::string_view::npos
                                                      : rest.find(':') != std::string_view::npos;
  auto parsed = net::parseUrl("http://" + std::string(rest));
  if (rest.empty() || !parsed) {
    err = "proxy URL has an invalid host or port";
    return false;
  }
  p.host = parsed->host;
  p.port = hasPort ? parsed->port : 3128;
  out = std::move(p);
  return true;
}

bool proxyFromEnvironment(const std::string& host, ProxyTarget& out, std::string& err) {
  out = ProxyTarget{};
  const char* proxy = env("HTTPS_PROXY", "https_proxy");
  if (!proxy) return true;
  std::string h = lower(host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  while (!h.empty() && h.back() == '.') h.pop_back();
  if (const char* no = env("NO_PROXY", "no_proxy")) {
    std::string_view list(no);
    while (!list.empty()) {
      auto comma = list.find(',');
      if (noProxyEntryMatches(trim(list.substr(0, comma)), h)) return true;
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  return parseProxyUrl(proxy, out, err);
}

bool makeTarget(const std::string& hubUrl, const std::string& serverName,
                const std::string& resourceHost, SSL_CTX* ssl, HubTarget& out, std::string& err) {
  auto url = net::parseUrl(hubUrl);
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
                           const std::function<void(InitiateResult&&)>& done) {
  return initiateStream(loop, hub, policy, key, StreamTarget{device, host, port, "", "", ""},
                        timeout, done);
}

ExchangePtr initiateStream(Loop& loop, const HubTarget& hub, const std::string& policy,
                           const std::string& key, const StreamTarget& t,
                           std::chrono::milliseconds timeout,
                           const std::function<void(InitiateResult&&)>& done) {
  RestRequest req;
  req.method = "POST";
  req.target = "/api/v1/devices/" + sas::urlEncode(t.device) + "/streams";
  req.body = proto::toText(proto::InitiateBody{t.port, t.host, t.socketPath, t.user, t.name});
  req.authorization = serviceToken(hub, policy, key);
  auto ex = callHub(loop, hub, req, timeout, [done](RestResult&& r) {
    InitiateResult out;
    if (!r.ok()) {
      out.code = "hub_unreachable";
      out.message = r.error;
      return done(std::move(out));
    }
    out.status = r.status;
    auto a = proto::parseAnswerBody(out.status, r.body);
    if (!a) {
      out.status = 0;
      out.code = "bad_response";
      out.message = "hub answered " + std::to_string(r.status) + ": " + a.error;
      return done(std::move(out));
    }
    if (out.status == 200) {
      out.grant = {a->grant.streamId, a->grant.url, a->grant.token};
    } else {
      out.code = a->error;
      out.message = a->message;
    }
    done(std::move(out));
  });
  if (!ex) done(InitiateResult{0, "tls", "cannot create TLS connection", {}});
  return ex;
}

ExchangePtr openStream(Loop& loop, const HubTarget& hub, const std::string& url,
                       const std::string& token, const WsLimits& limits,
                       std::chrono::milliseconds timeout, WsDone done) {
  auto parsed = net::splitUrl(url);
  if (!parsed) {
    done(nullptr, "hub gave an invalid stream URL");
    return nullptr;
  }
  // Stream sides go to the hub this program is configured for and nowhere else: a URL naming
  // another host or port would let a hostile hub make a device connect past its allow-list. A
  // hub on this machine may name it either way (localhost, 127.0.0.1).
  const bool sameHost = lower(parsed->url.host) == lower(hub.host) ||
                        (net::isLoopbackHost(parsed->url.host) && net::isLoopbackHost(hub.host));
  if (!sameHost || parsed->url.port != hub.port) {
    done(nullptr, "hub gave a stream URL on another endpoint (" +
                      net::formatHostPort(parsed->url.host, parsed->url.port) +
                      "), not the configured hub");
    return nullptr;
  }
  return upgrade(loop, hub, parsed->path, "Bearer " + token, limits, timeout, std::move(done));
}

std::string serviceToken(const HubTarget& hub, const std::string& policy, const std::string& key) {
  return sas::makeToken(hub.resourceHost, key, std::time(nullptr) + kTokenLifetime, policy)
      .value_or("");
}

ExchangePtr openServiceControl(Loop& loop, const HubTarget& hub, const std::string& policy,
                               const std::string& key, const WsLimits& limits,
                               std::chrono::milliseconds timeout, WsDone done, bool multiplex) {
  return upgrade(loop, hub, "/api/v1/service/control", serviceToken(hub, policy, key), limits,
                 timeout, std::move(done), multiplex ? std::string(mux::kWsProtocol) : "");
}

ExchangePtr openControl(Loop& loop, const HubTarget& hub, const std::string& deviceId,
                        const std::string& deviceKey, const WsLimits& limits,
                        std::chrono::milliseconds timeout, WsDone done, bool multiplex) {
  return upgrade(loop, hub, "/api/v1/devices/" + sas::urlEncode(deviceId) + "/control",
                 deviceToken(hub, deviceId, deviceKey), limits, timeout, std::move(done),
                 multiplex ? std::string(mux::kWsProtocol) : "");
}

}  // namespace ds::hubclient
