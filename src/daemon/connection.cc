// A client connection of the daemon and its two upstreams: a stream to a device (its own
// WebSocket or a stream on the multiplexed service channel), or a direct TCP connection.
#include "daemon/connection.h"

#include "common/log.h"
#include "common/net.h"
#include "daemon/daemon.h"
#include "forwarder/mux_pump.h"
#include "forwarder/pump.h"
#include "forwarder/tcp_connector.h"
#include "forwarder/tcp_relay.h"
#include "hubclient/stream_opener.h"

namespace ds::daemon {

using json = nlohmann::json;
using socks::Reply;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::seconds kDirectConnectTimeout{10};

// The SOCKS reply for a failed direct connection.
Reply replyForConnect(ConnectResult r) {
  switch (r) {
    case ConnectResult::Refused:
      return Reply::ConnectionRefused;
    case ConnectResult::NetworkUnreachable:
      return Reply::NetworkUnreachable;
    case ConnectResult::HostUnreachable:
    case ConnectResult::NameNotResolved:
      return Reply::HostUnreachable;
    case ConnectResult::TimedOut:
      return Reply::TtlExpired;
    default:
      return Reply::GeneralFailure;
  }
}

// A stream to a device: asked for through the stream opener, then pumped, by a StreamPump on
// its own WebSocket or by a MuxPump on the multiplexed service channel. Both end the client
// alike: FIN only after a normal end, else a reset.
class DeviceStream : public Upstream {
 public:
  DeviceStream(Connection& c, const hubclient::StreamTarget& t) : c_(c), what_(describe(t)) {
    openId_ = c_.owner().opener()->open(
        t, [this](hubclient::OpenedStream s, const hubclient::OpenResult& r) {
          openId_ = 0;
          onOpen(std::move(s), r);
        });
  }

  ~DeviceStream() override {
    if (openId_ != 0) {
      if (hubclient::StreamOpener* opener = c_.owner().opener()) opener->cancel(openId_);
    }
  }

  bool open() const override { return pump_ || mux_; }
  void close(const std::string& why) override {
    if (pump_) pump_->close(why);
    if (mux_) mux_->close(why);
  }
  uint64_t bytesUp() const override {
    return pump_ ? pump_->bytesToStream() : mux_ ? mux_->bytesToStream() : 0;
  }
  uint64_t bytesDown() const override {
    return pump_ ? pump_->bytesFromStream() : mux_ ? mux_->bytesFromStream() : 0;
  }
  std::string streamId() const override { return streamId_; }

 private:
  // Runs inside the opener's callback; for a multiplexed stream, inside its ACCEPT: the pump
  // takes the stream before this returns (else `s` closes it), so no byte finds nobody.
  void onOpen(hubclient::OpenedStream s, const hubclient::OpenResult& r) {
    if (r.status != 200) {
      Reply reply = replyFor(r.status, r.code);
      LOG_INFO("%s %s: stream to %s refused: %d %s %s -> %s", c_.via().c_str(), c_.peer().c_str(),
               what_.c_str(), r.status, r.code.c_str(), r.message.c_str(), socks::replyName(reply));
      return c_.fail(reply);
    }
    streamId_ = r.streamId;
    BufferEventPtr client = c_.takeClient();
    if (!client) return c_.ended();
    if (s.multiplexed()) {
      hubclient::OpenedStream::Mux m = s.takeMux();
      mux_ = std::make_unique<MuxPump>(
          c_.owner().loop(), std::move(client), *m.channel, m.id, c_.owner().highWatermark(),
          [this](MuxPump* p, const std::string& why) { ended(*p, why); });
      return start(*mux_);
    }
    pump_ = std::make_unique<StreamPump>(
        c_.owner().loop(), std::move(client), s.takeWs(), c_.owner().highWatermark(),
        [this](StreamPump* p, const std::string& why) { ended(*p, why); });
    start(*pump_);
  }

  template <class Pump>
  void start(Pump& pump) {
    if (UpstreamGate gate = c_.takeGate()) pump.setUpstreamGate(std::move(gate));
    c_.opened();
    LOG_DEBUG("stream %s %s: open for %s %s", streamId_.c_str(), what_.c_str(), c_.via().c_str(),
              c_.peer().c_str());
    pump.start();
  }

  template <class Pump>
  void ended(const Pump& p, const std::string& why) {
    LOG_INFO("stream %s %s: %s (%llu bytes to the device, %llu from it; %s %s)", streamId_.c_str(),
             what_.c_str(), why.c_str(), static_cast<unsigned long long>(p.bytesToStream()),
             static_cast<unsigned long long>(p.bytesFromStream()), c_.via().c_str(),
             c_.peer().c_str());
    c_.ended();
  }

  Connection& c_;
  std::string what_;  // device:port for the log
  uint64_t openId_ = 0;
  std::string streamId_;
  std::unique_ptr<StreamPump> pump_;  // one of the two, once open
  std::unique_ptr<MuxPump> mux_;
};

// A direct TCP connection to a destination that is not a device, then relayed.
class DirectConnection : public Upstream {
 public:
  DirectConnection(Connection& c, const std::string& host, uint16_t port)
      : c_(c),
        what_(net::formatHostPort(host, port)),
        connector_(c.owner().loop(), [this](BufferEventPtr bev, const ConnectOutcome& o) {
          onConnect(std::move(bev), o);
        }) {
    connector_.connect(c.owner().loop().dns(), host, port, kDirectConnectTimeout);
  }

  bool open() const override { return relay_ != nullptr; }
  void close(const std::string& why) override {
    if (relay_) relay_->close(why);
  }
  uint64_t bytesUp() const override { return relay_ ? relay_->bytesToTarget() : 0; }
  uint64_t bytesDown() const override { return relay_ ? relay_->bytesFromTarget() : 0; }

 private:
  void onConnect(BufferEventPtr bev, const ConnectOutcome& o) {
    if (!bev) {
      Reply reply = replyForConnect(o.result);
      LOG_INFO("direct %s for %s %s: %s -> %s", what_.c_str(), c_.via().c_str(), c_.peer().c_str(),
               o.detail.c_str(), socks::replyName(reply));
      return c_.fail(reply);
    }
    BufferEventPtr client = c_.takeClient();
    if (!client) return c_.ended();
    relay_ = std::make_unique<TcpRelay>(
        c_.owner().loop(), std::move(client), std::move(bev), c_.owner().highWatermark(),
        [this](TcpRelay* r, const std::string& why) {
          LOG_INFO("direct %s: %s (%llu bytes sent, %llu received; %s %s)", what_.c_str(),
                   why.c_str(), static_cast<unsigned long long>(r->bytesToTarget()),
                   static_cast<unsigned long long>(r->bytesFromTarget()), c_.via().c_str(),
                   c_.peer().c_str());
          c_.ended();
        });
    if (UpstreamGate gate = c_.takeGate()) relay_->setUpstreamGate(std::move(gate));
    c_.opened();
    LOG_DEBUG("direct %s: open for %s %s", what_.c_str(), c_.via().c_str(), c_.peer().c_str());
    relay_->start();
  }

  Connection& c_;
  std::string what_;  // host:port for the log
  TcpConnector connector_;
  std::unique_ptr<TcpRelay> relay_;
};

}  // namespace

std::string describe(const hubclient::StreamTarget& t) {
  if (!t.socketPath.empty()) return t.device + ":unix:" + t.socketPath;
  if (t.host.empty() || t.host == "127.0.0.1") return t.device + ":" + std::to_string(t.port);
  return net::formatHostPort(t.host, t.port) + " via " + t.device;
}

Connection::Connection(ConnectionOwner& owner, BufferEventPtr client, std::string peer,
                       const socks::ProxyOptions& options, Admission::Ticket ticket)
    : owner_(owner), ticket_(std::move(ticket)) {
  auto s = std::make_unique<socks::ProxySession>(owner.loop(), std::move(client),
                                                 static_cast<socks::ProxySession::Handler*>(this),
                                                 options, std::move(peer));
  socks::ProxySession* raw = s.get();
  client_ = std::move(s);
  raw->start();
}

Connection::Connection(ConnectionOwner& owner, BufferEventPtr client, std::string peer,
                       std::string target, Admission::Ticket ticket)
    : owner_(owner),
      client_(std::move(client)),
      ticket_(std::move(ticket)),
      peer_(std::move(peer)),
      via_("forward"),
      target_(std::move(target)) {}

Connection::~Connection() {
  upstream_.reset();  // cancels an open in progress, before the client side goes
}

void Connection::onProxyConnect(socks::ProxySession* s, const socks::Target& target) {
  peer_ = s->peer();
  via_ = socks::viaName(target.via);
  target_ = target.hostPort();
  // An HTTP forward: only this one request may reach the target.
  if (target.via == socks::Via::HttpForward) {
    gate_ = [f = socks::RequestFramer(s->forwardFramer())](const char* data, size_t len,
                                                           size_t& pass) mutable {
      pass = f.feed(data, len);
      return f.error() ? GateState::Failed : f.done() ? GateState::Done : GateState::Open;
    };
  }
  owner_.onConnectRequest(this, s, target);
}

void Connection::onProxyDone(socks::ProxySession* s) {
  if (auto* p = std::get_if<SessionPtr>(&client_); p && p->get() == s) {
    owner_.loop().deferDelete(std::move(*p));
    client_ = std::monostate{};
  }
  // The proxy port's admission covers a client until its session ends.
  ticket_ = Admission::Ticket();
  // Refused, failed, timed out or gone before its answer: the connection ends with it.
  if (!answered_) ended();
}

void Connection::begin(uint64_t id, std::string device, uint16_t port) {
  id_ = id;
  device_ = std::move(device);
  port_ = port;
  started_ = Clock::now();
}

void Connection::openDevice(uint64_t id, const hubclient::StreamTarget& target) {
  begin(id, target.device, target.port);
  host_ = target.socketPath.empty() ? target.host : "";
  socketPath_ = target.socketPath;
  name_ = target.name;
  upstream_ = std::make_unique<DeviceStream>(*this, target);
}

void Connection::openDirect(uint64_t id, const std::string& host, uint16_t port) {
  begin(id, "", port);
  via_ = "direct";
  upstream_ = std::make_unique<DirectConnection>(*this, host, port);
}

BufferEventPtr Connection::takeClient() {
  BufferEventPtr bev;
  if (auto* s = std::get_if<SessionPtr>(&client_)) {
    answered_ = true;
    bev = (*s)->accept();  // ends the session (onProxyDone)
  } else if (auto* t = std::get_if<BufferEventPtr>(&client_)) {
    bev = std::move(*t);
  }
  client_ = std::monostate{};
  return bev;
}

void Connection::fail(Reply reply) {
  owner_.onConnectionFailed();
  if (auto* s = std::get_if<SessionPtr>(&client_)) {
    answered_ = true;
    (*s)->reject(reply);  // ends the session (onProxyDone)
  } else if (auto* t = std::get_if<BufferEventPtr>(&client_)) {
    // A forwarded connection has no way to say why: it is closed.
    bufferevent_setcb(t->get(), nullptr, nullptr, nullptr, nullptr);
    owner_.loop().closeAfterFlush(std::move(*t));
  }
  client_ = std::monostate{};
  ended();
}

void Connection::close(const std::string& why) {
  if (!upstream_) {
    if (auto* s = std::get_if<SessionPtr>(&client_)) (*s)->reject(Reply::GeneralFailure);
    return;
  }
  if (upstream_->open()) return upstream_->close(why);
  fail(Reply::GeneralFailure);
}

json Connection::toJson() const {
  double age = std::chrono::duration<double>(Clock::now() - started_).count();
  bool isOpen = open();
  json j{{"id", id_},
         {"device", device_},
         {"port", port_},
         {"target", target_},
         {"client", peer_},
         {"via", via_},
         {"state", isOpen ? "open" : "opening"},
         {"stream_id", upstream_ ? upstream_->streamId() : ""},
         {"bytes_to_device", upstream_ ? upstream_->bytesUp() : 0},
         {"bytes_from_device", upstream_ ? upstream_->bytesDown() : 0},
         {"age_seconds", static_cast<double>(static_cast<int64_t>(age * 10)) / 10}};
  if (!host_.empty()) j["host"] = host_;
  if (!socketPath_.empty()) j["unix"] = socketPath_;
  if (!name_.empty()) j["name"] = name_;
  return j;
}

}  // namespace ds::daemon
