// One device stream at the hub, from initiation to the end of the relay: it waits for the
// device's answer and answers the initiator, takes each side as its token is presented (a
// WebSocket of its own or a stream on a channel, stream_side.h), then relays between the two
// with backpressure (a slow reader stops the writer) and ends both sides together. Its bounds
// (handshake, idle) follow StreamLifecycle (lifecycle.h) on a timer.
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
#include "hub/stream_side.h"

namespace ds::hub {

// The answer to a stream initiation, whichever way it came (HTTPS POST or a service control
// channel): status, grant or error, and for 429 the seconds to wait before retrying.
using Answer = std::function<void(const proto::Answer&)>;
// Who waits for a stream's answer: `answer` runs at most once; `release` runs when the stream
// is freed while the initiator still waits on it (the initiator forgets the stream).
struct Initiator {
  Answer answer;
  std::function<void()> release;
  // The initiator opens the service side itself (a multiplexed service channel, through
  // Stream::spend): its grant carries no token.
  bool opensServiceSide = false;
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
  // Both sides joined: called at most once, never after onStreamEnded.
  virtual void onStreamPaired(Stream& /*st*/) {}
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

class Stream : public Deletable, private SideEvents {
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
  const std::string& token(Side side) { return tokens_.token(side); }
  const StreamLifecycle& life() const { return life_; }
  bool paired() const { return life_.state() == StreamLifecycle::State::Paired; }
  // Whether the stream paired (onStreamPaired was called), even if it has ended since.
  bool pairedOnce() const { return pairedOnce_; }

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
  // Opens a side for its holder inside the hub, without a token (StreamTokens::spend).
  bool spend(Side side) { return tokens_.spend(side); }
  // The device's stream_response: answers the initiator (200 with the grant, or the device's
  // refusal, which ends the stream).
  void onDeviceAnswer(const proto::StreamResponse& msg);
  // A side opened with its token (or accepted on a channel); the second one pairs the stream.
  void attach(Side side, std::unique_ptr<StreamSide> s);
  void attach(Side side, std::unique_ptr<WsConnection> ws, Admission::Ticket ticket);
  // A side that exists before the device answered: the stream the hub opened on the device's
  // channel. Its acceptance is the device's answer and attaches it.
  void expect(Side side, std::unique_ptr<StreamSide> s);
  // Ends the stream: answers a waiting initiator, closes open sides with `code`, tells the owner.
  void end(Outcome outcome, const std::string& why, uint16_t code = ws::close_code::GoingAway);

 private:
  // SideEvents: the relay. What arrives on one side goes to the other, with backpressure (a
  // full side pauses the other one).
  void onSideData(Side from, evbuffer* data) override;
  void onSideText(Side from, std::string_view message) override;
  void onSideEof(Side from) override;
  void onSideDrained(Side side) override;
  void onSideClosed(Side from, uint16_t code, std::string_view reason) override;
  void onSideAnswer(Side from, const proto::StreamResponse& answer) override;
  void onSideFlushed(Side side) override;

  // A normal end waiting for a side to deliver what it holds (StreamSide::drainThenNotify).
  struct Closing {
    Outcome outcome;
    std::string why;
    uint16_t code;
  };

  Answer takeAnswer();
  StreamSide* other(Side side) const;
  uint64_t bytes(Side side) const;
  void onPaired();
  void armTimer();
  void onTimer();

  StreamOwner& owner_;
  bool pairedOnce_ = false;
  StreamSettings settings_;
  metrics::Histogram& handshakeSeconds_;
  metrics::Counter* counted_[2];  // what each side sends
  std::string id_, url_, device_, policy_;
  proto::InitiateBody target_;
  StreamLifecycle life_;
  Timer timer_;
  StreamTokens tokens_;
  std::unique_ptr<StreamSide> sides_[2];
  // What a channel side sent before the pairing, held (that side paused) until it.
  EvBufferPtr early_[2];
  bool earlyEof_[2] = {false, false};
  // Each side's half-close, as it came: bytes after it break the stream (close 1002).
  bool eofFrom_[2] = {false, false};
  std::optional<Closing> closing_;
  Initiator initiator_;
  bool ended_ = false;
  int64_t startMs_ = 0;
};

}  // namespace ds::hub
