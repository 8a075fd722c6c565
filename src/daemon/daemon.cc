// The daemon: the client port, forwards, direct connections, streams and the control API.
#include "daemon/daemon.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "common/guard.h"
#include "common/json_fields.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/sas.h"
#include "common/service_notify.h"
#include "common/time_text.h"
#include "common/tls.h"
#include "forwarder/pump.h"
#include "forwarder/tcp_relay.h"
#include "socks/http_proxy.h"

#ifndef DS_VERSION
#define DS_VERSION "0.0.0"
#endif

namespace ds::daemon {

using json = nlohmann::json;
using socks::Reply;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::seconds kDirectConnectTimeout{10};
constexpr std::chrono::seconds kHubQueryTimeout{10};

AdmissionLimits clientLimits(const config::DaemonConfig& cfg) {
  return {cfg.maxClients, cfg.maxClientsPerAddress};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void noDelay(evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// The SOCKS reply for a failed direct connection.
Reply replyForConnectError(int err, int dnsErr) {
  if (dnsErr != 0) return Reply::HostUnreachable;
  switch (err) {
    case ECONNREFUSED:
      return Reply::ConnectionRefused;
    case ENETUNREACH:
      return Reply::NetworkUnreachable;
    case EHOSTUNREACH:
      return Reply::HostUnreachable;
    case ETIMEDOUT:
      return Reply::TtlExpired;
    default:
      return Reply::GeneralFailure;
  }
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
        if (a.port != 0) d.port = a.port;
        return d;
      }
    }
    std::string device = deviceFromHost(name, cfg.suffix);
    if (!device.empty()) {
      if (!config::isValidDeviceId(device)) {
        d.reply = Reply::HostUnreachable;
        d.why = "'" + device + "' is not a valid device id";
        return d;
      }
      d.kind = Destination::Kind::Device;
      d.device = device;
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

struct Daemon::ForwardListener {
  Daemon* daemon = nullptr;
  config::Forward fwd;  // listen holds the bound port
  bool fromConfig = false;
  uint64_t connections = 0;
  std::unique_ptr<Acceptor> acceptor;
};

// One client connection from its request to its end: waiting for the stream (or the direct
// connection), then pumping. The client is a proxy session until answered, or a forwarded TCP
// connection.
class Daemon::Conn : public Deletable {
 public:
  enum class Phase { Opening, Open };

  Conn(Daemon& d, uint64_t id, std::string client, std::string via, std::string target)
      : d_(d),
        id_(id),
        client_(std::move(client)),
        via_(std::move(via)),
        target_(std::move(target)),
        timer_(d.loop_, [this] {
          // Armed at 0 ms for a connect that failed at once, else the connect bound.
          directFailed(immediateError_ ? Reply::GeneralFailure : Reply::TtlExpired, "timed out");
        }) {}

  ~Conn() override {
    if (openId_ != 0 && d_.opener_) d_.opener_->cancel(openId_);
    if (direct_) bufferevent_setcb(direct_.get(), nullptr, nullptr, nullptr, nullptr);
  }

  void setSession(socks::ProxySession* s) { session_ = s; }
  // An HTTP forward: only this one request may reach the target.
  void setRequestFramer(const socks::RequestFramer& f) {
    gate_ = [f = socks::RequestFramer(f)](const char* data, size_t len, size_t& pass) mutable {
      pass = f.feed(data, len);
      return f.error() ? GateState::Failed : f.done() ? GateState::Done : GateState::Open;
    };
  }
  void setTcp(BufferEventPtr tcp) { tcp_ = std::move(tcp); }

  void openDevice(const std::string& device, uint16_t port) {
    device_ = device;
    port_ = port;
    what_ = device + ":" + std::to_string(port);
    openId_ = d_.opener_->open(
        device, "127.0.0.1", port,
        [this](std::unique_ptr<WsConnection> ws, const hubclient::OpenResult& r) {
          openId_ = 0;
          if (r.status != 200) {
            Reply reply = replyFor(r.status, r.code);
            LOG_INFO("%s %s: stream to %s refused: %d %s %s -> %s", via_.c_str(), client_.c_str(),
                     what_.c_str(), r.status, r.code.c_str(), r.message.c_str(),
                     socks::replyName(reply));
            return fail(reply);
          }
          streamId_ = r.streamId;
          BufferEventPtr client = takeClient();
          if (!client) return d_.endConn(this);
          auto pump = std::make_unique<StreamPump>(
              d_.loop_, std::move(client), std::move(ws), d_.cfg_.highWatermark,
              [this](StreamPump* p, const std::string& why) {
                LOG_INFO("stream %s %s: %s (%llu bytes to the device, %llu from it)",
                         streamId_.c_str(), what_.c_str(), why.c_str(),
                         static_cast<unsigned long long>(p->bytesToStream()),
                         static_cast<unsigned long long>(p->bytesFromStream()));
                d_.endConn(this);
              });
          if (gate_) pump->setUpstreamGate(std::move(gate_));
          pump_ = std::move(pump);
          phase_ = Phase::Open;
          ++d_.streamsTotal_;
          LOG_INFO("stream %s %s: open for %s %s", streamId_.c_str(), what_.c_str(), via_.c_str(),
                   client_.c_str());
          pump_->start();
        });
  }

  void openDirect(const std::string& host, uint16_t port) {
    via_ = "direct";
    port_ = port;
    bool v6 = host.find(':') != std::string::npos;
    what_ = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    direct_ = newSocketBufferEvent(d_.loop_, -1);
    bufferevent_setcb(direct_.get(), nullptr, nullptr, &Conn::onDirectEvent, this);
    timer_.arm(kDirectConnectTimeout);
    if (bufferevent_socket_connect_hostname(direct_.get(), d_.loop_.dns(), AF_UNSPEC, host.c_str(),
                                            port) != 0) {
      // Failures found at once are reported from the loop, like every other answer.
      timer_.arm(std::chrono::milliseconds(0));
      immediateError_ = true;
    }
  }

  // The proxy client went away before its answer.
  void clientGone() {
    session_ = nullptr;
    d_.endConn(this);
  }

  // Ends the connection now (shutdown).
  void close(const std::string& why) {
    if (pump_) return pump_->close(why);
    if (relay_) return relay_->close(why);
    fail(Reply::GeneralFailure);
  }

  json toJson() const {
    double age = std::chrono::duration<double>(Clock::now() - started_).count();
    uint64_t up = pump_ ? pump_->bytesToStream() : relay_ ? relay_->bytesToTarget() : 0;
    uint64_t down = pump_ ? pump_->bytesFromStream() : relay_ ? relay_->bytesFromTarget() : 0;
    return json{{"id", id_},
                {"device", device_},
                {"port", port_},
                {"target", target_},
                {"client", client_},
                {"via", via_},
                {"state", phase_ == Phase::Open ? "open" : "opening"},
                {"stream_id", streamId_},
                {"bytes_to_device", up},
                {"bytes_from_device", down},
                {"age_seconds", static_cast<double>(static_cast<int64_t>(age * 10)) / 10}};
  }

  uint64_t id() const { return id_; }
  bool open() const { return phase_ == Phase::Open; }
  socks::ProxySession* session() const { return session_; }

 private:
  static void onDirectEvent(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<Conn*>(arg);
    guarded(
        "direct connection",
        [&] {
          if (what & BEV_EVENT_CONNECTED) {
            self->timer_.cancel();
            noDelay(bufferevent_getfd(bev));
            return self->directConnected();
          }
          int dnsErr = bufferevent_socket_get_dns_error(bev);
          int err = EVUTIL_SOCKET_ERROR();
          self->directFailed(replyForConnectError(err, dnsErr),
                             dnsErr != 0 ? evutil_gai_strerror(dnsErr) : std::strerror(err));
        },
        [&] { self->directFailed(Reply::GeneralFailure, "internal error"); });
  }

  void directConnected() {
    BufferEventPtr client = takeClient();
    if (!client) return d_.endConn(this);
    bufferevent_setcb(direct_.get(), nullptr, nullptr, nullptr, nullptr);
    relay_ = std::make_unique<TcpRelay>(
        d_.loop_, std::move(client), std::move(direct_), d_.cfg_.highWatermark,
        [this](TcpRelay* r, const std::string& why) {
          LOG_INFO("direct %s: %s (%llu bytes sent, %llu received)", what_.c_str(), why.c_str(),
                   static_cast<unsigned long long>(r->bytesToTarget()),
                   static_cast<unsigned long long>(r->bytesFromTarget()));
          d_.endConn(this);
        });
    if (gate_) relay_->setUpstreamGate(std::move(gate_));
    phase_ = Phase::Open;
    ++d_.streamsTotal_;
    LOG_INFO("direct %s: open for %s %s", what_.c_str(), via_.c_str(), client_.c_str());
    relay_->start();
  }

  void directFailed(Reply reply, const std::string& why) {
    if (phase_ != Phase::Opening) return;
    timer_.cancel();
    if (direct_) bufferevent_setcb(direct_.get(), nullptr, nullptr, nullptr, nullptr);
    LOG_INFO("direct %s for %s %s: %s -> %s", what_.c_str(), via_.c_str(), client_.c_str(),
             immediateError_ ? "cannot connect" : why.c_str(), socks::replyName(reply));
    fail(reply);
  }

  BufferEventPtr takeClient() {
    if (session_) {
      auto* s = session_;
      session_ = nullptr;
      d_.connOf_.erase(s);
      return s->accept();
    }
    return std::move(tcp_);
  }

  void fail(Reply reply) {
    ++d_.failuresTotal_;
    if (session_) {
      auto* s = session_;
      session_ = nullptr;
      d_.connOf_.erase(s);
      s->reject(reply);
    } else if (tcp_) {
      // A forwarded connection has no way to say why: it is closed.
      bufferevent_setcb(tcp_.get(), nullptr, nullptr, nullptr, nullptr);
      d_.loop_.closeAfterFlush(std::move(tcp_));
    }
    d_.endConn(this);
  }

  Daemon& d_;
  uint64_t id_;
  std::string client_, via_, target_;
  std::string device_, streamId_, what_;
  uint16_t port_ = 0;
  Phase phase_ = Phase::Opening;
  Clock::time_point started_ = Clock::now();
  socks::ProxySession* session_ = nullptr;
  BufferEventPtr tcp_;
  uint64_t openId_ = 0;
  BufferEventPtr direct_;
  bool immediateError_ = false;
  UpstreamGate gate_;
  Timer timer_;
  std::unique_ptr<StreamPump> pump_;
  std::unique_ptr<TcpRelay> relay_;
};

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
  // Conns cancel their opens; sessions and conns go before the opener they may refer to.
  conns_.clear();
  sessions_.clear();
  queries_.clear();
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
  acceptor_ = std::make_unique<Acceptor>(
      loop_, clientLimits(cfg_),
      [this](evutil_socket_t fd, const sockaddr*, Admission::Ticket t) {
        onClientAccept(fd, std::move(t));
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
  opener_ = std::make_unique<hubclient::StreamOpener>(loop_, hub_, o);
  opener_->start();
  return true;
}

void Daemon::shutdown() {
  acceptor_.reset();
  forwards_.clear();
  api_.reset();
  // Clients still negotiating are answered now: no stream can be opened any more.
  std::vector<socks::ProxySession*> negotiating;
  for (auto& [s, session] : sessions_) {
    if (!connOf_.count(s)) negotiating.push_back(s);
  }
  for (auto* s : negotiating) s->reject(Reply::GeneralFailure);
  std::vector<Conn*> open;
  for (auto& [id, c] : conns_) open.push_back(c.get());
  for (Conn* c : open) c->close("daemon shutting down");
  opener_.reset();
}

bool Daemon::addForward(const config::Forward& f, bool fromConfig, int& status, std::string& err,
                        json* out) {
  for (const auto& existing : forwards_) {
    if (f.listen.port != 0 && existing->fwd.listen == f.listen) {
      status = 409;
      err = "a forward already listens on " + f.listen.toString();
      return false;
    }
  }
  auto fl = std::make_unique<ForwardListener>();
  fl->daemon = this;
  fl->fwd = f;
  fl->fromConfig = fromConfig;
  uint16_t port = 0;
  ForwardListener* raw = fl.get();
  fl->acceptor = std::make_unique<Acceptor>(
      loop_, clientLimits(cfg_),
      [this, raw](evutil_socket_t fd, const sockaddr*, Admission::Ticket t) {
        onForwardAccept(raw, fd, std::move(t));
      },
      "forward " + f.listen.toString());
  if (!fl->acceptor->listen(f.listen.host, f.listen.port, port, err)) {
    status = err.find("use") != std::string::npos ? 409 : 400;
    return false;
  }
  fl->fwd.listen.port = port;
  LOG_INFO("forward %s -> %s:%u%s", fl->fwd.listen.toString().c_str(), f.device.c_str(), f.port,
           fromConfig ? "" : " (added at runtime)");
  if (out) *out = forwardJson(*fl);
  forwards_.push_back(std::move(fl));
  return true;
}

json Daemon::forwardJson(const ForwardListener& f) const {
  return json{{"listen", f.fwd.listen.toString()},
              {"device", f.fwd.device},
              {"port", f.fwd.port},
              {"origin", f.fromConfig ? "config" : "runtime"},
              {"connections", f.connections}};
}

void Daemon::onClientAccept(evutil_socket_t fd, Admission::Ticket ticket) {
  noDelay(fd);
  auto s = std::make_unique<socks::ProxySession>(loop_, newSocketBufferEvent(loop_, fd), this,
                                                 proxyOptions_);
  socks::ProxySession* raw = s.get();
  sessions_.emplace(raw, std::move(s));
  sessionTickets_.emplace(raw, std::move(ticket));
  raw->start();
}

void Daemon::onForwardAccept(ForwardListener* fl, evutil_socket_t fd, Admission::Ticket ticket) {
  noDelay(fd);
  if (!opener_) return (void)evutil_closesocket(fd);  // shutting down
  ++fl->connections;
  uint64_t id = nextConn_++;
  auto c = std::make_unique<Conn>(*this, id, peerName(fd), "forward",
                                  fl->fwd.device + ":" + std::to_string(fl->fwd.port));
  c->setTcp(newSocketBufferEvent(loop_, fd));
  Conn* raw = c.get();
  conns_.emplace(id, std::move(c));
  forwardTickets_.emplace(id, std::move(ticket));
  raw->openDevice(fl->fwd.device, fl->fwd.port);
}

void Daemon::onProxyConnect(socks::ProxySession* s, const socks::Target& t) {
  if (!opener_) return s->reject(Reply::GeneralFailure);  // shutting down
  Destination dest = resolveDestination(cfg_, t.host, t.type, t.port);
  const char* via = socks::viaName(t.via);
  if (dest.kind == Destination::Kind::Refused) {
    LOG_INFO("%s %s: %s refused: %s -> %s", via, s->peer().c_str(), t.hostPort().c_str(),
             dest.why.c_str(), socks::replyName(dest.reply));
    ++failuresTotal_;
    return s->reject(dest.reply);
  }
  uint64_t id = nextConn_++;
  auto c = std::make_unique<Conn>(*this, id, s->peer(), via, t.hostPort());
  c->setSession(s);
  if (t.via == socks::Via::HttpForward) c->setRequestFramer(s->forwardFramer());
  Conn* raw = c.get();
  conns_.emplace(id, std::move(c));
  connOf_[s] = raw;
  if (dest.kind == Destination::Kind::Device) {
    raw->openDevice(dest.device, dest.port);
  } else {
    raw->openDirect(dest.host, dest.port);
  }
}

void Daemon::onProxyDone(socks::ProxySession* s) {
  auto at = connOf_.find(s);
  if (at != connOf_.end()) {
    Conn* c = at->second;
    connOf_.erase(at);
    if (c->session() == s) c->clientGone();
  }
  sessionTickets_.erase(s);
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  loop_.deferDelete(std::move(it->second));
  sessions_.erase(it);
}

void Daemon::endConn(Conn* c) {
  auto it = conns_.find(c->id());
  if (it == conns_.end()) return;
  if (c->session()) connOf_.erase(c->session());
  forwardTickets_.erase(c->id());
  loop_.deferDelete(std::move(it->second));
  conns_.erase(it);
}

// --- control API ---------------------------------------------------------------------------------

json Daemon::statusJson() const {
  double uptime = std::chrono::duration<double>(Clock::now() - started_).count();
  size_t open = 0;
  for (const auto& [id, c] : conns_) open += c->open();
  return json{
      {"version", DS_VERSION},
      {"pid", static_cast<int64_t>(::getpid())},
      {"uptime_seconds", static_cast<double>(static_cast<int64_t>(uptime * 10)) / 10},
      {"hub",
       {{"url", cfg_.hubUrl},
        // Streams work while the hub answers, with or without the service channel.
        {"connected", opener_ && opener_->reachable()},
        {"service_channel", opener_ && opener_->connected()},
        {"since", opener_ ? isoUtc(std::chrono::system_clock::to_time_t(opener_->since())) : ""},
        {"last_error", opener_ ? opener_->lastError() : "shutting down"}}},
      {"listen", net::Endpoint{cfg_.socksListen.host, socksPort_}.toString()},
      {"auth", !cfg_.users.empty()},
      {"suffix", cfg_.suffix},
      {"direct", cfg_.direct},
      {"streams", open},
      {"opening", conns_.size() - open},
      {"forwards", forwards_.size()},
      {"streams_total", streamsTotal_},
      {"failures_total", failuresTotal_}};
}

json Daemon::streamsJson() const {
  json list = json::array();
  for (const auto& [id, c] : conns_) list.push_back(c->toJson());
  return json{{"streams", list}};
}

void Daemon::fetchDevices(const ControlApi::Respond& respond) {
  std::string host = hub_.host.find(':') != std::string::npos ? "[" + hub_.host + "]" : hub_.host;
  std::string req = "GET /api/v1/devices HTTP/1.1\r\nHost: " + host + ":" +
                    std::to_string(hub_.port) +
                    "\r\nAuthorization: " + hubclient::serviceToken(hub_, cfg_.policy, cfg_.key) +
                    "\r\nUser-Agent: devstreamsd/" DS_VERSION "\r\nConnection: close\r\n\r\n";
  BufferEventPtr bev = tls::newClient(loop_, hub_.ssl, hub_.serverName);
  if (!bev) return respond(apiError(502, "hub_error", "cannot create a TLS connection"));
  uint64_t qid = nextQuery_++;
  auto ex = std::make_unique<HttpExchange>(
      loop_, std::move(bev), hub_.host, hub_.port, std::move(req), kHubQueryTimeout,
      [this, qid, respond](HttpResult&& r) {
        if (auto it = queries_.find(qid); it != queries_.end()) {
          loop_.deferDelete(std::move(it->second));
          queries_.erase(it);
        }
        if (!r.ok()) return respond(apiError(502, "hub_error", "hub unreachable: " + r.error));
        json body = json::parse(r.body, nullptr, false);
        if (r.response.status != 200 || !body.is_object() || !body.contains("devices")) {
          std::string msg = stringField(body, "message");
          return respond(apiError(502, "hub_error",
                                  "hub answered " + std::to_string(r.response.status) +
                                      (msg.empty() ? "" : ": " + msg)));
        }
        json out = json::array();
        for (const auto& d : body["devices"]) {
          if (!d.is_object()) continue;
          out.push_back(json{{"id", stringField(d, "id")},
                             {"online", boolField(d, "online", false)},
                             {"enabled", boolField(d, "enabled", true)},
                             {"last_seen", d.contains("last_seen") ? d["last_seen"] : json()}});
        }
        respond(ApiResponse{200, json{{"devices", out}}});
      });
  if (hub_.proxy.enabled()) {
    HttpProxy proxy{hub_.proxy.host, hub_.proxy.port, {}};
    if (!hub_.proxy.user.empty()) {
      proxy.authorization =
          "Basic " + sas::base64Encode(hub_.proxy.user + ":" + hub_.proxy.password);
    }
    ex->viaProxy(std::move(proxy));
  }
  HttpExchange* raw = ex.get();
  queries_.emplace(qid, std::move(ex));
  raw->start();
}

void Daemon::handleApi(const ApiRequest& req, const ControlApi::Respond& respond) {
  const std::string& p = req.path;
  auto only = [&](const char* method) {
    if (req.method == method) return true;
    respond(apiError(405, "method_not_allowed", std::string("use ") + method));
    return false;
  };
  if (p == "/v1/status") {
    if (only("GET")) respond(ApiResponse{200, statusJson()});
    return;
  }
  if (p == "/v1/streams") {
    if (only("GET")) respond(ApiResponse{200, streamsJson()});
    return;
  }
  if (p == "/v1/devices") {
    if (only("GET")) fetchDevices(respond);
    return;
  }
  if (p == "/v1/forwards") {
    if (req.method == "GET") {
      json list = json::array();
      for (const auto& f : forwards_) list.push_back(forwardJson(*f));
      return respond(ApiResponse{200, json{{"forwards", list}}});
    }
    if (req.method != "POST") {
      return respond(apiError(405, "method_not_allowed", "use GET or POST"));
    }
    json body = json::parse(req.body, nullptr, false);
    const char* shape = R"(body must be {"listen": "host:port", "device": str, "port": 1..65535})";
    if (!body.is_object() || !body.contains("listen") || !body["listen"].is_string() ||
        !body.contains("device") || !body["device"].is_string() || !body.contains("port") ||
        !body["port"].is_number_unsigned()) {
      return respond(apiError(400, "bad_request", shape));
    }
    config::Forward f;
    auto listen = net::parseEndpoint(body["listen"].get<std::string>());
    if (!listen) {
      return respond(
          apiError(400, "bad_listen", "listen must be a numeric host:port, e.g. 127.0.0.1:2222"));
    }
    f.listen = *listen;
    f.device = body["device"].get<std::string>();
    if (!config::isValidDeviceId(f.device)) {
      return respond(apiError(400, "bad_device_id", "invalid device id '" + f.device + "'"));
    }
    uint64_t port = body["port"].get<uint64_t>();
    if (port == 0 || port > 65535) {
      return respond(apiError(400, "bad_port", "port must be 1..65535"));
    }
    f.port = static_cast<uint16_t>(port);
    // Forwarded connections are not authenticated: runtime forwards stay on this machine.
    if (!net::isLoopbackHost(f.listen.host)) {
      return respond(apiError(400, "not_loopback",
                              "forwards listen on loopback addresses only (no authentication)"));
    }
    int status = 0;
    std::string err;
    json out;
    if (!addForward(f, false, status, err, &out)) {
      return respond(apiError(status, status == 409 ? "listen_in_use" : "bad_listen", err));
    }
    return respond(ApiResponse{201, out});
  }
  if (p.starts_with("/v1/forwards/")) {
    if (!only("DELETE")) return;
    auto listen = net::parseEndpoint(p.substr(13));
    auto it = std::find_if(forwards_.begin(), forwards_.end(),
                           [&](const auto& f) { return listen && f->fwd.listen == *listen; });
    if (it == forwards_.end()) {
      return respond(apiError(404, "forward_unknown", "no forward listens on " + p.substr(13)));
    }
    LOG_INFO("forward %s removed (open connections go on)", (*it)->fwd.listen.toString().c_str());
    forwards_.erase(it);
    return respond(ApiResponse{204, nullptr});
  }
  respond(apiError(404, "not_found", "no such resource"));
}

}  // namespace ds::daemon
