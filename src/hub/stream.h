// One device stream at the hub, from initiation to the end of the relay: it waits for the
// device's answer and answers the initiator, takes each side's WebSocket as its token is
// presented, then relays frames between the two with backpressure (a slow reader stops the
// writer's reads) and ends both sides together. Its bounds (handshake, idle) follow
// StreamLifecycle (lifecycle.h) on a timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/metrics.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "hub/lifecycle.h"
#include "hub/registry.h"

namespace ds::hub {

// The answer to a stream initiation, whichever way it came (HTTPS POST or a service control
// channel): status, grant or error, and for 429 the seconds to wait before retrying.
using Answer = std::function<void(const proto::Answer&)>;
// Who waits for a stream's answer: `answer` runs at most once; `release` runs when the stream
// is freed while the initiator still waits on it (the initiator forgets the stream).
struct Initiator {
  Answer answer;
  std::function<void()> release;
};

// A fresh stream id: 32 hex digits of 16 random bytes.
std::string newStreamId();

// An answer refusing a stream with `r` (its HTTP status and name).
proto::Answer refusal(proto::Reject r, std::string message, int retryAfter = 0);

class Stream;

// What a stream tells its owner (the hub).
class StreamOwner {
 public:
  virtual ~StreamOwner() = default;
  // The device refused the stream with `code` (counted by reason).
  virtual void onStreamRejected(proto::Reject code) = 0;
  // The stream ended (its initiator answered and its sides closed): called once; the owner
  // records it and frees it later (Loop::deferDelete).
  virtual void onStreamEnded(Stream& st) = 0;
};

struct StreamSettings {
  Millis handshakeTimeout{60000};     // from the request to the pairing
  Millis idleTimeout{0};              // paired without traffic; 0: none
  Millis keepalive{20000};            // pings on both sides once paired
  size_t highWatermark = 256 * 1024;  // relay backpressure, per side's output
};

// Where the relay counts: bytes each way and the time from request to pairing.
struct RelayMetrics {
  metrics::Counter& bytesToDevice;
  metrics::Counter& bytesFromDevice;
  metrics::Histogram& handshakeSeconds;
};

class Stream : public Deletable {
 public:
  using Side = StreamLifecycle::Side;
  using Outcome = StreamLifecycle::Outcome;

  // `target` is what the caller asked for: host and port or a Unix socket on the device, the
  // user its daemon asserted and the stream's name.
  Stream(Loop& loop, StreamOwner& owner, const StreamSettings& settings, RelayMetrics metrics,
         std::string id, std::string url, std::string device, std::string policy,
         proto::InitiateBody target);
  ~Stream() override;

  const std::string& id() const { return id_; }
  const std::string& device() const { return device_; }
  const std::string& policy() const { return policy_; }
  const proto::InitiateBody& target() const { return target_; }
  // The target as logs and the audit log show it: "host:port", or "unix:PATH".
  std::string targetText() const;
  // The streaming URL of this stream, and each side's one-time token.
  const std::string& url() const { return url_; }
  const std::string& token(Side side) const { return tokens_.token(side); }
  const StreamLifecycle& life() const { return life_; }
  bool paired() const { return life_.state() == StreamLifecycle::State::Paired; }

  // The stream for the admin API, and its audit record (ending now).
  nlohmann::json describe() const;
  AuditRecord audit() const;
  // The audit record of a request refused before a stream existed (outcome "rejected").
  static AuditRecord refusedAudit(const std::string& policy, const std::string& device,
                                  const proto::InitiateBody& target, const std::string& reason);

  void setInitiator(Initiator who) { initiator_ = std::move(who); }
  // The initiator went away (its connection or channel closed) before the answer.
  void initiatorGone();
  // Which side a presented token opens, consuming it (single use).
  std::optional<Side> claim(std::string_view token) { return tokens_.claim(token); }
  // The device's stream_response: answers the initiator (200 with the grant, or the device's
  // refusal, which ends the stream).
  void onDeviceAnswer(const proto::StreamResponse& msg);
  // A side's WebSocket, opened with its token; the second one pairs the stream.
  void attach(Side side, std::unique_ptr<WsConnection> ws, Admission::Ticket ticket);
  // Ends the stream: answers a waiting initiator, closes open sides with `code`, tells the owner.
  void end(Outcome outcome, const std::string& why, uint16_t code = ws::close_code::GoingAway);

 private:
  // One side's WebSocket and its callbacks: what arrives is sent to the other side.
  struct Relay : WsConnection::Callbacks {
    Relay(Stream* st, Side s, metrics::Counter& counter) : stream(st), side(s), counted(counter) {}
    Stream* stream;
    Side side;
    metrics::Counter& counted;  // counts what this side sends
    std::unique_ptr<WsConnection> ws;
    Admission::Ticket ticket;
    WsConnection* other() const;

    void onWsData(evbuffer* payload) override;
    void onWsText(std::string message) override;
    void onWsDrained() override;
    void onWsClosed(uint16_t code, const std::string& reason) override;
  };

  Answer takeAnswer();
  uint64_t bytes(Side side) const;
  void onPaired();
  void armTimer();
  void onTimer();

  StreamOwner& owner_;
  StreamSettings settings_;
  metrics::Histogram& handshakeSeconds_;
  std::string id_, url_, device_, policy_;
  proto::InitiateBody target_;
  StreamLifecycle life_;
  Timer timer_;
  StreamTokens tokens_;
  Relay sides_[2];
  Initiator initiator_;
  bool ended_ = false;
  int64_t startMs_ = 0;
};

}  // namespace ds::hub
