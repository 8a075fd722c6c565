// The hub: accepting connections, routing requests, authenticating devices and services, and
// initiating streams. What it routes to lives in its own rooms (hub.h).
#include "hub/hub.h"

#include <netinet/in.h>

#include <ctime>
#include <vector>

#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "hub/bootstrap.h"

namespace ds::hub {

using json = nlohmann::json;
namespace cc = ws::close_code;
using proto::Reject;

namespace {

constexpr size_t kAuditPruneEvery = 1000;
constexpr size_t kAuditBatch = 256;
constexpr std::chrono::milliseconds kAuditDelay{100};
constexpr std::string_view kDevicesPrefix = "/api/v1/devices/";

int64_t unixNow() { return static_cast<int64_t>(std::time(nullptr)); }

// Hands the entry at `key` to deferred deletion and forgets it; false when there is none.
template <class Map, class Key>
bool deferErase(Loop& loop, Map& map, const Key& key) {
  auto it = map.find(key);
  if (it == map.end()) return false;
  loop.deferDelete(std::move(it->second));
  map.erase(it);
  return true;
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

Hub::Hub(Loop& loop, config::HubConfig cfg)
    : loop_(loop),
      cfg_(std::move(cfg)),
      acceptor_(
          loop, {cfg_.maxConnections, cfg_.maxConnectionsPerAddress},
          [this](evutil_socket_t fd, const sockaddr* peer, Admission::Ticket t) {
            onAccept(fd, peer, std::move(t), false);
          },
          "hub"),
      handshakes_({cfg_.maxTlsHandshakes, cfg_.maxTlsHandshakesPerAddress}),
      auditTimer_(loop_, [this] { writeAuditQueue(); }),
      devicesConnected_(
          metrics_.gauge("devstreams_devices_connected", "Devices with an open control channel")),
      streamsActive_(metrics_.gauge("devstreams_streams_active", "Streams paired and relaying")),
      streamsPending_(
          metrics_.gauge("devstreams_streams_pending", "Streams requested but not yet paired")),
      relayMetrics_{
          metrics_.counter("devstreams_bytes_relayed_total",
                           "Bytes relayed between the sides of streams",
                           {{"direction", "to_device"}}),
          metrics_.counter("devstreams_bytes_relayed_total",
                           "Bytes relayed between the sides of streams",
                           {{"direction", "from_device"}}),
          metrics_.histogram("devstreams_handshake_seconds", "Time from stream request to pairing",
                             metrics::latencyBuckets())},
      connectionsRefused_(metrics_.counter(
          "devstreams_connections_refused_total",
          "Connections closed at once: connection or TLS handshake limits reached")),
      handshakesShed_(
          metrics_.counter("devstreams_tls_handshakes_shed_total",
                           "Stalled TLS handshakes closed to make room for a newer connection")) {
  if (cfg_.publicUrl.empty()) {
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(cfg_.listen.port);
  }
  while (!cfg_.publicUrl.empty() && cfg_.publicUrl.back() == '/') cfg_.publicUrl.pop_back();
  wsLimits_.maxFrame = cfg_.maxFrame;
  wsLimits_.maxMessage = cfg_.maxMessage;
  // One request per connection, its head within max_header_bytes, its body within 64 KiB.
  httpOptions_.maxHeadBytes = cfg_.maxHeaderBytes;
  httpOptions_.maxBodyBytes = 64 * 1024;
  httpOptions_.requestTimeout = cfg_.requestTimeout;
  streamSettings_.handshakeTimeout = cfg_.handshakeTimeout;
  streamSettings_.idleTimeout = cfg_.idleTimeout;
  streamSettings_.keepalive = cfg_.keepalive;
  streamSettings_.highWatermark = cfg_.highWatermark;
  // Every channel's receive windows above their floors come from one pool (docs/hub.md).
  muxLimits_.pool = std::make_shared<mux::MemoryPool>(cfg_.streamMemory);
  // Refusing an unknown device or policy costs an HMAC too, with a key nobody holds.
  decoyKey_ = sas::randomKey();
}

Hub::~Hub() { shutdown(); }

bool Hub::start(std::string& err) {
  registry_ = openRegistry(cfg_, err);
  if (!registry_) return false;
  admin_ = std::make_unique<AdminApi>(*registry_, static_cast<AdminApi::Host&>(*this));
  ssl_ = serverTls(cfg_, caFingerprint_, err);
  if (!ssl_) return false;
  if (!acceptor_.listen(cfg_.listen.host, cfg_.listen.port, port_, err)) return false;
  if (cfg_.listen.port == 0) {
    // Ephemeral port (tests): the public URL follows the bound port.
    cfg_.publicUrl = "wss://" + cfg_.hostname + ":" + std::to_string(port_);
  }
  if (cfg_.metricsListen) {
    metricsAcceptor_ = std::make_unique<Acceptor>(
        loop_, AdmissionLimits{64, 16},
        [this](evutil_socket_t fd, const sockaddr* peer, Admission::Ticket t) {
          onAccept(fd, peer, std::move(t), true);
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
    deferErase(loop_, services_, c);
  }
  writeAuditQueue();
}

void Hub::onAccept(evutil_socket_t fd, const sockaddr* peer, Admission::Ticket ticket,
                   bool metricsOnly) {
  net::setNoDelay(fd);
  BufferEventPtr bev;
  Admission::Ticket handshake;
  if (metricsOnly) {
    bev = newSocketBufferEvent(loop_, fd);
  } else {
    // Handshakes cost the hub a signature each, and a silent client holds one until the request
    // timeout: past either limit a new connection is closed before any TLS work (its client
    // retries, as for a refused connection). The per-address share keeps one source from
    // holding every slot.
    Admission::Verdict why = Admission::Verdict::Ok;
    handshake = handshakes_.admit(peer, why);
    if (!handshake && shedHandshake(peer, why)) handshake = handshakes_.admit(peer, why);
    if (!handshake) {
      connectionsRefused_.inc();
      auto now = std::chrono::steady_clock::now();
      if (now - lastHandshakeRefusalLog_ > std::chrono::seconds(1)) {
        lastHandshakeRefusalLog_ = now;
        LOG_WARN("hub: connection from %s closed: %s", peerName(fd).c_str(),
                 why == Admission::Verdict::PerAddress
                     ? "too many TLS handshakes in progress from that address"
                     : "too many TLS handshakes in progress");
      }
      evutil_closesocket(fd);
      return;
    }
    bev = tls::acceptSocket(loop_, ssl_.get(), fd);
  }
  if (!bev) return;
  auto s = std::make_unique<Session>(
      loop_, std::move(bev), std::move(ticket), httpOptions_, static_cast<Session::Owner&>(*this),
      std::move(handshake), metricsOnly ? std::string() : Admission::sourceKey(peer), metricsOnly);
  Session* raw = s.get();
  sessions_.emplace(raw, std::move(s));
  if (raw->handshaking()) raw->handshakingPos = handshaking_.insert(handshaking_.end(), raw);
  raw->start();
}

void Hub::endSession(Session& s) { deferErase(loop_, sessions_, &s); }

void Hub::handshakeOver(Session& s) { handshaking_.erase(s.handshakingPos); }

// A silent connection holds its slot until request_timeout; shedding the oldest once it is past
// any real handshake's time means that holding a source's (or the hub's) slots takes a steady
// stream of new connections, not a handful kept open.
bool Hub::shedHandshake(const sockaddr* peer, Admission::Verdict why) {
  const auto now = std::chrono::steady_clock::now();
  const std::string source =
      why == Admission::Verdict::PerAddress ? Admission::sourceKey(peer) : std::string();
  for (Session* s : handshaking_) {
    if (now - s->acceptedAt() < kHandshakeGrace) return false;  // the rest are younger
    if (!source.empty() && s->source() != source) continue;
    handshakesShed_.inc();
    if (now - lastHandshakeShedLog_ > std::chrono::seconds(1)) {
      lastHandshakeShedLog_ = now;
      LOG_WARN("hub: %s closed: TLS handshake stalled, its slot taken by a newer connection",
               s->peer().c_str());
    }
    s->shed();  // ends the session, which leaves handshaking_
    return true;
  }
  return false;
}

void Hub::onDeviceGone(DeviceChannel& d) {
  auto it = devices_.find(d.id());
  if (it == devices_.end() || it->second.get() != &d) return;
  std::unique_ptr<DeviceChannel> gone = std::move(it->second);
  devices_.erase(it);
  devicesConnected_.set(static_cast<double>(devices_.size()));
  registry_->touchLastSeen(d.id(), unixNow());
  // Streams still waiting for this device's answer cannot get one now.
  std::vector<Stream*> waiting;
  for (auto& [id, st] : streams_) {
    if (st->device() == d.id() && st->life().state() == StreamLifecycle::State::Requested) {
      waiting.push_back(st.get());
    }
  }
  for (Stream* st : waiting) st->end(Stream::Outcome::Offline, "device went offline");
  // Streams multiplexed on the channel end with it (1001).
  gone->endStreams("device went offline");
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
  onDeviceGone(*it->second);
}

void Hub::onServiceGone(ServiceChannel& c) { deferErase(loop_, services_, &c); }

void Hub::countStream(Stream& st) {
  ++live_.streams;
  ++live_.pending;
  StreamCount& p = livePerPolicy_[st.policy()];
  ++p.streams;
  ++p.pending;
  ++livePerDevice_[st.device()];
  updateStreamGauges();
}

void Hub::onStreamPaired(Stream& st) {
  --live_.pending;
  --livePerPolicy_[st.policy()].pending;
  updateStreamGauges();
}

void Hub::uncountStream(Stream& st) {
  const bool pending = !st.pairedOnce();
  --live_.streams;
  live_.pending -= pending;
  if (auto p = livePerPolicy_.find(st.policy()); p != livePerPolicy_.end()) {
    p->second.pending -= pending;
    if (--p->second.streams == 0) livePerPolicy_.erase(p);
  }
  if (auto d = livePerDevice_.find(st.device()); d != livePerDevice_.end() && --d->second == 0) {
    livePerDevice_.erase(d);
  }
  updateStreamGauges();
}

void Hub::onStreamEnded(Stream& st) {
  uncountStream(st);
  recordStream(st.audit());
  deferErase(loop_, streams_, st.id());
}

void Hub::recordStream(const AuditRecord& a) {
  metrics_
      .counter("devstreams_streams_total", "Streams ended, by outcome", {{"outcome", a.outcome}})
      .inc();
  LOG_INFO(
      "audit stream=%s policy=%s device=%s target=%s:%u bytes_to_device=%llu "
      "bytes_from_device=%llu duration_ms=%lld outcome=%s reason=\"%s\" user=%s name=\"%s\"",
      a.streamId.c_str(), a.policy.c_str(), a.device.c_str(), a.host.c_str(), a.port,
      static_cast<unsigned long long>(a.bytesToDevice),
      static_cast<unsigned long long>(a.bytesFromDevice),
      static_cast<long long>(a.endMs - a.startMs), a.outcome.c_str(), a.reason.c_str(),
      a.user.c_str(), a.name.c_str());
  auditQueue_.push_back(a);
  if (auditQueue_.size() >= kAuditBatch) {
    writeAuditQueue();
  } else if (!auditTimer_.armed()) {
    auditTimer_.arm(kAuditDelay);
  }
}

void Hub::writeAuditQueue() {
  auditTimer_.cancel();
  if (auditQueue_.empty() || !registry_) return;
  std::vector<AuditRecord> batch = std::move(auditQueue_);
  auditQueue_.clear();
  if (registry_->addAudits(batch) != DbResult::Ok) {
    LOG_ERROR("%zu audit records (streams %s to %s) not stored: %s", batch.size(),
              batch.front().streamId.c_str(), batch.back().streamId.c_str(),
              registry_->lastError().c_str());
  }
  const uint64_t before = audits_;
  audits_ += batch.size();
  if (audits_ / kAuditPruneEvery != before / kAuditPruneEvery) {
    registry_->pruneAudit(cfg_.auditKeep);
  }
}

json Hub::activeStreams(size_t max) const {
  json active = json::array();
  for (const auto& [id, st] : streams_) {
    if (active.size() >= max) break;
    active.push_back(st->describe());
  }
  return active;
}

void Hub::updateStreamGauges() {
  streamsActive_.set(static_cast<double>(live_.streams - live_.pending));
  streamsPending_.set(static_cast<double>(live_.pending));
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

// ---------------------------------------------------------------------------------------------
// Routing

bool Hub::metricsAllowed(Session& s) {
  if (s.metricsOnly()) return true;
  if (metricsAcceptor_) {
    s.respondError(Reject::NotFound, "served on the metrics listener");
    return false;
  }
  if (cfg_.metricsToken.empty()) return true;
  const std::string* auth = s.request().headers.find("Authorization");
  if (auth && auth->starts_with("Bearer ") &&
      sas::constantTimeEquals(std::string_view(*auth).substr(7), cfg_.metricsToken)) {
    return true;
  }
  s.respondError(401, "unauthorized", "Bearer token required", {kBearerChallenge});
  return false;
}

void Hub::route(Session& s) {
  const http::Request& r = s.request();
  std::string_view target = r.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  if (target == "/healthz" || target == "/metrics") {
    if (!s.reads()) return s.methodNotAllowed("GET, HEAD");
    if (!metricsAllowed(s)) return;
    if (target == "/healthz") {
      return s.respondJson(200, json{{"status", "ok"},
                                     {"devices_online", devices_.size()},
                                     {"streams", streams_.size()}});
    }
    return s.respond(200, metrics_.render(), {}, metrics::kContentType);
  }
  if (s.metricsOnly()) return s.respondError(Reject::NotFound, "no such resource");
  if (target == "/api/v1/devices") return admin_->devices(s);
  if (target == "/api/v1/service/control") {
    if (r.method != "GET") return s.methodNotAllowed("GET");
    return handleServiceControl(s);
  }
  if (target == "/api/v1/streams") {
    if (!s.reads()) return s.methodNotAllowed("GET, HEAD");
    return admin_->streams(s, query);
  }
  std::string id, rest;
  if (splitDevicePath(target, id, rest)) {
    // Whatever the request, an id that no device can have is refused before anything uses it.
    if (!config::isValidDeviceId(id)) {
      return s.respondError(400, "bad_device_id", kDeviceIdRule);
    }
    if (rest.empty()) return admin_->device(s, id);
    if (rest == "/control") {
      if (r.method != "GET") return s.methodNotAllowed("GET");
      return handleControl(s, id);
    }
    if (rest == "/streams") {
      if (r.method != "POST") return s.methodNotAllowed("POST");
      return handleInitiate(s, id);
    }
    if (rest == "/keys/rotate") {
      if (r.method != "POST") return s.methodNotAllowed("POST");
      return admin_->rotate(s, id);
    }
  }
  if (target.starts_with(kStreamsPrefix)) {
    if (r.method != "GET") return s.methodNotAllowed("GET");
    return handleStreamSide(s, std::string(target.substr(kStreamsPrefix.size())));
  }
  s.respondError(Reject::NotFound, "no such resource");
}

// ---------------------------------------------------------------------------------------------
// Authentication

// A token that verified must also not live longer than the hub allows: a leaked token with a
// far expiry would be a key in all but name.
sas::Verdict Hub::checkLifetime(const sas::Token& tok, sas::Verdict v) const {
  if (v == sas::Verdict::Ok && tok.expiry - unixNow() > cfg_.maxTokenLifetime.count()) {
    return sas::Verdict::Expired;
  }
  return v;
}

std::optional<PolicyRecord> Hub::authService(Session& s, std::string_view permission) {
  const std::string* auth = s.request().headers.find("Authorization");
  std::optional<sas::Token> tok;
  if (auth) tok = sas::parseToken(*auth);
  if (!tok || tok->policy.empty()) {
    LOG_INFO("%s: service request without a valid SAS token", s.peer().c_str());
    s.respondError(401, "unauthorized", "missing or malformed SharedAccessSignature",
                   {kSasChallenge});
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
    LOG_INFO("%s: service token for policy '%s' refused: %s", s.peer().c_str(), tok->policy.c_str(),
             why);
    s.respondError(401, "unauthorized",
                   tooLong ? "token expires more than max_token_lifetime ahead" : why,
                   {kSasChallenge});
    return std::nullopt;
  }
  if (!policy->allows(permission)) {
    LOG_INFO("%s: policy '%s' lacks %s", s.peer().c_str(), policy->name.c_str(),
             std::string(permission).c_str());
    s.respondError(
        403, "forbidden",
        "policy '" + policy->name + "' lacks the " + std::string(permission) + " permission");
    return std::nullopt;
  }
  return policy;
}

void Hub::handleControl(Session& s, const std::string& deviceId) {
  if (!s.checkUpgrade()) return;
  std::optional<DeviceRecord> dev = registry_->device(deviceId);
  const std::string* auth = s.request().headers.find("Authorization");
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
    LOG_INFO("%s: device '%s' control refused: %s", s.peer().c_str(), deviceId.c_str(),
             dev ? sas::verdictName(v) : "unknown device");
    return s.respondError(401, "unauthorized", "device authentication failed", {kSasChallenge});
  }
  if (!dev->enabled) return s.respondError(Reject::Disabled, "device is disabled");

  auto old = devices_.find(deviceId);
  if (old != devices_.end()) {
    LOG_WARN("device %s: new control connection replaces the previous one", deviceId.c_str());
    old->second->close(4000, "replaced by a new connection");
    onDeviceGone(*old->second);
  }
  std::string peer = s.peer();
  Admission::Ticket ticket;
  auto ws = s.upgrade(wsLimits_, ticket, muxProtocol());
  auto ch = std::make_unique<DeviceChannel>(loop_, static_cast<DeviceChannel::Owner&>(*this),
                                            deviceId, std::move(ws), std::move(ticket),
                                            cfg_.highWatermark, muxLimits_);
  DeviceChannel* raw = ch.get();
  devices_.emplace(deviceId, std::move(ch));
  devicesConnected_.set(static_cast<double>(devices_.size()));
  registry_->touchLastSeen(deviceId, unixNow());
  LOG_INFO("device %s: online from %s%s", deviceId.c_str(), peer.c_str(),
           raw->mux() ? " (multiplexed streams)" : "");
  raw->start(cfg_.keepalive);
}

void Hub::handleServiceControl(Session& s) {
  if (!s.checkUpgrade()) return;
  std::optional<PolicyRecord> policy = authService(s, "connect");
  if (!policy) return;
  std::string peer = s.peer();
  Admission::Ticket ticket;
  auto ws = s.upgrade(wsLimits_, ticket, muxProtocol());
  bool multiplexed = ws->protocol() == mux::kWsProtocol;
  auto ch = std::make_unique<ServiceChannel>(loop_, static_cast<ServiceChannel::Owner&>(*this),
                                             *policy, std::move(ws), std::move(ticket),
                                             cfg_.highWatermark, muxLimits_);
  ServiceChannel* raw = ch.get();
  services_.emplace(raw, std::move(ch));
  LOG_INFO("service channel %s: open (policy %s%s)", peer.c_str(), policy->name.c_str(),
           multiplexed ? ", multiplexed streams" : "");
  raw->start(cfg_.keepalive);
}

}  // namespace ds::hub
