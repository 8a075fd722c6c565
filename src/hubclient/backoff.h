// Reconnect pacing for a link to the hub (the agent's control channel, the daemon's service
// channel), with time passed in. Waits are "full jitter": uniformly random in [0, bound], so a
// fleet does not come back in lockstep. The bound depends on how the link was lost:
//   - after a link that had been up for `healthyAfter`, the bound is at most
//     min(cap, max(initial, outage / outageFraction)) (and grows from `initial` as below): a hub
//     back after an outage of T is found within max(initial, T / 10), however many attempts
//     failed meanwhile;
//   - otherwise (start-up, a link dropped at once, an unreachable hub) it grows exponentially
//     from `initial` to `cap` with each failed attempt, so a hub that accepts and drops at once
//     is not redialled in a tight loop.
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace ds::hubclient {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::milliseconds initial{500}, cap{30000};
    std::chrono::milliseconds healthyAfter{5000};  // a link up this long was healthy
    unsigned outageFraction = 10;
  };

  explicit Backoff(Options o) : o_(o) {}

  // The link is open.
  void up(Clock::time_point now);
  // The open link was lost.
  void down(Clock::time_point now);
  // The bound of the wait before the next attempt; counts the attempt.
  std::chrono::milliseconds nextBound(Clock::time_point now);
  // nextBound with full jitter.
  std::chrono::milliseconds next(Clock::time_point now, std::mt19937_64& rng);

  // Attempts since the last healthy link (or the start).
  unsigned attempts() const { return attempt_; }

 private:
  Options o_;
  unsigned attempt_ = 0;
  std::optional<Clock::time_point> upSince_;
  std::optional<Clock::time_point> healthyLost_;  // when a healthy link was lost; reset by up()
};

}  // namespace ds::hubclient
