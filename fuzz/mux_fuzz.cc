// Fuzz target for multiplexed streams: the frame codec and the session state machine. The first
// byte picks options; the rest is read twice: as frames for the codec (each accepted frame must
// survive an encode and a decode unchanged, every strict prefix must need more), and as the
// byte stream a peer sends a session, cut into pieces, while a scripted application answers
// from the same bytes. The session must keep its bounds and only ever send frames that decode.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/mux.h"
#include "fuzz_check.h"

namespace {

using namespace ds::mux;

void checkFrames(const uint8_t* data, size_t size) {
  size_t pos = 0;
  while (pos < size) {
    Frame f;
    f.stream = 0xfeed;
    const DecodeResult r = decode(data + pos, size - pos, f);
    FUZZ_CHECK(r.consumed <= size - pos);
    if (r.status == DecodeStatus::NeedMore) {
      FUZZ_CHECK(r.consumed == 0 && r.error == nullptr && f.stream == 0xfeed);
      FUZZ_CHECK(size - pos < kHeaderLen + kMaxPayload);
      break;
    }
    if (r.status == DecodeStatus::Invalid) {
      FUZZ_CHECK(r.consumed == 0 && r.error != nullptr && f.stream == 0xfeed);
      ++pos;  // resynchronise one byte on
      continue;
    }
    FUZZ_CHECK(r.consumed >= kHeaderLen && r.consumed <= kHeaderLen + kMaxPayload);
    for (size_t n = 0; n < r.consumed; ++n) {
      Frame g;
      FUZZ_CHECK(decode(data + pos, n, g).status == DecodeStatus::NeedMore);
    }
    if (r.known) {
      FUZZ_CHECK((f.type == FrameType::Ping) == (f.stream == 0));
      std::string w;
      switch (f.type) {
        case FrameType::Open:
          FUZZ_CHECK(appendOpen(w, f.stream, f.window, f.request));
          break;
        case FrameType::Accept:
          appendAccept(w, f.stream, f.window);
          break;
        case FrameType::Reject:
          appendReject(w, f.stream, f.reject, f.reason, f.codeText);
          break;
        case FrameType::Data:
          appendData(w, f.stream, f.data, f.dataLen);
          break;
        case FrameType::Eof:
          appendEof(w, f.stream);
          break;
        case FrameType::Close:
          appendClose(w, f.stream, f.closeCode, f.reason);
          break;
        case FrameType::Window:
          appendWindow(w, f.stream, f.window);
          break;
        case FrameType::Ping:
          appendPing(w, f.ping, (f.flags & kFlagAck) != 0);
          break;
      }
      Frame g;
      const auto* wb = reinterpret_cast<const uint8_t*>(w.data());
      const DecodeResult r2 = decode(wb, w.size(), g);
      FUZZ_CHECK(r2.status == DecodeStatus::Done && r2.consumed == w.size());
      FUZZ_CHECK(g.type == f.type && g.stream == f.stream && g.window == f.window);
      FUZZ_CHECK(g.request == f.request && g.closeCode == f.closeCode && g.reason == f.reason);
      FUZZ_CHECK(g.reject == f.reject && g.codeText == f.codeText && g.ping == f.ping);
      FUZZ_CHECK(g.dataLen == f.dataLen &&
                 (f.dataLen == 0 || std::memcmp(g.data, f.data, f.dataLen) == 0));
    }
    pos += r.consumed;
  }
}

// An application whose every decision comes from the fuzz input.
struct ScriptedApp : MuxSession::Callbacks {
  MuxSession* s = nullptr;
  const uint8_t* script = nullptr;
  size_t scriptLen = 0, at = 0;
  std::vector<uint32_t> ids;
  std::map<uint32_t, uint64_t> held;  // bytes delivered and not yet reported consumed

  uint64_t heldTotal() const {
    uint64_t t = 0;
    for (const auto& [id, n] : held) t += n;
    return t;
  }
  void consume(uint32_t id, uint64_t n) {
    s->consumed(id, static_cast<size_t>(n));
    auto it = held.find(id);
    if (it != held.end()) it->second -= std::min(it->second, n);
  }

  uint8_t next() { return scriptLen == 0 ? 0 : script[at++ % scriptLen]; }
  uint32_t pick() { return ids.empty() ? 1 : ids[next() % ids.size()]; }

  void onOpen(uint32_t id, const OpenRequest&) override {
    ids.push_back(id);
    const uint8_t c = next() % 4;
    if (c == 0) s->accept(id);
    if (c == 1) s->reject(id, static_cast<ds::proto::Reject>(next() % 30), "no");
  }
  void onAccepted(uint32_t id) override { ids.push_back(id); }
  void onRejected(uint32_t, ds::proto::Reject, std::string_view, std::string_view) override {}
  void onData(uint32_t id, const uint8_t*, size_t n) override {
    held[id] += n;
    if (next() % 2 == 0) consume(id, n);
  }
  void onEof(uint32_t id) override {
    if (next() % 2 == 0) s->eof(id);
  }
  void onClosed(uint32_t id, uint16_t, std::string_view) override { held.erase(id); }
  size_t onPull(uint32_t, uint8_t* buf, size_t max) override {
    const size_t n = std::min<size_t>(max, next() * 97u);
    std::memset(buf, 'p', n);
    return n;
  }
  // One scripted action.
  void act(TimePoint now) {
    const uint32_t id = pick();
    switch (next() % 9) {
      case 0:
        s->accept(id);
        break;
      case 1:
        s->wantWrite(id);
        break;
      case 2:
        s->eof(id);
        break;
      case 3:
        s->close(id, 1000 + next() % 12, "bye");
        held.erase(id);
        break;
      case 4:
        consume(id, next() * 1024u);
        break;
      case 5: {
        OpenRequest q;
        q.host = "127.0.0.1";
        q.port = 22;
        if (uint32_t n = s->open(q)) ids.push_back(n);
        break;
      }
      case 6:
        s->tick(now);
        break;
      default:
        break;
    }
  }
};

void checkOutput(const std::string& out) {
  size_t pos = 0;
  while (pos < out.size()) {
    Frame f;
    const DecodeResult r =
        decode(reinterpret_cast<const uint8_t*>(out.data()) + pos, out.size() - pos, f);
    FUZZ_CHECK(r.status == DecodeStatus::Done && r.known);
    pos += r.consumed;
  }
}

void checkSession(uint8_t opts, const uint8_t* data, size_t size) {
  Limits l;
  l.maxStreams = 1 + (opts & 7);
  l.maxPendingOpens = 1 + ((opts >> 3) & 3);
  l.budget = uint64_t{64} << (10 + ((opts >> 5) & 3));  // 64 KiB .. 512 KiB
  l.minWindow = 4096;
  l.initialWindow = 32768;
  l.maxWindow = 1 << 20;
  l.maxControl = 8192;
  // A process-wide pool smaller than the budget half the time: it must mirror what the session
  // holds, and only ever cut windows above the floor.
  l.pool = std::make_shared<MemoryPool>((opts & 0x40) ? l.budget / 4 : l.budget);
  ScriptedApp app;
  MuxSession s((opts & 0x80) ? Role::Client : Role::Server, l, app);
  app.s = &s;
  app.script = data;
  app.scriptLen = size;
  s.setRtt(std::chrono::milliseconds(1));
  TimePoint now{};
  size_t pos = 0;
  size_t piece = 1;
  while (pos < size && !s.failed()) {
    const size_t n = std::min(piece, size - pos);
    s.receive(data + pos, n, now);
    pos += n;
    piece = 1 + (data[pos - 1] % 64) * 37;
    now += std::chrono::microseconds(data[pos - 1] * 50);
    app.act(now);
    FUZZ_CHECK(s.committed() <= l.budget);
    FUZZ_CHECK(l.pool->used == s.committed());
    FUZZ_CHECK(app.heldTotal() <= s.committed());
    FUZZ_CHECK(s.streams() <= l.maxStreams);
    FUZZ_CHECK(s.controlPending() <= l.maxControl);
    // Output that is due is output that waits; nothing waits after the session failed.
    FUZZ_CHECK(!s.flushDue() || s.wantsFlush());
    FUZZ_CHECK(!s.failed() || !s.wantsFlush());
    std::string out;
    const size_t want = 1 + app.next() * 300u;
    if (app.next() & 1) {
      s.flush(out, want, now);
    } else {
      // The channel's form: whole frames in a buffer of the caller's, at least one Open big.
      out.resize(std::max<size_t>(want, 2048));
      out.resize(s.flush(reinterpret_cast<uint8_t*>(out.data()), out.size(), now));
    }
    checkOutput(out);
  }
  s.shutdown(1001, "end");
  FUZZ_CHECK(s.streams() == 0 && s.committed() == 0 && l.pool->used == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  checkFrames(data + 1, size - 1);
  checkSession(opts, data + 1, size - 1);
  return 0;
}
