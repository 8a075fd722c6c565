// The daemon: SOCKS5 and port-forward listeners, stream initiation, pumps.
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "common/log.h"
#include "common/tls.h"

namespace ds::daemon {

using socks::Reply;

socks::Reply replyFor(int status, const std::string& code) {
  // The agent's reject codes name the failure whatever status the hub chose for them.
  if (status != 0 && status != 200) {
    if (code == "port-not-allowed") return Reply::NotAllowed;
    if (code == "connection-refused") return Reply::ConnectionRefused;
    if (code == "target-timeout") return Reply::TtlExpired;
    if (code == "too-many-streams") return Reply::GeneralFailure;
  }
  if (status == 404) return Reply::HostUnreachable;     // no such device
  if (status == 503) return Reply::NetworkUnreachable;  // device offline
  if (status == 403) return Reply::NotAllowed;          // allow-list, disabled, permissions
  if (status == 504) return Reply::TtlExpired;          // handshake timeout
  if (status == 502) {
    if (code == "refused") return Reply::ConnectionRefused;
    if (code == "timeout") return Reply::TtlExpired;
    return Reply::HostUnreachable;
  }
  return Reply::GeneralFailure;  // 401, 429, transport failures, anything unexpected
}

std::string deviceFromHost(const std::string& host, const std::string& suffix) {
  if (host.size() <= suffix.size()) return {};
  auto tail = host.substr(host.size() - suffix.size());
  if (!std::equal(
          tail.begin(), tail.end(), suffix.begin(), suffix.end(),
          [](unsigned char a, unsigned char b) { return std::tolower(a) == std::tolower(b); })) {
    return {};
  }
  return host.substr(0, host.size() - suffix.size());
}

// One connection on its way to a stream: initiation at the hub, then the streaming endpoint.
// The client is either a SOCKS session (answered with a reply) or a forwarded TCP connection.
class Daemon::Attempt : public Deletable {
 public:
  Attempt(Daemon& d, std::string device, uint16_t port, socks::SocksSession* socks,
          BufferEventPtr tcp)
      : d_(d), device_(std::move(device)), port_(port), socks_(socks), tcp_(std::move(tcp)) {
    what_ = device_ + ":" + std::to_string(port_);
  }

  void start() {
    exchange_ = hubclient::initiateStream(
        d_.loop_, d_.hub_, d_.cfg_.policy, d_.cfg_.key, device_, "127.0.0.1", port_,
        d_.cfg_.handshakeTimeout + std::chrono::seconds(5), [this](hubclient::InitiateResult&& r) {
          d_.loop_.deferDelete(std::move(exchange_));
          if (r.status != 200) {
            LOG_INFO("%s: hub refused the stream: %d %s %s", what_.c_str(), r.status,
                     r.code.c_str(), r.message.c_str());
            return fail(replyFor(r.status, r.code));
          }
          open(r.grant);
        });
  }

  // The SOCKS client went away while we were busy.
  void clientGone() {
    socks_ = nullptr;
    if (exchange_) exchange_->cancel();
    d_.endAttempt(this);
  }

  socks::SocksSession* socks() const { return socks_; }

 private:
  void open(const hubclient::StreamGrant& grant) {
    std::string sid = grant.streamId;
    exchange_ = hubclient::openStream(
        d_.loop_, d_.hub_, grant.url, grant.token, d_.limits_, d_.cfg_.handshakeTimeout,
        [this, sid](std::unique_ptr<WsConnection> ws, const std::string& error) {
          d_.loop_.deferDelete(std::move(exchange_));
          if (!ws) {
            LOG_WARN("%s: streaming endpoint failed: %s", what_.c_str(), error.c_str());
            return fail(Reply::GeneralFailure);
          }
          BufferEventPtr client;
          if (socks_) {
            client = socks_->accept();
            socks_ = nullptr;
          } else {
            client = std::move(tcp_);
          }
          if (!client) return d_.endAttempt(this);
          d_.startPump(std::move(client), std::move(ws), what_ + " stream " + sid);
          d_.endAttempt(this);
        });
  }

  void fail(Reply reply) {
    if (socks_) {
      auto* s = socks_;
      socks_ = nullptr;
      s->reject(reply);
    }
    d_.endAttempt(this);
  }

  Daemon& d_;
  std::string device_;
  uint16_t port_;
  socks::SocksSession* socks_;
  BufferEventPtr tcp_;
  std::string what_;
  hubclient::ExchangePtr exchange_;
};

Daemon::Daemon(Loop& loop, config::DaemonConfig cfg) : loop_(loop), cfg_(std::move(cfg)) {}

Daemon::~Daemon() {
  std::vector<Attempt*> open;
  for (auto& [p, a] : attempts_) open.push_back(p);
  for (Attempt* a : open) a->clientGone();
}

bool Daemon::start(std::string& err) {
  ssl_ = tls::clientContext(cfg_.ca, err);
  if (!ssl_) return false;
  if (!hubclient::makeTarget(cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, ssl_.get(), hub_,
                             err)) {
    return false;
  }
  std::string proxyErr;
  if (!hubclient::proxyFromEnvironment(hub_.host, hub_.proxy, proxyErr)) {
    err = "invalid HTTPS_PROXY in the environment: " + proxyErr;
    return false;
  }
  if (hub_.proxy.enabled()) {
    LOG_INFO("hub connections go through the HTTP proxy %s:%u (HTTPS_PROXY)",
             hub_.proxy.host.c_str(), hub_.proxy.port);
  }
  socks_ = listenTcp(loop_, cfg_.socksListen.host, cfg_.socksListen.port, &Daemon::onSocksAccept,
                     this, socksPort_, err);
  if (!socks_) return false;
  LOG_INFO("SOCKS5 on %s:%u, devices as NAME%s", cfg_.socksListen.host.c_str(), socksPort_,
           cfg_.suffix.c_str());
  for (const auto& f : cfg_.forwards) {
    auto fl = std::make_unique<ForwardListener>(ForwardListener{this, f, nullptr});
    uint16_t port = 0;
    fl->listener = listenTcp(loop_, f.listen.host, f.listen.port, &Daemon::onForwardAccept,
                             fl.get(), port, err);
    if (!fl->listener) return false;
    LOG_INFO("forward %s:%u -> %s:%u", f.listen.host.c_str(), port, f.device.c_str(), f.port);
    forwards_.push_back(std::move(fl));
  }
  return true;
}

void Daemon::shutdown() {
  socks_.reset();
  forwards_.clear();
  std::vector<StreamPump*> open;
  for (auto& [p, pump] : pumps_) open.push_back(p);
  for (StreamPump* p : open) p->close("daemon shutting down");
}

void Daemon::onSocksAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* self = static_cast<Daemon*>(arg);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto s = std::make_unique<socks::SocksSession>(self->loop_, newSocketBufferEvent(self->loop_, fd),
                                                 self, std::chrono::seconds(10));
  socks::SocksSession* raw = s.get();
  self->sessions_.emplace(raw, std::move(s));
  raw->start();
}

void Daemon::onForwardAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* fl = static_cast<ForwardListener*>(arg);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Daemon& d = *fl->daemon;
  BufferEventPtr tcp = newSocketBufferEvent(d.loop_, fd);
  LOG_INFO("forward %s: connection from %s", fl->fwd.listen.toString().c_str(),
           peerName(fd).c_str());
  d.startAttempt(
      std::make_unique<Attempt>(d, fl->fwd.device, fl->fwd.port, nullptr, std::move(tcp)));
}

void Daemon::onSocksConnect(socks::SocksSession* s, const socks::Request& req) {
  std::string device =
      req.type == socks::AddressType::Domain ? deviceFromHost(req.host, cfg_.suffix) : "";
  if (device.empty()) {
    LOG_INFO("socks %s: %s is not a device address (NAME%s)", s->peer().c_str(),
             req.target().c_str(), cfg_.suffix.c_str());
    return s->reject(Reply::NotAllowed);
  }
  if (!config::isValidDeviceId(device)) {
    LOG_INFO("socks %s: '%s' is not a valid device id", s->peer().c_str(), device.c_str());
    return s->reject(Reply::HostUnreachable);
  }
  LOG_INFO("socks %s: CONNECT %s:%u", s->peer().c_str(), device.c_str(), req.port);
  auto a = std::make_unique<Attempt>(*this, device, req.port, s, nullptr);
  attemptOf_[s] = a.get();
  startAttempt(std::move(a));
}

void Daemon::onSocksDone(socks::SocksSession* s) {
  auto at = attemptOf_.find(s);
  if (at != attemptOf_.end()) {
    Attempt* a = at->second;
    attemptOf_.erase(at);
    if (a->socks() == s) a->clientGone();
  }
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  loop_.deferDelete(std::move(it->second));
  sessions_.erase(it);
}

void Daemon::startAttempt(std::unique_ptr<Attempt> a) {
  Attempt* raw = a.get();
  attempts_.emplace(raw, std::move(a));
  raw->start();
}

void Daemon::endAttempt(Attempt* a) {
  auto it = attempts_.find(a);
  if (it == attempts_.end()) return;
  loop_.deferDelete(std::move(it->second));
  attempts_.erase(it);
}

void Daemon::startPump(BufferEventPtr tcp, std::unique_ptr<WsConnection> ws,
                       const std::string& what) {
  LOG_INFO("%s: open", what.c_str());
  auto pump = std::make_unique<StreamPump>(
      loop_, std::move(tcp), std::move(ws), cfg_.highWatermark,
      [this, what](StreamPump* p, const std::string& why) {
        LOG_INFO("%s: %s (%llu bytes sent, %llu received)", what.c_str(), why.c_str(),
                 static_cast<unsigned long long>(p->bytesToStream()),
                 static_cast<unsigned long long>(p->bytesFromStream()));
        auto it = pumps_.find(p);
        if (it == pumps_.end()) return;
        loop_.deferDelete(std::move(it->second));
        pumps_.erase(it);
      });
  StreamPump* raw = pump.get();
  pumps_.emplace(raw, std::move(pump));
  raw->start();
}

}  // namespace ds::daemon
