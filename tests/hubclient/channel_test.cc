// The reconnecting keepalive channel against a fake hub on loopback: what its user is told on
// an open, a refusal and a loss, the pace of the next attempt, stop() and redialNow().
#include "hubclient/channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/tls.h"
#include "hubclient/fake_hub.h"
#include "support/run_loop.h"

namespace ds::hubclient {
namespace {

using namespace std::chrono_literals;

// Records what the channel reports; onChannelFailed answers `refusedMeansSlow` for a 401.
struct Recorder : ReconnectingChannel::Events {
  void onChannelUp(WsConnection&) override { ++ups; }
  bool onChannelFailed(const std::string& error) override {
    failures.push_back(error);
    return refusedMeansSlow && error.find("HTTP 401") != std::string::npos;
  }
  void onChannelDown(uint16_t code, const std::string&) override { downs.push_back(code); }
  void onChannelText(std::string message) override { texts.push_back(std::move(message)); }
  void onChannelData(evbuffer*) override {}
  void onReconnectIn(std::chrono::milliseconds delay) override { waits.push_back(delay); }

  bool refusedMeansSlow = true;
  int ups = 0;
  std::vector<std::string> failures, texts;
  std::vector<uint16_t> downs;
  std::vector<std::chrono::milliseconds> waits;
};

class ChannelTest : public test::FakeHubTest {
 protected:
  // A channel dialling the fake hub's device control endpoint; `min`/`max` bound the waits.
  void makeChannel(std::chrono::milliseconds min, std::chrono::milliseconds max) {
    ReconnectingChannel::Options o;
    o.reconnectMin = min;
    o.reconnectMax = max;
    channel_.emplace(
        loop_, o,
        [this](WsDone done) {
          ++dials_;
          return openControl(loop_, target_, "dev01", "a2V5", WsLimits{}, 5s, std::move(done));
        },
        events_);
  }

  Recorder events_;
  int dials_ = 0;
  std::optional<ReconnectingChannel> channel_;
};

TEST_F(ChannelTest, OpensAndDeliversTheHubsMessages) {
  makeChannel(1ms, 1h);
  channel_->start();
  ASSERT_TRUE(until([&] { return events_.ups == 1 && !hub_.channels.empty(); }));
  EXPECT_NE(channel_->channel(), nullptr);
  EXPECT_EQ(hub_.requests, std::vector<std::string>{"GET /api/v1/devices/dev01/control"});
  hub_.channels[0]->sendText(R"({"type":"hello"})");
  ASSERT_TRUE(until([&] { return !events_.texts.empty(); }));
  EXPECT_EQ(events_.texts[0], R"({"type":"hello"})");
  EXPECT_TRUE(events_.failures.empty());
}

TEST_F(ChannelTest, RefusedCredentialsWaitTheLongestBound) {
  hub_.refuse = 401;
  makeChannel(1ms, 1h);
  channel_->start();
  ASSERT_TRUE(until([&] { return !events_.waits.empty(); }));
  ASSERT_EQ(events_.failures.size(), 1u);
  EXPECT_EQ(events_.failures[0].rfind("HTTP 401", 0), 0u) << events_.failures[0];
  EXPECT_EQ(events_.waits[0], 1h);
  EXPECT_TRUE(channel_->waiting());
  // The hub answers again (the user saw it elsewhere): the attempt is made now.
  hub_.refuse = 0;
  channel_->redialNow();
  ASSERT_TRUE(until([&] { return events_.ups == 1; }));
  EXPECT_EQ(dials_, 2);
}

TEST_F(ChannelTest, OtherFailuresBackOffWithinTheFirstBound) {
  hub_.refuse = 503;
  events_.refusedMeansSlow = false;
  makeChannel(1ms, 1h);
  channel_->start();
  // The first waits are bounded by `reconnectMin` (full jitter), so attempts follow quickly.
  ASSERT_TRUE(until([&] { return dials_ >= 3; }));
  ASSERT_GE(events_.waits.size(), 2u);
  EXPECT_LE(events_.waits[0], 1ms);
  EXPECT_EQ(events_.ups, 0);
}

TEST_F(ChannelTest, LostChannelIsReportedAndRedialled) {
  makeChannel(1ms, 1h);
  channel_->start();
  ASSERT_TRUE(until([&] { return events_.ups == 1 && !hub_.channels.empty(); }));
  hub_.channels[0]->close(ws::close_code::GoingAway, "hub restarting");
  ASSERT_TRUE(until([&] { return events_.downs.size() == 1; }));
  EXPECT_EQ(events_.downs[0], ws::close_code::GoingAway);
  EXPECT_EQ(channel_->channel(), nullptr);
  ASSERT_TRUE(until([&] { return events_.ups == 2; }));
  EXPECT_EQ(dials_, 2);
}

TEST_F(ChannelTest, StopClosesAndNeverRedials) {
  makeChannel(1ms, 1h);
  channel_->start();
  ASSERT_TRUE(until([&] { return events_.ups == 1 && !hub_.channels.empty(); }));
  channel_->stop(ws::close_code::GoingAway, "agent shutting down");
  EXPECT_EQ(channel_->channel(), nullptr);
  ASSERT_TRUE(until([&] { return hub_.channelsClosed() == 1; }));
  test::spin(loop_);
  EXPECT_TRUE(events_.downs.empty());
  EXPECT_TRUE(events_.waits.empty());
  EXPECT_FALSE(channel_->waiting());
  EXPECT_EQ(dials_, 1);
}

TEST_F(ChannelTest, DropClosesWithTheGivenCodeAndReconnects) {
  makeChannel(1ms, 1h);
  channel_->start();
  ASSERT_TRUE(until([&] { return events_.ups == 1 && !hub_.channels.empty(); }));
  channel_->drop(ws::close_code::Unsupported, "binary data", "binary data from the hub");
  ASSERT_EQ(events_.downs.size(), 1u);
  EXPECT_EQ(events_.downs[0], ws::close_code::Unsupported);
  ASSERT_TRUE(until([&] { return hub_.channelsClosed() == 1 && events_.ups == 2; }));
}

}  // namespace
}  // namespace ds::hubclient
