// Stream lifecycle state machine and token bucket.
#include "hub/lifecycle.h"

#include <algorithm>
#include <cmath>

#include "common/sas.h"

namespace ds::hub {

using State = StreamLifecycle::State;
using Outcome = StreamLifecycle::Outcome;

StreamLifecycle::StreamLifecycle(TimePoint now, Millis handshakeBound, Millis idleTimeout)
    : started_(now),
      lastActivity_(now),
      handshakeBound_(handshakeBound),
      idleTimeout_(idleTimeout) {}

bool StreamLifecycle::accept(TimePoint now) {
  if (state_ != State::Requested) return false;
  state_ = State::Accepted;
  if (attached_[0] && attached_[1]) {
    state_ = State::Paired;
    paired_ = now;
    lastActivity_ = now;
  }
  return true;
}

bool StreamLifecycle::attach(Side side, TimePoint now) {
  if (state_ == State::Closed || state_ == State::Paired) return false;
  attached_[static_cast<int>(side)] = true;
  // Pairing needs the device's acceptance too: until then the service cannot have a token,
  // but the device's side may already be open.
  if (state_ == State::Accepted && attached_[0] && attached_[1]) {
    state_ = State::Paired;
    paired_ = now;
    lastActivity_ = now;
    return true;
  }
  return false;
}

bool StreamLifecycle::close(Outcome outcome, const std::string& reason, TimePoint now) {
  if (state_ == State::Closed) return false;
  state_ = State::Closed;
  outcome_ = outcome;
  reason_ = reason;
  ended_ = now;
  return true;
}

std::optional<TimePoint> StreamLifecycle::deadline() const {
  switch (state_) {
    case State::Requested:
    case State::Accepted:
      return started_ + handshakeBound_;
    case State::Paired:
      if (idleTimeout_.count() > 0) return lastActivity_ + idleTimeout_;
      return std::nullopt;
    case State::Closed:
      return std::nullopt;
  }
  return std::nullopt;
}

Outcome StreamLifecycle::expire(TimePoint now) {
  auto d = deadline();
  if (!d || now < *d) return Outcome::None;
  if (state_ == State::Paired) {
    close(Outcome::Idle, "idle timeout", now);
    return Outcome::Idle;
  }
  close(Outcome::Timeout, "handshake timeout", now);
  return Outcome::Timeout;
}

Millis StreamLifecycle::handshakeLatency() const {
  return std::chrono::duration_cast<Millis>(paired_ - started_);
}

const char* stateName(State s) {
  switch (s) {
    case State::Requested:
      return "requested";
    case State::Accepted:
      return "accepted";
    case State::Paired:
      return "paired";
    case State::Closed:
      return "closed";
  }
  return "?";
}

const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::None:
      return "none";
    case Outcome::Ok:
      return "ok";
    case Outcome::Rejected:
      return "rejected";
    case Outcome::Refused:
      return "refused";
    case Outcome::Timeout:
      return "timeout";
    case Outcome::Offline:
      return "offline";
    case Outcome::Idle:
      return "idle";
    case Outcome::Cancelled:
      return "cancelled";
    case Outcome::Error:
      return "error";
  }
  return "?";
}

bool isOutcomeName(std::string_view name) {
  for (Outcome o : {Outcome::Ok, Outcome::Rejected, Outcome::Refused, Outcome::Timeout,
                    Outcome::Offline, Outcome::Idle, Outcome::Cancelled, Outcome::Error}) {
    if (name == outcomeName(o)) return true;
  }
  return false;
}

StreamTokens::StreamTokens(std::string service, std::string device)
    : tokens_{std::move(service), std::move(device)}, drawn_{true, true} {}

const std::string& StreamTokens::token(StreamLifecycle::Side side) {
  const int s = static_cast<int>(side);
  if (!drawn_[s]) {
    drawn_[s] = true;
    tokens_[s] = sas::randomToken(bytes_);
  }
  return tokens_[s];
}

bool StreamTokens::spend(StreamLifecycle::Side side) {
  const int s = static_cast<int>(side);
  if (drawn_[s] && tokens_[s].empty()) return false;
  drawn_[s] = true;
  tokens_[s].clear();
  return true;
}

std::optional<StreamLifecycle::Side> StreamTokens::claim(std::string_view presented) {
  for (int s : {0, 1}) {
    if (!tokens_[s].empty() && sas::constantTimeEquals(presented, tokens_[s])) {
      tokens_[s].clear();
      return static_cast<StreamLifecycle::Side>(s);
    }
  }
  return std::nullopt;
}

RateLimiter::RateLimiter(double rate, double burst, TimePoint now)
    : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

void RateLimiter::refill(TimePoint now) {
  if (now <= last_) return;
  double secs = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + secs * rate_);
  last_ = now;
}

bool RateLimiter::take(TimePoint now, std::chrono::seconds& retryAfter) {
  refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  double wait = (1.0 - tokens_) / rate_;
  retryAfter =
      std::chrono::seconds(std::max<long long>(1, static_cast<long long>(std::ceil(wait))));
  return false;
}

}  // namespace ds::hub
