// The daemon: the client port, forwards, where a client's destination leads, and the
// connections' owner (connection.h); the control API's handlers are in control_handlers.cc.
#include "daemon/daemon.h"

#include <netinet/in.h>

#include <cctype>
#include <vector>

#include "common/log.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/service_notify.h"
#include "daemon/device_name.h"
#include "hubclient/rest_client.h"
#include "socks/http_proxy.h"

namespace ds::daemon {

using json = nlohmann::json;
using socks::Reply;
using Clock = std::chrono::steady_clock;

namespace {

AdmissionLimits clientLimits(const config::DaemonConfig& cfg) {
  return {cfg.maxClients, cfg.maxClientsPerAddress};
}

constexpr const char* kLoopback = "127.0.0.1";
// Forwards, from the configuration and added at runtime together: each holds a listening socket.
constexpr size_t kMaxForwards = 1024;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

socks::Reply replyFor(int status, const std::string& code) {
  if (status == 0 && code == "timeout") return Reply::TtlExpired;  // no answer in time
  if (status == 0 || status == 200) return Reply::GeneralFailure;  // transport failures
  // A code of the protocol's table names the failure whatever status the hub chose for it.
  proto::Reject r = proto::rejectFromName(code);
  if (r != proto::Reject::Other) return static_cast<Reply>(proto::info(r).socksReply);
  if (status == 404) return Reply::HostUnreachable;     // no such device
  if (status == 503) return Reply::NetworkUnreachable;  // device offline
  if (status == 403) return Reply::NotAllowed;          // allow-list, disabled, permissions
  if (status == 504) return Reply::TtlExpired;          // handshake timeout
  if (status == 502) return Reply::HostUnreachable;     // the device could not connect
  return Reply::GeneralFailure;                         // 401, 429, anything unexpected
}

Destination resolveDestination(const config::DaemonConfig& cfg, const std::string& host,
                               socks::AddressType type, uint16_t port) {
  Destination d;
  d.port = port;
  if (type == socks::AddressType::Domain) {
    std::string name = host;
    if (name.size() > 1 && name.back() == '.') name.pop_back();  // "dev01.hub." is absolute
    std::string key = lower(name);
    for (const config::Alias& a : cfg.aliases) {
      if (a.name == key) {
        d.kind = Destination::Kind::Device;
        d.device = a.device;
        d.host = a.host.empty() ? kLoopback : a.host;
        d.socketPath = a.socketPath;
        d.name = a.name;
        if (!a.socketPath.empty()) {
          d.port = 0;
        } else if (a.port != 0) {
          d.port = a.port;
        }
        return d;
      }
    }
    NameResult n = parseDeviceName(name, cfg.suffix);
    if (n.name) {
      d.kind = Destination::Kind::Device;
      d.device = std::move(n.name->device);
      d.host = n.name->host.empty() ? kLoopback : std::move(n.name->host);
      return d;
    }
    if (n.fault != NameFault::NotADevice) {
      d.reply = Reply::HostUnreachable;
      d.why = n.why;
      return d;
    }
  }
  if (cfg.direct) {
    d.kind = Destination::Kind::Direct;
    d.host = host;
    return d;
  }
  d.reply = Reply::NotAllowed;
  d.why = "not a device (NAME" + cfg.suffix + " or an alias) and direct connections are off";
  return d;
}

std::string pacFor(const config::DaemonConfig& cfg, const std::string& proxyHostPort) {
  std::vector<std::string> names;
  for (const auto& a : cfg.aliases) names.push_back(a.name);
  return socks::buildPac(proxyHostPort, cfg.suffix, names, cfg.direct);
}

Daemon::Daemon(Loop& loop, config::DaemonConfig cfg) : loop_(loop), cfg_(std::move(cfg)) {
  proxyOptions_.timeout = cfg_.clientTimeout;
  for (const auto& u : cfg_.users) proxyOptions_.users[u.name] = u.password;
  proxyOptions_.pac = [this](const std::string& hostHeader) {
    if (!hostHeader.empty()) return pacFor(cfg_, hostHeader);
    // Without a usable Host header: the listen address, unless it is a wildcard that clients
    // cannot connect to.
    std::string host = cfg_.socksListen.host;
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    return pacFor(cfg_, net::Endpoint{host, socksPort_}.toString());
  };
}

Daemon::~Daemon() {
  // Connections cancel their opens: they go before the opener they refer to.
  conns_.clear();
  queries_.clear();
}

bool Daemon::start(std::string& err) {
  if (!hubclient::setUpHub({cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, cfg_.ca, ""}, ssl_,
                           hub_, err)) {
    return false;
  }
  if (hub_.proxy.enabled()) {
    LOG_INFO("hub connections go through the HTTP proxy %s:%u (HTTPS_PROXY)",
             hub_.proxy.host.c_str(), hub_.proxy.port);
  }
  acceptor_ = std::make_unique<Acceptor>(
      loop_, clientLimits(cfg_),
      [this](evutil_socket_t fd, const sockaddr* sa, Admission::Ticket t) {
        onClientAccept(fd, sa, std::move(t));
      },
      "proxy port");
  // Socket activation (devstreamsd.socket) hands over the proxy port ready-made.
  if (int fd = service::inheritedSocket(socksPort_); fd >= 0) {
    if (!acceptor_->adopt(fd, err)) return false;
  } else if (!acceptor_->listen(cfg_.socksListen.host, cfg_.socksListen.port, socksPort_, err)) {
    return false;
  }
  LOG_INFO("proxy (SOCKS5, SOCKS4a, HTTP) on %s:%u, devices as NAME%s%s%s",
           cfg_.socksListen.host.c_str(), socksPort_, cfg_.suffix.c_str(),
           cfg_.users.empty() ? "" : ", authentication required",
           cfg_.direct ? ", other destinations direct" : "");
  for (const auto& f : cfg_.forwards) {
    int status = 0;
    if (!addForward(f, true, status, err, nullptr)) return false;
  }
  std::string path = cfg_.controlSocket.empty() ? defaultControlSocket() : cfg_.controlSocket;
  api_ = std::make_unique<ControlApi>(
      loop_, path, cfg_.controlGroup,
      [this](const ApiRequest& req, const ControlApi::Respond& respond) {
        handleApi(req, respond);
      });
  if (!api_->start(err)) {
    if (!cfg_.controlSocket.empty()) {
      err = "control socket: " + err;
      return false;
    }
    // The default place may not be ours (no XDG_RUNTIME_DIR, /run not writable): the proxy
    // still works, only `devstreams status` and friends cannot reach it.
    LOG_WARN("control API off: %s (set control_socket: in the daemon section)", err.c_str());
    api_.reset();
    err.clear();
  }

  hubclient::StreamOpener::Options o;
  o.policy = cfg_.policy;
  o.key = cfg_.key;
  o.limits = limits_;
  o.handshakeTimeout = cfg_.handshakeTimeout;
  o.multiplex = cfg_.multiplex;
  opener_ = std::make_unique<hubclient::StreamOpener>(loop_, hub_, o);
  opener_->start();
  return true;
}

void Daemon::shutdown() {
  acceptor_.reset();
  forwards_.clear();
  api_.reset();
  // Clients still negotiating are answered now: no stream can be opened any more.
  std::vector<Connection*> negotiating, streaming;
  for (auto& [raw, c] : conns_) (c->streaming() ? streaming : negotiating).push_back(raw);
  for (Connection* c : negotiating) c->close("daemon shutting down");
  for (Connection* c : streaming) c->close("daemon shutting down");
  opener_.reset();
}

bool Daemon::addForward(const config::Forward& f, bool fromConfig, int& status, std::string& err,
                        json* out) {
  if (forwards_.size() >= kMaxForwards) {
    status = 403;
    err = "at most " + std::to_string(kMaxForwards) + " forwards";
    return false;
  }
  for (const auto& existing : forwards_) {
    if (f.listen.port != 0 && existing->fwd.listen == f.listen) {
      status = 409;
      err = "a forward already listens on " + f.listen.toString();
      return false;
    }
  }
  auto fl = std::make_unique<ForwardListener>();
  fl->fwd = f;
  fl->fromConfig = fromConfig;
  uint16_t port = 0;
  ForwardListener* raw = fl.get();
  fl->acceptor = std::make_unique<Acceptor>(
      loop_, clientLimits(cfg_),
      [this, raw](evutil_socket_t fd, const sockaddr* sa, Admission::Ticket t) {
        onForwardAccept(raw, fd, sa, std::move(t));
      },
      "forward " + f.listen.toString());
  if (!fl->acceptor->listen(f.listen.host, f.listen.port, port, err)) {
    status = err.find("use") != std::string::npos ? 409 : 400;
    return false;
  }
  fl->fwd.listen.port = port;
  LOG_INFO("forward %s -> %s%s", fl->fwd.listen.toString().c_str(),
           describe(forwardTarget(fl->fwd)).c_str(), fromConfig ? "" : " (added at runtime)");
  if (out) *out = forwardJson(*fl);
  forwards_.push_back(std::move(fl));
  return true;
}

json Daemon::forwardJson(const ForwardListener& f) const {
  json j{{"listen", f.fwd.listen.toString()},
         {"device", f.fwd.device},
         {"port", f.fwd.port},
         {"origin", f.fromConfig ? "config" : "runtime"},
         {"connections", f.connections}};
  if (!f.fwd.socketPath.empty()) {
    j["unix"] = f.fwd.socketPath;
  } else {
    j["host"] = f.fwd.host.empty() ? kLoopback : f.fwd.host;
  }
  return j;
}

hubclient::StreamTarget forwardTarget(const config::Forward& f) {
  hubclient::StreamTarget t;
  t.device = f.device;
  if (!f.host.empty()) t.host = f.host;
  t.port = f.port;
  t.socketPath = f.socketPath;
  t.name = "forward " + f.listen.toString();
  return t;
}

void Daemon::onClientAccept(evutil_socket_t fd, const sockaddr* sa, Admission::Ticket ticket) {
  net::setNoDelay(fd);
  auto c = std::make_unique<Connection>(owner(), newSocketBufferEvent(loop_, fd), peerName(sa),
                                        proxyOptions_, std::move(ticket));
  Connection* raw = c.get();
  conns_.emplace(raw, std::move(c));
}

void Daemon::onForwardAccept(ForwardListener* fl, evutil_socket_t fd, const sockaddr* sa,
                             Admission::Ticket ticket) {
  net::setNoDelay(fd);
  if (!opener_) return (void)evutil_closesocket(fd);  // shutting down
  ++fl->connections;
  hubclient::StreamTarget target = forwardTarget(fl->fwd);
  auto c = std::make_unique<Connection>(owner(), newSocketBufferEvent(loop_, fd), peerName(sa),
                                        describe(target), std::move(ticket));
  Connection* raw = c.get();
  conns_.emplace(raw, std::move(c));
  raw->openDevice(nextConn_++, target);
}

void Daemon::onConnectRequest(Connection* c, socks::ProxySession* s, const socks::Target& t) {
  if (!opener_) return s->reject(Reply::GeneralFailure);  // shutting down
  Destination dest = resolveDestination(cfg_, t.host, t.type, t.port);
  if (dest.kind == Destination::Kind::Refused) {
    LOG_INFO("%s %s: %s refused: %s -> %s", socks::viaName(t.via), s->peer().c_str(),
             t.hostPort().c_str(), dest.why.c_str(), socks::replyName(dest.reply));
    ++failuresTotal_;
    return s->reject(dest.reply);
  }
  if (dest.kind == Destination::Kind::Device) {
    c->openDevice(nextConn_++, hubclient::StreamTarget{dest.device, dest.host, dest.port,
                                                       dest.socketPath, t.user, dest.name});
  } else {
    c->openDirect(nextConn_++, dest.host, dest.port);
  }
}

void Daemon::onConnectionEnd(Connection* c) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  loop_.deferDelete(std::move(it->second));
  conns_.erase(it);
}

}  // namespace ds::daemon
