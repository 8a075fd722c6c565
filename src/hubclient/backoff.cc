// Backoff: full-jitter reconnect waits, short after the loss of a healthy link.
#include "hubclient/backoff.h"

#include <algorithm>

namespace ds::hubclient {

using std::chrono::milliseconds;

void Backoff::up(Clock::time_point now) {
  upSince_ = now;
  healthyLost_.reset();
}

void Backoff::down(Clock::time_point now) {
  if (upSince_ && now - *upSince_ >= o_.healthyAfter) {
    attempt_ = 0;
    healthyLost_ = now;
  }
  upSince_.reset();
}

milliseconds Backoff::nextBound(Clock::time_point now) {
  milliseconds cap = std::max(o_.cap, milliseconds(0));
  milliseconds bound = std::min(o_.initial, cap);
  // initial * 2^attempt without overflow: stop doubling once the cap is reached.
  for (unsigned i = 0; i < attempt_ && bound < cap; ++i) bound = std::min(bound * 2, cap);
  if (healthyLost_) {
    auto outage = std::chrono::duration_cast<milliseconds>(now - *healthyLost_);
    milliseconds share = outage / std::max(o_.outageFraction, 1u);
    bound = std::min(bound, std::min(cap, std::max(o_.initial, share)));
  }
  if (attempt_ < 64) ++attempt_;
  return bound;
}

milliseconds Backoff::next(Clock::time_point now, std::mt19937_64& rng) {
  milliseconds bound = nextBound(now);
  std::uniform_int_distribution<int64_t> pick(0, bound.count());
  return milliseconds(pick(rng));
}

}  // namespace ds::hubclient
