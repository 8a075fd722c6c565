// The hub: HTTP routing, device control channels, stream initiation and the relay.
#include "hub/hub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/http_exchange.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/tls.h"

namespace ds::hub {

using json = nlohmann::json;
namespace cc = ws::close_code;

namespace {

constexpr size_t kMaxBody = 64 * 1024;
constexpr std::string_view kDevicesPrefix = "/api/v1/devices/";
constexpr std::string_view kStreamsPrefix = "/api/v1/streams/";

std::string errorBody(std::string_view code, std::string_view message) {
  return json{{"error", code}, {"message", message}}.dump();
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
  HttpSession(Hub& hub, BufferEventPtr bev)
      : hub_(hub), bev_(std::move(bev)), timer_(hub.loop_, [this] { onTimeout(); }) {
    peer_ = peerName(bufferevent_getfd(bev_.get()));
    bufferevent_setcb(bev_.get(), &HttpSession::onRead, nullptr, &HttpSession::onEvent, this);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    timer_.arm(hub.cfg_.requestTimeout);
  }

  void respond(int status, std::string_view body, const std::vector<http::Header>& extra = {}) {
    if (!bev_) return;
    std::string r = httpResponse(status, "application/json", body, extra);
    bufferevent_write(bev_.get(), r.data(), r.size());
    LOG_INFO("%s %s %s -> %d", peer_.c_str(), req_.method.c_str(), req_.target.c_str(), status);
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    hub_.loop_.closeAfterFlush(std::move(bev_));
    hub_.endSession(this);
  }
  void respondError(int status, std::string_view code, std::string_view message) {
    respond(status, errorBody(code, message));
  }

  // Hands the connection over (for an upgrade); the session ends.
  BufferEventPtr takeConnection() {
    timer_.cancel();
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
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
  bool answered() const { return !bev_; }

 private:
  static void onRead(bufferevent*, void* arg) { static_cast<HttpSession*>(arg)->parse(); }
  static void onEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<HttpSession*>(arg);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
      if (what & BEV_EVENT_ERROR) {
        std::string err = tls::lastError(self->bev_.get());
        LOG_DEBUG("%s: connection error: %s", self->peer_.c_str(), err.c_str());
      }
      self->bev_.reset();
      if (self->onGone_) {
        auto gone = std::move(self->onGone_);
        gone();
      }
      self->hub_.endSession(self);
    }
  }
  void onTimeout() {
    LOG_INFO("%s: request not complete within %lld ms", peer_.c_str(),
             static_cast<long long>(hub_.cfg_.requestTimeout.count()));
    respondError(408, "timeout", "request not complete in time");
  }

  void parse() {
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
  Timer timer_;
  std::string peer_;
  http::Request req_;
  bool haveHead_ = false;
  bool routed_ = false;
  uint64_t bodyLen_ = 0;
  std::string body_;
  std::function<void()> onGone_;
};

// ---------------------------------------------------------------------------------------------
// DeviceChannel: a device's control WebSocket.

class Hub::DeviceChannel : public Deletable, public WsConnection::Callbacks {
 public:
  DeviceChannel(Hub& hub, std::string id, std::unique_ptr<WsConnection> ws)
      : hub_(hub), id_(std::move(id)), ws_(std::move(ws)) {
    ws_->setCallbacks(this);
  }
  ~DeviceChannel() override {
    if (ws_) ws_->setCallbacks(nullptr);
  }
  void start() {
    ws_->enableKeepalive(hub_.cfg_.keepalive);
    ws_->start();
  }
  void send(const json& msg) { ws_->sendText(msg.dump()); }
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
};

// ---------------------------------------------------------------------------------------------
// Stream: one device stream from initiation to the end of the relay.

class Hub::Stream : public Deletable {
 public:
  enum Side { kService = 0, kDevice = 1 };

  Stream(Hub& hub, std::string id, std::string device, std::string policy, std::string host,
         uint16_t port)
      : hub_(hub),
        id_(std::move(id)),
        device_(std::move(device)),
        policy_(std::move(policy)),
        host_(std::move(host)),
        port_(port),
        timer_(hub.loop_, [this] { onHandshakeTimeout(); }),
        sides_{SideCb(this, kService), SideCb(this, kDevice)} {
    tokens_[kService] = sas::randomToken(24);
    tokens_[kDevice] = sas::randomToken(24);
    started_ = std::chrono::steady_clock::now();
    timer_.arm(hub.cfg_.handshakeTimeout);
  }
  ~Stream() override {
    for (auto& s : sides_) {
      if (s.ws) s.ws->setCallbacks(nullptr);
    }
    if (initiator_) initiator_->waitForAnswer(nullptr);
  }

  const std::string& id() const { return id_; }
  const std::string& device() const { return device_; }
  const std::string& token(Side s) const { return tokens_[s]; }
  std::string url() const { return hub_.cfg_.publicUrl + std::string(kStreamsPrefix) + id_; }

  void setInitiator(HttpSession* s) {
    initiator_ = s;
    s->waitForAnswer([this] {
      initiator_ = nullptr;
      LOG_INFO("stream %s: client went away during the handshake", id_.c_str());
      end("client went away");
    });
  }

  // Which side a presented token opens, consuming it (single use).
  bool claim(const std::string& token, Side& side) {
    for (int s : {kService, kDevice}) {
      if (!tokens_[s].empty() && sas::constantTimeEquals(token, tokens_[s])) {
        tokens_[s].clear();
        side = static_cast<Side>(s);
        return true;
      }
    }
    return false;
  }
  bool accepted() const { return accepted_; }

  void onDeviceAnswer(const json& msg) {
    if (!initiator_) return;
    bool accept = msg.value("accept", false);
    if (accept) {
      accepted_ = true;
      json body{{"stream_id", id_}, {"url", url()}, {"token", tokens_[kService]}};
      auto* s = initiator_;
      initiator_ = nullptr;
      s->respond(200, body.dump());
      return;
    }
    std::string reason = msg.value("reason", "rejected");
    std::string code = msg.value("code", "rejected");
    // not_allowed: the device's policy refused; anything else is the target's failure.
    int status = code == "not_allowed" ? 403 : 502;
    LOG_INFO("stream %s: device %s rejected port %u: %s (%s)", id_.c_str(), device_.c_str(), port_,
             reason.c_str(), code.c_str());
    auto* s = initiator_;
    initiator_ = nullptr;
    s->respondError(status, code, reason);
    end("rejected: " + reason);
  }

  void attach(Side side, std::unique_ptr<WsConnection> ws) {
    ws->setCallbacks(&sides_[side]);
    ws->setHighWatermark(hub_.cfg_.highWatermark);
    sides_[side].ws = std::move(ws);
    if (sides_[kService].ws && sides_[kDevice].ws) {
      timer_.cancel();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started_);
      LOG_INFO("stream %s: paired (%s:%u on %s, policy %s) after %lld ms", id_.c_str(),
               host_.c_str(), port_, device_.c_str(), policy_.c_str(),
               static_cast<long long>(ms.count()));
      sides_[kService].ws->start();
      sides_[kDevice].ws->start();
    }
  }

  // Ends the stream: answers a waiting initiator, closes open sides, frees itself later.
  void end(const std::string& why, uint16_t code = cc::GoingAway) {
    if (ended_) return;
    ended_ = true;
    timer_.cancel();
    if (initiator_) {
      auto* s = initiator_;
      initiator_ = nullptr;
      s->respondError(503, "device_offline", why);
    }
    for (auto& s : sides_) {
      if (s.ws && s.ws->open()) s.ws->close(code, why);
    }
    uint64_t up = sides_[kService].ws ? sides_[kService].ws->bytesIn() : 0;
    uint64_t down = sides_[kDevice].ws ? sides_[kDevice].ws->bytesIn() : 0;
    LOG_INFO("stream %s: ended (%s); %llu bytes to device, %llu bytes from device", id_.c_str(),
             why.c_str(), static_cast<unsigned long long>(up),
             static_cast<unsigned long long>(down));
    hub_.endStream(this);
  }

 private:
  struct SideCb : WsConnection::Callbacks {
    SideCb(Stream* st, Side s) : stream(st), side(s) {}
    Stream* stream;
    Side side;
    std::unique_ptr<WsConnection> ws;
    WsConnection* other() const { return stream->sides_[1 - side].ws.get(); }

    void onWsData(evbuffer* payload) override {
      WsConnection* o = other();
      if (!o || !o->open()) return;
      o->sendBinary(payload);
      // Backpressure: a slow reader on the other side stops reads on this one.
      if (o->overHighWatermark()) ws->pauseReading();
    }
    void onWsText(std::string message) override {
      WsConnection* o = other();
      if (o && o->open()) o->sendText(message);
    }
    void onWsDrained() override {
      WsConnection* o = other();
      if (o) o->resumeReading();
    }
    void onWsClosed(uint16_t code, const std::string& reason) override {
      // The other side is closed at once with the same code (1006 is not sendable).
      uint16_t relay = code == cc::Abnormal || code == cc::NoStatus ? cc::GoingAway : code;
      std::string why = std::string(side == kService ? "service" : "device") + " side closed" +
                        (reason.empty() ? "" : ": " + reason);
      stream->end(why, relay);
    }
  };

  void onHandshakeTimeout() {
    LOG_WARN("stream %s: handshake not complete within %lld ms", id_.c_str(),
             static_cast<long long>(hub_.cfg_.handshakeTimeout.count()));
    if (initiator_) {
      auto* s = initiator_;
      initiator_ = nullptr;
      s->respondError(504, "handshake_timeout", "the device did not answer in time");
    }
    end("handshake timeout", cc::TryAgainLater);
  }

  Hub& hub_;
  std::string id_, device_, policy_, host_;
  uint16_t port_;
  Timer timer_;
  std::string tokens_[2];
  SideCb sides_[2];
  HttpSession* initiator_ = nullptr;
  bool accepted_ = false;
  bool ended_ = false;
  std::chrono::steady_clock::time_point started_;
};

// ---------------------------------------------------------------------------------------------

Hub::Hub(Loop& loop, config::HubConfig cfg, config::Registry registry)
    : loop_(loop), cfg_(std::move(cfg)), registry_(std::move(registry)) {
  if (cfg_.publicUrl.empty()) {
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(cfg_.listen.port);
  }
  while (!cfg_.publicUrl.empty() && cfg_.publicUrl.back() == '/') cfg_.publicUrl.pop_back();
  wsLimits_.maxFrame = cfg_.maxFrame;
  wsLimits_.maxMessage = cfg_.maxMessage;
}

Hub::~Hub() { shutdown(); }

bool Hub::start(std::string& err) {
  ssl_ = tls::serverContext(cfg_.cert, cfg_.key, err);
  if (!ssl_) return false;
  listener_ =
      listenTcp(loop_, cfg_.listen.host, cfg_.listen.port, &Hub::onAccept, this, port_, err);
  if (!listener_) return false;
  if (cfg_.listen.port == 0) {
    // Ephemeral port (tests): the public URL follows the bound port.
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(port_);
  }
  return true;
}

void Hub::shutdown() {
  listener_.reset();
  std::vector<Stream*> open;
  for (auto& [id, st] : streams_) open.push_back(st.get());
  for (Stream* st : open) st->end("hub shutting down");
  for (auto& [id, d] : devices_) d->close(cc::GoingAway, "hub shutting down");
}

void Hub::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* self = static_cast<Hub*>(arg);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  BufferEventPtr bev = tls::acceptSocket(self->loop_, self->ssl_.get(), fd);
  if (!bev) return;
  auto s = std::make_unique<HttpSession>(*self, std::move(bev));
  self->sessions_.emplace(s.get(), std::move(s));
}

void Hub::endSession(HttpSession* s) {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  loop_.deferDelete(std::move(it->second));
  sessions_.erase(it);
}

void Hub::endDevice(DeviceChannel* d) {
  auto it = devices_.find(d->id());
  if (it == devices_.end() || it->second.get() != d) return;
  std::unique_ptr<DeviceChannel> gone = std::move(it->second);
  devices_.erase(it);
  // Streams still waiting for this device's answer cannot get one now.
  std::vector<Stream*> waiting;
  for (auto& [id, st] : streams_) {
    if (st->device() == d->id() && !st->accepted()) waiting.push_back(st.get());
  }
  for (Stream* st : waiting) st->end("device went offline");
  loop_.deferDelete(std::move(gone));
}

void Hub::endStream(Stream* st) {
  auto it = streams_.find(st->id());
  if (it == streams_.end()) return;
  loop_.deferDelete(std::move(it->second));
  streams_.erase(it);
}

const config::Device* Hub::findDevice(const std::string& id) const {
  for (const auto& d : registry_.devices) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

void Hub::route(HttpSession* s) {
  const http::Request& r = s->request();
  std::string_view target = r.target;
  std::string id, rest;
  if (target == "/healthz") {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return s->respond(
        200,
        json{{"status", "ok"}, {"devices_online", devices_.size()}, {"streams", streams_.size()}}
            .dump());
  }
  if (target == "/api/v1/devices") {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return handleListDevices(s);
  }
  if (splitDevicePath(target, id, rest)) {
    if (rest == "/control") {
      if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
      return handleControl(s, id);
    }
    if (rest == "/streams") {
      if (r.method != "POST") return s->respondError(405, "method_not_allowed", "use POST");
      return handleInitiate(s, id);
    }
  }
  if (target.starts_with(kStreamsPrefix)) {
    if (r.method != "GET") return s->respondError(405, "method_not_allowed", "use GET");
    return handleStreamSide(s, std::string(target.substr(kStreamsPrefix.size())));
  }
  s->respondError(404, "not_found", "no such resource");
}

std::string Hub::authService(HttpSession* s, std::string_view permission) {
  const std::string* auth = s->request().headers.find("Authorization");
  std::optional<sas::Token> tok;
  if (auth) tok = sas::parseToken(*auth);
  if (!tok || tok->policy.empty()) {
    LOG_INFO("%s: service request without a valid SAS token", s->peer().c_str());
    s->respondError(401, "unauthorized", "missing or malformed SharedAccessSignature");
    return {};
  }
  const config::Policy* policy = nullptr;
  for (const auto& p : registry_.policies) {
    if (p.name == tok->policy) policy = &p;
  }
  sas::Verdict v = policy ? sas::verify(*tok, cfg_.hostname, policy->key, unixNow(), policy->name)
                          : sas::Verdict::BadSignature;
  if (v != sas::Verdict::Ok) {
    LOG_INFO("%s: service token for policy '%s' refused: %s", s->peer().c_str(),
             tok->policy.c_str(), sas::verdictName(v));
    s->respondError(401, "unauthorized", sas::verdictName(v));
    return {};
  }
  if (std::find(policy->permissions.begin(), policy->permissions.end(), permission) ==
      policy->permissions.end()) {
    s->respondError(
        403, "forbidden",
        "policy '" + policy->name + "' lacks the " + std::string(permission) + " permission");
    return {};
  }
  return policy->name;
}

std::unique_ptr<WsConnection> Hub::upgrade(HttpSession* s) {
  const std::string key = *s->request().headers.find("Sec-WebSocket-Key");
  std::string resp = wshs::serverResponse(key);
  BufferEventPtr bev = s->takeConnection();
  bufferevent_write(bev.get(), resp.data(), resp.size());
  return std::make_unique<WsConnection>(loop_, std::move(bev), WsConnection::Role::Server,
                                        wsLimits_, nullptr);
}

void Hub::handleControl(HttpSession* s, const std::string& deviceId) {
  std::string err;
  if (int status = wshs::checkClientRequest(s->request(), err)) {
    return s->respondError(status, "bad_upgrade", err);
  }
  const config::Device* dev = findDevice(deviceId);
  const std::string* auth = s->request().headers.find("Authorization");
  std::optional<sas::Token> tok;
  if (auth) tok = sas::parseToken(*auth);
  std::string resource = cfg_.hostname + "/devices/" + deviceId;
  sas::Verdict v = sas::Verdict::Malformed;
  if (tok && dev) {
    v = sas::verify(*tok, resource, dev->primaryKey, unixNow());
    if (v == sas::Verdict::BadSignature && !dev->secondaryKey.empty()) {
      v = sas::verify(*tok, resource, dev->secondaryKey, unixNow());
    }
  }
  if (v != sas::Verdict::Ok) {
    // Unknown devices and bad signatures look the same from outside.
    LOG_INFO("%s: device '%s' control refused: %s", s->peer().c_str(), deviceId.c_str(),
             dev ? sas::verdictName(v) : "unknown device");
    return s->respondError(401, "unauthorized", "device authentication failed");
  }
  if (!dev->enabled) return s->respondError(403, "disabled", "device is disabled");

  auto old = devices_.find(deviceId);
  if (old != devices_.end()) {
    LOG_WARN("device %s: new control connection replaces the previous one", deviceId.c_str());
    old->second->close(4000, "replaced by a new connection");
    endDevice(old->second.get());
  }
  std::string peer = s->peer();
  auto ch = std::make_unique<DeviceChannel>(*this, deviceId, upgrade(s));
  DeviceChannel* raw = ch.get();
  devices_.emplace(deviceId, std::move(ch));
  LOG_INFO("device %s: online from %s", deviceId.c_str(), peer.c_str());
  raw->start();
}

void Hub::handleInitiate(HttpSession* s, const std::string& deviceId) {
  std::string policy = authService(s, "connect");
  if (policy.empty()) return;
  json body = json::parse(s->body(), nullptr, false);
  if (!body.is_object() || !body.contains("port") || !body["port"].is_number_unsigned() ||
      body["port"].get<uint64_t>() == 0 || body["port"].get<uint64_t>() > 65535 ||
      (body.contains("host") && !body["host"].is_string())) {
    return s->respondError(400, "bad_request", "body must be {\"port\": 1..65535, \"host\"?: str}");
  }
  auto port = static_cast<uint16_t>(body["port"].get<uint64_t>());
  std::string host = body.value("host", "127.0.0.1");
  const config::Device* dev = findDevice(deviceId);
  if (!dev) return s->respondError(404, "device_unknown", "no device '" + deviceId + "'");
  if (!dev->enabled) return s->respondError(403, "disabled", "device is disabled");
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) {
    return s->respondError(503, "device_offline", "device '" + deviceId + "' is not connected");
  }
  std::string sid = randomHex(16);
  auto st = std::make_unique<Stream>(*this, sid, deviceId, policy, host, port);
  Stream* raw = st.get();
  streams_.emplace(sid, std::move(st));
  raw->setInitiator(s);
  LOG_INFO("stream %s: %s asks %s for %s:%u", sid.c_str(), policy.c_str(), deviceId.c_str(),
           host.c_str(), port);
  it->second->send(json{{"type", "stream_request"},
                        {"stream_id", sid},
                        {"host", host},
                        {"port", port},
                        {"url", raw->url()},
                        {"token", raw->token(Stream::kDevice)}});
}

void Hub::onDeviceMessage(DeviceChannel* d, const std::string& message) {
  json msg = json::parse(message, nullptr, false);
  if (!msg.is_object() || !msg.contains("type") || !msg["type"].is_string()) {
    LOG_WARN("device %s: malformed control message", d->id().c_str());
    return;
  }
  std::string type = msg["type"];
  if (type != "stream_response") {
    LOG_WARN("device %s: unknown control message '%s'", d->id().c_str(), type.c_str());
    return;
  }
  std::string sid = msg.value("stream_id", "");
  auto it = streams_.find(sid);
  // A device may answer only for its own streams.
  if (it == streams_.end() || it->second->device() != d->id()) {
    LOG_WARN("device %s: answer for unknown stream '%s'", d->id().c_str(), sid.c_str());
    return;
  }
  it->second->onDeviceAnswer(msg);
}

void Hub::handleStreamSide(HttpSession* s, const std::string& streamId) {
  std::string err;
  if (int status = wshs::checkClientRequest(s->request(), err)) {
    return s->respondError(status, "bad_upgrade", err);
  }
  const std::string* auth = s->request().headers.find("Authorization");
  if (!auth || !auth->starts_with("Bearer ")) {
    return s->respondError(401, "unauthorized", "Bearer stream token required");
  }
  auto it = streams_.find(streamId);
  if (it == streams_.end()) {
    return s->respondError(404, "stream_unknown", "no such stream (ended or expired)");
  }
  Stream::Side side;
  if (!it->second->claim(auth->substr(7), side)) {
    LOG_WARN("%s: wrong or reused token for stream %s", s->peer().c_str(), streamId.c_str());
    return s->respondError(403, "forbidden", "token not valid for this stream");
  }
  it->second->attach(side, upgrade(s));
}

void Hub::handleListDevices(HttpSession* s) {
  if (authService(s, "registry-read").empty()) return;
  json list = json::array();
  for (const auto& d : registry_.devices) {
    list.push_back({{"id", d.id}, {"enabled", d.enabled}, {"online", devices_.count(d.id) > 0}});
  }
  s->respond(200, json{{"devices", list}}.dump());
}

}  // namespace ds::hub
