// Tests for multiplexed streams: the frame codec (round trips, every prefix, every refusal) and
// the session (open/accept/reject, credit, EOF, close codes, protocol errors, limits, the memory
// budget, a slow reader, and window growth on a simulated link with a fake clock).
#include "common/mux.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/bytes.h"

namespace ds::mux {
namespace {

using std::chrono::milliseconds;

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

DecodeResult decodeAll(const std::string& s, Frame& f) { return decode(bytes(s), s.size(), f); }

void expectEveryPrefixNeedsMore(const std::string& wire) {
  for (size_t n = 0; n < wire.size(); ++n) {
    Frame f;
    f.stream = 0xdead;
    DecodeResult r = decode(bytes(wire), n, f);
    EXPECT_EQ(r.status, DecodeStatus::NeedMore) << "prefix " << n;
    EXPECT_EQ(r.consumed, 0u);
    EXPECT_EQ(f.stream, 0xdeadu) << "written on NeedMore";
  }
}

void expectInvalid(const std::string& wire) {
  Frame f;
  DecodeResult r = decodeAll(wire, f);
  EXPECT_EQ(r.status, DecodeStatus::Invalid);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_NE(r.error, nullptr);
}

std::string header(uint8_t type, uint8_t flags, uint16_t len, uint32_t stream) {
  std::string h;
  h.push_back(static_cast<char>(type));
  h.push_back(static_cast<char>(flags));
  h.push_back(static_cast<char>(len >> 8));
  h.push_back(static_cast<char>(len & 0xff));
  for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((stream >> s) & 0xff));
  return h;
}

OpenRequest sampleRequest() {
  OpenRequest q;
  q.device = "dev01";
  q.host = "127.0.0.1";
  q.port = 22;
  q.policy = "service";
  q.user = "alice";
  q.name = "ssh to dev01";
  return q;
}

// ---- codec ----

TEST(MuxCodec, EveryFrameRoundTripsAndEveryPrefixNeedsMore) {
  std::vector<std::string> frames(9);
  ASSERT_TRUE(appendOpen(frames[0], 1, 65536, sampleRequest()));
  OpenRequest unix = sampleRequest();
  unix.host.clear();
  unix.port = 0;
  unix.socketPath = "/run/app.sock";
  unix.streamId = "9f0c";  // the optional seventh field
  ASSERT_TRUE(appendOpen(frames[1], 3, 0, unix));
  appendAccept(frames[2], 1, 1 << 20);
  appendReject(frames[3], 1, proto::Reject::PortNotAllowed, "127.0.0.1:23 is not allowed");
  const std::string payload = "hello, stream";
  appendData(frames[4], 1, bytes(payload), payload.size());
  appendEof(frames[5], 1);
  appendClose(frames[6], 1, close_code::Normal, "done");
  appendWindow(frames[7], 1, 12345);
  appendPing(frames[8], 0x0123456789abcdefULL, true);

  for (const std::string& wire : frames) {
    Frame f;
    DecodeResult r = decodeAll(wire, f);
    ASSERT_EQ(r.status, DecodeStatus::Done);
    EXPECT_EQ(r.consumed, wire.size());
    EXPECT_TRUE(r.known);
    expectEveryPrefixNeedsMore(wire);
  }
  Frame f;
  decodeAll(frames[0], f);
  EXPECT_EQ(f.type, FrameType::Open);
  EXPECT_EQ(f.stream, 1u);
  EXPECT_EQ(f.window, 65536u);
  EXPECT_EQ(f.request, sampleRequest());
  decodeAll(frames[1], f);
  EXPECT_EQ(f.request, unix);
  decodeAll(frames[3], f);
  EXPECT_EQ(f.reject, proto::Reject::PortNotAllowed);
  EXPECT_EQ(f.codeText, "port-not-allowed");
  EXPECT_EQ(f.reason, "127.0.0.1:23 is not allowed");
  decodeAll(frames[4], f);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data), f.dataLen), payload);
  decodeAll(frames[6], f);
  EXPECT_EQ(f.closeCode, close_code::Normal);
  EXPECT_EQ(f.reason, "done");
  decodeAll(frames[7], f);
  EXPECT_EQ(f.window, 12345u);
  decodeAll(frames[8], f);
  EXPECT_EQ(f.ping, 0x0123456789abcdefULL);
  EXPECT_EQ(f.flags, kFlagAck);

  // Frames back to back decode one at a time.
  std::string all;
  for (const auto& w : frames) all += w;
  size_t pos = 0, count = 0;
  while (pos < all.size()) {
    DecodeResult r = decode(bytes(all) + pos, all.size() - pos, f);
    ASSERT_EQ(r.status, DecodeStatus::Done);
    pos += r.consumed;
    ++count;
  }
  EXPECT_EQ(count, frames.size());
}

TEST(MuxCodec, RefusesBadHeadersAsSoonAsTheyShow) {
  // Too long: known from the first four bytes.
  expectInvalid(header(4, 0, kMaxPayload + 1, 1).substr(0, 4));
  expectInvalid(header(4, 0, 0xffff, 1));
  expectInvalid(header(4, 0, 0, 0x80000001));                        // reserved top bit of the id
  expectInvalid(header(4, 0, 0, 0));                                 // data on stream 0
  expectInvalid(header(6, 0, 4, 0));                                 // close on stream 0
  expectInvalid(header(8, 0, 8, 5));                                 // ping on a stream
  expectInvalid(header(7, 0, 4, 1) + std::string(4, '\0'));          // window increment 0
  expectInvalid(header(7, 0, 4, 1) + std::string("\x80\0\0\0", 4));  // above 2^31-1
  expectInvalid(header(2, 0, 4, 1) + std::string("\xff\xff\xff\xff", 4));
  expectInvalid(header(7, 0, 3, 1) + std::string(3, '\1'));  // truncated payload
  expectInvalid(header(8, 0, 7, 0) + std::string(7, '\0'));
  expectInvalid(header(6, 0, 1, 1) + std::string(1, '\0'));
  // Reject: no code, a reason above the bound, a reason that is not UTF-8.
  expectInvalid(header(3, 0, 3, 1) + std::string("\0\0\0", 3));
  std::string longReason =
      header(3, 0, 1 + 1 + 2 + 257, 1) + "\x01x" + "\x01\x01" + std::string(257, 'r');
  expectInvalid(longReason);
  expectInvalid(header(3, 0, 5, 1) + std::string("\x01x\x00\x01\xff", 5));
  expectInvalid(header(6, 0, 5, 1) + std::string("\x03\xe8\x00\x01\xc0", 5));
}

TEST(MuxCodec, OpenFieldsAreBoundedAndClean) {
  std::string wire;
  OpenRequest q = sampleRequest();
  q.host = std::string(proto::kMaxHost + 1, 'h');
  EXPECT_FALSE(appendOpen(wire, 1, 0, q));
  q = sampleRequest();
  q.user = "bad\nuser";
  EXPECT_FALSE(appendOpen(wire, 1, 0, q));
  q = sampleRequest();
  q.name = "\xff";
  EXPECT_FALSE(appendOpen(wire, 1, 0, q));
  EXPECT_TRUE(wire.empty());

  // By hand: a host of 254 bytes, then a control character in the name.
  std::string p = std::string("\0\0\0\0\0\x16", 6) + '\0' + static_cast<char>(254) +
                  std::string(254, 'h') + std::string(4, '\0');
  expectInvalid(header(1, 0, static_cast<uint16_t>(p.size()), 1) + p);
  p = std::string("\0\0\0\0\0\x16", 6) + std::string(5, '\0') + "\x01\x07";
  expectInvalid(header(1, 0, static_cast<uint16_t>(p.size()), 1) + p);
  // A field whose length runs past the payload.
  p = std::string("\0\0\0\0\0\x16", 6) + "\x09" + "abc";
  expectInvalid(header(1, 0, static_cast<uint16_t>(p.size()), 1) + p);
}

TEST(MuxCodec, UnknownTypesAreSkippedAndTrailingBytesIgnored) {
  std::string wire = header(0x42, 0xff, 3, 7) + "xyz";
  Frame f;
  DecodeResult r = decodeAll(wire, f);
  EXPECT_EQ(r.status, DecodeStatus::Done);
  EXPECT_FALSE(r.known);
  EXPECT_EQ(r.consumed, wire.size());

  // A later version's extra field after a Window increment.
  wire = header(7, 0x80, 6, 9) + std::string("\0\0\x01\0zz", 6);
  r = decodeAll(wire, f);
  ASSERT_EQ(r.status, DecodeStatus::Done);
  EXPECT_EQ(f.window, 256u);
}

TEST(MuxCodec, AnOpenWithoutTheStreamIdIsComplete) {
  std::string wire;
  ASSERT_TRUE(appendOpen(wire, 1, 4096, sampleRequest()));
  Frame f;
  ASSERT_EQ(decodeAll(wire, f).status, DecodeStatus::Done);
  EXPECT_EQ(f.request, sampleRequest());
  EXPECT_TRUE(f.request.streamId.empty());
  // With one, a truncated or unclean stream id is refused like any other field.
  OpenRequest q = sampleRequest();
  q.streamId = "abc";
  wire.clear();
  ASSERT_TRUE(appendOpen(wire, 1, 4096, q));
  ASSERT_EQ(decodeAll(wire, f).status, DecodeStatus::Done);
  EXPECT_EQ(f.request.streamId, "abc");
  std::string cut = wire.substr(0, wire.size() - 1);
  cut[3] = static_cast<char>(cut[3] - 1);  // the length says one byte less
  EXPECT_EQ(decodeAll(cut, f).status, DecodeStatus::Invalid);
  q.streamId = "a\nb";
  EXPECT_FALSE(appendOpen(wire, 1, 4096, q));
}

TEST(MuxCodec, EncodersCutAndCleanText) {
  std::string wire;
  appendClose(wire, 1, 1011, std::string(1000, 'x') + "\xff");
  Frame f;
  ASSERT_EQ(decodeAll(wire, f).status, DecodeStatus::Done);
  EXPECT_EQ(f.reason.size(), proto::kMaxReason);
  wire.clear();
  appendReject(wire, 1, proto::Reject::Other, "bad \xff byte", "weird code\x01");
  ASSERT_EQ(decodeAll(wire, f).status, DecodeStatus::Done);
  EXPECT_EQ(f.reason, "bad ? byte");
  EXPECT_EQ(f.codeText, "rejected");
  wire.clear();
  const std::string big(40000, 'd');
  appendData(wire, 3, bytes(big), big.size());
  EXPECT_EQ(wire.size(), big.size() + 3 * kHeaderLen);  // split at kMaxPayload
}

// ---- session ----

// The application on one side: records what it is told, sends what it is given.
struct App : MuxSession::Callbacks {
  struct S {
    std::string in;
    std::string out;  // still to send
    size_t sent = 0;
    bool accepted = false, eof = false, closed = false, rejected = false;
    uint16_t closeCode = 0;
    std::string closeReason;
    proto::Reject reject = proto::Reject::Other;
    std::string rejectText;
    OpenRequest request;
    bool opened = false;
  };
  std::map<uint32_t, S> s;
  MuxSession* session = nullptr;
  bool autoAccept = true;
  bool autoConsume = true;
  TimePoint now{};

  void onOpen(uint32_t id, const OpenRequest& r) override {
    s[id].opened = true;
    s[id].request = r;
    if (autoAccept) session->accept(id);
  }
  void onAccepted(uint32_t id) override { s[id].accepted = true; }
  void onRejected(uint32_t id, proto::Reject code, std::string_view text,
                  std::string_view) override {
    s[id].rejected = true;
    s[id].reject = code;
    s[id].rejectText = std::string(text);
  }
  void onData(uint32_t id, const uint8_t* d, size_t n) override {
    s[id].in.append(reinterpret_cast<const char*>(d), n);
    if (autoConsume) session->consumed(id, n);
  }
  void onEof(uint32_t id) override { s[id].eof = true; }
  void onClosed(uint32_t id, uint16_t code, std::string_view reason) override {
    s[id].closed = true;
    s[id].closeCode = code;
    s[id].closeReason = std::string(reason);
  }
  size_t onPull(uint32_t id, uint8_t* buf, size_t max) override {
    S& st = s[id];
    size_t n = std::min(max, st.out.size() - st.sent);
    std::memcpy(buf, st.out.data() + st.sent, n);
    st.sent += n;
    return n;
  }
  void send(uint32_t id, const std::string& data) {
    s[id].out += data;
    session->wantWrite(id);
  }
};

struct Pair {
  Limits limits;
  App a, b;
  MuxSession sa, sb;
  TimePoint now{};
  explicit Pair(Limits l = {}) : limits(l), sa(Role::Client, l, a), sb(Role::Server, l, b) {
    a.session = &sa;
    b.session = &sb;
  }
  // Moves frames both ways until neither side has anything to send.
  void pump(size_t chunk = 1 << 20) {
    for (int i = 0; i < 100000; ++i) {
      std::string ab, ba;
      sa.flush(ab, chunk, now);
      sb.flush(ba, chunk, now);
      if (ab.empty() && ba.empty()) return;
      sb.receive(bytes(ab), ab.size(), now);
      sa.receive(bytes(ba), ba.size(), now);
    }
    FAIL() << "pump did not settle";
  }
  // Opens `n` streams from a and moves frames until they are up; their ids.
  std::vector<uint32_t> openStreams(size_t n) {
    std::vector<uint32_t> ids;
    for (size_t i = 0; i < n; ++i) ids.push_back(sa.open(sampleRequest()));
    pump();
    return ids;
  }
};

TEST(MuxSession, OpenAcceptDataEofClose) {
  Pair p;
  uint32_t id = p.sa.open(sampleRequest());
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(p.sa.open(sampleRequest()), 3u);  // the client's ids are odd
  p.pump();
  EXPECT_TRUE(p.b.s[1].opened);
  EXPECT_EQ(p.b.s[1].request, sampleRequest());
  EXPECT_TRUE(p.a.s[1].accepted);

  const std::string up = test::randomBytes(1 << 20, 1), down = test::randomBytes(300000, 2);
  p.a.send(id, up);
  p.b.send(id, down);
  p.sa.eof(id);
  p.pump();
  EXPECT_EQ(p.b.s[id].in, up);
  EXPECT_EQ(p.a.s[id].in, down);
  EXPECT_TRUE(p.b.s[id].eof);
  EXPECT_FALSE(p.a.s[id].eof);
  p.sb.eof(id);
  p.pump();
  EXPECT_TRUE(p.a.s[id].eof);

  p.sa.close(id, close_code::Normal, "done");
  p.pump();
  EXPECT_TRUE(p.b.s[id].closed);
  EXPECT_EQ(p.b.s[id].closeCode, close_code::Normal);
  EXPECT_EQ(p.b.s[id].closeReason, "done");
  EXPECT_FALSE(p.a.s[id].closed);  // our own close gets no callback
  EXPECT_EQ(p.sa.streams(), 1u);   // stream 3 only
  EXPECT_EQ(p.sb.streams(), 1u);
  EXPECT_FALSE(p.sa.failed());
  EXPECT_FALSE(p.sb.failed());
}

TEST(MuxSession, TheAnswerToACloseMayWaitForOtherFrames) {
  Pair p;
  std::vector<uint32_t> ids = p.openStreams(2);
  EXPECT_FALSE(p.sb.wantsFlush());
  p.sa.close(ids[0], close_code::Normal, "done");
  EXPECT_TRUE(p.sa.flushDue());  // a close of our own goes now
  std::string ab;
  p.sa.flush(ab, 1 << 20, p.now);
  p.sb.receive(bytes(ab), ab.size(), p.now);
  EXPECT_TRUE(p.b.s[ids[0]].closed);
  // b answers; the answer alone is not due.
  EXPECT_TRUE(p.sb.wantsFlush());
  EXPECT_FALSE(p.sb.flushDue());
  EXPECT_EQ(p.sa.streams(), 2u);  // a still counts the id
  // Anything else b sends takes the answer along, ahead of it.
  p.b.send(ids[1], "x");
  EXPECT_TRUE(p.sb.flushDue());
  std::string ba;
  p.sb.flush(ba, 1 << 20, p.now);
  EXPECT_FALSE(p.sb.wantsFlush());
  EXPECT_FALSE(p.sb.flushDue());
  p.sa.receive(bytes(ba), ba.size(), p.now);
  EXPECT_EQ(p.sa.streams(), 1u);
  EXPECT_EQ(p.a.s[ids[1]].in, "x");
  // A flush when nothing else waits sends the answer alone (after the channel's delay).
  p.sb.close(ids[1], close_code::Normal, "done");
  p.pump();
  EXPECT_EQ(p.sa.streams(), 0u);
  EXPECT_EQ(p.sb.streams(), 0u);
  EXPECT_FALSE(p.sa.wantsFlush());
}

// After an Eof each way, a normal Close only frees the id: it waits like an answer. The Close
// that carries the last Eof, or one with another code, or one before the peer's Eof, goes now.
TEST(MuxSession, ANormalCloseAfterEofEachWayMayWait) {
  Pair p;
  std::vector<uint32_t> ids = p.openStreams(4);
  for (uint32_t id : ids) p.sa.eof(id);
  p.pump();
  for (uint32_t id : {ids[0], ids[1], ids[2]}) p.sb.eof(id);
  p.pump();
  ASSERT_FALSE(p.sa.wantsFlush());

  p.sa.close(ids[0], close_code::Normal, "done");
  EXPECT_TRUE(p.sa.wantsFlush());
  EXPECT_FALSE(p.sa.flushDue());
  p.sa.close(ids[1], close_code::GoingAway, "");
  EXPECT_TRUE(p.sa.flushDue());  // not the normal end: goes now
  p.pump();
  EXPECT_TRUE(p.b.s[ids[0]].closed);
  EXPECT_EQ(p.b.s[ids[0]].closeCode, close_code::Normal);

  p.sa.close(ids[3], close_code::Normal, "done");
  EXPECT_TRUE(p.sa.flushDue());  // the peer's Eof has not come: the Close is news
  p.pump();

  // b's Eof waits to go out with its Close: that Close carries news and goes now.
  Pair q;
  uint32_t id = q.openStreams(1)[0];
  q.sa.eof(id);
  q.pump();
  q.sb.eof(id);
  q.sb.close(id, close_code::Normal, "done");
  EXPECT_TRUE(q.sb.flushDue());
  q.pump();
  EXPECT_TRUE(q.a.s[id].eof);
  EXPECT_TRUE(q.a.s[id].closed);
  EXPECT_EQ(q.sa.streams(), 0u);
  EXPECT_EQ(q.sb.streams(), 0u);
}

TEST(MuxSession, ServerOpensEvenIdsToo) {
  Pair p;
  EXPECT_EQ(p.sb.open(sampleRequest()), 2u);
  p.pump();
  EXPECT_TRUE(p.a.s[2].opened);
  EXPECT_TRUE(p.b.s[2].accepted);
}

TEST(MuxSession, RejectCarriesTheCodeByName) {
  Pair p;
  p.b.autoAccept = false;
  uint32_t id = p.openStreams(1)[0];
  EXPECT_TRUE(p.sb.reject(id, proto::Reject::ConnectionRefused, "refused"));
  EXPECT_FALSE(p.sb.reject(id, proto::Reject::ConnectionRefused, "twice"));
  p.pump();
  EXPECT_TRUE(p.a.s[id].rejected);
  EXPECT_EQ(p.a.s[id].reject, proto::Reject::ConnectionRefused);
  EXPECT_EQ(p.a.s[id].rejectText, "connection-refused");
  EXPECT_EQ(p.sa.streams(), 0u);
  EXPECT_EQ(p.sb.streams(), 0u);
  EXPECT_EQ(p.sa.committed(), 0u);
}

TEST(MuxSession, DataStaysWithinCreditUntilConsumed) {
  Limits l;
  l.initialWindow = 64 * 1024;
  Pair p(l);
  p.b.autoConsume = false;
  uint32_t id = p.openStreams(1)[0];
  p.a.send(id, test::randomBytes(1 << 20, 3));
  p.pump();
  EXPECT_EQ(p.b.s[id].in.size(), 64 * 1024u);  // exactly the window, then nothing
  EXPECT_EQ(p.sa.creditOf(id), 0u);
  EXPECT_FALSE(p.sa.wantsFlush());
  // Consuming less than half the window returns nothing yet; half returns it.
  p.sb.consumed(id, 1000);
  p.pump();
  EXPECT_EQ(p.b.s[id].in.size(), 64 * 1024u);
  p.sb.consumed(id, 32 * 1024);
  p.pump();
  EXPECT_EQ(p.b.s[id].in.size(), 64 * 1024u + 1000 + 32 * 1024);
  EXPECT_LE(p.sb.committed(), 64 * 1024u);
}

TEST(MuxSession, SlowReaderStallsOnlyItsOwnStream) {
  Limits l;
  l.initialWindow = 64 * 1024;
  Pair p(l);
  const auto ids = p.openStreams(2);
  const uint32_t slow = ids[0], fast = ids[1];
  p.b.autoConsume = false;
  const std::string big = test::randomBytes(8 << 20, 4);
  p.a.send(slow, big);
  p.a.send(fast, big);
  for (int round = 0; round < 10000 && p.b.s[fast].in.size() < big.size(); ++round) {
    std::string ab, ba;
    p.sa.flush(ab, 64 * 1024, p.now);
    size_t before = p.b.s[fast].in.size();
    p.sb.receive(bytes(ab), ab.size(), p.now);
    p.sb.consumed(fast, p.b.s[fast].in.size() - before);
    p.sb.flush(ba, 1 << 20, p.now);
    p.sa.receive(bytes(ba), ba.size(), p.now);
  }
  EXPECT_EQ(p.b.s[fast].in, big);
  EXPECT_EQ(p.b.s[slow].in.size(), 64 * 1024u);
  EXPECT_FALSE(p.sa.failed());
  EXPECT_FALSE(p.sb.failed());
  // The slow reader catches up once it reads.
  p.b.autoConsume = true;
  p.sb.consumed(slow, 64 * 1024);
  p.pump();
  EXPECT_EQ(p.b.s[slow].in, big);
}

TEST(MuxSession, BudgetIsNeverExceeded) {
  Limits l;
  l.budget = 2 << 20;  // half of it holds 8 initial windows, the other half floors
  l.initialWindow = 128 * 1024;
  l.minWindow = 16 * 1024;
  l.maxStreams = 1000;
  Pair p(l);
  p.b.autoConsume = false;
  p.sa.setRtt(milliseconds(50));
  p.sb.setRtt(milliseconds(50));
  std::vector<uint32_t> ids;
  for (int i = 0; i < 40; ++i) {
    uint32_t id = p.sa.open(sampleRequest());
    ASSERT_NE(id, 0u);
    ids.push_back(id);
  }
  p.pump();
  std::mt19937 rng(7);
  for (uint32_t id : ids) p.a.send(id, test::randomBytes(1 << 20, id));
  std::map<uint32_t, size_t> consumed;
  for (int round = 0; round < 3000; ++round) {
    p.now += milliseconds(1);
    std::string ab, ba;
    p.sa.flush(ab, 256 * 1024, p.now);
    p.sb.receive(bytes(ab), ab.size(), p.now);
    uint64_t held = 0;
    for (uint32_t id : ids) {
      size_t have = p.b.s[id].in.size() - consumed[id];
      // Streams 0..9 never read; the others read a random part of what they hold.
      if (id > 20 && have > 0) {
        size_t n = rng() % (have + 1);
        p.sb.consumed(id, n);
        consumed[id] += n;
        have -= n;
      }
      held += have;
    }
    ASSERT_LE(p.sb.committed(), l.budget);
    ASSERT_LE(held, p.sb.committed());
    p.sb.flush(ba, 1 << 20, p.now);
    p.sa.receive(bytes(ba), ba.size(), p.now);
  }
  // The readers got everything, the stalled ones their first window only.
  for (uint32_t id : ids) {
    if (id > 20) {
      EXPECT_EQ(p.b.s[id].in.size(), 1u << 20) << id;
    } else {
      EXPECT_LE(p.b.s[id].in.size(), l.initialWindow) << id;
      EXPECT_GE(p.b.s[id].in.size(), l.minWindow) << id;
    }
  }
  // No new stream fits when the floors are spoken for, so the budget still holds.
  Limits tight;
  tight.budget = 64 * 1024;
  tight.minWindow = 16 * 1024;
  tight.initialWindow = 16 * 1024;
  Pair q(tight);
  for (int i = 0; i < 4; ++i) EXPECT_NE(q.sa.open(sampleRequest()), 0u);
  EXPECT_EQ(q.sa.open(sampleRequest()), 0u);
  EXPECT_EQ(q.sa.committed(), 64 * 1024u);
}

// Channels that share a memory pool grant windows above the floor only while the pool has room:
// one channel's streams holding it leave another's new stream at its floor until they go.
TEST(MuxSession, APoolBoundsWindowsAcrossChannels) {
  Limits l;
  l.minWindow = 16 * 1024;
  l.minInitialWindow = l.initialWindow = 256 * 1024;
  l.pool = std::make_shared<MemoryPool>(1 << 20);
  {
    auto p = std::make_unique<Pair>(l);
    std::vector<uint32_t> held = p->openStreams(2);  // four windows of 256 KiB: the pool is full
    for (uint32_t id : held) EXPECT_EQ(p->sa.creditOf(id), 256 * 1024u) << id;
    EXPECT_EQ(l.pool->used, 1u << 20);

    Pair q(l);
    uint32_t id = q.openStreams(1)[0];
    EXPECT_EQ(q.sa.creditOf(id), l.minWindow);  // the floor, whatever the pool says
    EXPECT_EQ(q.sb.creditOf(id), l.minWindow);

    // The other channel goes; the stream's next grants take the room it left.
    p.reset();
    EXPECT_EQ(l.pool->used, 2u * l.minWindow);
    const std::string data = test::randomBytes(64 * 1024, 3);
    q.a.send(id, data);
    q.pump();
    EXPECT_EQ(q.b.s[id].in, data);
    // (Credit goes back in batches of a quarter window: up to 64 KiB may still be owed.)
    EXPECT_GT(q.sa.creditOf(id), 192 * 1024u);
  }
  EXPECT_EQ(l.pool->used, 0u);  // every session gave back what it held
}

TEST(MuxSession, DefaultBudgetAdmitsMaxStreamsIdleStreams) {
  // Idle streams hold their initial windows; the floors of maxStreams streams still fit.
  Limits l;
  Pair p(l);
  size_t opened = 0;
  while (opened < l.maxStreams) {
    for (size_t i = 0; i < l.maxPendingOpens && opened < l.maxStreams; ++i, ++opened) {
      ASSERT_NE(p.sa.open(sampleRequest()), 0u) << opened;
    }
    p.pump();
  }
  EXPECT_EQ(p.sa.streams(), l.maxStreams);
  EXPECT_EQ(p.sb.streams(), l.maxStreams);
  EXPECT_EQ(p.sa.open(sampleRequest()), 0u);
  EXPECT_LE(p.sa.committed(), l.budget);
  EXPECT_LE(p.sb.committed(), l.budget);
}

TEST(MuxSession, StreamAndPendingOpenLimits) {
  Limits l;
  l.maxStreams = 3;
  l.maxPendingOpens = 2;
  Pair p(l);
  p.b.autoAccept = false;
  // The local side refuses to exceed its own pending bound.
  uint32_t a1 = p.sa.open(sampleRequest());
  uint32_t a2 = p.sa.open(sampleRequest());
  EXPECT_EQ(p.sa.open(sampleRequest()), 0u);
  p.pump();
  p.sb.accept(a1);
  p.sb.accept(a2);
  p.pump();
  // A peer that ignores the bounds gets refusals, not more streams.
  std::string raw;
  for (uint32_t id : {101u, 103u, 105u}) appendOpen(raw, id, 1000, sampleRequest());
  App c;
  MuxSession server(Role::Server, l, c);
  c.session = &server;
  c.autoAccept = false;
  server.receive(bytes(raw), raw.size(), p.now);
  std::string out;
  server.flush(out, 1 << 20, p.now);
  Frame f;
  DecodeResult r = decodeAll(out, f);
  ASSERT_EQ(r.status, DecodeStatus::Done);
  EXPECT_EQ(f.type, FrameType::Reject);
  EXPECT_EQ(f.stream, 105u);
  EXPECT_EQ(f.reject, proto::Reject::TooManyPending);
  EXPECT_EQ(server.streams(), 2u);
  server.accept(101);
  raw.clear();
  appendOpen(raw, 107, 1000, sampleRequest());
  appendOpen(raw, 109, 1000, sampleRequest());
  server.receive(bytes(raw), raw.size(), p.now);
  out.clear();
  server.flush(out, 1 << 20, p.now);
  // 107 is the third stream; 109 is one too many.
  size_t pos = 0;
  std::vector<std::pair<uint32_t, proto::Reject>> rejects;
  while (pos < out.size()) {
    r = decode(bytes(out) + pos, out.size() - pos, f);
    ASSERT_EQ(r.status, DecodeStatus::Done);
    if (f.type == FrameType::Reject) rejects.emplace_back(f.stream, f.reject);
    pos += r.consumed;
  }
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].first, 109u);
  EXPECT_EQ(rejects[0].second, proto::Reject::TooManyStreams);
  EXPECT_FALSE(server.failed());
}

// A server session fed raw frames, as from a peer that breaks the rules.
struct Raw {
  App app;
  MuxSession s{Role::Server, Limits{}, app};
  TimePoint now{};
  std::string out;
  Raw() { app.session = &s; }
  bool feed(const std::string& wire) {
    bool ok = s.receive(bytes(wire), wire.size(), now);
    s.flush(out, 1 << 20, now);
    return ok;
  }
  std::vector<Frame> sent() {
    std::vector<Frame> v;
    size_t pos = 0;
    while (pos < out.size()) {
      Frame f;
      DecodeResult r = decode(bytes(out) + pos, out.size() - pos, f);
      if (r.status != DecodeStatus::Done) break;
      v.push_back(f);
      pos += r.consumed;
    }
    out.clear();
    return v;
  }
  std::string open(uint32_t id, uint32_t window = 1 << 20) {
    std::string w;
    appendOpen(w, id, window, sampleRequest());
    return w;
  }
};

TEST(MuxSessionErrors, DataBeyondTheWindowClosesTheStream) {
  Raw r;
  ASSERT_TRUE(r.feed(r.open(1)));
  r.sent();
  r.app.autoConsume = false;
  const std::string big(kMaxPayload, 'x');
  std::string w;
  const uint32_t window = Limits{}.minInitialWindow;  // no RTT known yet
  for (uint32_t sent = 0; sent < window; sent += kMaxPayload) {
    appendData(w, 1, bytes(big), kMaxPayload);
  }
  appendData(w, 1, bytes(big), 1);
  ASSERT_TRUE(r.feed(w));
  EXPECT_TRUE(r.app.s[1].closed);
  EXPECT_EQ(r.app.s[1].closeCode, close_code::ProtocolError);
  EXPECT_EQ(r.app.s[1].closeReason, "data beyond the window");
  EXPECT_EQ(r.app.s[1].in.size(), window);
  auto frames = r.sent();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, FrameType::Close);
  EXPECT_EQ(frames[0].closeCode, close_code::ProtocolError);
  // Until the peer's Close, its frames on the stream are dropped; then the id is gone.
  w.clear();
  appendData(w, 1, bytes(big), 10);
  appendClose(w, 1, close_code::ProtocolError, "");
  EXPECT_TRUE(r.feed(w));
  EXPECT_EQ(r.s.streams(), 0u);
  EXPECT_EQ(r.s.committed(), 0u);
  EXPECT_TRUE(r.sent().empty());
}

TEST(MuxSessionErrors, StreamStateViolationsCloseOnlyThatStream) {
  Raw r;
  r.app.autoAccept = false;
  ASSERT_TRUE(r.feed(r.open(1) + r.open(3) + r.open(5) + r.open(7)));
  r.s.accept(3);
  r.s.accept(5);
  r.s.accept(7);
  r.feed("");
  r.sent();
  std::string w;
  appendData(w, 1, bytes(std::string("x")), 1);  // data before our accept
  appendEof(w, 3);
  appendEof(w, 3);                 // eof twice
  appendWindow(w, 5, kMaxWindow);  // credit above 2^31-1 (1 MiB + 2^31-1)
  appendAccept(w, 7, 10);          // accept on a stream the peer opened
  ASSERT_TRUE(r.feed(w));
  for (uint32_t id : {1u, 3u, 5u, 7u}) {
    EXPECT_TRUE(r.app.s[id].closed) << id;
    EXPECT_EQ(r.app.s[id].closeCode, close_code::ProtocolError) << id;
  }
  auto frames = r.sent();
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].type, FrameType::Reject);  // never accepted: refused
  EXPECT_EQ(frames[0].reject, proto::Reject::BadRequest);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(frames[i].type, FrameType::Close);
  EXPECT_FALSE(r.s.failed());
}

TEST(MuxSessionErrors, ChannelErrors) {
  struct Case {
    const char* what;
    std::function<std::string(Raw&)> wire;
    const char* error;
  };
  std::vector<Case> cases = {
      {"unknown stream",
       [](Raw&) {
         std::string w;
         appendData(w, 9, bytes(std::string("x")), 1);
         return w;
       },
       "frame on an unknown stream"},
      {"duplicate open", [](Raw& r) { return r.open(1) + r.open(1); },
       "open of an id already used"},
      {"open below the highest", [](Raw& r) { return r.open(5) + r.open(3); },
       "open of an id already used"},
      {"wrong parity", [](Raw& r) { return r.open(2); }, "open with an id of our parity"},
      {"frame after close",
       [](Raw& r) {
         std::string w = r.open(1);
         appendClose(w, 1, 1000, "");
         appendEof(w, 1);
         return w;
       },
       "frame on a closed stream"},
      {"bad frame", [](Raw&) { return header(4, 0, 0, 0); }, "stream frame on stream 0"},
  };
  for (auto& c : cases) {
    Raw r;
    EXPECT_FALSE(r.feed(c.wire(r))) << c.what;
    EXPECT_TRUE(r.s.failed()) << c.what;
    EXPECT_EQ(r.s.channelCloseCode(), close_code::ProtocolError) << c.what;
    EXPECT_EQ(r.s.channelError(), c.error) << c.what;
    EXPECT_EQ(r.s.streams(), 0u);
    // Dead: nothing more goes in or out.
    EXPECT_FALSE(r.feed(r.open(101)));
    EXPECT_TRUE(r.out.empty());
  }
  // The streams alive when the channel failed are told.
  Raw r;
  r.feed(r.open(1) + r.open(3));
  r.feed(header(9, 0, kMaxPayload + 1, 1));
  EXPECT_TRUE(r.app.s[1].closed && r.app.s[3].closed);
  EXPECT_EQ(r.app.s[1].closeCode, close_code::GoingAway);
}

TEST(MuxSessionErrors, UnknownFrameTypesAreSkipped) {
  Raw r;
  std::string w = header(0x42, 0, 5, 77) + "later" + r.open(1) + header(0xee, 0, 0, 0);
  appendData(w, 1, bytes(std::string("x")), 1);
  EXPECT_TRUE(r.feed(w));
  EXPECT_EQ(r.app.s[1].in, "x");
  EXPECT_FALSE(r.s.failed());
}

TEST(MuxSessionErrors, AControlFloodThatIsNeverReadFailsTheChannel) {
  App app;
  Limits l;
  l.maxControl = 4096;
  MuxSession s(Role::Server, l, app);
  app.session = &s;
  std::string pings;
  for (int i = 0; i < 1000; ++i) appendPing(pings, static_cast<uint64_t>(i), false);
  EXPECT_FALSE(s.receive(bytes(pings), pings.size(), TimePoint{}));
  EXPECT_EQ(s.channelCloseCode(), close_code::PolicyViolation);
  EXPECT_LE(s.controlPending(), l.maxControl);
}

TEST(MuxSession, CrossingClosesAndCancelledOpens) {
  Pair p;
  p.b.autoAccept = false;
  uint32_t id = p.openStreams(1)[0];
  // The opener gives up while the acceptor refuses: both Close and Reject cross.
  p.sa.close(id, close_code::GoingAway, "client left");
  p.sb.reject(id, proto::Reject::TargetTimeout, "slow");
  p.pump();
  EXPECT_EQ(p.sa.streams(), 0u);
  EXPECT_EQ(p.sb.streams(), 0u);
  EXPECT_FALSE(p.a.s[id].rejected);  // a closed stream gets no more callbacks

  p.b.autoAccept = true;
  id = p.openStreams(1)[0];
  p.sa.close(id, close_code::Normal, "a");
  p.sb.close(id, close_code::Normal, "b");
  p.pump();
  EXPECT_EQ(p.sa.streams(), 0u);
  EXPECT_EQ(p.sb.streams(), 0u);
  EXPECT_FALSE(p.sa.failed() || p.sb.failed());

  // Close of an open still awaiting acceptance reaches the acceptor's application.
  p.b.autoAccept = false;
  id = p.openStreams(1)[0];
  p.sa.close(id, close_code::GoingAway, "gone");
  p.pump();
  EXPECT_TRUE(p.b.s[id].closed);
  EXPECT_EQ(p.sb.streams(), 0u);
}

TEST(MuxSession, EofWaitsForTheBytesBeforeIt) {
  Limits l;
  l.initialWindow = 16 * 1024;
  l.minWindow = 16 * 1024;
  Pair p(l);
  p.b.autoConsume = false;
  uint32_t id = p.openStreams(1)[0];
  p.a.send(id, test::randomBytes(40000, 5));
  p.sa.eof(id);
  p.pump();
  EXPECT_FALSE(p.b.s[id].eof);  // 16 KiB arrived; the rest and the eof wait for credit
  p.b.autoConsume = true;
  p.sb.consumed(id, p.b.s[id].in.size());
  p.pump();
  EXPECT_EQ(p.b.s[id].in.size(), 40000u);
  EXPECT_TRUE(p.b.s[id].eof);
}

TEST(MuxSession, RoundRobinInQuanta) {
  Pair p;
  const auto ids = p.openStreams(2);
  const uint32_t x = ids[0], y = ids[1];
  p.a.send(x, test::randomBytes(200000, 6));
  p.a.send(y, "ls\n");  // a small write next to a bulk one
  std::string out;
  p.sa.flush(out, 3 * (kMaxPayload + kHeaderLen), p.now);
  std::vector<uint32_t> order;
  size_t pos = 0;
  while (pos < out.size()) {
    Frame f;
    DecodeResult r = decode(bytes(out) + pos, out.size() - pos, f);
    ASSERT_EQ(r.status, DecodeStatus::Done);
    if (f.type == FrameType::Data) order.push_back(f.stream);
    pos += r.consumed;
  }
  // y's three bytes go out after one quantum of x, not after all of it.
  ASSERT_GE(order.size(), 2u);
  EXPECT_EQ(order[0], x);
  EXPECT_EQ(order[1], y);
}

TEST(MuxSession, PingMeasuresTheRoundTrip) {
  Pair p;
  p.sa.tick(p.now);
  std::string ab, ba;
  p.sa.flush(ab, 1 << 20, p.now);
  p.now += milliseconds(30);
  p.sb.receive(bytes(ab), ab.size(), p.now);
  p.sb.flush(ba, 1 << 20, p.now);
  p.now += milliseconds(20);
  p.sa.receive(bytes(ba), ba.size(), p.now);
  EXPECT_EQ(p.sa.rtt(), milliseconds(50));
  // No second ping before the interval; the minimum of the samples is kept.
  p.sa.tick(p.now + milliseconds(100));
  EXPECT_FALSE(p.sa.wantsFlush());
  p.now += Limits{}.pingInterval;
  p.sa.tick(p.now);
  ab.clear();
  ba.clear();
  p.sa.flush(ab, 1 << 20, p.now);
  p.sb.receive(bytes(ab), ab.size(), p.now);
  p.sb.flush(ba, 1 << 20, p.now);
  p.now += milliseconds(80);
  p.sa.receive(bytes(ba), ba.size(), p.now);
  EXPECT_EQ(p.sa.rtt(), milliseconds(50));
}

TEST(MuxSession, BytesInAnyPieces) {
  Pair p;
  uint32_t id = p.sa.open(sampleRequest());
  std::string ab;
  p.sa.flush(ab, 1 << 20, p.now);
  const std::string data = test::randomBytes(50000, 8);
  p.sb.receive(bytes(ab), ab.size(), p.now);
  std::string ba;
  p.sb.flush(ba, 1 << 20, p.now);
  p.sa.receive(bytes(ba), ba.size(), p.now);
  p.a.send(id, data);
  p.sa.eof(id);
  ab.clear();
  p.sa.flush(ab, 1 << 20, p.now);
  // One byte at a time, then in odd sizes.
  for (size_t i = 0; i < 100; ++i) ASSERT_TRUE(p.sb.receive(bytes(ab) + i, 1, p.now));
  for (size_t i = 100; i < ab.size(); i += 777) {
    ASSERT_TRUE(p.sb.receive(bytes(ab) + i, std::min<size_t>(777, ab.size() - i), p.now));
  }
  EXPECT_EQ(p.b.s[id].in, data);
  EXPECT_TRUE(p.b.s[id].eof);
}

TEST(MuxSession, ShutdownTellsEveryStream) {
  Pair p;
  const auto ids = p.openStreams(2);
  const uint32_t x = ids[0], y = ids[1];
  p.sa.shutdown(close_code::GoingAway, "channel lost");
  EXPECT_TRUE(p.a.s[x].closed && p.a.s[y].closed);
  EXPECT_EQ(p.a.s[x].closeReason, "channel lost");
  EXPECT_EQ(p.sa.streams(), 0u);
  EXPECT_EQ(p.sa.open(sampleRequest()), 0u);
}

// A link with a one-way delay and a bottleneck rate, stepped by a fake clock in 1 ms steps:
// each side first takes what arrived, then sends; the sender puts at most `rate` bytes per
// millisecond on the link and the receiver reads at once.
struct Link {
  Pair p;
  uint32_t id = 0;
  uint64_t delivered = 0;
  std::deque<std::pair<int64_t, std::string>> ab, ba;

  explicit Link(Limits l) : p(l) {}

  uint64_t run(int64_t ms, size_t rate, int64_t delay, int64_t& t) {
    const uint64_t start = delivered;
    for (int64_t end = t + ms; t < end; ++t) {
      p.now = TimePoint{} + milliseconds(t);
      p.sa.tick(p.now);
      while (!ab.empty() && ab.front().first <= t) {
        const std::string w = std::move(ab.front().second);
        ab.pop_front();
        const size_t before = p.b.s[id].in.size();
        p.sb.receive(bytes(w), w.size(), p.now);
        delivered += p.b.s[id].in.size() - before;
        p.b.s[id].in.clear();  // keep the test's memory flat
      }
      while (!ba.empty() && ba.front().first <= t) {
        const std::string w = std::move(ba.front().second);
        ba.pop_front();
        p.sa.receive(bytes(w), w.size(), p.now);
      }
      p.sb.tick(p.now);
      std::string out;
      p.sa.flush(out, rate, p.now);
      if (!out.empty()) ab.emplace_back(t + delay, std::move(out));
      out.clear();
      p.sb.flush(out, 1 << 30, p.now);
      if (!out.empty()) ba.emplace_back(t + delay, std::move(out));
      // An endless source.
      App::S& src = p.a.s[id];
      if (src.out.size() - src.sent < (1 << 20)) {
        src.out.erase(0, src.sent);
        src.sent = 0;
        src.out.append(1 << 20, 'b');
        p.sa.wantWrite(id);
      }
    }
    return delivered - start;
  }
};

void expectWindowFollowsBdp(size_t ratePerMs, int64_t oneWay) {
  Limits l;  // defaults: 256 KiB initial before the first RTT sample, 16 MiB cap
  Link link(l);
  int64_t t = 0;
  link.id = link.p.sa.open(sampleRequest());
  link.run(3000, ratePerMs, oneWay, t);  // ramp up
  const uint64_t secondBytes = link.run(1000, ratePerMs, oneWay, t);
  const uint64_t bdp = ratePerMs * static_cast<uint64_t>(2 * oneWay);
  const uint32_t window = link.p.sb.windowOf(link.id);
  SCOPED_TRACE(testing::Message() << "rate " << ratePerMs << " B/ms, rtt " << 2 * oneWay
                                  << " ms, bdp " << bdp << ", window " << window);
  EXPECT_EQ(link.p.sb.rtt(), milliseconds(2 * oneWay));
  // The link, not the window, limits the stream...
  EXPECT_GE(secondBytes, ratePerMs * 1000 * 9 / 10);
  // ...and the window is no larger than the growth rule allows: at most 8 x BDP, or the
  // initial window when that already covers the path.
  EXPECT_LE(window, std::max<uint64_t>(8 * bdp, l.minInitialWindow));
  if (bdp > l.minInitialWindow) {
    EXPECT_GE(window, bdp);
  } else {
    EXPECT_EQ(window, l.minInitialWindow);
  }
  EXPECT_LE(link.p.sb.committed(), l.budget);
  EXPECT_FALSE(link.p.sa.failed() || link.p.sb.failed());
}

TEST(MuxFlowControl, WindowStaysPutWhenItCoversThePath) {
  expectWindowFollowsBdp(500, 20);  // 0.5 MB/s, 40 ms: BDP 20 KB, 4 x BDP < 256 KiB
}

TEST(MuxFlowControl, WindowGrowsWithTheBandwidthDelayProduct) {
  expectWindowFollowsBdp(100000, 20);  // 100 MB/s, 40 ms: BDP 4 MB
}

// A stream's first DATA never goes ahead of its ACCEPT, even when the ACCEPT waits behind a
// control frame that filled the message: here a CLOSE of another stream takes all but 11 bytes
// of it, room enough for a DATA frame of 3 bytes.
TEST(MuxSession, DataNeverOvertakesTheControlFramesQueuedBeforeIt) {
  Pair p;
  p.b.autoAccept = false;
  const uint32_t y = p.sa.open(sampleRequest());
  const uint32_t x = p.sa.open(sampleRequest());
  p.pump();
  ASSERT_TRUE(p.sb.accept(y));
  p.pump();
  const std::string reason(100, 'r');
  p.sb.close(y, close_code::Normal, reason);
  ASSERT_TRUE(p.sb.accept(x));
  p.b.send(x, "banner");
  std::string closeFrame;
  appendClose(closeFrame, y, close_code::Normal, reason);
  std::vector<uint8_t> msg(closeFrame.size() + 11);
  for (int i = 0; i < 100 && p.sb.wantsFlush(); ++i) {
    const size_t n = p.sb.flush(msg.data(), msg.size(), p.now);
    ASSERT_GT(n, 0u);
    ASSERT_TRUE(p.sa.receive(msg.data(), n, p.now));
    p.pump();
  }
  EXPECT_TRUE(p.a.s[x].accepted);
  EXPECT_FALSE(p.a.s[x].closed) << p.a.s[x].closeReason;
  EXPECT_EQ(p.a.s[x].in, "banner");
}

TEST(MuxFlowControl, InitialWindowCoversTheInitialRateOverTheRtt) {
  for (int64_t oneWay : {1, 10, 50}) {
    Limits l;
    Link link(l);
    int64_t t = 0;
    link.run(3 * oneWay, 0, oneWay, t);  // the first ping's round trip
    ASSERT_EQ(link.p.sa.rtt(), milliseconds(2 * oneWay));
    ASSERT_EQ(link.p.sb.rtt(), milliseconds(2 * oneWay));
    link.id = link.p.sa.open(sampleRequest());
    link.run(3 * oneWay, 0, oneWay, t);
    const uint64_t expected = std::clamp<uint64_t>(l.initialRate * 2 * oneWay / 1000,
                                                   l.minInitialWindow, l.initialWindow);
    SCOPED_TRACE(testing::Message() << "rtt " << 2 * oneWay << " ms");
    EXPECT_EQ(link.p.sa.windowOf(link.id), expected);  // the opener's, in the Open
    EXPECT_EQ(link.p.sb.windowOf(link.id), expected);  // the acceptor's, in the Accept
    EXPECT_EQ(link.p.sa.creditOf(link.id), expected);
  }
}

TEST(MuxFlowControl, RttFollowsAGrownPathButNotTheQueueBehindData) {
  Limits l;
  Link link(l);
  int64_t t = 0;
  link.id = link.p.sa.open(sampleRequest());
  link.run(10, 0, 1, t);  // rate 0: control frames only
  ASSERT_EQ(link.p.sb.rtt(), milliseconds(2));
  // Data flows and the round trip grows to 40 ms: the samples taken meanwhile (one every
  // busyPingInterval at the receiver) had data around them and may be queueing, not the path.
  link.run(1000, 100000, 20, t);
  ASSERT_GT(link.delivered, 1u << 20);
  EXPECT_EQ(link.p.sb.rtt(), milliseconds(2));
  EXPECT_EQ(link.p.sa.rtt(), milliseconds(2));
  // Once the data stops, clean samples (no data around them) show the path as it is now: the
  // RTT is the lower of the last two (the sender's first idle ping still had the data before
  // it, so it takes one interval more).
  link.run(3 * l.pingInterval.count() + 200, 0, 20, t);
  EXPECT_EQ(link.p.sb.rtt(), milliseconds(40));
  EXPECT_EQ(link.p.sa.rtt(), milliseconds(40));
}

size_t pingsIn(const std::string& wire) {
  size_t n = 0;
  for (size_t at = 0; at < wire.size();) {
    Frame f;
    DecodeResult r = decode(bytes(wire) + at, wire.size() - at, f);
    if (r.status != DecodeStatus::Done) break;
    if (f.type == FrameType::Ping && !(f.flags & kFlagAck)) ++n;
    at += r.consumed;
  }
  return n;
}

TEST(MuxFlowControl, SparseDataSendsNoPingButBulkDataDoes) {
  Pair p;
  const uint32_t id = p.openStreams(1)[0];
  p.sa.tick(p.now);  // the first RTT samples, both ways
  p.sb.tick(p.now);
  p.pump();
  // Keystrokes 200 ms apart, well within pingInterval: Data and its credit, no pings.
  size_t pings = 0;
  for (int i = 0; i < 10; ++i) {
    p.now += milliseconds(200);
    p.a.send(id, "k");
    for (int round = 0; round < 4; ++round) {
      std::string ab, ba;
      p.sa.flush(ab, 1 << 20, p.now);
      p.sb.flush(ba, 1 << 20, p.now);
      pings += pingsIn(ab) + pingsIn(ba);
      p.sb.receive(bytes(ab), ab.size(), p.now);
      p.sa.receive(bytes(ba), ba.size(), p.now);
    }
  }
  EXPECT_EQ(p.b.s[id].in, std::string(10, 'k'));
  EXPECT_EQ(pings, 0u);
  // Bulk data samples the path while it flows.
  p.now += milliseconds(200);
  p.a.send(id, std::string(256 * 1024, 'b'));
  std::string ab;
  p.sa.flush(ab, 1 << 20, p.now);
  p.sb.receive(bytes(ab), ab.size(), p.now);
  std::string ba;
  p.sb.flush(ba, 1 << 20, p.now);
  EXPECT_EQ(pingsIn(ba), 1u);
}

TEST(MuxFlowControl, WindowGrowthStopsAtTheCap) {
  Limits l;
  l.initialWindow = 256 * 1024;
  l.maxWindow = 1 << 20;
  Link link(l);
  int64_t t = 0;
  link.id = link.p.sa.open(sampleRequest());
  link.run(2000, 100000, 50, t);  // 100 MB/s, 100 ms: BDP 10 MB, far above the cap
  EXPECT_EQ(link.p.sb.windowOf(link.id), 1u << 20);
  // Window-limited: about one window per round trip.
  const uint64_t second = link.run(1000, 100000, 50, t);
  EXPECT_LE(second, 11u << 20);
  EXPECT_GE(second, 8u << 20);
}

}  // namespace
}  // namespace ds::mux
