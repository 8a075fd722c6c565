// One device stream at the hub: initiation answer, pairing and the relay (stream.h).
#include "hub/stream.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>

#include "common/log.h"
#include "common/net.h"

namespace ds::hub {

namespace cc = ws::close_code;
using proto::Reject;

namespace {

int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int index(Stream::Side side) { return static_cast<int>(side); }

}  // namespace

// Ids are unguessable but not secret (logs and the audit show them): RAND_bytes output drawn 64
// ids at a time, one DRBG call per 64 streams instead of one each.
std::string newStreamId() {
  constexpr size_t kIdBytes = 16, kIdsPerRefill = 64;
  thread_local unsigned char pool[kIdBytes * kIdsPerRefill];
  thread_local size_t next = kIdsPerRefill;
  if (next == kIdsPerRefill) {
    if (RAND_bytes(pool, sizeof pool) != 1) std::abort();  // as sas::randomHex
    next = 0;
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id(2 * kIdBytes, '0');
  const unsigned char* p = pool + kIdBytes * next++;
  for (size_t i = 0; i < kIdBytes; ++i) {
    id[2 * i] = kDigits[p[i] >> 4];
    id[2 * i + 1] = kDigits[p[i] & 15];
  }
  return id;
}

proto::Answer refusal(Reject r, std::string message, int retryAfter) {
  return {
      proto::info(r).httpStatus, {}, std::string(proto::name(r)), std::move(message), retryAfter};
}

Stream::Stream(Loop& loop, StreamOwner& owner, const StreamSettings& settings, RelayMetrics metrics,
               std::string id, std::string url, std::string device, std::string policy,
               proto::InitiateBody target)
    : owner_(owner),
      settings_(settings),
      handshakeSeconds_(metrics.handshakeSeconds),
      counted_{},
      id_(std::move(id)),
      url_(std::move(url)),
      device_(std::move(device)),
      policy_(std::move(policy)),
      target_(std::move(target)),
      life_(Clock::now(), settings.handshakeTimeout, settings.idleTimeout),
      timer_(loop, [this] { onTimer(); }) {
  counted_[index(Side::Service)] = &metrics.bytesToDevice;
  counted_[index(Side::Device)] = &metrics.bytesFromDevice;
  startMs_ = unixMillis();
  armTimer();
}

Stream::~Stream() {
  if (initiator_.release) initiator_.release();
}

std::string Stream::targetText() const {
  if (!target_.socketPath.empty()) return "unix:" + target_.socketPath;
  return net::formatHostPort(target_.host, target_.port);
}

nlohmann::json Stream::describe() const {
  auto j = nlohmann::json{{"stream_id", id_},
                          {"policy", policy_},
                          {"device", device_},
                          {"host", target_.host},
                          {"port", target_.port},
                          {"state", stateName(life_.state())},
                          {"start_ms", startMs_},
                          {"bytes_to_device", bytes(Side::Service)},
                          {"bytes_from_device", bytes(Side::Device)}};
  if (!target_.socketPath.empty()) j["unix"] = target_.socketPath;
  if (!target_.user.empty()) j["user"] = target_.user;
  if (!target_.name.empty()) j["name"] = target_.name;
  return j;
}

AuditRecord Stream::audit() const {
  AuditRecord a = refusedAudit(policy_, device_, target_, life_.reason());
  a.streamId = id_;
  a.startMs = startMs_;
  a.bytesToDevice = bytes(Side::Service);
  a.bytesFromDevice = bytes(Side::Device);
  a.outcome = outcomeName(life_.outcome());
  return a;
}

AuditRecord Stream::refusedAudit(const std::string& policy, const std::string& device,
                                 const proto::InitiateBody& target, const std::string& reason) {
  AuditRecord a;
  a.policy = policy;
  a.device = device;
  a.host = target.socketPath.empty() ? target.host : "unix:" + target.socketPath;
  a.port = target.port;
  a.user = target.user;
  a.name = target.name;
  a.startMs = a.endMs = unixMillis();
  a.outcome = outcomeName(Outcome::Rejected);
  a.reason = reason;
  return a;
}

void Stream::initiatorGone() {
  if (!initiator_.answer) return;
  initiator_ = {};
  LOG_INFO("stream %s: client went away during the handshake", id_.c_str());
  end(Outcome::Cancelled, "client went away");
}

void Stream::onDeviceAnswer(const proto::StreamResponse& msg) {
  if (!initiator_.answer) return;
  const bool tokenless = initiator_.opensServiceSide;
  Answer answer = takeAnswer();
  if (msg.accept && life_.accept(Clock::now())) {
    // The answer may attach the service side (a service channel's stream), which pairs.
    bool pairedNow = paired();
    answer({200, {id_, url_, tokenless ? std::string() : token(Side::Service)}, {}, {}, 0});
    if (pairedNow && !ended_) onPaired();
    return;
  }
  // The device's code decides the status (docs/protocol.md); a code this version does not
  // know is passed on as text but counted as "other".
  Reject code = msg.accept ? Reject::Rejected : msg.code;
  std::string codeText = msg.accept ? std::string(proto::name(code)) : msg.codeText;
  std::string reason = msg.accept ? "accepted after the stream ended" : msg.reason;
  const proto::RejectInfo& ri = proto::info(code);
  LOG_INFO("stream %s: device %s rejected %s: %s (%s)", id_.c_str(), device_.c_str(),
           targetText().c_str(), reason.c_str(), codeText.c_str());
  owner_.onStreamRejected(code);
  answer({ri.httpStatus, {}, codeText, reason, 0});
  bool policy = ri.httpStatus == 403;
  end(policy ? Outcome::Rejected : Outcome::Refused, codeText + ": " + reason);
}

void Stream::attach(Side side, std::unique_ptr<StreamSide> s) {
  s->bind(*this, side);
  sides_[index(side)] = std::move(s);
  if (life_.attach(side, Clock::now())) onPaired();
}

void Stream::attach(Side side, std::unique_ptr<WsConnection> ws, Admission::Ticket ticket) {
  attach(side, std::make_unique<WsSide>(std::move(ws), std::move(ticket), settings_.highWatermark));
}

void Stream::expect(Side side, std::unique_ptr<StreamSide> s) {
  s->bind(*this, side);
  sides_[index(side)] = std::move(s);
}

void Stream::end(Outcome outcome, const std::string& why, uint16_t code) {
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
    if (s && s->open()) s->close(code, why);
  }
  owner_.onStreamEnded(*this);
}

// ---------------------------------------------------------------------------------------------
// The relay: the data path of every stream, one call per message and nothing allocated.

StreamSide* Stream::other(Side side) const { return sides_[1 - index(side)].get(); }

void Stream::onSideData(Side from, evbuffer* data) {
  if (eofFrom_[index(from)]) {
    // The peer said it had sent everything: later bytes would reach the other end ahead of
    // that end's EOF, and a cut stream would look complete.
    evbuffer_drain(data, evbuffer_get_length(data));
    return end(
        Outcome::Error,
        std::string(from == Side::Service ? "service" : "device") + " side sent data after its EOF",
        cc::ProtocolError);
  }
  StreamSide* src = sides_[index(from)].get();
  if (!paired()) {
    // A channel side may send as soon as it is accepted: held until the pairing, with the
    // side paused (its credit held back), so at most its window.
    EvBufferPtr& early = early_[index(from)];
    if (!early) early.reset(evbuffer_new());
    evbuffer_add_buffer(early.get(), data);
    src->pause();
    return;
  }
  StreamSide* to = other(from);
  if (!to || !to->open()) return;
  counted_[index(from)]->inc(static_cast<double>(evbuffer_get_length(data)));
  life_.activity(Clock::now());
  to->send(data);
  // Backpressure: a slow reader on the other side stops this one.
  if (to->full()) src->pause();
}

void Stream::onSideText(Side from, std::string_view message) {
  // Stream control ({"type":"eof"}) goes through in order with the data and under the same
  // watermark: between WebSockets the hub relays text as it is (the two ends speak it).
  if (proto::parseStreamControl(message)) eofFrom_[index(from)] = true;
  StreamSide* to = other(from);
  if (!paired() || !to || !to->open()) return;
  to->sendText(message);
  if (to->full()) sides_[index(from)]->pause();
}

void Stream::onSideEof(Side from) {
  eofFrom_[index(from)] = true;
  if (!paired()) {
    earlyEof_[index(from)] = true;
    return;
  }
  StreamSide* to = other(from);
  if (to && to->open()) to->sendEof();
}

void Stream::onSideDrained(Side side) {
  if (StreamSide* o = other(side)) o->resume();
}

void Stream::onSideClosed(Side from, uint16_t code, std::string_view reason) {
  // The other side is closed with the same code (1006 and 1005 are not sendable).
  uint16_t relay = code == cc::Abnormal || code == cc::NoStatus ? cc::GoingAway : code;
  std::string why = std::string(from == Side::Service ? "service" : "device") + " side closed (" +
                    std::to_string(code) + (reason.empty() ? "" : " " + std::string(reason)) + ")";
  Outcome outcome = code == cc::Normal ? Outcome::Ok : Outcome::Error;
  StreamSide* to = other(from);
  if (code == cc::Normal && paired() && to && to->open() && to->drainThenNotify()) {
    // A normal end after bytes the other side's peer has not taken yet: they go first.
    closing_ = Closing{outcome, why, relay};
    timer_.arm(3 * settings_.keepalive);
    return;
  }
  end(outcome, why, relay);
}

void Stream::onSideFlushed(Side) {
  if (closing_) end(closing_->outcome, closing_->why, closing_->code);
}

void Stream::onSideAnswer(Side from, const proto::StreamResponse& answer) {
  // A stream the hub opened on the device's channel: its answer is the device's.
  if (answer.accept) life_.attach(from, Clock::now());
  proto::StreamResponse msg = answer;
  msg.streamId = id_;
  onDeviceAnswer(msg);
}

// ---------------------------------------------------------------------------------------------

// The initiator's answer, detaching the initiator (it is answered now).
Answer Stream::takeAnswer() {
  Answer a = std::move(initiator_.answer);
  initiator_ = {};
  return a;
}

uint64_t Stream::bytes(Side side) const {
  const StreamSide* s = sides_[index(side)].get();
  return s ? s->bytesIn() : 0;
}

void Stream::onPaired() {
  pairedOnce_ = true;
  owner_.onStreamPaired(*this);
  auto latency = life_.handshakeLatency();
  handshakeSeconds_.observe(std::chrono::duration<double>(latency).count());
  LOG_DEBUG("stream %s: paired (%s on %s, policy %s) after %lld ms", id_.c_str(),
            targetText().c_str(), device_.c_str(), policy_.c_str(),
            static_cast<long long>(latency.count()));
  armTimer();
  for (auto& s : sides_) s->start(settings_.keepalive);
  // What a channel side sent before the pairing goes first, then that side reads on.
  for (Side from : {Side::Service, Side::Device}) {
    StreamSide* to = other(from);
    EvBufferPtr& early = early_[index(from)];
    if (ended_ || !to->open()) return;
    if (early && evbuffer_get_length(early.get()) > 0) onSideData(from, early.get());
    if (ended_ || !to->open()) return;
    if (earlyEof_[index(from)]) to->sendEof();
    if (!to->full()) sides_[index(from)]->resume();
  }
}

void Stream::armTimer() {
  auto d = life_.deadline();
  if (!d) {
    timer_.cancel();
    return;
  }
  auto wait = std::chrono::duration_cast<Millis>(*d - Clock::now());
  timer_.arm(std::max(wait, Millis(0)));
}

void Stream::onTimer() {
  if (closing_) {
    LOG_WARN("stream %s: the rest of the bytes not taken within %lld ms of the end", id_.c_str(),
             static_cast<long long>(3 * settings_.keepalive.count()));
    return end(Outcome::Error, closing_->why + ", the rest not delivered", cc::GoingAway);
  }
  Outcome o = life_.expire(Clock::now());
  if (o == Outcome::None) return armTimer();
  // expire() closed the lifecycle with its outcome; end() does the rest.
  if (o == Outcome::Timeout) {
    LOG_WARN("stream %s: handshake not complete within %lld ms", id_.c_str(),
             static_cast<long long>(settings_.handshakeTimeout.count()));
    end(o, "handshake timeout", cc::TryAgainLater);
  } else {
    LOG_INFO("stream %s: idle for %lld ms", id_.c_str(),
             static_cast<long long>(settings_.idleTimeout.count()));
    end(o, "idle timeout", cc::GoingAway);
  }
}

}  // namespace ds::hub
