// The device agent: control channel with reconnect, allow-list, target connect, stream pumps.
#include "agent/agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/json_fields.h"
#include "common/log.h"
#include "common/tls.h"

namespace ds::agent {

using json = nlohmann::json;
using std::chrono::milliseconds;

bool setTcpKeepalive(evutil_socket_t fd) {
  if (fd < 0) return false;
  int on = 1, idle = 30, interval = 10, probes = 3;
  return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) == 0;
}

namespace {

// An IP literal as raw bytes with its family, for comparing addresses across spellings.
struct Address {
  int family = AF_UNSPEC;
  unsigned char bytes[16] = {};
  bool operator==(const Address& o) const {
    return family == o.family && std::memcmp(bytes, o.bytes, sizeof bytes) == 0;
  }
};

std::optional<Address> parseAddress(const std::string& s) {
  Address a;
  std::string text = s.substr(0, s.find('%'));
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

std::optional<Address> addressOf(const sockaddr* sa) {
  Address a;
  if (sa->sa_family == AF_INET) {
    a.family = AF_INET;
    std::memcpy(a.bytes, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    a.family = AF_INET6;
    std::memcpy(a.bytes, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

std::string target(const std::string& host, uint16_t port) {
  return config::Endpoint{host, port}.toString();
}

}  // namespace

// A stream request being served: the allow-list decision (resolving allowed names when the
// request names an address), the target connect, the streaming endpoint, then the answer.
class Agent::PendingStream : public Deletable {
 public:
  PendingStream(Agent& agent, std::string id, std::string host, uint16_t port, std::string url,
                std::string token)
      : agent_(agent),
        id_(std::move(id)),
        host_(std::move(host)),
        port_(port),
        url_(std::move(url)),
        token_(std::move(token)),
        timer_(agent.loop_, [this] { onTimeout(); }) {}

  ~PendingStream() override {
    if (side_) side_->cancel();
    for (Lookup* l : lookups_) {
      l->owner = nullptr;
      // The callback still runs once (with EVUTIL_EAI_CANCEL) and frees the lookup.
      if (l->req) evdns_getaddrinfo_cancel(l->req);
    }
  }

  void start() {
    timer_.arm(agent_.cfg_.connectTimeout);
    std::vector<std::string> names;
    for (const auto& rule : agent_.cfg_.allow) {
      if (rule.matches(host_, port_)) {
        LOG_INFO("stream %s: %s allowed by %s", id_.c_str(), target(host_, port_).c_str(),
                 rule.toString().c_str());
        return connectTarget();
      }
      if (port_ >= rule.portMin && port_ <= rule.portMax && !parseAddress(rule.host)) {
        names.push_back(rule.host);
      }
    }
    // A request for an address is allowed by a name that resolves to it, now.
    auto wanted = parseAddress(host_);
    if (!wanted || names.empty()) return notAllowed();
    wanted_ = *wanted;
    starting_ = true;
    for (const std::string& name : names) {
      if (decided_) return;
      auto* l = new Lookup{this, nullptr, name};
      lookups_.push_back(l);
      evutil_addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      // May answer at once (/etc/hosts, errors): then `l` is gone when this returns null.
      evdns_getaddrinfo_request* req =
          evdns_getaddrinfo(agent_.loop_.dns(), name.c_str(), nullptr, &hints, &onLookup, l);
      if (req) l->req = req;
    }
    starting_ = false;
    if (!decided_ && lookups_.empty()) notAllowed();
  }

 private:
  struct Lookup {
    PendingStream* owner;
    evdns_getaddrinfo_request* req;
    std::string name;
  };

  static void onLookup(int result, evutil_addrinfo* res, void* arg) {
    auto* l = static_cast<Lookup*>(arg);
    PendingStream* self = l->owner;
    if (self) {
      std::erase(self->lookups_, l);
      if (!self->decided_) {
        bool match = false;
        for (evutil_addrinfo* ai = res; ai && !match; ai = ai->ai_next) {
          auto a = addressOf(ai->ai_addr);
          match = a && *a == self->wanted_;
        }
        if (result != 0) {
          LOG_DEBUG("stream %s: allow-list name %s: %s", self->id_.c_str(), l->name.c_str(),
                    evutil_gai_strerror(result));
        }
        if (match) {
          LOG_INFO("stream %s: %s allowed: %s resolves to it", self->id_.c_str(),
                   target(self->host_, self->port_).c_str(), l->name.c_str());
          self->connectTarget();
        } else if (self->lookups_.empty() && !self->starting_) {
          self->notAllowed();
        }
      }
    }
    if (res) evutil_freeaddrinfo(res);
    delete l;
  }

  void notAllowed() {
    fail(reject::kPortNotAllowed, target(host_, port_) + " is not in the device's allow-list");
  }

  void onTimeout() {
    if (connecting_) {
      fail(reject::kTargetTimeout, "connect to " + target(host_, port_) + " timed out after " +
                                       std::to_string(agent_.cfg_.connectTimeout.count()) + " ms");
    } else if (!decided_) {
      // Name lookups for the allow-list took the whole connect bound.
      notAllowed();
    }
  }

  void connectTarget() {
    decided_ = true;
    connecting_ = true;
    tcp_ = newSocketBufferEvent(agent_.loop_, -1);
    bufferevent_setcb(tcp_.get(), nullptr, nullptr, &PendingStream::onTcpEvent, this);
    if (bufferevent_socket_connect_hostname(tcp_.get(), agent_.loop_.dns(), AF_UNSPEC,
                                            host_.c_str(), port_) != 0 &&
        !failed_) {
      fail(reject::kUnreachable, "cannot connect to " + target(host_, port_));
    }
  }

  static void onTcpEvent(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<PendingStream*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
      self->connecting_ = false;
      self->timer_.cancel();
      evutil_socket_t fd = bufferevent_getfd(bev);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setTcpKeepalive(fd);
      bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
      self->openStream();
      return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    std::string where = target(self->host_, self->port_);
    if (int dnsErr = bufferevent_socket_get_dns_error(bev)) {
      self->fail(reject::kUnreachable,
                 "cannot resolve " + self->host_ + ": " + evutil_gai_strerror(dnsErr));
    } else if (err == ECONNREFUSED) {
      self->fail(reject::kConnectionRefused, "connection to " + where + " refused");
    } else if (err == ETIMEDOUT) {
      self->fail(reject::kTargetTimeout, "connect to " + where + " timed out");
    } else {
      self->fail(reject::kUnreachable,
                 "cannot connect to " + where + ": " + evutil_socket_error_to_string(err));
    }
  }

  void openStream() {
    side_ = agent_.pool_->openStream(
        url_, token_, agent_.limits_, agent_.cfg_.connectTimeout,
        [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
          agent_.loop_.deferDelete(std::move(side_));
          if (!ws) return fail(reject::kHubStreamFailed, "streaming endpoint: " + error);
          setTcpKeepalive(ws->fd());
          LOG_INFO("stream %s: connected to %s", id_.c_str(), target(host_, port_).c_str());
          agent_.answer(id_, true, "", "");
          std::string id = id_;
          // The pump lives on its own WebSocket: losing the control channel does not end it.
          auto pump = std::make_unique<StreamPump>(
              agent_.loop_, std::move(tcp_), std::move(ws), agent_.cfg_.highWatermark,
              [agent = &agent_, id](StreamPump* p, const std::string& why) {
                LOG_INFO("stream %s: %s (%llu bytes to the service, %llu to the target)",
                         id.c_str(), why.c_str(),
                         static_cast<unsigned long long>(p->bytesToStream()),
                         static_cast<unsigned long long>(p->bytesFromStream()));
                agent->endPump(p);
              });
          StreamPump* raw = pump.get();
          agent_.pumps_.emplace(raw, std::move(pump));
          raw->start();
          agent_.endPending(this);
        });
  }

  void fail(const std::string& code, const std::string& reason) {
    if (failed_) return;
    failed_ = true;
    decided_ = true;
    timer_.cancel();
    LOG_INFO("stream %s: rejected (%s): %s", id_.c_str(), code.c_str(), reason.c_str());
    agent_.answer(id_, false, code, reason);
    agent_.endPending(this);
  }

  Agent& agent_;
  std::string id_, host_;
  uint16_t port_;
  std::string url_, token_;
  Timer timer_;
  BufferEventPtr tcp_;
  hubclient::SideOpenPtr side_;
  std::vector<Lookup*> lookups_;
  Address wanted_;
  bool starting_ = false;    // lookups are being started (some may answer at once)
  bool decided_ = false;     // allowed (connecting) or failed
  bool connecting_ = false;  // the target connect is in progress
  bool failed_ = false;
};

Agent::Agent(Loop& loop, config::AgentConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      reconnect_(loop, [this] { connect(); }),
      backoff_({cfg_.reconnectMin, cfg_.reconnectMax}),
      rng_(std::random_device{}()) {}

Agent::~Agent() {
  if (control_) control_->setCallbacks(nullptr);
  if (connecting_) connecting_->cancel();
}

bool Agent::start(std::string& err) {
  ssl_ = tls::clientContext(cfg_.ca, err);
  if (!ssl_) return false;
  if (!hubclient::makeTarget(cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, ssl_.get(), hub_,
                             err)) {
    return false;
  }
  // Devices are many: no connection is kept warm while nothing happens, a few while streams
  // are being opened (docs/agent.md).
  hubclient::WarmPool::Options pool;
  pool.idle = 0;
  pool.busy = 4;
  pool.connectTimeout = cfg_.connectTimeout;
  std::string proxyErr;
  if (!cfg_.proxy.empty()) {
    if (!hubclient::parseProxyUrl(cfg_.proxy, hub_.proxy, proxyErr)) {
      // The URL may carry a password: name the key, not its value.
      err = "invalid proxy: " + proxyErr;
      return false;
    }
  } else if (!hubclient::proxyFromEnvironment(hub_.host, hub_.proxy, proxyErr)) {
    err = "invalid HTTPS_PROXY in the environment: " + proxyErr;
    return false;
  }
  if (hub_.proxy.enabled()) {
    LOG_INFO("hub connections go through the HTTP proxy %s:%u (%s)", hub_.proxy.host.c_str(),
             hub_.proxy.port, cfg_.proxy.empty() ? "HTTPS_PROXY" : "proxy: key");
  }
  pool_ = std::make_unique<hubclient::WarmPool>(loop_, hub_, pool);
  pool_->start();
  std::string allow;
  for (const auto& r : cfg_.allow) allow += (allow.empty() ? "" : ", ") + r.toString();
  LOG_INFO("allow-list: %s", allow.empty() ? "(empty: every request is refused)" : allow.c_str());
  connect();
  return true;
}

void Agent::setAllowList(std::vector<config::AllowRule> allow) {
  cfg_.allow = std::move(allow);
  std::string text;
  for (const auto& r : cfg_.allow) text += (text.empty() ? "" : ", ") + r.toString();
  LOG_INFO("allow-list reloaded: %s (%zu open streams kept)",
           text.empty() ? "(empty: every request is refused)" : text.c_str(), pumps_.size());
}

void Agent::shutdown() {
  stopping_ = true;
  reconnect_.cancel();
  std::vector<StreamPump*> open;
  for (auto& [p, pump] : pumps_) open.push_back(p);
  for (StreamPump* p : open) p->close("agent shutting down");
  if (control_) control_->close(ws::close_code::GoingAway, "agent shutting down");
}

void Agent::connect() {
  if (stopping_) return;
  LOG_INFO("connecting to %s:%u as %s", hub_.host.c_str(), hub_.port, cfg_.deviceId.c_str());
  connecting_ = hubclient::openControl(
      loop_, hub_, cfg_.deviceId, cfg_.deviceKey, limits_, cfg_.connectTimeout,
      [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
        loop_.deferDelete(std::move(connecting_));
        if (!ws) {
          if (error.find("HTTP 401") != std::string::npos) {
            if (!credentialsLogged_) {
              LOG_ERROR(
                  "hub refused the device's credentials: check device_id and device_key "
                  "(device %s; %s)",
                  cfg_.deviceId.c_str(), error.c_str());
              credentialsLogged_ = true;
            }
            return scheduleReconnect(true);
          }
          LOG_WARN("control channel: %s", error.c_str());
          return scheduleReconnect();
        }
        LOG_INFO("online: control channel to %s:%u open", hub_.host.c_str(), hub_.port);
        backoff_.up(std::chrono::steady_clock::now());
        credentialsLogged_ = false;
        setTcpKeepalive(ws->fd());
        control_ = std::move(ws);
        control_->setCallbacks(this);
        control_->enableKeepalive(cfg_.keepalive, cfg_.keepaliveTimeout);
        control_->start();
      });
}

void Agent::scheduleReconnect(bool credentialsRefused) {
  if (stopping_) return;
  // Full jitter keeps a fleet from reconnecting in lockstep after a hub restart, and waits stay
  // short after the loss of a healthy channel (hubclient/backoff.h). Refused credentials will
  // not fix themselves quickly: retry at the slowest pace.
  milliseconds delay = credentialsRefused ? cfg_.reconnectMax
                                          : backoff_.next(std::chrono::steady_clock::now(), rng_);
  reconnect_.arm(delay);
  LOG_INFO("reconnecting in %lld ms", static_cast<long long>(delay.count()));
}

void Agent::onWsData(evbuffer*) { LOG_WARN("control channel: unexpected binary data ignored"); }

void Agent::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_WARN("control channel closed (%u %s); %zu open streams continue on their own connections",
           code, reason.c_str(), pumps_.size());
  backoff_.down(std::chrono::steady_clock::now());
  loop_.deferDelete(std::move(control_));
  scheduleReconnect();
}

void Agent::onWsText(std::string message) {
  json msg = json::parse(message, nullptr, false);
  if (!msg.is_object() || stringField(msg, "type") != "stream_request" ||
      !msg.contains("stream_id") || !msg["stream_id"].is_string() || !msg.contains("port") ||
      !msg["port"].is_number_unsigned() || !msg.contains("url") || !msg["url"].is_string() ||
      !msg.contains("token") || !msg["token"].is_string()) {
    LOG_WARN("control channel: malformed message ignored");
    return;
  }
  std::string id = msg["stream_id"];
  uint64_t port = msg["port"];
  std::string host = msg.contains("host") && msg["host"].is_string() ? msg["host"] : "127.0.0.1";
  LOG_INFO("stream %s: request for %s:%llu", id.c_str(), host.c_str(),
           static_cast<unsigned long long>(port));
  if (port == 0 || port > 65535) {
    std::string what = host + ":" + std::to_string(port);
    LOG_INFO("stream %s: rejected (%s): %s is not a valid target", id.c_str(),
             reject::kPortNotAllowed, what.c_str());
    return answer(id, false, reject::kPortNotAllowed, what + " is not a valid target");
  }
  if (streams() >= cfg_.maxStreams) {
    std::string why =
        "the device serves its maximum of " + std::to_string(cfg_.maxStreams) + " streams";
    LOG_WARN("stream %s: rejected (%s): %s", id.c_str(), reject::kTooManyStreams, why.c_str());
    return answer(id, false, reject::kTooManyStreams, why);
  }
  auto p = std::make_unique<PendingStream>(*this, id, host, static_cast<uint16_t>(port), msg["url"],
                                           msg["token"]);
  PendingStream* raw = p.get();
  pending_.emplace(raw, std::move(p));
  raw->start();
}

void Agent::answer(const std::string& streamId, bool accept, const std::string& code,
                   const std::string& reason) {
  if (!control_) return;
  json msg{{"type", "stream_response"}, {"stream_id", streamId}, {"accept", accept}};
  if (!accept) {
    msg["code"] = code;
    msg["reason"] = reason;
  }
  control_->sendText(msg.dump());
}

void Agent::endPending(PendingStream* p) {
  auto it = pending_.find(p);
  if (it == pending_.end()) return;
  loop_.deferDelete(std::move(it->second));
  pending_.erase(it);
}

void Agent::endPump(StreamPump* p) {
  auto it = pumps_.find(p);
  if (it == pumps_.end()) return;
  loop_.deferDelete(std::move(it->second));
  pumps_.erase(it);
}

}  // namespace ds::agent
