// Microbenchmark of multiplexed streams without sockets: the frame codec and two sessions
// moving bytes between each other in memory, against a baseline measured in the same run that
// moves the same bytes through the same buffers with plain memcpy (source -> channel buffer ->
// sink, in the same chunk sizes). Prints each figure and its ratio to the baseline; exits 1 if
// any byte arrived wrong, so `--quick` under CTest checks integrity, never speed.
//   mux_bench [--quick] [--mib N]
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/mux.h"
#include "common/ws_frame.h"

namespace {

using namespace ds::mux;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = 256 * 1024;  // bytes per flush: one WebSocket message
constexpr size_t kSource = 1 << 20;    // the repeating source pattern

std::vector<uint8_t> makeSource() {
  std::vector<uint8_t> v(kSource);
  uint32_t x = 2463534242u;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Sink that checks every byte against the source at its offset.
struct Checker {
  const std::vector<uint8_t>* src;
  uint64_t offset = 0;
  bool ok = true;
  std::vector<uint8_t> sink = std::vector<uint8_t>(kMaxPayload);
  void take(const uint8_t* d, size_t n, bool verify) {
    // Copy out like an application would (into its socket buffer), verify when asked.
    while (n > 0) {
      const size_t k = std::min(n, sink.size());
      std::memcpy(sink.data(), d, k);
      if (verify) {
        for (size_t i = 0; i < k; ++i) {
          if (sink[i] != (*src)[(offset + i) % kSource]) ok = false;
        }
      }
      offset += k;
      d += k;
      n -= k;
    }
  }
};

// Baseline: the same bytes, source -> channel buffer (kChunk per write) -> sink, copied in
// pieces of one frame's payload as the sessions do, without headers, credit or callbacks.
double baseline(const std::vector<uint8_t>& src, uint64_t total) {
  std::string channel;
  channel.reserve(kChunk);
  Checker c{&src};
  uint64_t srcOff = 0;
  auto t0 = Clock::now();
  while (c.offset < total) {
    channel.clear();
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, total - srcOff));
    while (want > 0) {
      const size_t at = srcOff % kSource;
      const size_t k = std::min({want, kSource - at, kMaxPayload});
      channel.append(reinterpret_cast<const char*>(src.data() + at), k);
      srcOff += k;
      want -= k;
    }
    c.take(reinterpret_cast<const uint8_t*>(channel.data()), channel.size(), false);
  }
  return seconds(t0, Clock::now());
}

// One copy, source -> channel buffer in kChunk pieces: with plain memcpy (`mask` false) or
// masked as a WebSocket client sends each frame (RFC 6455 5.3), the key's phase carried on.
double copyInto(const std::vector<uint8_t>& src, uint64_t total, bool mask, bool& ok) {
  static constexpr std::array<uint8_t, 4> kKey{0x37, 0xfa, 0x21, 0x3d};
  std::vector<uint8_t> channel(kChunk);
  uint64_t done = 0;
  uint64_t lastAt = 0;  // where the last piece began, and its length
  size_t lastLen = 0;
  uint8_t sum = 0;
  auto t0 = Clock::now();
  while (done < total) {
    const size_t at = done % kSource;
    const size_t k = static_cast<size_t>(std::min<uint64_t>({kChunk, kSource - at, total - done}));
    if (mask) {
      ds::ws::maskCopy(channel.data(), src.data() + at, k, kKey, done);
    } else {
      std::memcpy(channel.data(), src.data() + at, k);
    }
    sum ^= channel[k - 1];
    lastAt = done;
    lastLen = k;
    done += k;
  }
  const double t = seconds(t0, Clock::now());
  // Unmasking the last piece in place gives the source back.
  if (mask) {
    ds::ws::maskCopy(channel.data(), channel.data(), lastLen, kKey, lastAt);
    ok = ok && std::memcmp(channel.data(), src.data() + lastAt % kSource, lastLen) == 0;
  }
  volatile uint8_t keep = sum;
  (void)keep;
  return t;
}

// Codec alone: encode Data frames into a chunk, decode them and copy the payloads out.
double codecOnly(const std::vector<uint8_t>& src, uint64_t total, bool& ok) {
  std::string channel;
  channel.reserve(kChunk + 64 * kHeaderLen);
  Checker c{&src};
  uint64_t srcOff = 0;
  auto t0 = Clock::now();
  while (c.offset < total) {
    channel.clear();
    while (channel.size() + kHeaderLen + kMaxPayload <= kChunk + 16 * kHeaderLen &&
           srcOff < total) {
      const size_t at = srcOff % kSource;
      const size_t k = static_cast<size_t>(
          std::min<uint64_t>({uint64_t{kMaxPayload}, uint64_t{kSource - at}, total - srcOff}));
      appendData(channel, 1, src.data() + at, k);
      srcOff += k;
    }
    size_t pos = 0;
    const auto* p = reinterpret_cast<const uint8_t*>(channel.data());
    while (pos < channel.size()) {
      Frame f;
      DecodeResult r = decode(p + pos, channel.size() - pos, f);
      if (r.status != DecodeStatus::Done) {
        ok = false;
        return 0;
      }
      c.take(f.data, f.dataLen, false);
      pos += r.consumed;
    }
  }
  return seconds(t0, Clock::now());
}

// One flush each way, through the buffers `ab` and `ba`; false when neither had anything.
bool exchange(MuxSession& sa, MuxSession& sb, std::string& ab, std::string& ba, TimePoint now) {
  ab.clear();
  ba.clear();
  sa.flush(ab, kChunk, now);
  sb.receive(reinterpret_cast<const uint8_t*>(ab.data()), ab.size(), now);
  sb.flush(ba, kChunk, now);
  sa.receive(reinterpret_cast<const uint8_t*>(ba.data()), ba.size(), now);
  return !ab.empty() || !ba.empty();
}

// Two sessions in memory: the client streams `total` bytes on each of `streams` streams to
// the server, whose application copies them out and consumes them at once.
struct Side : MuxSession::Callbacks {
  const std::vector<uint8_t>* src = nullptr;
  MuxSession* s = nullptr;
  std::map<uint32_t, uint64_t> sent;
  std::map<uint32_t, Checker> got;
  uint64_t limit = 0;
  bool verify = false;
  void onOpen(uint32_t id, const OpenRequest&) override {
    s->accept(id);
    got.emplace(id, Checker{src});
  }
  void onAccepted(uint32_t id) override { s->wantWrite(id); }
  void onRejected(uint32_t, ds::proto::Reject, std::string_view, std::string_view) override {}
  void onData(uint32_t id, const uint8_t* d, size_t n) override {
    got.at(id).take(d, n, verify);
    s->consumed(id, n);
  }
  void onEof(uint32_t) override {}
  void onClosed(uint32_t, uint16_t, std::string_view) override {}
  size_t onPull(uint32_t id, uint8_t* buf, size_t max) override {
    uint64_t& off = sent[id];
    size_t n = static_cast<size_t>(std::min<uint64_t>(max, limit - off));
    size_t done = 0;
    while (done < n) {
      const size_t at = (off + done) % kSource;
      const size_t k = std::min(n - done, kSource - at);
      std::memcpy(buf + done, src->data() + at, k);
      done += k;
    }
    off += n;
    if (off == limit) s->eof(id);
    return n;
  }
};

double sessions(const std::vector<uint8_t>& src, uint64_t perStream, int streams, bool verify,
                bool& ok) {
  Side a, b;
  a.src = b.src = &src;
  a.limit = perStream;
  b.verify = verify;
  MuxSession sa(Role::Client, Limits{}, a), sb(Role::Server, Limits{}, b);
  a.s = &sa;
  b.s = &sb;
  TimePoint now{};
  for (int i = 0; i < streams; ++i) sa.open(OpenRequest{"", "127.0.0.1", 22, "", "", "", ""});
  std::string ab, ba;
  ab.reserve(kChunk + 4096);
  auto t0 = Clock::now();
  while (exchange(sa, sb, ab, ba, now)) {
  }
  const double t = seconds(t0, Clock::now());
  uint64_t total = 0;
  for (auto& [id, c] : b.got) {
    total += c.offset;
    if (!c.ok || c.offset != perStream) ok = false;
  }
  if (total != perStream * static_cast<uint64_t>(streams) || sa.failed() || sb.failed()) {
    ok = false;
  }
  return t;
}

// Stream setup and teardown in the state machines: open, accept, close each way.
double setups(int count, bool& ok) {
  struct App : MuxSession::Callbacks {
    MuxSession* s = nullptr;
    int opened = 0, closed = 0;
    void onOpen(uint32_t id, const OpenRequest&) override {
      ++opened;
      s->accept(id);
    }
    void onAccepted(uint32_t id) override { s->close(id, close_code::Normal, ""); }
    void onRejected(uint32_t, ds::proto::Reject, std::string_view, std::string_view) override {}
    void onData(uint32_t, const uint8_t*, size_t) override {}
    void onEof(uint32_t) override {}
    void onClosed(uint32_t, uint16_t, std::string_view) override { ++closed; }
    size_t onPull(uint32_t, uint8_t*, size_t) override { return 0; }
  } a, b;
  MuxSession sa(Role::Client, Limits{}, a), sb(Role::Server, Limits{}, b);
  a.s = &sa;
  b.s = &sb;
  TimePoint now{};
  OpenRequest q{"dev01", "127.0.0.1", 22, "", "service", "alice", "ssh"};
  std::string ab, ba;
  auto t0 = Clock::now();
  for (int i = 0; i < count; i += 64) {
    for (int k = 0; k < 64 && i + k < count; ++k) {
      if (sa.open(q) == 0) ok = false;
    }
    for (int round = 0; round < 4; ++round) exchange(sa, sb, ab, ba, now);
  }
  const double t = seconds(t0, Clock::now());
  if (b.opened != count || b.closed != count || sa.streams() != 0 || sb.streams() != 0) ok = false;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mib = 1024;
  int setupCount = 200000;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--quick") {
      mib = 16;
      setupCount = 2000;
    } else if (a == "--mib" && i + 1 < argc) {
      mib = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: mux_bench [--quick] [--mib N]\n");
      return 2;
    }
  }
  const uint64_t total = mib << 20;
  const auto src = makeSource();
  bool ok = true;

  // Integrity first (every byte compared), then the timed runs without the comparison.
  sessions(src, 4 << 20, 1, true, ok);
  sessions(src, 1 << 20, 16, true, ok);

  // Each figure is the best of three runs (the machine may be shared).
  auto best = [](auto run) {
    double t = run();
    for (int i = 0; i < 2; ++i) t = std::min(t, run());
    return t;
  };
  const double base = best([&] { return baseline(src, total); });
  const double codec = best([&] { return codecOnly(src, total, ok); });
  const double one = best([&] { return sessions(src, total, 1, false, ok); });
  const double many = best([&] { return sessions(src, total / 64, 64, false, ok); });
  const double setup = best([&] { return setups(setupCount, ok); });
  const double copy = best([&] { return copyInto(src, total, false, ok); });
  const double masked = best([&] { return copyInto(src, total, true, ok); });

  const double gib = static_cast<double>(total) / (1 << 30);
  auto row = [&](const char* name, double t) {
    std::printf("%-34s %8.2f GiB/s  %5.2fx baseline\n", name, gib / t, base / t);
  };
  std::printf("mux_bench: %llu MiB per run, %zu KiB per channel write\n",
              static_cast<unsigned long long>(mib), kChunk / 1024);
  row("baseline memcpy (src>chan>sink)", base);
  row("codec: encode+decode Data frames", codec);
  row("sessions: 1 stream", one);
  row("sessions: 64 streams round-robin", many);
  std::printf("%-34s %8.2f GiB/s\n", "one copy: memcpy (src>chan)", gib / copy);
  std::printf("%-34s %8.2f GiB/s  %5.2fx one copy\n", "one copy: WebSocket masking", gib / masked,
              copy / masked);
  std::printf("%-34s %8.0f streams/s (%.2f us each)\n", "sessions: open+accept+close",
              setupCount / setup, setup / setupCount * 1e6);
  std::printf("integrity: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
