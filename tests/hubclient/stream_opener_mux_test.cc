// StreamOpener on a multiplexed service channel, against a fake hub that speaks the frames of
// docs/mux.md through the codec alone: an open is an OPEN answered by ACCEPT (bytes, EOF and
// CLOSE 1000 both ways) or REJECT (the POST endpoint's status and code), cancel sends CLOSE, a
// hub that does not select the subprotocol gets JSON requests, a lost channel sends what was
// waiting on it by POST, and the warm pool rests while the channel multiplexes.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/mux.h"
#include "hubclient/fake_hub.h"
#include "hubclient/stream_opener.h"
#include "support/run_loop.h"

namespace ds::hubclient {
namespace {

using namespace std::chrono_literals;
using mux::FrameType;
using test::FakeHub;
using test::MuxFrame;
using test::MuxStream;

const StreamTarget kToLanHost{"dev01", "192.168.1.10", 80, "", "alice", "cam.lab"};
const StreamTarget kToSocket{"dev01", "127.0.0.1", 0, "/run/app.sock", "", "forward :5432"};

struct Outcome {
  int calls = 0;
  OpenResult result;
  bool multiplexed = false;
  bool ws = false;
};

class StreamOpenerMuxTest : public test::FakeHubTest {
 protected:
  void SetUp() override {
    FakeHubTest::SetUp();
    hub_.mux = true;
  }

  void makeOpener(bool multiplex = true, size_t maxPendingOpens = 128) {
    StreamOpener::Options o;
    o.mux.maxPendingOpens = maxPendingOpens;
    o.policy = "service";
    o.key = "a2V5";
    o.handshakeTimeout = 5s;
    o.multiplex = multiplex;
    opener_ = std::make_unique<StreamOpener>(loop_, target_, o);
    opener_->start();
  }

  // Opens; an accepted multiplexed stream is taken by `stream` inside `done` (when given).
  uint64_t open(Outcome& out, const StreamTarget& t, MuxStream* stream = nullptr) {
    inside_ = true;
    uint64_t id = opener_->open(t, [&out, this, stream](OpenedStream s, OpenResult r) {
      EXPECT_FALSE(inside_) << "done ran inside open()";
      ++out.calls;
      out.result = std::move(r);
      out.multiplexed = s.multiplexed();
      out.ws = s.takeWs() != nullptr;
      if (stream && s.multiplexed()) {
        OpenedStream::Mux m = s.takeMux();
        stream->channel = m.channel;
        stream->id = m.id;
        m.channel->setHandler(m.id, stream);
      }
    });
    inside_ = false;
    return id;
  }

  std::unique_ptr<StreamOpener> opener_;
  bool inside_ = false;  // open() is running
};

TEST_F(StreamOpenerMuxTest, OpenIsAcceptedAndBytesFlowBothWaysToANormalEnd) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  EXPECT_EQ(hub_.protocols, std::vector<std::string>{"devstreams.mux.1"});
  Outcome o;
  MuxStream s;
  open(o, kToLanHost, &s);
  ASSERT_TRUE(until([&] { return o.calls > 0; }));
  EXPECT_EQ(o.result.status, 200) << o.result.code << " " << o.result.message;
  EXPECT_TRUE(o.multiplexed);
  EXPECT_FALSE(o.ws);
  ASSERT_NE(s.channel, nullptr);
  EXPECT_EQ(s.id % 2, 1u);  // the client's ids are odd
  EXPECT_EQ(o.result.streamId, "mux:" + std::to_string(s.id));
  EXPECT_EQ(opener_->viaMux(), 1u);
  EXPECT_EQ(opener_->viaChannel(), 0u);
  EXPECT_EQ(opener_->viaPost(), 0u);
  const MuxFrame* req = hub_.last(FrameType::Open);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->request,
            (mux::OpenRequest{"dev01", "192.168.1.10", 80, "", "", "alice", "cam.lab"}));
  EXPECT_TRUE(hub_.texts.empty());  // no JSON request on a multiplexed channel

  // Daemon -> hub: bytes, then EOF.
  s.out = "hello";
  s.channel->wantWrite(s.id);
  s.channel->eof(s.id);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Eof) == 1; }));
  EXPECT_EQ(hub_.dataOf(s.id), "hello");
  // Hub -> daemon: bytes, EOF, CLOSE 1000, answered with CLOSE 1000.
  WsConnection& ch = *hub_.channels.at(0);
  std::string frames;
  mux::appendData(frames, s.id, reinterpret_cast<const uint8_t*>("world"), 5);
  mux::appendEof(frames, s.id);
  FakeHub::send(ch, frames);
  ASSERT_TRUE(until([&] { return s.eof; }));
  EXPECT_EQ(s.in, "world");
  hub_.closeStream(ch, s.id, mux::close_code::Normal);
  ASSERT_TRUE(until([&] { return s.closed.has_value(); }));
  EXPECT_EQ(*s.closed, mux::close_code::Normal);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Close) == 1; }));
  EXPECT_EQ(hub_.last(FrameType::Close)->closeCode, mux::close_code::Normal);
  EXPECT_EQ(opener_->inFlight(), 0u);
  EXPECT_TRUE(hub_.muxError.empty()) << hub_.muxError;
}

TEST_F(StreamOpenerMuxTest, SocketTargetsGoWithoutHostAndPort) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  Outcome o;
  open(o, kToSocket);
  ASSERT_TRUE(until([&] { return o.calls > 0; }));
  const MuxFrame* req = hub_.last(FrameType::Open);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->request,
            (mux::OpenRequest{"dev01", "", 0, "/run/app.sock", "", "", "forward :5432"}));
  // Not taken inside `done`: the stream is closed at once.
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Close) == 1; }));
  EXPECT_EQ(hub_.last(FrameType::Close)->closeCode, mux::close_code::GoingAway);
}

TEST_F(StreamOpenerMuxTest, RejectsGiveThePostEndpointsStatusAndCode) {
  hub_.onOpen = [](WsConnection& ws, const MuxFrame& f) {
    std::string out;
    if (f.request.device == "offline01") {
      mux::appendReject(out, f.stream, proto::Reject::DeviceOffline,
                        "device 'offline01' is offline");
    } else if (f.request.port == 1) {
      mux::appendReject(out, f.stream, proto::Reject::PortNotAllowed, "127.0.0.1:1 is not allowed");
    } else {
      mux::appendReject(out, f.stream, proto::Reject::Other, "something new", "brand-new-code");
    }
    FakeHub::send(ws, out);
  };
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  Outcome port, offline, other;
  open(port, {"dev01", "127.0.0.1", 1, "", "", ""});
  open(offline, {"offline01", "127.0.0.1", 22, "", "", ""});
  open(other, {"dev01", "127.0.0.1", 22, "", "", ""});
  ASSERT_TRUE(until([&] { return port.calls && offline.calls && other.calls; }));
  test::spin(loop_);
  EXPECT_EQ(port.calls, 1);
  EXPECT_EQ(port.result.status, 403);
  EXPECT_EQ(port.result.code, "port-not-allowed");
  EXPECT_EQ(port.result.message, "127.0.0.1:1 is not allowed");
  EXPECT_FALSE(port.multiplexed || port.ws);
  EXPECT_EQ(offline.result.status, 503);
  EXPECT_EQ(offline.result.code, "device_offline");
  EXPECT_EQ(other.result.status, 502);  // a code unknown here: as the hub answers "rejected"
  EXPECT_EQ(other.result.code, "brand-new-code");
  EXPECT_EQ(opener_->viaPost(), 0u);
  EXPECT_TRUE(opener_->multiplexed());
}

TEST_F(StreamOpenerMuxTest, CancelSendsCloseAndDoneNeverRuns) {
  hub_.onOpen = [](WsConnection&, const MuxFrame&) {};  // no answer
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  Outcome o;
  uint64_t id = open(o, kToLanHost);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Open) == 1; }));
  uint32_t stream = hub_.last(FrameType::Open)->stream;
  // The hub's ACCEPT crosses the cancel: ignored.
  std::string out;
  mux::appendAccept(out, stream, 65536);
  FakeHub::send(*hub_.channels.at(0), out);
  opener_->cancel(id);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Close) == 1; }));
  EXPECT_EQ(hub_.last(FrameType::Close)->stream, stream);
  EXPECT_EQ(hub_.last(FrameType::Close)->closeCode, mux::close_code::GoingAway);
  test::spin(loop_, 50);
  EXPECT_EQ(o.calls, 0);
  EXPECT_EQ(opener_->inFlight(), 0u);
  EXPECT_TRUE(opener_->multiplexed());
}

TEST_F(StreamOpenerMuxTest, HubWithoutTheSubprotocolGetsJsonRequests) {
  hub_.mux = false;
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->connected(); }));
  EXPECT_EQ(hub_.protocols, std::vector<std::string>{"devstreams.mux.1"});  // offered
  EXPECT_FALSE(opener_->multiplexed());
  Outcome o;
  uint64_t id = open(o, kToLanHost);
  ASSERT_TRUE(until([&] { return !hub_.texts.empty(); }));
  EXPECT_NE(hub_.texts[0].find("\"stream_request\""), std::string::npos);
  EXPECT_EQ(opener_->viaChannel(), 1u);
  EXPECT_EQ(opener_->viaMux(), 0u);
  opener_->cancel(id);
}

TEST_F(StreamOpenerMuxTest, MultiplexOffOffersNothing) {
  makeOpener(false);
  ASSERT_TRUE(until([&] { return opener_->connected(); }));
  EXPECT_EQ(hub_.protocols, std::vector<std::string>{""});
  EXPECT_FALSE(opener_->multiplexed());
}

TEST_F(StreamOpenerMuxTest, LostChannelSendsWaitingOpensByPostAndStreamsEnd) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  Outcome accepted;
  MuxStream s;
  open(accepted, kToLanHost, &s);
  ASSERT_TRUE(until([&] { return accepted.calls > 0; }));
  ASSERT_TRUE(accepted.multiplexed);
  hub_.onOpen = [](WsConnection&, const MuxFrame&) {};  // the next open waits
  Outcome waiting;
  open(waiting, kToSocket);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Open) == 2; }));
  hub_.channels.at(0)->close(1001, "hub going away");
  // The accepted stream ends with 1001; the waiting open goes by POST (the fake hub's grant
  // leads nowhere, so its stream side fails).
  ASSERT_TRUE(until([&] { return s.closed.has_value() && waiting.calls > 0; }));
  EXPECT_EQ(*s.closed, mux::close_code::GoingAway);
  EXPECT_EQ(opener_->viaPost(), 1u);
  EXPECT_EQ(hub_.requests.back().rfind("POST /api/v1/devices/dev01/streams", 0), 0u)
      << hub_.requests.back();
  EXPECT_EQ(waiting.calls, 1);
  EXPECT_EQ(waiting.result.code, "hub_stream_failed");
  // The channel comes back, multiplexed again.
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  EXPECT_EQ(hub_.channels.size(), 2u);
}

TEST_F(StreamOpenerMuxTest, OpensBeyondTheChannelsLimitsGoByPost) {
  hub_.onOpen = [](WsConnection&, const MuxFrame&) {};  // no answer
  makeOpener(true, /*maxPendingOpens=*/1);
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  Outcome first, second;
  uint64_t id = open(first, kToLanHost);
  open(second, kToLanHost);
  EXPECT_EQ(opener_->viaMux(), 1u);
  EXPECT_EQ(opener_->viaPost(), 1u);
  ASSERT_TRUE(until([&] { return second.calls > 0; }));
  EXPECT_EQ(hub_.count(FrameType::Open), 1u);
  EXPECT_EQ(hub_.requests.back(), "POST /api/v1/devices/dev01/streams");
  opener_->cancel(id);
}

TEST_F(StreamOpenerMuxTest, WhileDownOpensGoByPost) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  hub_.refuse = 503;  // the reconnect is refused: the channel stays down
  hub_.channels.at(0)->close(1001, "hub going away");
  ASSERT_TRUE(until([&] { return !opener_->connected(); }));
  Outcome o;
  open(o, kToLanHost);
  ASSERT_TRUE(until([&] { return o.calls > 0; }));
  EXPECT_EQ(opener_->viaPost(), 1u);
  EXPECT_EQ(opener_->viaMux(), 0u);
  EXPECT_EQ(o.result.status, 503);
}

TEST_F(StreamOpenerMuxTest, WarmPoolRestsWhileTheChannelMultiplexes) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  EXPECT_TRUE(opener_->pool().standby());
  EXPECT_EQ(opener_->pool().held(), 0u);
  hub_.refuse = 503;
  hub_.channels.at(0)->close(1001, "hub going away");
  ASSERT_TRUE(until([&] { return !opener_->connected(); }));
  EXPECT_FALSE(opener_->pool().standby());
  EXPECT_GE(opener_->pool().held(), 1u);  // refilling for stream sides
}

TEST_F(StreamOpenerMuxTest, HubOpensAreRefusedAndProtocolErrorsDropTheChannel) {
  makeOpener();
  ASSERT_TRUE(until([&] { return opener_->multiplexed(); }));
  WsConnection& ch = *hub_.channels.at(0);
  std::string out;
  mux::appendOpen(out, 2, 65536, {"", "127.0.0.1", 22, "", "", "", ""});
  FakeHub::send(ch, out);
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Reject) == 1; }));
  EXPECT_EQ(hub_.last(FrameType::Reject)->stream, 2u);
  EXPECT_TRUE(opener_->multiplexed());
  // An OPEN with the client's own parity is a channel error: closed, then redialled.
  out.clear();
  mux::appendOpen(out, 3, 65536, {"", "127.0.0.1", 22, "", "", "", ""});
  FakeHub::send(ch, out);
  ASSERT_TRUE(until([&] { return hub_.channelsClosed() == 1; }));
  ASSERT_TRUE(until([&] { return opener_->multiplexed() && hub_.channels.size() == 2; }));
}

}  // namespace
}  // namespace ds::hubclient
