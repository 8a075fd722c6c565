// Tests for the hub's stream relay (hub/stream.h) with real WebSockets on socketpairs: the
// stream holds the server ends, the tests drive client WebSockets as the service and the
// device. The device's answer and the initiator, one-time tokens, pairing and relaying both
// ways (data and stream control, counted), the end of one side closing the other with its
// code, the handshake timeout and a client that goes away.
#include "hub/stream.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/run_loop.h"
#include "support/ws_peer.h"

namespace ds::hub {
namespace {

namespace cc = ws::close_code;
using Peer = test::WsPeer;
using Side = Stream::Side;
using Outcome = Stream::Outcome;
using namespace std::chrono_literals;

class StreamTest : public ::testing::Test, public StreamOwner {
 protected:
  StreamTest()
      : toDevice_(), fromDevice_(), latency_(metrics::latencyBuckets()), guard_(loop_, [this] {
          timedOut_ = true;
          event_base_loopbreak(loop_.base());
        }) {
    std::signal(SIGPIPE, SIG_IGN);
    guard_.arm(60s);
  }
  ~StreamTest() override {
    stream_.reset();
    test::spin(loop_);
  }

  void make(StreamSettings settings = {}) {
    stream_ = std::make_unique<Stream>(
        loop_, *this, settings, RelayMetrics{toDevice_, fromDevice_, latency_}, "s1",
        "wss://hub:8443/api/v1/streams/s1", "dev01", "service", "127.0.0.1", 22);
    stream_->setInitiator(
        {[this](const proto::Answer& a) { answers_.push_back(a); }, [this] { ++released_; }});
  }

  // Opens `side` with a socketpair: the stream gets the server end, `peer` the client end.
  void open(Side side, Peer& peer) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    auto server = std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, fds[0]),
                                                 WsConnection::Role::Server, WsLimits{}, nullptr);
    peer.ws = std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, fds[1]),
                                             WsConnection::Role::Client, WsLimits{}, &peer);
    peer.ws->start();
    stream_->attach(side, std::move(server), Admission::Ticket{});
  }

  // An accepted stream with both sides open.
  void makePaired(Peer& device, Peer& service) {
    make();
    accept();
    open(Side::Device, device);
    open(Side::Service, service);
    ASSERT_TRUE(stream_->paired());
  }

  void accept() {
    proto::StreamResponse yes;
    yes.streamId = "s1";
    yes.accept = true;
    stream_->onDeviceAnswer(yes);
  }

  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }

  void onStreamRejected(proto::Reject code) override { rejected_.push_back(code); }
  void onStreamEnded(Stream& st) override {
    EXPECT_EQ(&st, stream_.get());
    ++ended_;
  }

  Loop loop_;
  metrics::Counter toDevice_, fromDevice_;
  metrics::Histogram latency_;
  bool timedOut_ = false;
  Timer guard_;
  std::unique_ptr<Stream> stream_;
  std::vector<proto::Answer> answers_;
  std::vector<proto::Reject> rejected_;
  int released_ = 0;
  int ended_ = 0;
};

TEST_F(StreamTest, AcceptAnswersTheInitiatorWithTheGrant) {
  make();
  accept();
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].status, 200);
  EXPECT_EQ(answers_[0].grant.streamId, "s1");
  EXPECT_EQ(answers_[0].grant.url, "wss://hub:8443/api/v1/streams/s1");
  EXPECT_EQ(answers_[0].grant.token, stream_->token(Side::Service));
  EXPECT_EQ(stream_->life().state(), StreamLifecycle::State::Accepted);
  // A second answer finds nobody waiting.
  accept();
  EXPECT_EQ(answers_.size(), 1u);
  EXPECT_EQ(ended_, 0);
}

TEST_F(StreamTest, DeviceRefusalAnswersWithItsCodeAndEndsTheStream) {
  make();
  proto::StreamResponse no;
  no.streamId = "s1";
  no.accept = false;
  no.code = proto::Reject::PortNotAllowed;
  no.codeText = std::string(proto::name(proto::Reject::PortNotAllowed));
  no.reason = "22 is not on the allow-list";
  stream_->onDeviceAnswer(no);
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].status, proto::info(proto::Reject::PortNotAllowed).httpStatus);
  EXPECT_EQ(answers_[0].error, no.codeText);
  EXPECT_EQ(answers_[0].message, no.reason);
  EXPECT_EQ(rejected_, std::vector<proto::Reject>{proto::Reject::PortNotAllowed});
  EXPECT_EQ(ended_, 1);
  EXPECT_EQ(stream_->life().outcome(), Outcome::Rejected);
}

TEST_F(StreamTest, TokensOpenTheirSideOnce) {
  make();
  std::string device = stream_->token(Side::Device);
  std::string service = stream_->token(Side::Service);
  EXPECT_NE(device, service);
  EXPECT_EQ(stream_->claim("guess"), std::nullopt);
  EXPECT_EQ(stream_->claim(device), Side::Device);
  EXPECT_EQ(stream_->claim(device), std::nullopt);
  EXPECT_EQ(stream_->claim(service), Side::Service);
}

TEST_F(StreamTest, PairedStreamRelaysBothWaysAndCounts) {
  make();
  Peer device, service;
  open(Side::Device, device);  // the device opens its side before it answers
  accept();
  EXPECT_FALSE(stream_->paired());
  open(Side::Service, service);
  EXPECT_TRUE(stream_->paired());
  EXPECT_EQ(latency_.count(), 1u);
  service.send("to the device");
  device.send("from the device");
  service.ws->sendText(R"({"type":"eof"})");
  ASSERT_TRUE(runUntil([&] {
    return device.data == "to the device" && service.data == "from the device" &&
           device.texts.size() == 1;
  }));
  EXPECT_EQ(device.texts[0], R"({"type":"eof"})");
  EXPECT_EQ(toDevice_.value(), 13);
  EXPECT_EQ(fromDevice_.value(), 15);
  auto d = stream_->describe();
  EXPECT_EQ(d["state"], "paired");
  EXPECT_EQ(d["bytes_from_device"], 15);
  EXPECT_EQ(ended_, 0);
}

TEST_F(StreamTest, ClosingOneSideClosesTheOtherWithTheSameCode) {
  Peer device, service;
  makePaired(device, service);
  service.ws->close(cc::Normal, "done");
  ASSERT_TRUE(runUntil([&] { return device.closed.has_value(); }));
  EXPECT_EQ(*device.closed, cc::Normal);
  EXPECT_EQ(ended_, 1);
  EXPECT_EQ(stream_->life().outcome(), Outcome::Ok);
  AuditRecord a = stream_->audit();
  EXPECT_EQ(a.outcome, "ok");
  EXPECT_EQ(a.device, "dev01");
}

TEST_F(StreamTest, ALostSideClosesTheOtherAsGoingAway) {
  Peer device, service;
  makePaired(device, service);
  device.ws.reset();  // the device's connection drops without a close frame
  ASSERT_TRUE(runUntil([&] { return service.closed.has_value(); }));
  EXPECT_EQ(*service.closed, cc::GoingAway);
  EXPECT_EQ(stream_->life().outcome(), Outcome::Error);
}

TEST_F(StreamTest, HandshakeTimeoutAnswers504AndEnds) {
  StreamSettings s;
  s.handshakeTimeout = 5ms;
  make(s);
  ASSERT_TRUE(runUntil([&] { return ended_ == 1; }));
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].status, proto::info(proto::Reject::HandshakeTimeout).httpStatus);
  EXPECT_EQ(stream_->life().outcome(), Outcome::Timeout);
}

TEST_F(StreamTest, InitiatorGoneCancelsTheStream) {
  make();
  stream_->initiatorGone();
  EXPECT_EQ(ended_, 1);
  EXPECT_TRUE(answers_.empty());
  EXPECT_EQ(stream_->life().outcome(), Outcome::Cancelled);
}

TEST_F(StreamTest, FreedStreamReleasesAWaitingInitiator) {
  make();
  stream_.reset();
  EXPECT_EQ(released_, 1);
  EXPECT_TRUE(answers_.empty());
}

TEST(StreamId, IsThirtyTwoHexDigitsAndFresh) {
  std::string a = newStreamId(), b = newStreamId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace ds::hub
