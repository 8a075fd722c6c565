// Stream lifecycle and rate limiting, driven by a fake clock: times are passed in, no sleeps.
#include "hub/lifecycle.h"

#include <gtest/gtest.h>

namespace ds::hub {
namespace {

using namespace std::chrono_literals;
using State = StreamLifecycle::State;
using Side = StreamLifecycle::Side;
using Outcome = StreamLifecycle::Outcome;

const TimePoint t0 = TimePoint() + 1000h;

TEST(StreamLifecycle, AcceptThenBothSidesPair) {
  StreamLifecycle s(t0, 60s, 0ms);
  EXPECT_EQ(s.state(), State::Requested);
  EXPECT_EQ(s.deadline(), t0 + 60s);
  EXPECT_TRUE(s.accept(t0 + 10ms));
  EXPECT_EQ(s.state(), State::Accepted);
  EXPECT_FALSE(s.attach(Side::Device, t0 + 20ms));
  EXPECT_TRUE(s.attach(Side::Service, t0 + 35ms));
  EXPECT_EQ(s.state(), State::Paired);
  EXPECT_EQ(s.handshakeLatency(), 35ms);
  EXPECT_EQ(s.deadline(), std::nullopt);  // no idle timeout configured
  EXPECT_EQ(s.expire(t0 + 1000h), Outcome::None);
}

TEST(StreamLifecycle, DeviceSideBeforeTheAnswerPairsOnAccept) {
  StreamLifecycle s(t0, 60s, 0ms);
  EXPECT_FALSE(s.attach(Side::Device, t0 + 5ms));
  EXPECT_EQ(s.state(), State::Requested);
  EXPECT_TRUE(s.accept(t0 + 6ms));
  EXPECT_EQ(s.state(), State::Accepted);
  EXPECT_TRUE(s.attach(Side::Service, t0 + 9ms));
  EXPECT_EQ(s.state(), State::Paired);
}

TEST(StreamLifecycle, HandshakeBoundClosesWithTimeout) {
  StreamLifecycle s(t0, 60s, 0ms);
  EXPECT_EQ(s.expire(t0 + 59999ms), Outcome::None);
  EXPECT_EQ(s.state(), State::Requested);
  EXPECT_EQ(s.expire(t0 + 60s), Outcome::Timeout);
  EXPECT_EQ(s.state(), State::Closed);
  EXPECT_EQ(s.outcome(), Outcome::Timeout);
  EXPECT_EQ(s.reason(), "handshake timeout");
  EXPECT_EQ(s.deadline(), std::nullopt);
}

TEST(StreamLifecycle, HandshakeBoundAppliesAfterAcceptToo) {
  // Accepted, but the service never opens its side.
  StreamLifecycle s(t0, 2s, 0ms);
  s.accept(t0 + 100ms);
  s.attach(Side::Device, t0 + 100ms);
  EXPECT_EQ(s.deadline(), t0 + 2s);
  EXPECT_EQ(s.expire(t0 + 2s), Outcome::Timeout);
}

TEST(StreamLifecycle, IdleTimeoutFollowsActivity) {
  StreamLifecycle s(t0, 60s, 30s);
  s.accept(t0);
  s.attach(Side::Device, t0);
  s.attach(Side::Service, t0 + 1s);
  EXPECT_EQ(s.deadline(), t0 + 31s);
  s.activity(t0 + 20s);
  EXPECT_EQ(s.expire(t0 + 31s), Outcome::None);
  EXPECT_EQ(s.deadline(), t0 + 50s);
  EXPECT_EQ(s.expire(t0 + 50s), Outcome::Idle);
  EXPECT_EQ(s.reason(), "idle timeout");
}

TEST(StreamLifecycle, EventsOutOfOrderAreRefused) {
  StreamLifecycle s(t0, 60s, 0ms);
  EXPECT_TRUE(s.close(Outcome::Rejected, "not allowed", t0 + 1ms));
  EXPECT_FALSE(s.accept(t0 + 2ms));
  EXPECT_FALSE(s.attach(Side::Device, t0 + 2ms));
  EXPECT_FALSE(s.close(Outcome::Ok, "again", t0 + 3ms));
  EXPECT_EQ(s.outcome(), Outcome::Rejected);
  EXPECT_EQ(s.reason(), "not allowed");

  StreamLifecycle twice(t0, 60s, 0ms);
  EXPECT_TRUE(twice.accept(t0));
  EXPECT_FALSE(twice.accept(t0));
}

TEST(StreamLifecycle, NamesAreStable) {
  EXPECT_STREQ(outcomeName(Outcome::Timeout), "timeout");
  EXPECT_STREQ(outcomeName(Outcome::Ok), "ok");
  EXPECT_STREQ(stateName(State::Paired), "paired");
}

TEST(RateLimiter, BurstThenSteadyRate) {
  RateLimiter r(5, 5, t0);
  std::chrono::seconds retry{0};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.take(t0, retry)) << i;
  EXPECT_FALSE(r.take(t0, retry));
  EXPECT_EQ(retry, 1s);
  EXPECT_FALSE(r.take(t0 + 199ms, retry));
  EXPECT_TRUE(r.take(t0 + 200ms, retry));  // one token every 200 ms
  EXPECT_FALSE(r.take(t0 + 200ms, retry));
  // A long pause refills only up to the burst.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.take(t0 + 1h, retry)) << i;
  EXPECT_FALSE(r.take(t0 + 1h, retry));
}

TEST(RateLimiter, RetryAfterRoundsUpToWholeSeconds) {
  RateLimiter r(0.25, 1, t0);  // one token every 4 s
  std::chrono::seconds retry{0};
  EXPECT_TRUE(r.take(t0, retry));
  EXPECT_FALSE(r.take(t0 + 1s, retry));
  EXPECT_EQ(retry, 3s);
  EXPECT_FALSE(r.take(t0 + 3500ms, retry));
  EXPECT_EQ(retry, 1s);
}

TEST(RateLimiter, ClockGoingBackDoesNotMintTokens) {
  RateLimiter r(1, 1, t0);
  std::chrono::seconds retry{0};
  EXPECT_TRUE(r.take(t0, retry));
  EXPECT_FALSE(r.take(t0 - 10s, retry));
}

}  // namespace
}  // namespace ds::hub

namespace ds::hub {
namespace {

using Side = StreamLifecycle::Side;

TEST(StreamTokens, EachTokenOpensItsSideOnce) {
  StreamTokens t("svc-token", "dev-token");
  EXPECT_EQ(t.claim("dev-token"), Side::Device);
  EXPECT_EQ(t.claim("dev-token"), std::nullopt);  // replay
  EXPECT_EQ(t.claim("svc-token"), Side::Service);
  EXPECT_EQ(t.claim("svc-token"), std::nullopt);
}

TEST(StreamTokens, WrongOrPartialTokensOpenNothingAndConsumeNothing) {
  StreamTokens t("svc-token", "dev-token");
  for (std::string_view bad : {"", "svc-toke", "svc-token2", "SVC-TOKEN", "other"}) {
    EXPECT_EQ(t.claim(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(t.claim("svc-token"), Side::Service);
  // A used side's empty slot must not match an empty presented token.
  EXPECT_EQ(t.claim(""), std::nullopt);
}

TEST(StreamTokens, RandomTokensAreLongDistinctAndUrlSafe) {
  StreamTokens a, b;
  for (auto* t : {&a, &b}) {
    for (Side s : {Side::Service, Side::Device}) {
      const std::string& tok = t->token(s);
      EXPECT_GE(tok.size(), 22u);  // at least 128 bits in base64url
      EXPECT_EQ(
          tok.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
          std::string::npos);
    }
  }
  EXPECT_NE(a.token(Side::Service), a.token(Side::Device));
  EXPECT_NE(a.token(Side::Service), b.token(Side::Service));
}

// A token is drawn when first asked for, and stays what it was: a claimed one is not drawn anew.
TEST(StreamTokens, DrawnOnceWhenFirstAskedFor) {
  StreamTokens t;
  EXPECT_EQ(t.claim(""), std::nullopt);  // nothing drawn: nothing opens
  const std::string dev = t.token(Side::Device);
  EXPECT_EQ(t.token(Side::Device), dev);
  EXPECT_EQ(t.claim(dev), Side::Device);
  EXPECT_TRUE(t.token(Side::Device).empty());  // used: not drawn again
  EXPECT_EQ(t.claim(dev), std::nullopt);
  const std::string svc = t.token(Side::Service);
  EXPECT_FALSE(svc.empty());
  EXPECT_EQ(t.claim(svc), Side::Service);
}

// A side opened inside the hub spends its token, drawn or not, once.
TEST(StreamTokens, SpendOpensASideOnceWithoutItsToken) {
  StreamTokens t;
  EXPECT_TRUE(t.spend(Side::Service));
  EXPECT_FALSE(t.spend(Side::Service));
  EXPECT_TRUE(t.token(Side::Service).empty());  // never drawn afterwards
  EXPECT_EQ(t.claim(""), std::nullopt);
  const std::string dev = t.token(Side::Device);
  EXPECT_TRUE(t.spend(Side::Device));  // a drawn token is spent
  EXPECT_EQ(t.claim(dev), std::nullopt);
  StreamTokens u;
  EXPECT_EQ(u.claim(u.token(Side::Device)), Side::Device);
  EXPECT_FALSE(u.spend(Side::Device));  // claimed already
}

}  // namespace
}  // namespace ds::hub
