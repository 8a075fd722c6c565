// Tests for Backoff with explicit times: exponential full jitter from start-up and after links
// that dropped at once; after the loss of a healthy link, waits bounded by a share of the outage
// so that a hub back from a short outage is found at once.
#include "hubclient/backoff.h"

#include <gtest/gtest.h>

namespace ds::hubclient {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = Backoff::Clock;

Backoff::Options opts() {
  Backoff::Options o;
  o.initial = milliseconds(500);
  o.cap = seconds(30);
  o.healthyAfter = seconds(5);
  o.outageFraction = 10;
  return o;
}

TEST(Backoff, GrowsExponentiallyToTheCapFromStartUp) {
  Backoff b(opts());
  Clock::time_point t{};
  std::vector<int64_t> got;
  for (int i = 0; i < 9; ++i) got.push_back(b.nextBound(t).count());
  EXPECT_EQ(got, (std::vector<int64_t>{500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}));
}

// The outage of issue "10 s without a hub": with the old backoff the wait had grown to 16 s; now
// no wait in the outage exceeds max(initial, outage / 10).
TEST(Backoff, AfterAHealthyLinkWaitsStayWithinATenthOfTheOutage) {
  Backoff b(opts());
  Clock::time_point t{};
  b.up(t);
  t += seconds(60);
  b.down(t);
  Clock::time_point lost = t;
  // Attempts every bound for a 10 s outage: none may wait more than 1 s.
  while (t - lost < seconds(10)) {
    milliseconds bound = b.nextBound(t);
    auto outage = std::chrono::duration_cast<milliseconds>(t - lost);
    EXPECT_LE(bound, std::max(milliseconds(500), outage / 10)) << "at " << outage.count() << " ms";
    t += bound;
  }
  EXPECT_GT(b.attempts(), 5u);
  // A long outage reaches the cap.
  EXPECT_EQ(b.nextBound(lost + seconds(3600)), seconds(30));
}

TEST(Backoff, FirstRetryAfterAHealthyLinkIsWithinInitial) {
  Backoff b(opts());
  Clock::time_point t{};
  for (int i = 0; i < 8; ++i) b.nextBound(t);  // start-up attempts grew the bound
  b.up(t);
  t += seconds(6);
  b.down(t);
  EXPECT_EQ(b.nextBound(t), milliseconds(500));
}

// A hub (or middlebox) that accepts and drops at once is not redialled in a tight loop.
TEST(Backoff, LinksThatDropAtOnceKeepGrowingTheWait) {
  Backoff b(opts());
  Clock::time_point t{};
  std::vector<int64_t> got;
  for (int i = 0; i < 6; ++i) {
    got.push_back(b.nextBound(t).count());
    b.up(t);
    t += milliseconds(100);
    b.down(t);
  }
  EXPECT_EQ(got, (std::vector<int64_t>{500, 1000, 2000, 4000, 8000, 16000}));
}

TEST(Backoff, JitterStaysWithinTheBound) {
  Backoff b(opts());
  std::mt19937_64 rng(1);
  Clock::time_point t{};
  for (int i = 0; i < 200; ++i) {
    Backoff probe = b;
    milliseconds bound = probe.nextBound(t);
    milliseconds d = b.next(t, rng);
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d, bound);
  }
}

TEST(Backoff, CapBelowInitialWins) {
  Backoff::Options o = opts();
  o.initial = seconds(5);
  o.cap = seconds(2);
  Backoff b(o);
  EXPECT_EQ(b.nextBound(Clock::time_point{}), seconds(2));
}

}  // namespace
}  // namespace ds::hubclient
