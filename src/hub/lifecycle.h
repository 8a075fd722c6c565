// The pure parts of the hub's stream handling, driven by times passed in (so tests use a fake
// clock, no sleeps): a stream's lifecycle with its handshake and idle bounds, and the token
// bucket that limits new streams per service policy.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ds::hub {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// Requested --accept--> Accepted --both sides attached--> Paired --close--> Closed.
// Requested/Accepted also end in Closed (rejected, timed out, device gone, client gone).
// A side may attach while Requested (the device opens its side before answering).
class StreamLifecycle {
 public:
  enum class State { Requested, Accepted, Paired, Closed };
  enum class Side { Service = 0, Device = 1 };
  // Why a stream ended; names are the `outcome` of the audit record and a metrics label.
  enum class Outcome { None, Ok, Rejected, Refused, Timeout, Offline, Idle, Cancelled, Error };

  StreamLifecycle(TimePoint now, Millis handshakeBound, Millis idleTimeout);

  State state() const { return state_; }
  Outcome outcome() const { return outcome_; }
  const std::string& reason() const { return reason_; }

  // Each returns false (and changes nothing) when the event does not fit the state. accept()
  // pairs the stream at once when both sides are already attached (check state()).
  bool accept(TimePoint now);
  // Returns true when this attach completed the pair.
  bool attach(Side side, TimePoint now);
  bool attached(Side side) const { return attached_[static_cast<int>(side)]; }
  bool close(Outcome outcome, const std::string& reason, TimePoint now);
  // Traffic on a paired stream (keeps the idle bound away).
  void activity(TimePoint now) { lastActivity_ = now; }

  // When expire() should next be called; nullopt once closed or with nothing to wait for.
  std::optional<TimePoint> deadline() const;
  // Closes the stream if a bound has passed; returns the outcome it closed with (or None).
  Outcome expire(TimePoint now);

  // From request to pairing (valid once paired).
  Millis handshakeLatency() const;
  TimePoint started() const { return started_; }

 private:
  State state_ = State::Requested;
  Outcome outcome_ = Outcome::None;
  std::string reason_;
  TimePoint started_, paired_, lastActivity_, ended_;
  Millis handshakeBound_, idleTimeout_;
  bool attached_[2] = {false, false};
};

const char* stateName(StreamLifecycle::State s);
const char* outcomeName(StreamLifecycle::Outcome o);
// True for the name of an outcome a stream can end with (every one but None).
bool isOutcomeName(std::string_view name);

// The two one-time tokens of a stream, one per side. A token opens its side once; a replayed
// token, the other stream's token or a guess opens nothing. A token is drawn when first asked
// for: a stream whose sides are both multiplexed never needs one.
class StreamTokens {
 public:
  // Random tokens of `bytes` random bytes each (url-safe text).
  explicit StreamTokens(size_t bytes = 24) : bytes_(bytes) {}
  // For tests: given tokens.
  StreamTokens(std::string service, std::string device);
  // The side's token, drawn now if it was not yet; empty once claimed.
  const std::string& token(StreamLifecycle::Side side);
  // The side `presented` opens, consuming it; nullopt when it opens none (compared in constant
  // time).
  std::optional<StreamLifecycle::Side> claim(std::string_view presented);
  // Opens the side without a token, for its holder inside the hub (a multiplexed channel's
  // stream): false when the side was opened already. Its token is never drawn, or is spent.
  bool spend(StreamLifecycle::Side side);

 private:
  size_t bytes_ = 0;
  std::string tokens_[2];
  bool drawn_[2] = {false, false};
};

// A token bucket: `rate` tokens per second, at most `burst` stored.
class RateLimiter {
 public:
  RateLimiter(double rate, double burst, TimePoint now);
  // Takes a token if one is there; otherwise returns false and sets `retryAfter` to the wait
  // for the next token (rounded up to whole seconds, at least 1, as Retry-After wants).
  bool take(TimePoint now, std::chrono::seconds& retryAfter);

 private:
  void refill(TimePoint now);
  double rate_, burst_, tokens_;
  TimePoint last_;
};

}  // namespace ds::hub
