// The device agent: control channel with reconnect, allow-list, target connect, stream pumps.
#include "agent/agent.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "common/log.h"
#include "common/tls.h"

namespace ds::agent {

using json = nlohmann::json;

// A stream request being served: target connect, then the streaming endpoint, then the answer.
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
        timer_(agent.loop_, [this] { fail("timeout", "connect to target timed out"); }) {}

  void start() {
    tcp_.reset(bufferevent_socket_new(agent_.loop_.base(), -1,
                                      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
    bufferevent_setcb(tcp_.get(), nullptr, nullptr, &PendingStream::onTcpEvent, this);
    timer_.arm(agent_.cfg_.connectTimeout);
    if (bufferevent_socket_connect_hostname(tcp_.get(), agent_.loop_.dns(), AF_UNSPEC,
                                            host_.c_str(), port_) != 0 &&
        !failed_) {
      fail("unreachable", "cannot connect to " + host_ + ":" + std::to_string(port_));
    }
  }

 private:
  static void onTcpEvent(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<PendingStream*>(arg);
    if (what & BEV_EVENT_CONNECTED) {
      self->timer_.cancel();
      int one = 1;
      setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
      self->openStream();
      return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    std::string target = self->host_ + ":" + std::to_string(self->port_);
    if (int dnsErr = bufferevent_socket_get_dns_error(bev)) {
      self->fail("unreachable",
                 "cannot resolve " + self->host_ + ": " + evutil_gai_strerror(dnsErr));
    } else if (err == ECONNREFUSED) {
      self->fail("refused", "connection to " + target + " refused");
    } else {
      self->fail("unreachable",
                 "cannot connect to " + target + ": " + evutil_socket_error_to_string(err));
    }
  }

  void openStream() {
    exchange_ = hubclient::openStream(
        agent_.loop_, agent_.hub_, url_, token_, agent_.limits_, agent_.cfg_.connectTimeout,
        [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
          agent_.loop_.deferDelete(std::move(exchange_));
          if (!ws) return fail("hub_stream_failed", "streaming endpoint: " + error);
          LOG_INFO("stream %s: connected to %s:%u", id_.c_str(), host_.c_str(), port_);
          agent_.answer(id_, true, "", "");
          std::string id = id_;
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
    timer_.cancel();
    LOG_INFO("stream %s: %s", id_.c_str(), reason.c_str());
    agent_.answer(id_, false, code, reason);
    agent_.endPending(this);
  }

  Agent& agent_;
  std::string id_, host_;
  uint16_t port_;
  std::string url_, token_;
  Timer timer_;
  BufferEventPtr tcp_;
  hubclient::ExchangePtr exchange_;
  bool failed_ = false;
};

Agent::Agent(Loop& loop, config::AgentConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      reconnect_(loop, [this] { connect(); }),
      backoff_(cfg_.reconnectMin) {}

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
  connect();
  return true;
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
  LOG_INFO("connecting to %s:%u as %s", hub_.host.c_str(), hub_.port, cfg_.deviceId.c_str());
  connecting_ = hubclient::openControl(
      loop_, hub_, cfg_.deviceId, cfg_.deviceKey, limits_, cfg_.connectTimeout,
      [this](std::unique_ptr<WsConnection> ws, const std::string& error) {
        loop_.deferDelete(std::move(connecting_));
        if (!ws) {
          LOG_WARN("control channel: %s", error.c_str());
          return scheduleReconnect();
        }
        LOG_INFO("online: control channel to %s:%u open", hub_.host.c_str(), hub_.port);
        backoff_ = cfg_.reconnectMin;
        control_ = std::move(ws);
        control_->setCallbacks(this);
        control_->enableKeepalive(cfg_.keepalive);
        control_->start();
      });
}

void Agent::scheduleReconnect() {
  if (stopping_) return;
  // Jitter keeps a fleet from reconnecting in lockstep after a hub restart.
  static std::mt19937 rng{std::random_device{}()};
  auto jitter = std::chrono::milliseconds(rng() % (backoff_.count() / 4 + 1));
  reconnect_.arm(backoff_ + jitter);
  LOG_INFO("reconnecting in %lld ms", static_cast<long long>((backoff_ + jitter).count()));
  backoff_ = std::min(backoff_ * 2, cfg_.reconnectMax);
}

void Agent::onWsData(evbuffer*) { LOG_WARN("control channel: unexpected binary data ignored"); }

void Agent::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_WARN("control channel closed (%u %s)", code, reason.c_str());
  loop_.deferDelete(std::move(control_));
  scheduleReconnect();
}

bool Agent::allowed(const std::string& host, uint16_t port) const {
  for (const auto& e : cfg_.allow) {
    if (e.host == host && e.port == port) return true;
  }
  return false;
}

void Agent::onWsText(std::string message) {
  json msg = json::parse(message, nullptr, false);
  if (!msg.is_object() || msg.value("type", "") != "stream_request" || !msg.contains("stream_id") ||
      !msg["stream_id"].is_string() || !msg.contains("port") || !msg["port"].is_number_unsigned() ||
      !msg.contains("url") || !msg["url"].is_string() || !msg.contains("token") ||
      !msg["token"].is_string()) {
    LOG_WARN("control channel: malformed message ignored");
    return;
  }
  std::string id = msg["stream_id"];
  uint64_t port = msg["port"];
  std::string host = msg.contains("host") && msg["host"].is_string() ? msg["host"] : "127.0.0.1";
  if (port == 0 || port > 65535 || !allowed(host, static_cast<uint16_t>(port))) {
    std::string target = host + ":" + std::to_string(port);
    LOG_INFO("stream %s: %s refused by the allow-list", id.c_str(), target.c_str());
    return answer(id, false, "not_allowed", target + " is not in the device's allow-list");
  }
  LOG_INFO("stream %s: request for %s:%llu", id.c_str(), host.c_str(),
           static_cast<unsigned long long>(port));
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
