// Tests for WsConnection over real libevent loops on socketpairs: streaming binary payloads both
// ways, text reassembly and UTF-8 checks, ping/pong, the close handshake, protocol failures and
// their close codes, transport loss, and output/input backpressure. The far end is either raw
// bytes built with the frame codec or a second WsConnection in the opposite role.
#include "common/ws_conn.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/ws_frame.h"
#include "mocks/ws_callbacks.h"
#include "support/bytes.h"
#include "support/loop_test.h"
#include "support/raw_peer.h"
#include "support/run_loop.h"

namespace ds {
namespace {

using test::appendAll;
using test::kernelReadable;
using test::randomBytes;
using test::writable;

using ::testing::_;
using ::testing::NiceMock;
using ::testing::StrictMock;
using Role = WsConnection::Role;
using ws::Opcode;
namespace cc = ws::close_code;

constexpr std::array<uint8_t, 4> kKey = {0x11, 0x5a, 0xc3, 0x7e};

// One frame as a peer would send it: masked (client to server) or not (server to client).
std::string frame(Opcode op, std::string_view payload, bool fin = true, bool masked = true) {
  uint8_t hdr[ws::kMaxHeaderLen];
  size_t h = ws::encodeHeader(hdr, fin, op, payload.size(), masked ? kKey.data() : nullptr);
  std::string out(reinterpret_cast<char*>(hdr), h);
  std::string body(payload);
  if (masked) {
    auto* p = reinterpret_cast<uint8_t*>(body.data());
    ws::maskCopy(p, p, body.size(), kKey, 0);
  }
  return out + body;
}

std::string closeFrame(uint16_t code, std::string_view reason, bool masked = true) {
  return frame(Opcode::Close, ws::encodeClosePayload(code, reason), true, masked);
}

struct Frame {
  bool fin;
  Opcode op;
  std::string payload;
};

// Parses the complete frames at the front of `bytes` (unmasking them); a trailing partial frame
// is left alone. Frames from a client must be masked, frames from a server must not be.
std::vector<Frame> parseFrames(std::string_view bytes, bool fromClient) {
  std::vector<Frame> frames;
  size_t pos = 0;
  while (pos < bytes.size()) {
    ws::FrameHeader h;
    auto r = ws::parseHeader(reinterpret_cast<const uint8_t*>(bytes.data() + pos),
                             bytes.size() - pos, fromClient, ~uint64_t{0}, h);
    EXPECT_NE(r.status, ws::ParseStatus::Invalid) << (r.error ? r.error : "");
    if (r.status != ws::ParseStatus::Done) break;
    if (bytes.size() - pos - h.headerLen < h.payloadLen) break;
    std::string payload(bytes.substr(pos + h.headerLen, h.payloadLen));
    if (h.masked) {
      auto* p = reinterpret_cast<uint8_t*>(payload.data());
      ws::maskCopy(p, p, payload.size(), h.maskKey, 0);
    }
    frames.push_back({h.fin, h.opcode, std::move(payload)});
    pos += h.headerLen + h.payloadLen;
  }
  return frames;
}

uint16_t closeCodeOf(const Frame& f) {
  if (f.payload.size() < 2) return cc::NoStatus;
  return static_cast<uint16_t>(static_cast<uint8_t>(f.payload[0]) << 8 |
                               static_cast<uint8_t>(f.payload[1]));
}

using test::RawPeer;

class WsConnTest : public test::LoopTest {
 protected:
  WsConnTest() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    ourFd_ = fds[0];
    peerFd_ = fds[1];
  }

  ~WsConnTest() override {
    if (ourFd_ >= 0) ::close(ourFd_);
    if (peerFd_ >= 0) ::close(peerFd_);
  }

  std::unique_ptr<WsConnection> makeOurs(Role role, const WsLimits& limits = {}) {
    int fd = ourFd_;
    ourSock_ = fd;
    ourFd_ = -1;
    return std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, fd), role, limits,
                                          &cb_);
  }
  std::unique_ptr<WsConnection> makePeer(Role role, const WsLimits& limits = {}) {
    int fd = peerFd_;
    peerFd_ = -1;
    return std::make_unique<WsConnection>(loop_, newSocketBufferEvent(loop_, fd), role, limits,
                                          &peerCb_);
  }
  void attachRaw(bool reading = true) {
    raw_.attach(loop_, peerFd_, reading);
    peerFd_ = -1;
  }

  // A connection under test in `role` with a raw peer in front of it.
  void startWithRawPeer(Role role, const WsLimits& limits = {}) {
    conn_ = makeOurs(role, limits);
    attachRaw();
    conn_->start();
  }

  // Waits for the first close frame the raw peer receives and returns its code.
  uint16_t awaitCloseFrame(bool fromClient) {
    uint16_t code = 0;
    runUntil([&] {
      for (const auto& f : parseFrames(raw_.in, fromClient)) {
        if (f.op == Opcode::Close) {
          code = closeCodeOf(f);
          return true;
        }
      }
      return raw_.eof;
    });
    return code;
  }

  void bigTransfer(Role ourRole);
  void expectOneMessageOfThreeFrames(Role role, size_t size, uint32_t seed);
  void expectInPlaceMessages(Role role);

  int ourFd_ = -1;    // owned until a bufferevent takes it
  int peerFd_ = -1;   // likewise
  int ourSock_ = -1;  // our end, for kernel-level checks (not owned)
  StrictMock<testing::MockWsCallbacks> cb_;
  std::unique_ptr<WsConnection> conn_;
  RawPeer raw_;
  NiceMock<testing::MockWsCallbacks> peerCb_;
  std::unique_ptr<WsConnection> peerConn_;
};

void WsConnTest::bigTransfer(Role ourRole) {
  conn_ = makeOurs(ourRole);
  peerConn_ = makePeer(ourRole == Role::Server ? Role::Client : Role::Server);
  std::string got;
  int pieces = 0;
  EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) {
    ++pieces;
    appendAll(got, b);
  });
  conn_->start();
  peerConn_->start();

  const std::string data = randomBytes(5 << 20, 42);
  EvBufferPtr buf(evbuffer_new());
  evbuffer_add(buf.get(), data.data(), data.size());
  peerConn_->sendBinary(buf.get());
  EXPECT_EQ(evbuffer_get_length(buf.get()), 0u);

  ASSERT_TRUE(runUntil([&] { return got.size() >= data.size(); }));
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "payload differs";
  EXPECT_GT(pieces, 1);
  EXPECT_EQ(conn_->bytesIn(), data.size());
  EXPECT_EQ(peerConn_->bytesOut(), data.size());
  EXPECT_TRUE(conn_->open());
}

TEST_F(WsConnTest, LargeBinaryClientToServer) { bigTransfer(Role::Server); }

TEST_F(WsConnTest, LargeBinaryServerToClient) { bigTransfer(Role::Client); }

// sendBinary sends one binary message: a Binary frame, then Continuation frames, FIN on the last.
void expectOneFragmentedMessage(const std::vector<Frame>& frames, const std::string& data,
                                size_t maxFrame) {
  ASSERT_FALSE(frames.empty());
  std::string joined;
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].op, i == 0 ? Opcode::Binary : Opcode::Continuation) << "frame " << i;
    EXPECT_EQ(frames[i].fin, i + 1 == frames.size()) << "frame " << i;
    EXPECT_LE(frames[i].payload.size(), maxFrame);
    joined += frames[i].payload;
  }
  EXPECT_TRUE(joined == data);
}

// `size` random bytes sent through a connection in `role` with 1000-byte frames reach the raw
// peer as one message of three frames (masked when we are the client).
void WsConnTest::expectOneMessageOfThreeFrames(Role role, size_t size, uint32_t seed) {
  WsLimits limits;
  limits.maxSendFrame = 1000;
  startWithRawPeer(role, limits);
  EvBufferPtr buf(evbuffer_new());
  std::string data = randomBytes(size, seed);
  evbuffer_add(buf.get(), data.data(), data.size());
  conn_->sendBinary(buf.get());
  const bool masked = role == Role::Client;
  ASSERT_TRUE(runUntil([&] { return parseFrames(raw_.in, masked).size() >= 3; }));
  auto frames = parseFrames(raw_.in, masked);
  EXPECT_EQ(frames.size(), 3u);
  expectOneFragmentedMessage(frames, data, 1000);
}

TEST_F(WsConnTest, SendBinaryFramesFormOneMessage) {
  expectOneMessageOfThreeFrames(Role::Server, 2500, 2);
}

TEST_F(WsConnTest, ClientSendBinaryFramesFormOneMaskedMessage) {
  expectOneMessageOfThreeFrames(Role::Client, 3000, 6);
}

// sendBinaryInPlace: one Binary frame per message, the payload as `fill` wrote it, with the
// minimal length form (parseFrames refuses any other) on both sides of 126 bytes, masked when we
// are the client; a fill that writes nothing sends nothing.
void WsConnTest::expectInPlaceMessages(Role role) {
  startWithRawPeer(role);
  const std::vector<size_t> sizes = {1, 125, 126, 127, 4000, 65535};
  std::vector<std::string> sent;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(randomBytes(sizes[i], static_cast<uint32_t>(40 + i)));
    const std::string& data = sent.back();
    size_t n = conn_->sendBinaryInPlace(70000, [&](uint8_t* dst, size_t cap) {
      EXPECT_EQ(cap, 65535u);  // at most a 16-bit length
      std::memcpy(dst, data.data(), data.size());
      return data.size();
    });
    EXPECT_EQ(n, data.size());
  }
  EXPECT_EQ(conn_->sendBinaryInPlace(100, [](uint8_t*, size_t) { return size_t{0}; }), 0u);
  const bool masked = role == Role::Client;
  ASSERT_TRUE(runUntil([&] { return parseFrames(raw_.in, masked).size() >= sizes.size(); }));
  auto frames = parseFrames(raw_.in, masked);
  ASSERT_EQ(frames.size(), sizes.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].op, Opcode::Binary) << i;
    EXPECT_TRUE(frames[i].fin) << i;
    EXPECT_TRUE(frames[i].payload == sent[i]) << "message " << i << ", " << sizes[i] << " bytes";
  }
}

TEST_F(WsConnTest, InPlaceMessagesFromAServer) { expectInPlaceMessages(Role::Server); }

TEST_F(WsConnTest, InPlaceMessagesFromAClientAreMasked) { expectInPlaceMessages(Role::Client); }

TEST_F(WsConnTest, WhatAnInPlaceFillSendsGoesAheadOfTheMessageWhole) {
  startWithRawPeer(Role::Server);
  EXPECT_EQ(conn_->sendBinaryInPlace(100,
                                     [&](uint8_t* dst, size_t) {
                                       conn_->sendText("in between");
                                       std::memset(dst, 'x', 10);
                                       return size_t{10};
                                     }),
            10u);
  ASSERT_TRUE(runUntil([&] { return parseFrames(raw_.in, false).size() >= 2; }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].op, Opcode::Text);
  EXPECT_EQ(frames[0].payload, "in between");
  EXPECT_EQ(frames[1].op, Opcode::Binary);
  EXPECT_EQ(frames[1].payload, std::string(10, 'x'));
}

// A peer that stops reading while output is pending: alive to TCP, wedged to us.
class WsConnStalledPeerTest : public WsConnTest {
 protected:
  void startStalled(bool expectReading) {
    conn_ = makeOurs(Role::Server);
    attachRaw(false);  // the peer never reads
    conn_->start();
    if (expectReading) conn_->expectReading();
    conn_->enableKeepalive(std::chrono::milliseconds(50), std::chrono::milliseconds(300));
    EvBufferPtr buf(evbuffer_new());
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 16; ++i) evbuffer_add(buf.get(), chunk.data(), chunk.size());
    conn_->sendBinary(buf.get());  // far beyond what the socket pair buffers
  }
};

TEST_F(WsConnStalledPeerTest, OutputThatStopsMovingIsSilenceWhenThePeerMustRead) {
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::Abnormal, "keepalive timeout")).WillOnce([&] { closed = true; });
  startStalled(true);
  EXPECT_TRUE(runUntil([&] { return closed; }));
}

TEST_F(WsConnStalledPeerTest, PendingOutputKeepsASlowReadersConnection) {
  EXPECT_CALL(cb_, onWsClosed(::testing::_, ::testing::_)).Times(0);
  startStalled(false);
  bool waited = false;
  Timer wait(loop_, [&] { waited = true; });
  wait.arm(std::chrono::milliseconds(1000));  // more than three timeouts
  ASSERT_TRUE(runUntil([&] { return waited; }));
  EXPECT_TRUE(conn_->open());
  ::testing::Mock::VerifyAndClearExpectations(&cb_);
  EXPECT_CALL(cb_, onWsClosed(::testing::_, ::testing::_)).Times(::testing::AnyNumber());
}

TEST_F(WsConnTest, EmptySendBinarySendsAnEmptyMessage) {
  startWithRawPeer(Role::Server);
  EvBufferPtr buf(evbuffer_new());
  conn_->sendBinary(buf.get());
  ASSERT_TRUE(runUntil([&] { return !parseFrames(raw_.in, false).empty(); }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Binary);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "");
}

TEST_F(WsConnTest, ClientMasksWhatItSends) {
  startWithRawPeer(Role::Client);
  conn_->sendText("hello");
  ASSERT_TRUE(runUntil([&] { return !parseFrames(raw_.in, /*fromClient=*/true).empty(); }));
  auto frames = parseFrames(raw_.in, true);
  EXPECT_EQ(frames[0].op, Opcode::Text);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "hello");
}

TEST_F(WsConnTest, FragmentedTextIsReassembled) {
  startWithRawPeer(Role::Server);
  std::string text;
  EXPECT_CALL(cb_, onWsText(_)).WillOnce([&](std::string m) { text = std::move(m); });
  // A ping between fragments is allowed and answered without disturbing the message.
  raw_.write(frame(Opcode::Text, "Hel", false) + frame(Opcode::Continuation, "lo, ", false) +
             frame(Opcode::Ping, "mid") + frame(Opcode::Continuation, "", false) +
             frame(Opcode::Continuation, "world", true));
  ASSERT_TRUE(runUntil([&] { return !text.empty(); }));
  EXPECT_EQ(text, "Hello, world");
  ASSERT_TRUE(runUntil([&] { return !parseFrames(raw_.in, false).empty(); }));
  auto frames = parseFrames(raw_.in, false);
  EXPECT_EQ(frames[0].op, Opcode::Pong);
  EXPECT_EQ(frames[0].payload, "mid");
  EXPECT_TRUE(conn_->open());
}

TEST_F(WsConnTest, SplitUtf8CharacterAcrossFramesFedByteByByte) {
  startWithRawPeer(Role::Server);
  std::vector<std::string> texts;
  EXPECT_CALL(cb_, onWsText(_)).Times(2).WillRepeatedly([&](std::string m) {
    texts.push_back(std::move(m));
  });
  // U+20AC (E2 82 AC) and U+1F600 (F0 9F 98 80) both cut in the middle by a frame boundary.
  std::string wire = frame(Opcode::Text, "h\xE2\x82", false) +
                     frame(Opcode::Continuation,
                           "\xAC"
                           "llo",
                           true) +
                     frame(Opcode::Text, "x\xF0\x9F", false) +
                     frame(Opcode::Continuation, "\x98", false) +
                     frame(Opcode::Continuation, "\x80y", true);
  for (char c : wire) {
    raw_.write(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return texts.size() == 2; }));
  EXPECT_EQ(texts[0],
            "h\xE2\x82\xAC"
            "llo");
  EXPECT_EQ(texts[1], "x\xF0\x9F\x98\x80y");
}

TEST_F(WsConnTest, BinaryFedByteByByteArrivesIntact) {
  startWithRawPeer(Role::Server);
  std::string got;
  EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) { appendAll(got, b); });
  const std::string data = randomBytes(300, 3);
  std::string wire = frame(Opcode::Binary, data.substr(0, 200), false) +
                     frame(Opcode::Continuation, data.substr(200), true);
  for (char c : wire) {
    raw_.write(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return got.size() >= data.size(); }));
  EXPECT_TRUE(got == data);
}

TEST_F(WsConnTest, PingIsAnsweredWithPongCarryingTheSamePayload) {
  startWithRawPeer(Role::Server);
  const std::string payload("\x00\x01ping\xff", 7);
  raw_.write(frame(Opcode::Ping, payload));
  ASSERT_TRUE(runUntil([&] { return !parseFrames(raw_.in, false).empty(); }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Pong);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, payload);
  EXPECT_TRUE(conn_->open());
}

TEST_F(WsConnTest, ClientAnswersPingWithMaskedPong) {
  startWithRawPeer(Role::Client);
  raw_.write(frame(Opcode::Ping, "abc", true, /*masked=*/false));
  ASSERT_TRUE(runUntil([&] { return !parseFrames(raw_.in, true).empty(); }));
  auto frames = parseFrames(raw_.in, true);
  EXPECT_EQ(frames[0].op, Opcode::Pong);
  EXPECT_EQ(frames[0].payload, "abc");
}

TEST_F(WsConnTest, PeerCloseIsReportedAndEchoed) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(1000, "bye")).WillOnce([&] { closed = true; });
  raw_.write(closeFrame(1000, "bye"));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_FALSE(conn_->open());
  EXPECT_EQ(awaitCloseFrame(false), 1000);
  // After the echo our side half-closes.
  ASSERT_TRUE(runUntil([&] { return raw_.eof; }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Close);
}

TEST_F(WsConnTest, EmptyCloseIsReportedAs1005AndEchoedEmpty) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::NoStatus, "")).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Close, ""));
  ASSERT_TRUE(runUntil([&] { return closed && raw_.eof; }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Close);
  EXPECT_EQ(frames[0].payload, "");
}

TEST_F(WsConnTest, CloseFrameFollowedByEofReportsThePeersCode) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(1001, "away")).WillOnce([&] { closed = true; });
  std::string wire = closeFrame(1001, "away");
  ASSERT_EQ(::write(raw_.fd(), wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
  ::shutdown(raw_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return closed; }));
}

TEST_F(WsConnTest, InvalidClosePayloadIsProtocolError) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::ProtocolError, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Close, std::string("\x03", 1)));  // a 1-byte close payload
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::ProtocolError);
}

TEST_F(WsConnTest, FrameOverMaxFrameIsClosedWith1009) {
  WsLimits limits;
  limits.maxFrame = 1000;
  startWithRawPeer(Role::Server, limits);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::TooBig, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Binary, std::string(1001, 'x')));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_FALSE(conn_->open());
  EXPECT_EQ(awaitCloseFrame(false), cc::TooBig);
}

TEST_F(WsConnTest, FrameAtMaxFrameIsAccepted) {
  WsLimits limits;
  limits.maxFrame = 1000;
  startWithRawPeer(Role::Server, limits);
  std::string got;
  EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) { appendAll(got, b); });
  raw_.write(frame(Opcode::Binary, std::string(1000, 'x')));
  ASSERT_TRUE(runUntil([&] { return got.size() == 1000; }));
  EXPECT_TRUE(conn_->open());
}

TEST_F(WsConnTest, TextMessageOverMaxMessageIsClosedWith1009) {
  WsLimits limits;
  limits.maxMessage = 10;
  startWithRawPeer(Role::Server, limits);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::TooBig, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Text, "123456", false) + frame(Opcode::Continuation, "78901", true));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::TooBig);
}

TEST_F(WsConnTest, UnmaskedFrameToServerIsProtocolError) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::ProtocolError, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Binary, "data", true, /*masked=*/false));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::ProtocolError);
}

TEST_F(WsConnTest, MaskedFrameToClientIsProtocolError) {
  startWithRawPeer(Role::Client);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::ProtocolError, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Binary, "data", true, /*masked=*/true));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(/*fromClient=*/true), cc::ProtocolError);
}

TEST_F(WsConnTest, InvalidUtf8TextIs1007) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::InvalidData, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Text, "ok \xC3\x28 not"));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::InvalidData);
}

TEST_F(WsConnTest, TextEndingInsideACodePointIs1007) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::InvalidData, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Text, "abc\xE2\x82", false) + frame(Opcode::Continuation, "", true));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::InvalidData);
}

TEST_F(WsConnTest, ContinuationWithoutStartIsProtocolError) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::ProtocolError, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Continuation, "orphan", true));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::ProtocolError);
}

TEST_F(WsConnTest, NewMessageInsideFragmentedMessageIsProtocolError) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::ProtocolError, _)).WillOnce([&] { closed = true; });
  raw_.write(frame(Opcode::Text, "a", false) + frame(Opcode::Text, "b", true));
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(awaitCloseFrame(false), cc::ProtocolError);
}

TEST_F(WsConnTest, TransportEofWithoutCloseIs1006) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(cc::Abnormal, _)).WillOnce([&] { closed = true; });
  ::shutdown(raw_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_FALSE(conn_->open());
  // No close frame goes out on a dropped transport; our side just goes away.
  ASSERT_TRUE(runUntil([&] { return raw_.eof; }));
  EXPECT_TRUE(raw_.in.empty());
}

TEST_F(WsConnTest, DataBeforeEofIsDeliveredThen1006) {
  startWithRawPeer(Role::Server);
  std::string got;
  bool closed = false;
  {
    ::testing::InSequence seq;
    EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) { appendAll(got, b); });
    EXPECT_CALL(cb_, onWsClosed(cc::Abnormal, _)).WillOnce([&] { closed = true; });
  }
  std::string wire = frame(Opcode::Binary, "tail");
  ASSERT_EQ(::write(raw_.fd(), wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
  ::shutdown(raw_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return closed; }));
  EXPECT_EQ(got, "tail");
}

TEST_F(WsConnTest, LocalCloseSendsCloseFrameAndHalfCloses) {
  startWithRawPeer(Role::Server);
  // Whatever ws_conn.h promises after close(), the code and reason must go out on the wire.
  EXPECT_CALL(cb_, onWsClosed(_, _)).Times(::testing::AtMost(1));
  conn_->close(1001, "going away");
  EXPECT_FALSE(conn_->open());
  ASSERT_TRUE(runUntil([&] { return raw_.eof; }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Close);
  EXPECT_EQ(closeCodeOf(frames[0]), 1001);
  EXPECT_EQ(frames[0].payload.substr(2), "going away");
}

// close() reports nothing (StrictMock: no onWsClosed), and the owner may free the connection at
// once: the close frame still goes out and the transport lingers until the peer answers.
TEST_F(WsConnTest, LocalCloseReportsNothingAndSurvivesImmediateFree) {
  startWithRawPeer(Role::Server);
  conn_->close(1000, "done");
  conn_.reset();
  ASSERT_TRUE(runUntil([&] { return raw_.eof; }));
  auto frames = parseFrames(raw_.in, false);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].op, Opcode::Close);
  EXPECT_EQ(closeCodeOf(frames[0]), 1000);
  EXPECT_EQ(frames[0].payload.substr(2), "done");
  EXPECT_EQ(loop_.lingering(), 1u);
  raw_.write(closeFrame(1000, ""));
  ASSERT_TRUE(
      runUntil([&] { return evbuffer_get_length(bufferevent_get_output(raw_.bev.get())) == 0; }));
  ::shutdown(raw_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return loop_.lingering() == 0; }));
}

TEST_F(WsConnTest, SendsAfterCloseAreDropped) {
  startWithRawPeer(Role::Server);
  bool closed = false;
  EXPECT_CALL(cb_, onWsClosed(1000, _)).WillOnce([&] { closed = true; });
  raw_.write(closeFrame(1000, ""));
  ASSERT_TRUE(runUntil([&] { return closed && raw_.eof; }));
  EvBufferPtr buf(evbuffer_new());
  evbuffer_add(buf.get(), "late", 4);
  conn_->sendBinary(buf.get());
  conn_->sendText("late");
  EXPECT_EQ(evbuffer_get_length(buf.get()), 0u);
  EXPECT_EQ(conn_->outputLength(), 0u);
}

TEST_F(WsConnTest, HighWatermarkAndDrainedCallback) {
  conn_ = makeOurs(Role::Server);
  conn_->setHighWatermark(64 * 1024);
  attachRaw(/*reading=*/false);
  conn_->start();

  const std::string data = randomBytes(4 << 20, 4);
  EvBufferPtr buf(evbuffer_new());
  evbuffer_add(buf.get(), data.data(), data.size());
  EXPECT_FALSE(conn_->overHighWatermark());
  conn_->sendBinary(buf.get());
  EXPECT_TRUE(conn_->overHighWatermark());

  // The peer does not read: our side writes until the socket is full, then stalls above the
  // watermark without reporting a drain (the StrictMock has no onWsDrained expectation yet).
  ASSERT_TRUE(
      runUntil([&] { return conn_->outputLength() < data.size() + 1024 && !writable(ourSock_); }));
  spin();
  EXPECT_TRUE(conn_->overHighWatermark());
  EXPECT_GT(conn_->outputLength(), 64u * 1024);

  bool drained = false;
  EXPECT_CALL(cb_, onWsDrained()).WillOnce([&] {
    drained = true;
    EXPECT_LE(conn_->outputLength(), 32u * 1024);
  });
  raw_.startReading();
  ASSERT_TRUE(runUntil([&] { return drained; }));
  EXPECT_FALSE(conn_->overHighWatermark());

  std::string joined;
  ASSERT_TRUE(runUntil([&] {
    joined.clear();
    for (const auto& f : parseFrames(raw_.in, false)) joined += f.payload;
    return joined.size() >= data.size();
  }));
  EXPECT_TRUE(joined == data);
}

TEST_F(WsConnTest, NoDrainedCallbackWithoutCrossingTheWatermark) {
  conn_ = makeOurs(Role::Server);
  conn_->setHighWatermark(64 * 1024);
  attachRaw();
  conn_->start();
  EvBufferPtr buf(evbuffer_new());
  std::string data = randomBytes(1000, 5);
  evbuffer_add(buf.get(), data.data(), data.size());
  conn_->sendBinary(buf.get());
  EXPECT_FALSE(conn_->overHighWatermark());
  // StrictMock: an onWsDrained here would fail the test.
  ASSERT_TRUE(runUntil([&] { return raw_.in.size() >= data.size() + 4; }));
  spin();
}

TEST_F(WsConnTest, PauseReadingHoldsBufferedFramesUntilResume) {
  startWithRawPeer(Role::Server);
  std::string got;
  int calls = 0;
  EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) {
    appendAll(got, b);
    if (++calls == 1) conn_->pauseReading();
  });
  raw_.write(frame(Opcode::Binary, "aaa") + frame(Opcode::Binary, "bbb") +
             frame(Opcode::Binary, "ccc"));
  ASSERT_TRUE(runUntil([&] { return !got.empty(); }));
  spin();
  EXPECT_EQ(got, "aaa");
  conn_->resumeReading();
  ASSERT_TRUE(runUntil([&] { return got.size() >= 9; }));
  EXPECT_EQ(got, "aaabbbccc");
}

TEST_F(WsConnTest, PauseReadingLeavesNewInputInTheSocket) {
  startWithRawPeer(Role::Server);
  conn_->pauseReading();
  std::string got;
  std::string text;
  // Nothing may be delivered while paused (StrictMock: no expectations yet).
  const std::string wire = frame(Opcode::Binary, "held") + frame(Opcode::Text, "also held");
  raw_.write(wire);
  ASSERT_TRUE(runUntil([&] {
    return evbuffer_get_length(bufferevent_get_output(raw_.bev.get())) == 0 &&
           kernelReadable(ourSock_) == wire.size();
  }));
  spin();
  EXPECT_EQ(kernelReadable(ourSock_), wire.size());

  EXPECT_CALL(cb_, onWsData(_)).WillRepeatedly([&](evbuffer* b) { appendAll(got, b); });
  EXPECT_CALL(cb_, onWsText(_)).WillOnce([&](std::string m) { text = std::move(m); });
  conn_->resumeReading();
  ASSERT_TRUE(runUntil([&] { return !text.empty(); }));
  EXPECT_EQ(got, "held");
  EXPECT_EQ(text, "also held");
}

TEST_F(WsConnTest, InputBufferedBeforeStartIsProcessedOnStart) {
  const std::string wire = frame(Opcode::Text, "early");
  ASSERT_EQ(::write(peerFd_, wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
  BufferEventPtr bev = newSocketBufferEvent(loop_, ourFd_);
  ourSock_ = ourFd_;
  ourFd_ = -1;
  // The handshake layer has already read the frame into the bufferevent.
  bufferevent_enable(bev.get(), EV_READ);
  ASSERT_TRUE(runUntil(
      [&] { return evbuffer_get_length(bufferevent_get_input(bev.get())) == wire.size(); }));
  bufferevent_disable(bev.get(), EV_READ);
  conn_ = std::make_unique<WsConnection>(loop_, std::move(bev), Role::Server, WsLimits{}, &cb_);
  attachRaw();
  std::string text;
  EXPECT_CALL(cb_, onWsText(_)).WillOnce([&](std::string m) { text = std::move(m); });
  conn_->start();
  ASSERT_TRUE(runUntil([&] { return !text.empty(); }));
  EXPECT_EQ(text, "early");
}

TEST_F(WsConnTest, TextBothWaysBetweenTwoConnections) {
  conn_ = makeOurs(Role::Client);
  peerConn_ = makePeer(Role::Server);
  std::vector<std::string> ours;
  std::vector<std::string> theirs;
  EXPECT_CALL(cb_, onWsText(_)).WillRepeatedly([&](std::string m) { ours.push_back(m); });
  ON_CALL(peerCb_, onWsText(_)).WillByDefault([&](std::string m) { theirs.push_back(m); });
  conn_->start();
  peerConn_->start();
  conn_->sendText(R"({"type":"eof"})");
  peerConn_->sendText("");
  peerConn_->sendText("\xC3\xA9t\xC3\xA9");
  ASSERT_TRUE(runUntil([&] { return ours.size() == 2 && theirs.size() == 1; }));
  EXPECT_EQ(theirs[0], R"({"type":"eof"})");
  EXPECT_EQ(ours[0], "");
  EXPECT_EQ(ours[1], "\xC3\xA9t\xC3\xA9");
}

TEST_F(WsConnTest, PingFloodFromAPeerThatDoesNotReadKeepsOurOutputBounded) {
  conn_ = makeOurs(Role::Server);
  attachRaw(/*reading=*/false);
  conn_->setHighWatermark(16 * 1024);
  conn_->start();
  const std::string payload(125, 'p');
  std::string flood;
  for (int i = 0; i < 20000; ++i) flood += frame(Opcode::Ping, payload);
  raw_.write(flood);
  // 20,000 pongs would be 2.5 MB; only what fits under the watermark (plus one frame) queues.
  ASSERT_TRUE(runUntil([&] {
    return evbuffer_get_length(bufferevent_get_output(raw_.bev.get())) == 0 &&
           kernelReadable(ourSock_) == 0 && !writable(ourSock_);
  }));
  spin();
  EXPECT_LE(conn_->outputLength(), 16u * 1024 + 2 * (125 + ws::kMaxHeaderLen));
  EXPECT_TRUE(conn_->open());
  // Once the peer reads, the latest ping is answered.
  raw_.startReading();
  ASSERT_TRUE(runUntil([&] { return conn_->outputLength() == 0 && !raw_.in.empty(); }));
  EXPECT_TRUE(conn_->open());
}

// The failure boundary: a handler that throws ends its own connection with 1011 and nothing
// else; the loop and another connection on it go on.
TEST_F(WsConnTest, ThrowingHandlerClosesOnlyItsConnectionWith1011) {
  conn_ = makeOurs(Role::Server);
  attachRaw();
  EXPECT_CALL(cb_, onWsText(_)).WillOnce([](const std::string&) {
    throw std::runtime_error("handler bug");
  });
  EXPECT_CALL(cb_, onWsClosed(cc::InternalError, _));
  conn_->start();

  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  evutil_make_socket_nonblocking(fds[0]);
  evutil_make_socket_nonblocking(fds[1]);
  NiceMock<testing::MockWsCallbacks> aCb, bCb;
  std::vector<std::string> got;
  EXPECT_CALL(bCb, onWsText(_)).WillRepeatedly([&](const std::string& m) { got.push_back(m); });
  WsConnection a(loop_, newSocketBufferEvent(loop_, fds[0]), Role::Client, {}, &aCb);
  WsConnection b(loop_, newSocketBufferEvent(loop_, fds[1]), Role::Server, {}, &bCb);
  a.start();
  b.start();

  raw_.write(frame(Opcode::Text, "boom"));
  EXPECT_EQ(awaitCloseFrame(false), cc::InternalError);
  EXPECT_FALSE(conn_->open());

  a.sendText("still here");
  ASSERT_TRUE(runUntil([&] { return !got.empty(); }));
  EXPECT_EQ(got[0], "still here");
  EXPECT_TRUE(a.open());
  EXPECT_TRUE(b.open());
}

}  // namespace
}  // namespace ds
