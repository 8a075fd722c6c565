// Tests for MuxChannel and MuxPump together over a real event loop: two channels on the two ends
// of a WebSocket over a socketpair (the client side opens, the server side accepts), each stream
// pumped to a loopback TCP pair whose far ends the test drives as the client application and the
// target. Covers bytes both ways with half-close and the clean end (FIN), resets, a slow reader
// that stops only its own stream with bounded buffering, a channel that fails, and the Eof that
// a Close must not overtake.
#include "forwarder/mux_pump.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/mux.h"
#include "common/mux_channel.h"
#include "common/ws_conn.h"
#include "support/bytes.h"
#include "support/loop_test.h"
#include "support/socket_end.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

using test::randomBytes;

// One end of a TCP pair that the test drives as the client application or the target.
using App = test::SocketEnd;

// A stream end the test owns until its pump exists: the opener's handler.
struct Opener : mux::StreamHandler {
  bool accepted = false, rejected = false, closed = false;
  std::string code;
  void onMuxAccepted() override { accepted = true; }
  void onMuxRejected(proto::Reject, std::string_view codeText, std::string_view) override {
    rejected = true;
    code = codeText;
  }
  void onMuxData(const uint8_t*, size_t) override {}
  void onMuxEof() override {}
  void onMuxClosed(uint16_t, std::string_view) override { closed = true; }
  size_t onMuxPull(uint8_t*, size_t) override { return 0; }
};

class MuxPumpTest : public test::LoopTest,
                    public mux::MuxChannel::Owner,
                    public WsConnection::Callbacks {
 protected:
  MuxPumpTest() {
    int sp[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    clientWs_ = std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, sp[0]),
                                               WsConnection::Role::Client, WsLimits{}, this);
    serverWs_ = std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, sp[1]),
                                               WsConnection::Role::Server, WsLimits{}, &server_);
    server_.test = this;
    client_ =
        std::make_unique<mux::MuxChannel>(loop_, mux::Role::Client, limits_, *clientWs_, *this);
    serverCh_ =
        std::make_unique<mux::MuxChannel>(loop_, mux::Role::Server, limits_, *serverWs_, server_);
    clientWs_->start();
    serverWs_->start();
  }

  ~MuxPumpTest() override {
    pumps_.clear();
    client_.reset();
    serverCh_.reset();
  }

  // The server end: accepts every open with a pump to a fresh TCP pair (the target).
  struct Server : mux::MuxChannel::Owner, WsConnection::Callbacks {
    MuxPumpTest* test = nullptr;
    std::string rejectCode;  // when set, opens are refused with it
    void onMuxOpen(uint32_t id, const mux::OpenRequest& req) override {
      if (!rejectCode.empty()) {
        test->serverCh_->reject(id, proto::rejectFromName(rejectCode), "refused: " + req.host);
        return;
      }
      test->targets_[id] = test->startPump(*test->serverCh_, id);
      test->serverCh_->accept(id, nullptr);
    }
    void onMuxFailed(uint16_t, const std::string& reason) override { test->failed_ = reason; }
    void onWsData(evbuffer* p) override { test->serverCh_->receive(p); }
    void onWsText(std::string) override {}
    void onWsClosed(uint16_t, const std::string&) override {
      test->serverCh_->shutdown(mux::close_code::GoingAway, "gone");
    }
    void onWsDrained() override { test->serverCh_->drained(); }
  };

  // The client WebSocket's callbacks.
  void onWsData(evbuffer* p) override { client_->receive(p); }
  void onWsText(std::string) override {}
  void onWsClosed(uint16_t, const std::string&) override {
    client_->shutdown(mux::close_code::GoingAway, "gone");
  }
  void onWsDrained() override { client_->drained(); }
  void onMuxOpen(uint32_t id, const mux::OpenRequest&) override {
    client_->reject(id, proto::Reject::BadRequest, "clients accept nothing");
  }
  void onMuxFailed(uint16_t, const std::string& reason) override { failed_ = reason; }

  // A pump for stream `id` of `ch` on one end of a new TCP pair; the other end is the App.
  std::unique_ptr<App> startPump(mux::MuxChannel& ch, uint32_t id) {
    int fds[2];
    test::tcpPair(fds);
    auto pump =
        std::make_unique<MuxPump>(loop_, newSocketBufferEvent(loop_, fds[0]), ch, id, 256 * 1024,
                                  [this](MuxPump* p, const std::string& why) { ended_[p] = why; });
    pump->start();
    pumps_.push_back(std::move(pump));
    return std::make_unique<App>(fds[1]);
  }

  // Opens a stream from the client end and pumps it; the client application's App.
  std::unique_ptr<App> openStream(uint32_t* idOut = nullptr) {
    Opener opener;
    uint32_t id = client_->open({"", "127.0.0.1", 22, "", "ops", "", ""}, &opener);
    EXPECT_NE(id, 0u);
    EXPECT_TRUE(runUntil([&] { return opener.accepted || opener.rejected; }));
    EXPECT_TRUE(opener.accepted);
    if (idOut) *idOut = id;
    return startPump(*client_, id);
  }

  // A stream opened and stepped by drive(): the client application's end and the target's.
  struct Ends {
    std::unique_ptr<App> app;
    App& target;
  };
  Ends openDriven() {
    uint32_t id = 0;
    auto app = openStream(&id);
    apps_.push_back(app.get());
    return {std::move(app), *targets_.at(id)};
  }

  bool drive(const std::function<bool()>& done) {
    return runUntil([&] {
      for (auto& [id, t] : targets_) t->step();
      for (App* a : apps_) a->step();
      return done();
    });
  }

  size_t endedWith(const std::string& why) const {
    size_t n = 0;
    for (auto& [p, w] : ended_) n += w == why;
    return n;
  }

  mux::Limits limits_;
  std::unique_ptr<WsConnection> clientWs_, serverWs_;
  Server server_;
  std::unique_ptr<mux::MuxChannel> client_, serverCh_;
  std::vector<std::unique_ptr<MuxPump>> pumps_;
  std::map<uint32_t, std::unique_ptr<App>> targets_;
  std::vector<App*> apps_;
  std::map<MuxPump*, std::string> ended_;
  std::string failed_;
};

TEST_F(MuxPumpTest, BytesBothWaysThenEofEachWayEndCleanlyWithFin) {
  auto [app, target] = openDriven();
  app->out = randomBytes(3 << 20, 1);
  target.out = randomBytes(2 << 20, 2);
  app->finAfterSend = target.finAfterSend = true;
  ASSERT_TRUE(drive([&] {
    return app->gotFin && target.gotFin && ended_.size() == 2 &&
           client_->session().streams() == 0 && serverCh_->session().streams() == 0;
  }));
  EXPECT_EQ(target.in, app->out);
  EXPECT_EQ(app->in, target.out);
  // The side that finished first closed with 1000; the other saw that Close after both Eofs.
  EXPECT_EQ(endedWith("done") + endedWith("stream closed (1000 done)"), 2u);
  for (auto& [p, why] : ended_) EXPECT_EQ(why.find("reset"), std::string::npos) << why;
  EXPECT_FALSE(app->gotReset || target.gotReset);
  EXPECT_TRUE(failed_.empty());
  EXPECT_EQ(client_->session().streams(), 0u);
}

TEST_F(MuxPumpTest, HalfCloseKeepsTheOtherDirectionOpen) {
  auto [app, target] = openDriven();
  app->out = "request";
  app->finAfterSend = true;
  ASSERT_TRUE(drive([&] { return target.gotFin; }));
  EXPECT_EQ(target.in, "request");
  // The target still answers after the client's FIN, and the answer arrives whole.
  target.out = randomBytes(1 << 20, 3);
  target.finAfterSend = true;
  ASSERT_TRUE(drive([&] { return app->gotFin; }));
  EXPECT_EQ(app->in, target.out);
}

TEST_F(MuxPumpTest, ResetOnOneSideResetsTheOther) {
  auto [app, target] = openDriven();
  app->out = "x";
  ASSERT_TRUE(drive([&] { return target.in == "x"; }));
  linger l{1, 0};
  ::setsockopt(app->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(app->fd);
  app->fd = -1;
  apps_.clear();
  ASSERT_TRUE(drive([&] { return target.gotReset || target.gotFin; }));
  EXPECT_TRUE(target.gotReset) << "a cut stream must not look complete";
}

TEST_F(MuxPumpTest, SlowReaderStopsOnlyItsOwnStreamWithBoundedBuffering) {
  uint32_t slowId = 0, fastId = 0;
  auto slow = openStream(&slowId);
  auto fast = openStream(&fastId);
  apps_ = {slow.get(), fast.get()};
  targets_.at(slowId)->reading = false;  // this target never reads
  slow->out = randomBytes(64 << 20, 4);
  fast->out = randomBytes(8 << 20, 5);
  fast->finAfterSend = true;
  ASSERT_TRUE(drive([&] { return targets_.at(fastId)->gotFin; }));
  EXPECT_EQ(targets_.at(fastId)->in, fast->out);
  // The slow stream's bytes stop within its window and the pumps' watermarks plus the kernel's
  // socket buffers: far from the 64 MiB offered.
  EXPECT_LT(slow->sent, size_t(24) << 20);
  EXPECT_LE(serverCh_->session().committed(), limits_.budget);
}

TEST_F(MuxPumpTest, RejectedOpenReportsTheCode) {
  server_.rejectCode = "port-not-allowed";
  Opener opener;
  uint32_t id = client_->open({"", "10.0.0.1", 23, "", "", "", ""}, &opener);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(runUntil([&] { return opener.rejected; }));
  EXPECT_EQ(opener.code, "port-not-allowed");
}

TEST_F(MuxPumpTest, ChannelFailureEndsEveryStreamWithAReset) {
  auto [app, target] = openDriven();
  // A frame with a stream id's top bit set is a channel protocol error at the server.
  std::string bad(8, '\0');
  bad[0] = 0x4;
  bad[4] = char(0x80);
  EvBufferPtr msg(evbuffer_new());
  evbuffer_add(msg.get(), bad.data(), bad.size());
  clientWs_->sendBinary(msg.get());
  ASSERT_TRUE(drive([&] { return target.gotReset && app->gotReset; }));
  EXPECT_FALSE(failed_.empty());
}

TEST_F(MuxPumpTest, PumpFreedEarlyClosesItsStream) {
  auto [app, target] = openDriven();
  pumps_.front().reset();  // the client end's pump, freed without finishing
  ASSERT_TRUE(drive([&] { return target.gotReset; }));
  EXPECT_TRUE(app->gotReset || app->fd >= 0);
}

}  // namespace
}  // namespace ds
