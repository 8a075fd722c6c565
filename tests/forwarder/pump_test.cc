// Tests for StreamPump over real libevent loops on socketpairs: a "TCP" socketpair on one side, a
// WebSocket socketpair on the other whose far end is a second WsConnection (or raw frames).
// Covers bytes both ways, half-close in either direction via {"type":"eof"}, the end of the pump
// (both eofs, stream closed, TCP failure), how the TCP peer learns of it (FIN only after a normal
// end, a reset otherwise; those tests use a loopback TCP pair, which has resets), and
// backpressure in both directions with bounded buffering.
#include "forwarder/pump.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ws_conn.h"
#include "common/ws_frame.h"
#include "support/bytes.h"
#include "support/run_loop.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

using test::appendAll;
using test::randomBytes;
using test::writable;

using Role = WsConnection::Role;

// A server-to-client frame (unmasked), as the far end of the pump's client connection sends it.
std::string serverFrame(ws::Opcode op, std::string_view payload) {
  uint8_t hdr[ws::kMaxHeaderLen];
  size_t h = ws::encodeHeader(hdr, true, op, payload.size(), nullptr);
  return std::string(reinterpret_cast<char*>(hdr), h) + std::string(payload);
}

// The far end of the WebSocket: records everything it is told.
struct WsRecorder : WsConnection::Callbacks {
  std::string data;
  std::vector<std::string> texts;
  std::vector<size_t> dataAtText;  // bytes received when each text message arrived
  int closedCode = -1;
  std::string closedReason;
  int drained = 0;

  void onWsData(evbuffer* payload) override { appendAll(data, payload); }
  void onWsText(std::string message) override {
    texts.push_back(std::move(message));
    dataAtText.push_back(data.size());
  }
  void onWsClosed(uint16_t code, const std::string& reason) override {
    closedCode = code;
    closedReason = reason;
  }
  void onWsDrained() override { ++drained; }
};

// The far end of the TCP connection.
struct TcpPeer {
  BufferEventPtr bev;
  std::string in;
  bool eof = false;
  size_t inAtEof = 0;

  static void onRead(bufferevent* b, void* arg) {
    appendAll(static_cast<TcpPeer*>(arg)->in, bufferevent_get_input(b));
  }
  static void onEvent(bufferevent* b, short what, void* arg) {
    auto* self = static_cast<TcpPeer*>(arg);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      onRead(b, arg);
      if (!self->eof) self->inAtEof = self->in.size();
      self->eof = true;
    }
  }
  int fd() const { return bufferevent_getfd(bev.get()); }
  void startReading() { bufferevent_enable(bev.get(), EV_READ); }
  void stopReading() { bufferevent_disable(bev.get(), EV_READ); }
  void write(std::string_view s) { bufferevent_write(bev.get(), s.data(), s.size()); }
  size_t pending() const { return evbuffer_get_length(bufferevent_get_output(bev.get())); }
};

// Largest length an evbuffer reached, measured on every change.
struct MaxLength {
  size_t max = 0;
  evbuffer* buf = nullptr;
  evbuffer_cb_entry* entry = nullptr;

  ~MaxLength() { unwatch(); }
  void watch(evbuffer* b) {
    buf = b;
    max = evbuffer_get_length(b);
    entry = evbuffer_add_cb(b, &MaxLength::onChange, this);
  }
  void unwatch() {
    if (entry) evbuffer_remove_cb_entry(buf, entry);
    entry = nullptr;
  }
  static void onChange(evbuffer* b, const evbuffer_cb_info* info, void* arg) {
    auto* self = static_cast<MaxLength*>(arg);
    self->max = std::max({self->max, evbuffer_get_length(b), info->orig_size + info->n_added});
  }
};

std::pair<int, int> socketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  evutil_make_socket_nonblocking(fds[0]);
  evutil_make_socket_nonblocking(fds[1]);
  return {fds[0], fds[1]};
}

std::pair<int, int> tcpPair() {
  int fds[2] = {-1, -1};
  test::tcpPair(fds);
  if (fds[0] < 0 || fds[1] < 0) std::abort();
  evutil_make_socket_nonblocking(fds[0]);
  evutil_make_socket_nonblocking(fds[1]);
  return {fds[0], fds[1]};
}

// How the TCP peer saw its connection end.
enum class TcpEnd { None, Fin, Reset };

// One pump with both far ends. The pump's WebSocket is the client side (as in the daemon and
// the agent); the far end is a server WsConnection unless a test writes raw frames instead.
// With `realTcp` the TCP side is a loopback TCP pair whose far end the test reads and writes
// itself (peerTcpFd), to tell a FIN from a reset.
class Rig {
 public:
  explicit Rig(size_t high = 256 * 1024, bool wsPeer = true, bool realTcp = false)
      : guard_(loop_, [this] {
          timedOut_ = true;
          event_base_loopbreak(loop_.base());
        }) {
    std::signal(SIGPIPE, SIG_IGN);
    auto [pumpTcp, peerTcp] = realTcp ? tcpPair() : socketPair();
    auto [pumpWs, peerWs] = socketPair();
    pumpTcpFd = pumpTcp;
    peerWsFd = peerWs;
    if (realTcp) {
      peerTcpFd = peerTcp;
    } else {
      tcp.bev = newSocketBufferEvent(loop_, peerTcp);
      bufferevent_setcb(tcp.bev.get(), &TcpPeer::onRead, nullptr, &TcpPeer::onEvent, &tcp);
      bufferevent_enable(tcp.bev.get(), EV_READ | EV_WRITE);
    }

    BufferEventPtr tcpBev = newSocketBufferEvent(loop_, pumpTcp);
    BufferEventPtr wsBev = newSocketBufferEvent(loop_, pumpWs);
    pumpTcpBev = tcpBev.get();
    pumpWsBev = wsBev.get();
    ws_ =
        std::make_unique<WsConnection>(loop_, std::move(wsBev), Role::Client, WsLimits{}, nullptr);
    high_ = high;
    tcpBev_ = std::move(tcpBev);
    if (wsPeer) {
      peer = std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, peerWs),
                                            Role::Server, WsLimits{}, &rec);
      peer->start();
    } else {
      raw.bev = newSocketBufferEvent(loop_, peerWs);
      bufferevent_setcb(raw.bev.get(), &TcpPeer::onRead, nullptr, &TcpPeer::onEvent, &raw);
      bufferevent_enable(raw.bev.get(), EV_READ | EV_WRITE);
    }
    // Only ends a test that would otherwise hang; firing is a failure.
    guard_.arm(std::chrono::seconds(60));
  }

  ~Rig() {
    pump.reset();
    ws_.reset();
    peer.reset();
    if (peerTcpFd >= 0) ::close(peerTcpFd);
  }

  // Turns the loop until `done` holds without blocking in it (the test's own TCP socket is not
  // in the loop): a turn with nothing to do waits briefly on that socket instead.
  bool drive(const std::function<bool()>& done) {
    return test::driveAround(loop_, timedOut_, {peerTcpFd}, done);
  }

  // Reads the real TCP peer until its connection ends; returns how it ended.
  TcpEnd readTcpToEnd(std::string& got) {
    TcpEnd end = TcpEnd::None;
    char buf[65536];
    drive([&] {
      ssize_t n = ::read(peerTcpFd, buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        end = TcpEnd::Fin;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        EXPECT_EQ(errno, ECONNRESET) << std::strerror(errno);
        end = TcpEnd::Reset;
      }
      return end != TcpEnd::None;
    });
    return end;
  }

  void startPump() {
    pump = std::make_unique<StreamPump>(loop_, std::move(tcpBev_), std::move(ws_), high_,
                                        [this](StreamPump* p, const std::string& reason) {
                                          EXPECT_EQ(p, pump.get());
                                          ++doneCount;
                                          doneReason = reason;
                                          if (freeOnDone) loop_.deferDelete(std::move(pump));
                                        });
    pump->start();
  }

  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }

  void spin(int turns = 20) { test::spin(loop_, turns); }

  void peerSend(const std::string& data) {
    EvBufferPtr buf(evbuffer_new());
    evbuffer_add(buf.get(), data.data(), data.size());
    peer->sendBinary(buf.get());
  }

  // Writes straight into the socket and half-closes it: the pump sees the bytes, then EOF.
  void tcpSendAndShutdown(std::string_view s) {
    ASSERT_TRUE(runUntil([&] { return tcp.pending() == 0; }));
    if (!s.empty()) {
      ASSERT_EQ(::write(tcp.fd(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
    }
    ::shutdown(tcp.fd(), SHUT_WR);
  }

  bool pumpWsReading() const { return (bufferevent_get_enabled(pumpWsBev) & EV_READ) != 0; }
  bool pumpTcpReading() const { return (bufferevent_get_enabled(pumpTcpBev) & EV_READ) != 0; }

  Loop loop_;

 private:
  Timer guard_;
  bool timedOut_ = false;
  std::unique_ptr<WsConnection> ws_;
  BufferEventPtr tcpBev_;
  size_t high_;

 public:
  TcpPeer tcp;
  TcpPeer raw;  // the WebSocket far end as raw bytes, when there is no `peer`
  WsRecorder rec;
  std::unique_ptr<WsConnection> peer;
  std::unique_ptr<StreamPump> pump;
  int pumpTcpFd = -1;
  int peerTcpFd = -1;  // the test's end of a real TCP pair
  int peerWsFd = -1;
  bufferevent* pumpTcpBev = nullptr;  // owned by the pump, valid until it finishes
  bufferevent* pumpWsBev = nullptr;
  int doneCount = 0;
  std::string doneReason;
  bool freeOnDone = false;  // free the pump from its Done callback, as the owners do
};

const std::string kEof(StreamPump::kEofMessage);

TEST(StreamPump, BytesBothWaysArriveIntact) {
  Rig r;
  r.startPump();
  const std::string up = randomBytes(4 << 20, 1);
  const std::string down = randomBytes(3 << 20, 2);
  r.tcp.write(up);
  r.peerSend(down);
  ASSERT_TRUE(
      r.runUntil([&] { return r.rec.data.size() >= up.size() && r.tcp.in.size() >= down.size(); }));
  EXPECT_EQ(r.rec.data.size(), up.size());
  EXPECT_TRUE(r.rec.data == up) << "TCP -> stream bytes differ";
  EXPECT_EQ(r.tcp.in.size(), down.size());
  EXPECT_TRUE(r.tcp.in == down) << "stream -> TCP bytes differ";
  EXPECT_EQ(r.pump->bytesToStream(), up.size());
  EXPECT_EQ(r.pump->bytesFromStream(), down.size());
  EXPECT_EQ(r.doneCount, 0);
  EXPECT_TRUE(r.rec.texts.empty());
  EXPECT_FALSE(r.tcp.eof);
}

TEST(StreamPump, BytesBufferedBeforeStartArePumped) {
  Rig r;
  r.tcp.write("before start");
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.pending() == 0; }));
  // Let the pump's TCP bufferevent read them before the pump exists.
  bufferevent_enable(r.pumpTcpBev, EV_READ);
  ASSERT_TRUE(
      r.runUntil([&] { return evbuffer_get_length(bufferevent_get_input(r.pumpTcpBev)) == 12; }));
  bufferevent_disable(r.pumpTcpBev, EV_READ);
  r.startPump();
  ASSERT_TRUE(r.runUntil([&] { return r.rec.data.size() >= 12; }));
  EXPECT_EQ(r.rec.data, "before start");
}

TEST(StreamPump, TcpHalfCloseBecomesEofAndTheOtherDirectionStillFlows) {
  Rig r;
  r.startPump();
  r.tcpSendAndShutdown("hello");
  ASSERT_TRUE(r.runUntil([&] { return !r.rec.texts.empty(); }));
  ASSERT_EQ(r.rec.texts.size(), 1u);
  EXPECT_EQ(r.rec.texts[0], kEof);
  EXPECT_EQ(r.rec.dataAtText[0], 5u) << "eof must follow the bytes before it";
  EXPECT_EQ(r.rec.data, "hello");

  const std::string down = randomBytes(1 << 20, 3);
  r.peerSend(down);
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.in.size() >= down.size(); }));
  EXPECT_TRUE(r.tcp.in == down);
  r.spin();
  EXPECT_EQ(r.doneCount, 0);
  EXPECT_FALSE(r.tcp.eof);
  EXPECT_TRUE(r.peer->open());
  EXPECT_EQ(r.rec.texts.size(), 1u);
}

TEST(StreamPump, StreamEofHalfClosesTcpAfterPendingBytes) {
  Rig r(64 * 1024);
  r.startPump();
  const std::string down = randomBytes(2 << 20, 4);
  r.peerSend(down);
  r.peer->sendText(kEof);
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.eof; }));
  EXPECT_EQ(r.tcp.inAtEof, down.size());
  EXPECT_TRUE(r.tcp.in == down);

  // The TCP peer may still talk after our half-close.
  r.tcp.write("after");
  ASSERT_TRUE(r.runUntil([&] { return r.rec.data.size() >= 5; }));
  EXPECT_EQ(r.rec.data, "after");
  EXPECT_EQ(r.doneCount, 0);
}

TEST(StreamPump, BothEofsTcpFirstFinishWithDoneAndClose1000) {
  Rig r;
  r.startPump();
  r.tcpSendAndShutdown("up");
  ASSERT_TRUE(r.runUntil([&] { return !r.rec.texts.empty(); }));
  r.peerSend("down");
  r.peer->sendText(kEof);
  ASSERT_TRUE(r.runUntil([&] { return r.doneCount > 0 && r.rec.closedCode != -1 && r.tcp.eof; }));
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_EQ(r.doneReason, "done");
  EXPECT_EQ(r.rec.closedCode, ws::close_code::Normal);
  EXPECT_EQ(r.rec.data, "up");
  EXPECT_EQ(r.tcp.in, "down");
  r.spin();
  EXPECT_EQ(r.doneCount, 1);
}

TEST(StreamPump, BothEofsStreamFirstFinishWithDoneAndClose1000) {
  Rig r;
  r.startPump();
  r.peerSend("down");
  r.peer->sendText(kEof);
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.eof; }));
  EXPECT_EQ(r.doneCount, 0);
  r.tcpSendAndShutdown("up");
  ASSERT_TRUE(r.runUntil([&] { return r.doneCount > 0 && r.rec.closedCode != -1; }));
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_EQ(r.doneReason, "done");
  EXPECT_EQ(r.rec.closedCode, ws::close_code::Normal);
  ASSERT_EQ(r.rec.texts.size(), 1u);
  EXPECT_EQ(r.rec.texts[0], kEof);
  EXPECT_EQ(r.rec.data, "up");
  EXPECT_EQ(r.tcp.in, "down");
}

TEST(StreamPump, OwnerMayFreeThePumpFromDone) {
  Rig r;
  r.freeOnDone = true;
  r.startPump();
  r.peerSend("down");
  r.peer->sendText(kEof);
  r.tcpSendAndShutdown("up");
  ASSERT_TRUE(r.runUntil([&] { return r.doneCount > 0 && r.rec.closedCode != -1 && r.tcp.eof; }));
  EXPECT_EQ(r.doneReason, "done");
  EXPECT_EQ(r.pump, nullptr);
  r.spin();
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_EQ(r.tcp.in, "down");
  EXPECT_EQ(r.rec.data, "up");
}

bool isPrefix(const std::string& got, const std::string& of) {
  return got.size() <= of.size() && of.compare(0, got.size(), got) == 0;
}

TEST(StreamPump, StreamDroppedWithoutCloseResetsTheTcpPeer) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  const std::string down = randomBytes(100 * 1024, 5);
  r.peerSend(down);
  // The far end goes away without a close handshake (the hub or the link died).
  r.peer.reset();
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Reset) << "a cut stream must not look complete";
  EXPECT_TRUE(isPrefix(got, down)) << "what arrived must be a prefix of what was sent";
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_NE(r.doneReason.find("1006"), std::string::npos) << r.doneReason;
}

TEST(StreamPump, StreamClosedByPeerWith1001ResetsTheTcpPeer) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  const std::string down = randomBytes(300 * 1024, 6);
  r.peerSend(down);
  r.peer->close(ws::close_code::GoingAway, "bye");
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Reset);
  EXPECT_TRUE(isPrefix(got, down));
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_EQ(r.doneReason.rfind("stream closed (1001 bye)", 0), 0u) << r.doneReason;
}

// A 1000 is a normal end only after an eof each way: without them the data was cut short.
TEST(StreamPump, Close1000WithoutEofsResetsTheTcpPeer) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  r.peerSend("partial");
  r.peer->close(ws::close_code::Normal, "done");
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Reset);
  EXPECT_TRUE(isPrefix(got, "partial"));
}

TEST(StreamPump, Close1000AfterOnlyTheStreamEofResetsTheTcpPeer) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  r.peerSend("all of it");
  r.peer->sendText(kEof);
  r.peer->close(ws::close_code::Normal, "done");
  std::string got;
  // The TCP peer never half-closed: its direction was cut.
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Reset);
}

// The normal end through the far end's close: the TCP peer half-closed first and reads slowly,
// so the far end's bytes, eof and close 1000 arrive while the pump's TCP output is still full.
// All bytes are delivered, then FIN.
TEST(StreamPump, Close1000AfterBothEofsDeliversEverythingThenFin) {
  Rig r(64 * 1024, true, /*realTcp=*/true);
  r.startPump();
  ASSERT_EQ(::write(r.peerTcpFd, "up", 2), 2);
  ::shutdown(r.peerTcpFd, SHUT_WR);
  ASSERT_TRUE(r.drive([&] { return !r.rec.texts.empty(); }));
  EXPECT_EQ(r.rec.texts[0], kEof);
  const std::string down = randomBytes(2 << 20, 11);
  r.peerSend(down);
  r.peer->sendText(kEof);
  r.peer->close(ws::close_code::Normal, "done");
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Fin) << r.doneReason;
  EXPECT_EQ(got.size(), down.size());
  EXPECT_TRUE(got == down);
  EXPECT_EQ(r.rec.data, "up");
  EXPECT_EQ(r.doneCount, 1);
}

TEST(StreamPump, BothEofsEndTheTcpSideWithFin) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  r.peerSend("down");
  r.peer->sendText(kEof);
  ASSERT_EQ(::write(r.peerTcpFd, "up", 2), 2);
  ::shutdown(r.peerTcpFd, SHUT_WR);
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Fin);
  EXPECT_EQ(got, "down");
  ASSERT_TRUE(r.drive([&] { return r.doneCount > 0 && r.rec.closedCode != -1; }));
  EXPECT_EQ(r.doneReason, "done");
  EXPECT_EQ(r.rec.closedCode, ws::close_code::Normal);
  EXPECT_EQ(r.rec.data, "up");
}

TEST(StreamPump, OwnerCloseResetsTheTcpPeer) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  r.pump->close("shutting down");
  std::string got;
  EXPECT_EQ(r.readTcpToEnd(got), TcpEnd::Reset);
  ASSERT_TRUE(r.drive([&] { return r.rec.closedCode != -1; }));
  EXPECT_EQ(r.rec.closedCode, ws::close_code::GoingAway);
}

TEST(StreamPump, TcpPeerResetClosesTheStreamWith1001) {
  Rig r(256 * 1024, true, /*realTcp=*/true);
  r.startPump();
  r.peerSend("some");
  linger l{1, 0};
  ::setsockopt(r.peerTcpFd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(r.peerTcpFd);
  r.peerTcpFd = -1;
  ASSERT_TRUE(r.runUntil([&] { return r.doneCount > 0 && r.rec.closedCode != -1; }));
  EXPECT_EQ(r.rec.closedCode, ws::close_code::GoingAway);
  EXPECT_TRUE(r.rec.texts.empty()) << "a reset is not an eof";
}

TEST(StreamPump, TcpPeerGoneWhileStreamSendsClosesTheStream) {
  Rig r;
  r.startPump();
  // The TCP peer closes completely: the pump sees EOF, then a write error.
  r.tcp.bev.reset();
  ASSERT_TRUE(r.runUntil([&] { return !r.rec.texts.empty(); }));
  EXPECT_EQ(r.rec.texts[0], kEof);
  r.peerSend(randomBytes(1 << 20, 7));
  ASSERT_TRUE(r.runUntil([&] { return r.doneCount > 0 && r.rec.closedCode != -1; }));
  EXPECT_EQ(r.doneCount, 1);
  EXPECT_EQ(r.doneReason, "TCP connection failed");
  EXPECT_EQ(r.rec.closedCode, ws::close_code::GoingAway);
}

TEST(StreamPump, UnknownTextMessageIsIgnored) {
  Rig r;
  r.startPump();
  r.peer->sendText(R"({"type":"something-else"})");
  r.peerSend("still here");
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.in.size() >= 10; }));
  EXPECT_EQ(r.tcp.in, "still here");
  EXPECT_FALSE(r.tcp.eof);
  EXPECT_EQ(r.doneCount, 0);
}

// Stream -> TCP with a TCP peer that does not read: the pump stops reading the WebSocket, so
// what is buffered stays bounded while the far end keeps 8 MiB queued; all of it arrives once
// the peer reads.
TEST(StreamPump, BackpressureFromTcpStopsReadingTheStream) {
  constexpr size_t kHigh = 64 * 1024;
  Rig r(kHigh);
  r.tcp.stopReading();
  MaxLength tcpOut, wsIn;
  tcpOut.watch(bufferevent_get_output(r.pumpTcpBev));
  wsIn.watch(bufferevent_get_input(r.pumpWsBev));
  r.startPump();
  const std::string down = randomBytes(8 << 20, 8);
  r.peerSend(down);

  // Stalled: the pump no longer reads the WebSocket and the far end cannot write any more.
  ASSERT_TRUE(r.runUntil(
      [&] { return !r.pumpWsReading() && r.peer->outputLength() > 0 && !writable(r.peerWsFd); }));
  r.spin();
  EXPECT_FALSE(r.pumpWsReading());
  EXPECT_GT(r.peer->outputLength(), 4u << 20) << "most of the 8 MiB should still be queued";
  EXPECT_LT(r.pump->bytesFromStream(), down.size());
  EXPECT_LE(tcpOut.max, 4 * kHigh);
  EXPECT_LE(wsIn.max, 4 * kHigh);

  r.tcp.startReading();
  ASSERT_TRUE(r.runUntil([&] { return r.tcp.in.size() >= down.size(); }));
  EXPECT_TRUE(r.tcp.in == down);
  EXPECT_LE(tcpOut.max, 4 * kHigh);
  EXPECT_LE(wsIn.max, 4 * kHigh);
  EXPECT_TRUE(r.pumpWsReading());
  EXPECT_EQ(r.doneCount, 0);
  tcpOut.unwatch();
  wsIn.unwatch();
}

// TCP -> stream with a far end that does not read: the pump stops reading TCP.
TEST(StreamPump, BackpressureFromStreamStopsReadingTcp) {
  constexpr size_t kHigh = 64 * 1024;
  Rig r(kHigh);
  r.peer->pauseReading();
  MaxLength wsOut, tcpIn;
  wsOut.watch(bufferevent_get_output(r.pumpWsBev));
  tcpIn.watch(bufferevent_get_input(r.pumpTcpBev));
  r.startPump();
  const std::string up = randomBytes(8 << 20, 9);
  r.tcp.write(up);

  ASSERT_TRUE(r.runUntil(
      [&] { return !r.pumpTcpReading() && r.tcp.pending() > 0 && !writable(r.tcp.fd()); }));
  r.spin();
  EXPECT_FALSE(r.pumpTcpReading());
  EXPECT_GT(r.tcp.pending(), 4u << 20) << "most of the 8 MiB should still be queued";
  EXPECT_LT(r.pump->bytesToStream(), up.size());
  EXPECT_LE(wsOut.max, 4 * kHigh);
  EXPECT_LE(tcpIn.max, 4 * kHigh);

  r.peer->resumeReading();
  ASSERT_TRUE(r.runUntil([&] { return r.rec.data.size() >= up.size(); }));
  EXPECT_TRUE(r.rec.data == up);
  EXPECT_LE(wsOut.max, 4 * kHigh);
  EXPECT_LE(tcpIn.max, 4 * kHigh);
  EXPECT_EQ(r.pump->bytesToStream(), up.size());
  EXPECT_EQ(r.doneCount, 0);
  wsOut.unwatch();
  tcpIn.unwatch();
}

// The TCP peer half-closed; the last bytes, the eof and the close frame arrive together and the
// pump pauses on those last bytes (the TCP peer is slow). When the TCP output drains, the pump
// resumes the WebSocket, which delivers eof and then the close, and the pump finishes inside its
// own TCP write callback. Run in a child process so that a crash fails only this test.
bool eofAndCloseBufferedBehindPausedBytes() {
  constexpr size_t kHigh = 64 * 1024;
  Rig r(kHigh, /*wsPeer=*/false);
  // A small send buffer makes the pump's TCP output drain in small steps.
  int small = 4096;
  ::setsockopt(r.pumpTcpFd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  r.tcp.stopReading();
  const std::string down = randomBytes(512 * 1024, 10);
  const std::string wire = serverFrame(ws::Opcode::Binary, down) +
                           serverFrame(ws::Opcode::Text, kEof) +
                           serverFrame(ws::Opcode::Close, ws::encodeClosePayload(1000, "done"));
  // All of it already read from the socket when the pump starts (a bufferevent's input only
  // takes bytes from its own reads, so open it the way the read path does).
  evbuffer* in = bufferevent_get_input(r.pumpWsBev);
  evbuffer_unfreeze(in, 0);
  evbuffer_add(in, wire.data(), wire.size());
  evbuffer_freeze(in, 0);
  // The TCP peer half-closed first: with the far end's eof and 1000 this is a normal end.
  ::shutdown(r.tcp.fd(), SHUT_WR);
  r.startPump();
  if (r.pumpWsReading()) {
    std::fprintf(stderr, "setup: the pump did not pause on the big payload\n");
    return false;
  }
  r.tcp.startReading();
  if (!r.runUntil([&] { return r.doneCount > 0 && r.tcp.eof; })) {
    std::fprintf(stderr, "no end: done=%d tcp eof=%d, %zu of %zu bytes\n", r.doneCount, r.tcp.eof,
                 r.tcp.in.size(), down.size());
    return false;
  }
  if (r.tcp.in != down || r.doneReason.rfind("stream closed (1000", 0) != 0) {
    std::fprintf(stderr, "ended with '%s' after %zu of %zu bytes\n", r.doneReason.c_str(),
                 r.tcp.in.size(), down.size());
    return false;
  }
  return true;
}

TEST(StreamPump, EofAndCloseBufferedBehindPausedBytes) {
  EXPECT_EXIT(std::_Exit(eofAndCloseBufferedBehindPausedBytes() ? 0 : 1),
              ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace ds
