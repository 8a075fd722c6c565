// The hub: HTTP routing, device control channels, stream initiation and the relay.
#include "hub/hub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/guard.h"
#include "common/http_exchange.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/protocol.h"
#include "common/sas.h"
#include "common/tls.h"

namespace ds::hub {

using json = nlohmann::json;
namespace cc = ws::close_code;

namespace {

constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kAuditPruneEvery = 1000;
constexpr std::string_view kDevicesPrefix = "/api/v1/devices/";
constexpr std::string_view kStreamsPrefix = "/api/v1/streams/";
constexpr size_t kMaxAuditQuery = 1000;
constexpr const char* kDeviceIdRule =
    "device ids are 1..128 characters of A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '";

using proto::errorBody;
using proto::Reject;

proto::Answer refusal(Reject r, std::string message, int retryAfter = 0) {
  return {
      proto::info(r).httpStatus, {}, std::string(proto::name(r)), std::move(message), retryAfter};
}

// JSON of the hub's own making; a value that is not valid UTF-8 is replaced, never thrown on.
std::string jsonText(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unixNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) logFatal("RAND_bytes failed");
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json deviceJson(const DeviceRecord& d, bool online, bool withKeys) {
  json j{{"id", d.id},
         {"enabled", d.enabled},
         {"online", online},
         {"created", d.created},
         {"last_seen", d.lastSeen}};
  if (withKeys) {
    j["primary_key"] = d.primaryKey;
    j["secondary_key"] = d.secondaryKey;
  }
  return j;
}

// Splits "/api/v1/devices/{id}/suffix" into id and suffix; the id is percent-decoded.
bool splitDevicePath(std::string_view target, std::string& id, std::string& rest) {
  if (!target.starts_with(kDevicesPrefix)) return false;
  target.remove_prefix(kDevicesPrefix.size());
  size_t slash = target.find('/');
  auto decoded = sas::urlDecode(target.substr(0, slash));
  if (!decoded) return false;
  id = *decoded;
  rest = slash == std::string_view::npos ? "" : std::string(target.substr(slash));
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpSession: one accepted connection until it is answered or upgraded.

class Hub::HttpSession : public Deletable {
 public:
  HttpSession(Hub& hub, BufferEventPtr bev, Admission::Ticket ticket)
      : hub_(hub),
        bev_(std::move(bev)),
        ticket_(std::move(ticket)),
        timer_(hub.loop_, [this] { onTimeout(); }) {
    peer_ = peerName(bufferevent_getfd(bev_.get()));
    ++hub_.handshakes_;
    bufferevent_setcb(bev_.get(), &HttpSession::onRead, nullptr, &HttpSession::onEvent, this);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    timer_.arm(hub.cfg_.requestTimeout);
  }
  // The session leaves the hub's books (its handshake, if still counted); called before it is
  // handed to deferred deletion, when the hub is certainly alive.
  void finished() { handshakeDone(); }

  void respond(int status, std::string_view body, const std::vector<http::Header>& extra = {},
               std::string_view contentType = "application/json") {
    if (!bev_) return;
    handshakeDone();
    std::string r = httpResponse(status, contentType, body, extra);
    bufferevent_write(bev_.get(), r.data(), r.size());
    LOG_INFO("%s %s %s -> %d", peer_.c_str(), req_.method.c_str(), req_.target.c_str(), status);
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    hub_.loop_.closeAfterFlush(std::move(bev_));
    hub_.endSession(this);
  }
  void respondError(int status, std::string_view code, std::string_view message,
                    const std::vector<http::Header>& extra = {}) {
    respond(status, errorBody(code, message), extra);
  }
  void respondError(Reject r, std::string_view message) {
    respondError(proto::info(r).httpStatus, proto::name(r), message);
  }

  // Hands the connection over (for an upgrade) with its admission ticket; the session ends.
  BufferEventPtr takeConnection(Admission::Ticket& ticket) {
    timer_.cancel();
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    ticket = std::move(ticket_);
    hub_.endSession(this);
    return std::move(bev_);
  }

  // The request is answered later (stream initiation waits for the device); keep watching the
  // connection so a client that goes away cancels the wait.
  void waitForAnswer(std::function<void()> onGone) {
    timer_.cancel();
    onGone_ = std::move(onGone);
  }

  const http::Request& request() const { return req_; }
  const std::string& body() const { return body_; }
  const std::string& peer() const { return peer_; }
  // A session of the plain-HTTP metrics listener: no TLS, /metrics and /healthz only.
  void setMetricsOnly() {
    metricsOnly_ = true;
    handshakeDone();
  }
  bool metricsOnly() const { return metricsOnly_; }

 private:
  static void onRead(bufferevent*, void* arg) {
    auto* self = static_cast<HttpSession*>(arg);
    guarded(
        "hub request", [self] { self->parse(); }, [self] { self->internalError(); });
  }
  static void onEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<HttpSession*>(arg);
    guarded(
        "hub request", [self, what] { self->event(what); }, [self] { self->internalError(); });
  }
  void event(short what) {
    if (what & BEV_EVENT_CONNECTED) handshakeDone();
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
      if (what & BEV_EVENT_ERROR) {
        std::string err = tls::lastError(bev_.get());
        LOG_DEBUG("%s: connection error: %s", peer_.c_str(), err.c_str());
      }
      bev_.reset();
      if (onGone_) {
        auto gone = std::move(onGone_);
        gone();
      }
      hub_.endSession(this);
    }
  }
  // The failure boundary: whatever a handler threw ends this one request.
  void internalError() {
    if (onGone_) {
      auto gone = std::move(onGone_);
      gone();
    }
    if (bev_) {
      respondError(Reject::Internal, "internal error");
    } else {
      hub_.endSession(this);
    }
  }
  void handshakeDone() {
    if (!handshaking_) return;
    handshaking_ = false;
    --hub_.handshakes_;
  }
  void onTimeout() {
    LOG_INFO("%s: request not complete within %lld ms", peer_.c_str(),
             static_cast<long long>(hub_.cfg_.requestTimeout.count()));
    respondError(408, "timeout", "request not complete in time");
  }

  void parse() {
    handshakeDone();
    if (!bev_ || routed_) {
      if (bev_ && routed_ && onGone_) {
        // A waiting client must not send anything more; drop it.
        evbuffer* in = bufferevent_get_input(bev_.get());
        evbuffer_drain(in, evbuffer_get_length(in));
      }
      return;
    }
    evbuffer* in = bufferevent_get_input(bev_.get());
    if (!haveHead_) {
      http::Limits limits;
      limits.maxHeadBytes = hub_.cfg_.maxHeaderBytes;
      // A client sending a byte at a time costs a search of the new bytes, not a parse.
      if (!headReady(in, limits.maxHeadBytes, gate_)) return;
      size_t len = std::min<size_t>(evbuffer_get_length(in), limits.maxHeadBytes + 4);
      const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
      http::ParseResult r = http::parseRequest(std::string_view(p, len), req_, limits);
      if (r.status == http::ParseStatus::NeedMore) return;
      if (r.status == http::ParseStatus::Invalid) {
        LOG_INFO("%s: bad request: %s", peer_.c_str(), r.error);
        respondError(r.httpStatus, "bad_request", r.error);
        return;
      }
      evbuffer_drain(in, r.consumed);
      haveHead_ = true;
      if (req_.headers.find("Transfer-Encoding")) {
        respondError(501, "not_implemented", "Transfer-Encoding is not supported");
        return;
      }
      bool valid = true;
      bodyLen_ = http::contentLength(req_.headers, &valid).value_or(0);
      if (!valid) {
        respondError(400, "bad_request", "invalid Content-Length");
        return;
      }
      if (bodyLen_ > kMaxBody) {
        respondError(413, "too_large", "request body too large");
        return;
      }
    }
    if (evbuffer_get_length(in) < bodyLen_) return;
    body_.resize(bodyLen_);
    evbuffer_remove(in, body_.data(), bodyLen_);
    routed_ = true;
    hub_.route(this);
  }

  Hub& hub_;
  BufferEventPtr bev_;
  Admission::Ticket ticket_;
  Timer timer_;
  std::string peer_;
  http::Request req_;
  bool handshaking_ = true;  // counted in the hub's TLS handshakes in progress
  bool metricsOnly_ = false;
  bool haveHead_ = false;
  bool routed_ = false;
  HeadGate gate_;
  uint64_t bodyLen_ = 0;
  std::string body_;
  std::function<void()> onGone_;
};

// ---------------------------------------------------------------------------------------------
// DeviceChannel: a device's control WebSocket.

class Hub::DeviceChannel : public Deletable, public WsConnection::Callbacks {
 public:
  DeviceChannel(Hub& hub, std::string id, std::unique_ptr<WsConnection> ws,
                Admission::Ticket ticket)
      : hub_(hub), id_(std::move(id)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
    ws_->setCallbacks(this);
  }
  ~DeviceChannel() override {
    if (ws_) ws_->setCallbacks(nullptr);
  }
  void start() {
    ws_->enableKeepalive(hub_.cfg_.keepalive);
    ws_->start();
  }
  void send(const proto::StreamRequest& msg) { ws_->sendText(proto::toText(msg)); }
  void close(uint16_t code, std::string_view reason) { ws_->close(code, reason); }
  const std::string& id() const { return id_; }

  void onWsData(evbuffer*) override {
    LOG_WARN("device %s: binary data on the control channel", id_.c_str());
    ws_->close(cc::Unsupported, "binary data on control channel");
    hub_.endDevice(this);
  }
  void onWsText(std::string message) override { hub_.onDeviceMessage(this, message); }
  void onWsClosed(uint16_t code, const std::string& reason) override {
    LOG_INFO("device %s: control channel closed (%u %s)", id_.c_str(), code, reason.c_str());
    hub_.endDevice(this);
  }

 private:
  Hub& hub_;
  std::string id_;
  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
};

// ---------------------------------------------------------------------------------------------
// Stream: one device stream from initiation to the end of the relay.

class Hub::Stream : public Deletable {
 public:
  using Side = StreamLifecycle::Side;
  using Outcome = StreamLifecycle::Outcome;
  static constexpr int kService = 0;
  static constexpr int kDevice = 1;

  Stream(Hub& hub, std::string id, std::string device, std::string policy, std::string host,
         uint16_t port)
      : hub_(hub),
        id_(std::move(id)),
        device_(std::move(device)),
        policy_(std::move(policy)),
        host_(std::move(host)),
        port_(port),
        life_(Clock::now(), hub.cfg_.handshakeTimeout, hub.cfg_.idleTimeout),
        timer_(hub.loop_, [this] { onTimer(); }),
        sides_{SideCb(this, kService), SideCb(this, kDevice)} {
    startMs_ = unixMillis();
    armTimer();
  }
  ~Stream() override {
    for (auto& s : sides_) {
      if (s.ws) s.ws->setCallbacks(nullptr);
    }
    if (initiator_.release) initiator_.release();
  }

  const std::string& id() const { return id_; }
  const std::string& device() const { return device_; }
  const std::string& policy() const { return policy_; }
  const std::string& token(int side) const { return tokens_.token(static_cast<Side>(side)); }
  std::string url() const { return hub_.cfg_.publicUrl + std::string(kStreamsPrefix) + id_; }
  const StreamLifecycle& life() const { return life_; }
  bool paired() const { return life_.state() == StreamLifecycle::State::Paired; }

  json describe() const {
    return json{{"stream_id", id_},
                {"policy", policy_},
                {"device", device_},
                {"host", host_},
                {"port", port_},
                {"state", stateName(life_.state())},
                {"start_ms", startMs_},
                {"bytes_to_device", bytes(kService)},
                {"bytes_from_device", bytes(kDevice)}};
  }

  AuditRecord audit() const {
    AuditRecord a;
    a.streamId = id_;
    a.policy = policy_;
    a.device = device_;
    a.host = host_;
    a.port = port_;
    a.startMs = startMs_;
    a.endMs = unixMillis();
    a.bytesToDevice = bytes(kService);
    a.bytesFromDevice = bytes(kDevice);
    a.outcome = outcomeName(life_.outcome());
    a.reason = life_.reason();
    return a;
  }

  void setInitiator(Initiator who) { initiator_ = std::move(who); }

  // The initiator went away (its connection or channel closed) before the answer.
  void initiatorGone() {
    if (!initiator_.answer) return;
    initiator_ = {};
    LOG_INFO("stream %s: client went away during the handshake", id_.c_str());
    end(Outcome::Cancelled, "client went away");
  }

  // Which side a presented token opens, consuming it (single use).
  std::optional<Side> claim(std::string_view token) { return tokens_.claim(token); }

  void onDeviceAnswer(const proto::StreamResponse& msg) {
    if (!initiator_.answer) return;
    Answer answer = takeAnswer();
    if (msg.accept && life_.accept(Clock::now())) {
      answer({200, {id_, url(), token(kService)}, {}, {}, 0});
      if (paired()) onPaired();
      return;
    }
    // The device's code decides the status (docs/protocol.md); a code this version does not
    // know is passed on as text but counted as "other".
    Reject code = msg.accept ? Reject::Rejected : msg.code;
    std::string codeText = msg.accept ? std::string(proto::name(code)) : msg.codeText;
    std::string reason = msg.accept ? "accepted after the stream ended" : msg.reason;
    const proto::RejectInfo& ri = proto::info(code);
    LOG_INFO("stream %s: device %s rejected %s:%u: %s (%s)", id_.c_str(), device_.c_str(),
             host_.c_str(), port_, reason.c_str(), codeText.c_str());
    hub_.countReject(code);
    answer({ri.httpStatus, {}, codeText, reason, 0});
    bool policy = ri.httpStatus == 403;
    end(policy ? Outcome::Rejected : Outcome::Refused, codeText + ": " + reason);
  }

  void attach(int side, std::unique_ptr<WsConnection> ws, Admission::Ticket ticket) {
    ws->setCallbacks(&sides_[side]);
    ws->setHighWatermark(hub_.cfg_.highWatermark);
    sides_[side].ws = std::move(ws);
    sides_[side].ticket = std::move(ticket);
    if (life_.attach(static_cast<Side>(side), Clock::now())) onPaired();
  }

  // Ends the stream: answers a waiting initiator, closes open sides, records, frees later.
  void end(Outcome outcome, const std::string& why, uint16_t code = cc::GoingAway) {
    if (ended_) return;
    ended_ = true;
    life_.close(outcome, why, Clock::now());
    timer_.cancel();
    if (initiator_.answer) {
      Answer answer = takeAnswer();
      if (outcome == Outcome::Timeout) {
        answer(refusal(Reject::HandshakeTimeout, "the device did not answer in time"));
      } else {
        answer(refusal(Reject::DeviceOffline, why));
      }
    }
    for (auto& s : sides_) {
      if (s.ws && s.ws->open()) s.ws->close(code, why);
    }
    hub_.recordStream(this);
    hub_.endStream(this);
  }

 private:
  struct SideCb : WsConnection::Callbacks {
    SideCb(Stream* st, int s) : stream(st), side(s) {}
    Stream* stream;
    int side;
    std::unique_ptr<WsConnection> ws;
    Admission::Ticket ticket;
    WsConnection* other() const { return stream->sides_[1 - side].ws.get(); }

    void onWsData(evbuffer* payload) override {
      WsConnection* o = other();
      if (!o || !o->open()) return;
      (side == kService ? stream->hub_.bytesToDevice_ : stream->hub_.bytesFromDevice_)
          .inc(static_cast<double>(evbuffer_get_length(payload)));
      stream->life_.activity(Clock::now());
      o->sendBinary(payload);
      // Backpressure: a slow reader on the other side stops reads on this one.
      if (o->overHighWatermark()) ws->pauseReading();
    }
    void onWsText(std::string message) override {
      // Stream control ({"type":"eof"}) goes through in order with the data and under the same
      // watermark: the hub relays text as it is (the two ends speak stream control).
      WsConnection* o = other();
      if (!o || !o->open()) return;
      o->sendText(message);
      if (o->overHighWatermark()) ws->pauseReading();
    }
    void onWsDrained() override {
      WsConnection* o = other();
      if (o) o->resumeReading();
    }
    void onWsClosed(uint16_t code, const std::string& reason) override {
      // The other side is closed at once with the same code (1006 is not sendable).
      uint16_t relay = code == cc::Abnormal || code == cc::NoStatus ? cc::GoingAway : code;
      std::string why = std::string(side == kService ? "service" : "device") + " side closed (" +
                        std::to_string(code) + (reason.empty() ? "" : " " + reason) + ")";
      stream->end(code == cc::Normal ? Outcome::Ok : Outcome::Error, why, relay);
    }
  };

  // The initiator's answer, detaching the initiator (it is answered now).
  Answer takeAnswer() {
    Answer a = std::move(initiator_.answer);
    initiator_ = {};
    return a;
  }

  uint64_t bytes(int side) const { return sides_[side].ws ? sides_[side].ws->bytesIn() : 0; }

  void onPaired() {
    auto latency = life_.handshakeLatency();
    hub_.handshakeSeconds_.observe(std::chrono::duration<double>(latency).count());
    LOG_INFO("stream %s: paired (%s:%u on %s, policy %s) after %lld ms", id_.c_str(), host_.c_str(),
             port_, device_.c_str(), policy_.c_str(), static_cast<long long>(latency.count()));
    armTimer();
    // Pings on both sides: a peer that vanished without a FIN frees its slot within the
    // keepalive bound instead of holding the stream forever.
    for (auto& s : sides_) {
      s.ws->enableKeepalive(hub_.cfg_.keepalive);
      s.ws->start();
    }
  }

  void armTimer() {
    auto d = life_.deadline();
    if (!d) {
      timer_.cancel();
      return;
    }
    auto wait = std::chrono::duration_cast<Millis>(*d - Clock::now());
    timer_.arm(std::max(wait, Millis(0)));
  }

  void onTimer() {
    Outcome o = life_.expire(Clock::now());
    if (o == Outcome::None) return armTimer();
    // expire() closed the lifecycle with its outcome; end() does the rest.
    if (o == Outcome::Timeout) {
      LOG_WARN("stream %s: handshake not complete within %lld ms", id_.c_str(),
               static_cast<long long>(hub_.cfg_.handshakeTimeout.count()));
      end(o, "handshake timeout", cc::TryAgainLater);
    } else {
      LOG_INFO("stream %s: idle for %lld ms", id_.c_str(),
               static_cast<long long>(hub_.cfg_.idleTimeout.count()));
      end(o, "idle timeout", cc::GoingAway);
    }
  }

  Hub& hub_;
  std::string id_, device_, policy_, host_;
  uint16_t port_;
  StreamLifecycle life_;
  Timer timer_;
  StreamTokens tokens_;
  SideCb sides_[2];
  Initiator initiator_;
  bool ended_ = false;
  int64_t startMs_ = 0;
};

// ---------------------------------------------------------------------------------------------
// ServiceChannel: a service's control WebSocket, carrying pipelined stream initiations. Each
// request is answered with the same statuses as the POST endpoint; answers come in the order
// the devices decide, matched by the client's `id`.

class Hub::ServiceChannel : public Deletable, public WsConnection::Callbacks {
 public:
  ServiceChannel(Hub& hub, PolicyRecord policy, std::unique_ptr<WsConnection> ws,
                 Admission::Ticket ticket)
      : hub_(hub), policy_(std::move(policy)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
    ws_->setCallbacks(this);
    ws_->setHighWatermark(hub_.cfg_.highWatermark);
    peer_ = ws_->peer();
  }
  ~ServiceChannel() override {
    if (ws_) ws_->setCallbacks(nullptr);
  }
  void start() {
    ws_->enableKeepalive(hub_.cfg_.keepalive);
    ws_->start();
  }
  void close(uint16_t code, std::string_view reason) {
    ws_->close(code, reason);
    cancelWaiting();
  }
  const std::string& peer() const { return peer_; }

  void onWsData(evbuffer*) override {
    LOG_WARN("service channel %s: binary data", peer_.c_str());
    ws_->close(cc::Unsupported, "binary data on the service channel");
    gone();
  }
  void onWsText(std::string message) override {
    std::optional<proto::RequestId> id;
    auto req = proto::parseServiceRequest(message, id);
    if (!id) {
      // Without an id there is nothing to answer to: the client is broken.
      LOG_WARN("service channel %s: %s", peer_.c_str(), req.error.c_str());
      ws_->close(cc::InvalidData, "message must be a JSON object with an \"id\"");
      gone();
      return;
    }
    if (!req) {
      send(*id, {400, {}, std::string(proto::name(Reject::BadRequest)), req.error, 0});
      return pauseIfFull();
    }
    proto::RequestId rid = *id;
    Stream* st = hub_.initiate(policy_, req->device, {req->port, req->host},
                               [this, rid](const proto::Answer& a) { send(rid, a); });
    pauseIfFull();
    if (!st) return;
    waiting_.insert(st);
    st->setInitiator({[this, rid, st](const proto::Answer& a) {
                        waiting_.erase(st);
                        send(rid, a);
                      },
                      [this, st] { waiting_.erase(st); }});
  }
  void onWsDrained() override { ws_->resumeReading(); }
  void onWsClosed(uint16_t code, const std::string& reason) override {
    LOG_INFO("service channel %s (policy %s): closed (%u %s)", peer_.c_str(), policy_.name.c_str(),
             code, reason.c_str());
    gone();
  }

 private:
  void send(const proto::RequestId& id, const proto::Answer& a) {
    ws_->sendText(proto::toText(proto::ServiceResponse{id, a}));
  }
  // A client that sends requests without reading the answers stops being read.
  void pauseIfFull() {
    if (ws_->overHighWatermark()) ws_->pauseReading();
  }
  // Streams still waiting for an answer lose their initiator (and end).
  void cancelWaiting() {
    std::set<Stream*> waiting;
    waiting.swap(waiting_);
    for (Stream* st : waiting) st->initiatorGone();
  }
  void gone() {
    cancelWaiting();
    hub_.endService(this);
  }

  Hub& hub_;
  PolicyRecord policy_;
  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
  std::string peer_;
  std::set<Stream*> waiting_;
};

// ---------------------------------------------------------------------------------------------

Hub::Hub(Loop& loop, config::HubConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      acceptor_(
          loop, {cfg_.maxConnections, cfg_.maxConnectionsPerAddress},
          [this](evutil_socket_t fd, const sockaddr*, Admission::Ticket t) {
            onAccept(fd, std::move(t), false);
          },
          "hub"),
      devicesConnected_(
          metrics_.gauge("devstreams_devices_connected", "Devices with an open control channel")),
      streamsActive_(metrics_.gauge("devstreams_streams_active", "Streams paired and relaying")),
      streamsPending_(
          metrics_.gauge("devstreams_streams_pending", "Streams requested but not yet paired")),
      bytesToDevice_(metrics_.counter("devstreams_bytes_relayed_total",
                                      "Bytes relayed between the sides of streams",
                                      {{"direction", "to_device"}})),
      bytesFromDevice_(metrics_.counter("devstreams_bytes_relayed_total",
                                        "Bytes relayed between the sides of streams",
                                        {{"direction", "from_device"}})),
      handshakeSeconds_(metrics_.histogram("devstreams_handshake_seconds",
                                           "Time from stream request to pairing",
                                           metrics::latencyBuckets())),
      connectionsRefused_(metrics_.counter(
          "devstreams_connections_refused_total",
          "Connections closed at once: connection or TLS handshake limits reached")) {
  if (cfg_.publicUrl.empty()) {
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(cfg_.listen.port);
  }
  while (!cfg_.publicUrl.empty() && cfg_.publicUrl.back() == '/') cfg_.publicUrl.pop_back();
  wsLimits_.maxFrame = cfg_.maxFrame;
  wsLimits_.maxMessage = cfg_.maxMessage;
  // Refusing an unknown device or policy costs an HMAC too, with a key nobody holds.
  decoyKey_ = sas::randomKey();
}

Hub::~Hub() { shutdown(); }

bool Hub::start(std::string& err) {
  registry_ = Registry::open(cfg_.registry, err);
  if (!registry_) return false;
  if (registry_->empty() && !cfg_.bootstrapRegistry.empty()) {
    config::RegistrySeed seed;
    try {
      seed = config::loadRegistrySeed(cfg_.bootstrapRegistry);
    } catch (const config::Error& e) {
      err = e.what();
      return false;
    }
    for (const auto& d : seed.devices) {
      DbResult r = registry_->addDevice({d.id, d.primaryKey, d.secondaryKey, d.enabled, 0, 0});
      if (r != DbResult::Ok) {
        err = cfg_.bootstrapRegistry + ": device " + d.id + ": " + dbResultName(r);
        return false;
      }
    }
    for (const auto& p : seed.policies) {
      DbResult r = registry_->addPolicy({p.name, p.key, p.permissions});
      if (r != DbResult::Ok) {
        err = cfg_.bootstrapRegistry + ": policy " + p.name + ": " + dbResultName(r);
        return false;
      }
    }
    LOG_INFO("registry %s: imported %zu devices and %zu policies from %s", cfg_.registry.c_str(),
             seed.devices.size(), seed.policies.size(), cfg_.bootstrapRegistry.c_str());
  }
  std::string cert = cfg_.cert, key = cfg_.key;
  if (cert.empty()) {
    pki::BootstrapResult boot;
    if (!pki::ensureHubCertificates(cfg_.stateDir, cfg_.tlsNames, boot, err)) return false;
    cert = boot.files.cert;
    key = boot.files.key;
    caFingerprint_ = boot.caFingerprint;
    if (boot.createdCa) {
      LOG_INFO("created a CA in %s; trust it with `ca: %s` (SHA-256 %s)", cfg_.stateDir.c_str(),
               boot.files.caCert.c_str(), caFingerprint_.c_str());
    } else {
      LOG_INFO("CA %s (SHA-256 %s)", boot.files.caCert.c_str(), caFingerprint_.c_str());
    }
    if (boot.createdCert) LOG_INFO("issued server certificate %s", boot.files.cert.c_str());
  }
  ssl_ = tls::serverContext(cert, key, err);
  if (!ssl_) return false;
  // One TLS 1.3 session ticket per handshake: the daemon's and the agent's warm connections
  // resume their sessions, which spares the hub a certificate signature per connection.
  SSL_CTX_set_num_tickets(ssl_.get(), 1);
  if (!acceptor_.listen(cfg_.listen.host, cfg_.listen.port, port_, err)) return false;
  if (cfg_.listen.port == 0) {
    // Ephemeral port (tests): the public URL follows the bound port.
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(port_);
  }
  if (cfg_.metricsListen) {
    metricsAcceptor_ = std::make_unique<Acceptor>(
        loop_, AdmissionLimits{64, 16},
        [this](evutil_socket_t fd, const sockaddr*, Admission::Ticket t) {
          onAccept(fd, std::move(t), true);
        },
        "hub metrics");
    if (!metricsAcceptor_->listen(cfg_.metricsListen->host, cfg_.metricsListen->port, metricsPort_,
                                  err)) {
      return false;
    }
    LOG_INFO("metrics and health on http://%s:%u/", cfg_.metricsListen->host.c_str(), metricsPort_);
  }
  return true;
}

void Hub::shutdown() {
  acceptor_.close();
  metricsAcceptor_.reset();
  std::vector<Stream*> open;
  for (auto& [id, st] : streams_) open.push_back(st.get());
  for (Stream* st : open) st->end(Stream::Outcome::Cancelled, "hub shutting down");
  for (auto& [id, d] : devices_) d->close(cc::GoingAway, "hub shutting down");
  std::vector<ServiceChannel*> services;
  for (auto& [p, c] : services_) services.push_back(p);
  for (ServiceChannel* c : services) {
    c->close(cc::GoingAway, "hub shutting down");
    endService(c);
  }
}

void Hub::onAccept(evutil_socket_t fd, Admission::Ticket ticket, bool metricsOnly) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  BufferEventPtr bev;
  if (metricsOnly) {
    bev = newSocketBufferEvent(loop_, fd);
  } else {
    // Handshakes cost the hub a signature each: past the limit a new connection is closed
    // before any TLS work (its client retries, as for a refused connection).
    if (handshakes_ >= cfg_.maxTlsHandshakes) {
      connectionsRefused_.inc();
      evutil_closesocket(fd);
      return;
    }
    bev = tls::acceptSocket(loop_, ssl_.get(), fd);
  }
  if (!bev) return;
  auto s = std::make_unique<HttpSession>(*this, std::move(bev), std::move(ticket));
  if (metricsOnly) s->setMetricsOnly();
  sessions_.emplace(s.get(), std::move(s));
}

void Hub::endSession(HttpSession* s) {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  s->finished();
  loop_.deferDelete(std::move(it->second));
  sessions_.erase(it);
}

void Hub::endDevice(DeviceChannel* d) {
  auto it = devices_.find(d->id());
  if (it == devices_.end() || it->second.get() != d) return;
  std::unique_ptr<DeviceChannel> gone = std::move(it->second);
  devices_.erase(it);
  devicesConnected_.set(static_cast<double>(devices_.size()));
  registry_->touchLastSeen(d->id(), unixNow());
  // Streams still waiting for this device's answer cannot get one now.
  std::vector<Stream*> waiting;
  for (auto& [id, st] : streams_) {
    if (st->device() == d->id() && st->life().state() == StreamLifecycle::State::Requested) {
      waiting.push_back(st.get());
    }
  }
  for (Stream* st : waiting) st->end(Stream::Outcome::Offline, "device went offline");
  loop_.deferDelete(std::move(gone));
}

void Hub::disconnectDevice(const std::string& id, uint16_t code, const std::string& why) {
  std::vector<Stream*> open;
  for (auto& [sid, st] : streams_) {
    if (st->device() == id) open.push_back(st.get());
  }
  for (Stream* st : open) st->end(Stream::Outcome::Cancelled, why);
  auto it = devices_.find(id);
  if (it == devices_.end()) return;
  it->second->close(code, why);
  endDevice(it->second.get());
}

void Hub::endStream(Stream* st) {
  auto it = streams_.find(st->id());
  if (it == streams_.end()) return;
  loop_.deferDelete(std::move(it->second));
  streams_.erase(it);
  streamsActive_.set(static_cast<double>(streams_.size() - pendingStreams()));
  streamsPending_.set(static_cast<double>(pendingStreams()));
}

void Hub::recordStream(Stream* st) {
  AuditRecord a = st->audit();
  metrics_
      .counter("devstreams_streams_total", "Streams ended, by outcome", {{"outcome", a.outcome}})
      .inc();
  LOG_INFO(
      "audit stream=%s policy=%s device=%s target=%s:%u bytes_to_device=%llu "
      "bytes_from_device=%llu duration_ms=%lld outcome=%s reason=\"%s\"",
      a.streamId.c_str(), a.policy.c_str(), a.device.c_str(), a.host.c_str(), a.port,
      static_cast<unsigned long long>(a.bytesToDevice),
      static_cast<unsigned long long>(a.bytesFromDevice),
      static_cast<long long>(a.endMs - a.startMs), a.outcome.c_str(), a.reason.c_str());
  if (registry_->addAudit(a) != DbResult::Ok) {
    LOG_ERROR("audit record for stream %s not stored: %s", a.streamId.c_str(),
              registry_->lastError().c_str());
  }
  if (++audits_ % kAuditPruneEvery == 0) registry_->pruneAudit(cfg_.auditKeep);
}

size_t Hub::pendingStreams() const {
  size_t n = 0;
  for (const auto& [id, st] : streams_) n += !st->paired();
  return n;
}

void Hub::countReject(Reject r) {
  // Labels come from the code table only: a device's own words never become a series.
  metrics_
      .counter("devstreams_rejects_total", "Stream requests refused, by reason",
               {{"reason", std::string(proto::name(r))}})
      .inc();
}

void Hub::reject(const Answer& answer, Reject r, std::string message, int retryAfter) {
  countReject(r);
  answer(refusal(r, std::move(message), retryAfter));
}

bool Hub::metricsAllowed(HttpSession* s) {
  if (s->metricsOnly()) return true;
  if (metricsAcceptor_) {
    s->respondError(Reject::NotFound, "served on the metrics listener");
    return false;
  }
  if (cfg_.metricsToken.empty()) return true;
  const std::string* auth = s->request().headers.find("Authorization");
  if (auth && auth->starts_with("Bearer ") &&
      sas::constantTimeEquals(std::string_view(*auth).substr(7), cfg_.metricsToken)) {
    return true;
  }
  s->respondError(401, "unauthorized", "Bearer token required",
                  {{"WWW-Authenticate", "Bearer realm=\"devstreams-hub\""}});
  return false;
}

void Hub::route(HttpSession* s) {
  const http::Request& r = s->request();
  std::string_view target = r.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  if (target == "/healthz" || target == "/metrics") {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    if (!metricsAllowed(s)) return;
    if (target == "/healthz") {
      return s->respond(200, jsonText(json{{"status", "ok"},
                                           {"devices_online", devices_.size()},
                                           {"streams", streams_.size()}}));
    }
    streamsActive_.set(static_cast<double>(streams_.size() - pendingStreams()));
    streamsPending_.set(static_cast<double>(pendingStreams()));
    return s->respond(200, metrics_.render(), {}, metrics::kContentType);
  }
  if (s->metricsOnly()) return s->respondError(Reject::NotFound, "no such resource");
  if (target == "/api/v1/devices") return handleDevices(s);
  if (target == "/api/v1/service/control") {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return handleServiceControl(s);
  }
  if (target == "/api/v1/streams") {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return handleStreams(s, query);
  }
  std::string id, rest;
  if (splitDevicePath(target, id, rest)) {
    // Whatever the request, an id that no device can have is refused before anything uses it.
    if (!config::isValidDeviceId(id)) {
      return s->respondError(400, "bad_device_id", kDeviceIdRule);
    }
    if (rest.empty()) return handleDevice(s, id);
    if (rest == "/control") {
      if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
      return handleControl(s, id);
    }
    if (rest == "/streams") {
      if (r.method != "POST") return s->respondError(405, "method_not_allowed", "use POST");
      return handleInitiate(s, id);
    }
    if (rest == "/keys/rotate") {
      if (r.method != "POST") return s->respondError(405, "method_not_allowed", "use POST");
      return handleRotate(s, id);
    }
  }
  if (target.starts_with(kStreamsPrefix)) {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return handleStreamSide(s, std::string(target.substr(kStreamsPrefix.size())));
  }
  s->respondError(Reject::NotFound, "no such resource");
}

// A token that verified must also not live longer than the hub allows: a leaked token with a
// far expiry would be a key in all but name.
sas::Verdict Hub::checkLifetime(const sas::Token& tok, sas::Verdict v) const {
  if (v == sas::Verdict::Ok && tok.expiry - unixNow() > cfg_.maxTokenLifetime.count()) {
    return sas::Verdict::Expired;
  }
  return v;
}

std::optional<PolicyRecord> Hub::authService(HttpSession* s, std::string_view permission) {
  const std::string* auth = s->request().headers.find("Authorization");
  std::optional<sas::Token> tok;
  if (auth) tok = sas::parseToken(*auth);
  if (!tok || tok->policy.empty()) {
    LOG_INFO("%s: service request without a valid SAS token", s->peer().c_str());
    s->respondError(401, "unauthorized", "missing or malformed SharedAccessSignature");
    return std::nullopt;
  }
  std::optional<PolicyRecord> policy = registry_->policy(tok->policy);
  // An unknown policy is checked against a decoy key: the same work, the same answer.
  sas::Verdict v =
      sas::verify(*tok, cfg_.hostname, policy ? policy->key : decoyKey_, unixNow(), tok->policy);
  if (!policy && v == sas::Verdict::Ok) v = sas::Verdict::BadSignature;
  bool tooLong = v == sas::Verdict::Ok && checkLifetime(*tok, v) != sas::Verdict::Ok;
  if (v != sas::Verdict::Ok || tooLong) {
    const char* why = tooLong ? "token-lifetime-too-long" : sas::verdictName(v);
    LOG_INFO("%s: service token for policy '%s' refused: %s", s->peer().c_str(),
             tok->policy.c_str(), why);
    s->respondError(401, "unauthorized",
                    tooLong ? "token expires more than max_token_lifetime ahead" : why);
    return std::nullopt;
  }
  if (!policy->allows(permission)) {
    LOG_INFO("%s: policy '%s' lacks %s", s->peer().c_str(), policy->name.c_str(),
             std::string(permission).c_str());
    s->respondError(
        403, "forbidden",
        "policy '" + policy->name + "' lacks the " + std::string(permission) + " permission");
    return std::nullopt;
  }
  return policy;
}

bool Hub::checkUpgrade(HttpSession* s) {
  std::string err;
  int status = wshs::checkClientRequest(s->request(), err);
  if (status == 0) return true;
  s->respondError(status, "bad_upgrade", err,
                  status == 426 ? wshs::upgradeRequiredHeaders() : std::vector<http::Header>{});
  return false;
}

std::unique_ptr<WsConnection> Hub::upgrade(HttpSession* s, Admission::Ticket& ticket) {
  const std::string key = *s->request().headers.find("Sec-WebSocket-Key");
  std::string resp = wshs::serverResponse(key);
  BufferEventPtr bev = s->takeConnection(ticket);
  bufferevent_write(bev.get(), resp.data(), resp.size());
  return std::make_unique<WsConnection>(loop_, std::move(bev), WsConnection::Role::Server,
                                        wsLimits_, nullptr);
}

void Hub::handleControl(HttpSession* s, const std::string& deviceId) {
  if (!checkUpgrade(s)) return;
  std::optional<DeviceRecord> dev = registry_->device(deviceId);
  const std::string* auth = s->request().headers.find("Authorization");
  std::optional<sas::Token> tok;
  if (auth) tok = sas::parseToken(*auth);
  std::string resource = cfg_.hostname + "/devices/" + deviceId;
  sas::Verdict v = sas::Verdict::Malformed;
  if (tok) {
    // An unknown device is checked against a decoy key, two HMACs as for a known device with a
    // bad signature, so the two cannot be told apart by timing.
    const std::string& first = dev ? dev->primaryKey : decoyKey_;
    const std::string& second = dev && !dev->secondaryKey.empty() ? dev->secondaryKey : decoyKey_;
    v = sas::verify(*tok, resource, first, unixNow());
    if (v == sas::Verdict::BadSignature) v = sas::verify(*tok, resource, second, unixNow());
    if (!dev && v == sas::Verdict::Ok) v = sas::Verdict::BadSignature;
    v = checkLifetime(*tok, v);
  }
  if (v != sas::Verdict::Ok) {
    // Unknown devices and bad signatures look the same from outside.
    LOG_INFO("%s: device '%s' control refused: %s", s->peer().c_str(), deviceId.c_str(),
             dev ? sas::verdictName(v) : "unknown device");
    return s->respondError(401, "unauthorized", "device authentication failed");
  }
  if (!dev->enabled) return s->respondError(Reject::Disabled, "device is disabled");

  auto old = devices_.find(deviceId);
  if (old != devices_.end()) {
    LOG_WARN("device %s: new control connection replaces the previous one", deviceId.c_str());
    old->second->close(4000, "replaced by a new connection");
    endDevice(old->second.get());
  }
  std::string peer = s->peer();
  Admission::Ticket ticket;
  auto ws = upgrade(s, ticket);
  auto ch = std::make_unique<DeviceChannel>(*this, deviceId, std::move(ws), std::move(ticket));
  DeviceChannel* raw = ch.get();
  devices_.emplace(deviceId, std::move(ch));
  devicesConnected_.set(static_cast<double>(devices_.size()));
  registry_->touchLastSeen(deviceId, unixNow());
  LOG_INFO("device %s: online from %s", deviceId.c_str(), peer.c_str());
  raw->start();
}

void Hub::handleInitiate(HttpSession* s, const std::string& deviceId) {
  std::optional<PolicyRecord> policy = authService(s, "connect");
  if (!policy) return;
  auto body = proto::parseInitiateBody(s->body());
  if (!body) {
    countReject(Reject::BadRequest);
    return s->respondError(Reject::BadRequest, body.error);
  }
  Answer answer = [s](const proto::Answer& a) {
    std::vector<http::Header> extra;
    if (a.retryAfter > 0) extra.push_back({"Retry-After", std::to_string(a.retryAfter)});
    s->respond(a.status, proto::answerBody(a), extra);
  };
  Stream* st = initiate(*policy, deviceId, *body, answer);
  if (!st) return;
  // Keep watching the connection: a client that goes away cancels the wait.
  s->waitForAnswer([st] { st->initiatorGone(); });
  st->setInitiator({answer, [s] { s->waitForAnswer(nullptr); }});
}

void Hub::handleServiceControl(HttpSession* s) {
  if (!checkUpgrade(s)) return;
  std::optional<PolicyRecord> policy = authService(s, "connect");
  if (!policy) return;
  std::string peer = s->peer();
  Admission::Ticket ticket;
  auto ws = upgrade(s, ticket);
  auto ch = std::make_unique<ServiceChannel>(*this, *policy, std::move(ws), std::move(ticket));
  ServiceChannel* raw = ch.get();
  services_.emplace(raw, std::move(ch));
  LOG_INFO("service channel %s: open (policy %s)", peer.c_str(), policy->name.c_str());
  raw->start();
}

void Hub::endService(ServiceChannel* c) {
  auto it = services_.find(c);
  if (it == services_.end()) return;
  loop_.deferDelete(std::move(it->second));
  services_.erase(it);
}

Hub::Stream* Hub::initiate(const PolicyRecord& policy, const std::string& deviceId,
                           const proto::InitiateBody& body, const Answer& answer) {
  if (!config::isValidDeviceId(deviceId)) {
    reject(answer, Reject::BadRequest, kDeviceIdRule);
    return nullptr;
  }
  std::optional<DeviceRecord> dev = registry_->device(deviceId);
  if (!dev) {
    reject(answer, Reject::DeviceUnknown, "no device '" + deviceId + "'");
    return nullptr;
  }
  if (!dev->enabled) {
    reject(answer, Reject::Disabled, "device is disabled");
    return nullptr;
  }
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) {
    reject(answer, Reject::DeviceOffline, "device '" + deviceId + "' is not connected");
    return nullptr;
  }
  // Limits: each answer is 429 with Retry-After, so well-behaved clients back off.
  size_t pending = 0, ofPolicy = 0, pendingOfPolicy = 0, ofDevice = 0;
  for (const auto& [sid, st] : streams_) {
    bool mine = st->policy() == policy.name;
    pending += !st->paired();
    ofPolicy += mine;
    pendingOfPolicy += mine && !st->paired();
    ofDevice += st->device() == deviceId;
  }
  if (pending >= cfg_.maxPendingHandshakes) {
    reject(answer, Reject::TooManyPending, "too many stream handshakes in progress", 1);
    return nullptr;
  }
  if (streams_.size() >= cfg_.maxStreams) {
    reject(answer, Reject::TooManyStreams, "the hub's stream limit is reached", 1);
    return nullptr;
  }
  if (ofDevice >= cfg_.maxStreamsPerDevice) {
    reject(answer, Reject::DeviceBusy, "the device's stream limit is reached", 1);
    return nullptr;
  }
  if (ofPolicy >= cfg_.maxStreamsPerPolicy || pendingOfPolicy >= cfg_.maxPendingPerPolicy) {
    reject(answer, Reject::PolicyQuota,
           "policy '" + policy.name + "' holds its quota of " +
               (ofPolicy >= cfg_.maxStreamsPerPolicy
                    ? std::to_string(cfg_.maxStreamsPerPolicy) + " streams"
                    : std::to_string(cfg_.maxPendingPerPolicy) + " pending streams"),
           1);
    return nullptr;
  }
  auto rate = rates_.try_emplace(policy.name, static_cast<double>(cfg_.newStreamsPerSecond),
                                 static_cast<double>(cfg_.newStreamsPerSecond), Clock::now());
  std::chrono::seconds retry{0};
  if (!rate.first->second.take(Clock::now(), retry)) {
    reject(answer, Reject::RateLimited,
           "policy '" + policy.name + "' opens streams faster than " +
               std::to_string(cfg_.newStreamsPerSecond) + "/s",
           static_cast<int>(retry.count()));
    return nullptr;
  }
  std::string sid = randomHex(16);
  auto st = std::make_unique<Stream>(*this, sid, deviceId, policy.name, body.host, body.port);
  Stream* raw = st.get();
  streams_.emplace(sid, std::move(st));
  streamsPending_.set(static_cast<double>(pendingStreams()));
  LOG_INFO("stream %s: %s asks %s for %s:%u", sid.c_str(), policy.name.c_str(), deviceId.c_str(),
           body.host.c_str(), body.port);
  it->second->send({sid, body.host, body.port, raw->url(), raw->token(Stream::kDevice)});
  return raw;
}

void Hub::onDeviceMessage(DeviceChannel* d, const std::string& message) {
  auto msg = proto::parseStreamResponse(message);
  if (!msg && msg.fault == proto::Fault::OtherType) {
    // A message of a newer protocol: not ours to judge.
    LOG_DEBUG("device %s: control message ignored: %s", d->id().c_str(), msg.error.c_str());
    return;
  }
  if (!msg) {
    // The device is authenticated but speaks nonsense: end its channel rather than log forever.
    LOG_WARN("device %s: malformed control message: %s", d->id().c_str(), msg.error.c_str());
    d->close(cc::InvalidData, "malformed control message");
    endDevice(d);
    return;
  }
  auto it = streams_.find(msg->streamId);
  // A device may answer only for its own streams.
  if (it == streams_.end() || it->second->device() != d->id()) {
    LOG_WARN("device %s: answer for unknown stream '%s'", d->id().c_str(), msg->streamId.c_str());
    return;
  }
  it->second->onDeviceAnswer(*msg);
}

void Hub::handleStreamSide(HttpSession* s, const std::string& streamId) {
  if (!checkUpgrade(s)) return;
  const std::string* auth = s->request().headers.find("Authorization");
  if (!auth || !auth->starts_with("Bearer ")) {
    return s->respondError(401, "unauthorized", "Bearer stream token required");
  }
  auto it = streams_.find(streamId);
  if (it == streams_.end()) {
    return s->respondError(Reject::StreamUnknown, "no such stream (ended or expired)");
  }
  auto side = it->second->claim(std::string_view(*auth).substr(7));
  if (!side) {
    LOG_WARN("%s: wrong or reused token for stream %s", s->peer().c_str(), streamId.c_str());
    return s->respondError(Reject::Forbidden, "token not valid for this stream");
  }
  Admission::Ticket ticket;
  auto ws = upgrade(s, ticket);
  it->second->attach(static_cast<int>(*side), std::move(ws), std::move(ticket));
}

void Hub::handleDevices(HttpSession* s) {
  const http::Request& r = s->request();
  if (r.method == "GET") {
    if (!authService(s, "registry-read")) return;
    json list = json::array();
    for (const auto& d : registry_->devices()) {
      list.push_back(deviceJson(d, devices_.count(d.id) > 0, false));
    }
    return s->respond(200, jsonText(json{{"devices", list}}));
  }
  if (r.method != "POST") return s->respondError(405, "method_not_allowed", "use GET or POST");
  if (!authService(s, "registry-write")) return;
  auto body = proto::parseDeviceBody(s->body(), true);
  if (!body) return s->respondError(Reject::BadRequest, body.error);
  if (!config::isValidDeviceId(body->id)) {
    return s->respondError(400, "bad_device_id", kDeviceIdRule);
  }
  DeviceRecord d;
  d.id = body->id;
  d.primaryKey = body->primaryKey.value_or(sas::randomKey());
  d.secondaryKey = body->secondaryKey.value_or(sas::randomKey());
  d.enabled = body->enabled.value_or(true);
  switch (registry_->addDevice(d)) {
    case DbResult::Ok:
      break;
    case DbResult::Exists:
      return s->respondError(Reject::Exists, "device '" + d.id + "' already exists");
    case DbResult::Invalid:
      return s->respondError(Reject::BadRequest, "invalid key (base64 of at least 16 bytes)");
    default:
      return registryError(s);
  }
  LOG_INFO("registry: device %s added", d.id.c_str());
  s->respond(201, jsonText(deviceJson(*registry_->device(d.id), false, true)));
}

void Hub::registryError(HttpSession* s) {
  // The database's own words stay in the log.
  LOG_ERROR("registry: %s", registry_->lastError().c_str());
  s->respondError(500, "registry_error", "the registry could not be updated");
}

void Hub::handleDevice(HttpSession* s, const std::string& id) {
  const http::Request& r = s->request();
  if (r.method == "GET") {
    auto policy = authService(s, "registry-read");
    if (!policy) return;
    auto d = registry_->device(id);
    if (!d) return s->respondError(Reject::DeviceUnknown, "no device '" + id + "'");
    // Keys only for those who could change them anyway.
    return s->respond(
        200, jsonText(deviceJson(*d, devices_.count(id) > 0, policy->allows("registry-write"))));
  }
  if (r.method == "DELETE") {
    if (!authService(s, "registry-write")) return;
    DbResult res = registry_->removeDevice(id);
    if (res == DbResult::NotFound) return s->respondError(Reject::DeviceUnknown, "no device");
    if (res != DbResult::Ok) return registryError(s);
    LOG_INFO("registry: device %s removed", id.c_str());
    disconnectDevice(id, 4001, "device removed");
    return s->respond(204, "");
  }
  if (r.method != "PUT") return s->respondError(405, "method_not_allowed", "use GET, PUT, DELETE");
  if (!authService(s, "registry-write")) return;
  auto body = proto::parseDeviceBody(s->body(), false);
  if (!body) return s->respondError(Reject::BadRequest, body.error);
  auto existing = registry_->device(id);
  if (!existing) {
    DeviceRecord d{id,
                   body->primaryKey.value_or(sas::randomKey()),
                   body->secondaryKey.value_or(sas::randomKey()),
                   body->enabled.value_or(true),
                   0,
                   0};
    DbResult res = registry_->addDevice(d);
    if (res == DbResult::Invalid) return s->respondError(Reject::BadRequest, "invalid key");
    if (res != DbResult::Ok) return registryError(s);
    LOG_INFO("registry: device %s added", id.c_str());
    return s->respond(201, jsonText(deviceJson(*registry_->device(id), false, true)));
  }
  if (body->primaryKey || body->secondaryKey) {
    DbResult res = registry_->setKeys(id, body->primaryKey.value_or(existing->primaryKey),
                                      body->secondaryKey.value_or(existing->secondaryKey));
    if (res == DbResult::Invalid) return s->respondError(Reject::BadRequest, "invalid key");
    if (res != DbResult::Ok) return registryError(s);
  }
  if (body->enabled) {
    if (registry_->setEnabled(id, *body->enabled) != DbResult::Ok) return registryError(s);
    if (!*body->enabled) disconnectDevice(id, 4002, "device disabled");
  }
  LOG_INFO("registry: device %s updated", id.c_str());
  s->respond(200, jsonText(deviceJson(*registry_->device(id), devices_.count(id) > 0, true)));
}

void Hub::handleRotate(HttpSession* s, const std::string& id) {
  if (!authService(s, "registry-write")) return;
  auto slot = proto::parseRotateBody(s->body());
  if (!slot) return s->respondError(Reject::BadRequest, slot.error);
  auto d = registry_->device(id);
  if (!d) return s->respondError(Reject::DeviceUnknown, "no device '" + id + "'");
  std::string fresh = sas::randomKey();
  bool primary = *slot == proto::KeySlot::Primary;
  DbResult res = primary ? registry_->setKeys(id, fresh, d->secondaryKey)
                         : registry_->setKeys(id, d->primaryKey, fresh);
  if (res != DbResult::Ok) return registryError(s);
  // A connected device keeps its channel: its token was checked when it connected. It needs
  // the new key at its next connection.
  LOG_INFO("registry: device %s: %s key rotated", id.c_str(), primary ? "primary" : "secondary");
  s->respond(200, jsonText(deviceJson(*registry_->device(id), devices_.count(id) > 0, true)));
}

void Hub::handleStreams(HttpSession* s, std::string_view query) {
  if (!authService(s, "registry-read")) return;
  size_t limit = 50;
  if (query.starts_with("limit=")) {
    auto v = query.substr(6);
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > kMaxAuditQuery) {
      return s->respondError(Reject::BadRequest,
                             "limit must be 1.." + std::to_string(kMaxAuditQuery));
    }
    limit = n;
  }
  json active = json::array();
  for (const auto& [id, st] : streams_) {
    if (active.size() >= kMaxAuditQuery) break;
    active.push_back(st->describe());
  }
  json recent = json::array();
  for (const auto& a : registry_->recentAudit(limit)) {
    recent.push_back({{"stream_id", a.streamId},
                      {"policy", a.policy},
                      {"device", a.device},
                      {"host", a.host},
                      {"port", a.port},
                      {"start_ms", a.startMs},
                      {"end_ms", a.endMs},
                      {"bytes_to_device", a.bytesToDevice},
                      {"bytes_from_device", a.bytesFromDevice},
                      {"outcome", a.outcome},
                      {"reason", a.reason}});
  }
  s->respond(200, jsonText(json{{"active", active}, {"recent", recent}}));
}

}  // namespace ds::hub
