// A fake hub for hubclient unit tests: a real TLS server on loopback (certificates made once per
// test program) that answers what the hub client asks. A POST gets a stream grant, GET
// /api/v1/devices an empty list, an upgrade 101 (the channel's server side is then kept in
// `channels`, the text it receives in `texts`); `refuse` makes it answer every request with that
// status instead. Requests and their bodies are recorded. With `mux` it selects the multiplexing
// subprotocol when a channel offers it and speaks the frames of docs/mux.md with the codec of
// common/mux.h (not MuxChannel): frames received are kept in `frames`, an OPEN is answered by
// `onOpen` (default: ACCEPT), a PING with its ACK, a CLOSE with a CLOSE.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/http.h"
#include "common/http_exchange.h"
#include "common/mux.h"
#include "common/mux_channel.h"
#include "common/pki.h"
#include "common/tls.h"
#include "common/ws_conn.h"
#include "hubclient/hub_client.h"
#include "support/bytes.h"
#include "support/run_loop.h"

namespace ds::test {

// The hub's certificates in a temporary directory, made on first use and removed at exit.
inline const pki::HubFiles& fakeHubFiles() {
  static const pki::HubFiles files = [] {
    char tmpl[] = "/tmp/ds-fake-hub-XXXXXX";
    if (!mkdtemp(tmpl)) ADD_FAILURE() << "mkdtemp failed";
    static const std::string dir = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    pki::BootstrapResult r;
    std::string err;
    if (!pki::ensureHubCertificates(dir, {"localhost", "127.0.0.1"}, r, err)) ADD_FAILURE() << err;
    return r.files;
  }();
  return files;
}

// A mux frame as the fake hub received it (its DATA bytes copied).
struct MuxFrame {
  mux::FrameType type;
  uint32_t stream = 0;
  mux::OpenRequest request;  // Open
  uint16_t closeCode = 0;    // Close
  std::string data;          // Data
};

// The owner of an accepted multiplexed stream on the client's side: `out` is pulled as the
// stream's bytes, what arrives is kept in `in` (and reported consumed at once).
struct MuxStream : mux::StreamHandler {
  mux::MuxChannel* channel = nullptr;
  uint32_t id = 0;
  std::string out, in;
  bool eof = false;
  std::optional<uint16_t> closed;

  void onMuxData(const uint8_t* data, size_t len) override {
    in.append(reinterpret_cast<const char*>(data), len);
    channel->consumed(id, len);
  }
  void onMuxEof() override { eof = true; }
  void onMuxClosed(uint16_t code, std::string_view) override { closed = code; }
  size_t onMuxPull(uint8_t* buf, size_t max) override {
    size_t n = std::min(max, out.size());
    out.copy(reinterpret_cast<char*>(buf), n);
    out.erase(0, n);
    return n;
  }
};

class FakeHub {
 public:
  // `ctx` null: a server context for fakeHubFiles().
  explicit FakeHub(Loop& loop, SSL_CTX* ctx = nullptr) : loop_(loop), ctx_(ctx) {
    std::string err;
    if (!ctx_) {
      own_ = tls::serverContext(fakeHubFiles().cert, fakeHubFiles().key, err);
      EXPECT_TRUE(own_) << err;
      ctx_ = own_.get();
    }
    listener_ = listenTcp(loop, "127.0.0.1", 0, &FakeHub::onAccept, this, port_, err);
    EXPECT_TRUE(listener_) << err;
  }
  uint16_t port() const { return port_; }

  std::vector<std::string> requests;   // "METHOD target" of each request seen
  std::vector<std::string> bodies;     // the body of each request seen
  std::vector<std::string> texts;      // text messages received on the channels
  std::vector<std::string> protocols;  // Sec-WebSocket-Protocol each upgrade offered ("" none)
  int refuse = 0;                      // answer every request with this status (0: serve)
  std::vector<std::unique_ptr<WsConnection>> channels;  // upgraded connections, server side
  // Channels that ended (closed by either side).
  int channelsClosed() const { return closed_; }

  // ---- multiplexing ----
  bool mux = false;              // select the subprotocol when offered
  std::vector<MuxFrame> frames;  // received on multiplexed channels, in order
  // Answers an OPEN on `ws` (default: ACCEPT with a 256 KiB window).
  std::function<void(WsConnection& ws, const MuxFrame& open)> onOpen;
  // Frames (mux.h's append*) to the client on `ws`, as one binary message.
  static void send(WsConnection& ws, const std::string& frames) {
    EvBufferPtr b(evbuffer_new());
    evbuffer_add(b.get(), frames.data(), frames.size());
    ws.sendBinary(b.get());
  }
  // The frames of `type` received so far.
  size_t count(mux::FrameType type) const {
    size_t n = 0;
    for (const MuxFrame& f : frames) n += f.type == type ? 1 : 0;
    return n;
  }
  const MuxFrame* last(mux::FrameType type) const {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
      if (it->type == type) return &*it;
    }
    return nullptr;
  }
  // The bytes of the DATA frames received on `stream`.
  std::string dataOf(uint32_t stream) const {
    std::string out;
    for (const MuxFrame& f : frames) {
      if (f.type == mux::FrameType::Data && f.stream == stream) out += f.data;
    }
    return out;
  }
  // A channel error from the decoder ("" none).
  std::string muxError;

 private:
  // The server side of one channel: text messages kept, binary data decoded as mux frames when
  // multiplexed (else dropped), closes counted.
  struct Sink : WsConnection::Callbacks {
    Sink(FakeHub& hub, bool multiplexed) : hub(hub), multiplexed(multiplexed) {}
    void onWsData(evbuffer* payload) override {
      std::string bytes;
      appendAll(bytes, payload);
      if (!multiplexed) return;
      in += bytes;
      size_t at = 0;
      while (at < in.size()) {
        mux::Frame f;
        mux::DecodeResult r =
            mux::decode(reinterpret_cast<const uint8_t*>(in.data()) + at, in.size() - at, f);
        if (r.status == mux::DecodeStatus::NeedMore) break;
        if (r.status == mux::DecodeStatus::Invalid) {
          hub.muxError = r.error;
          in.clear();
          return;
        }
        at += r.consumed;
        if (r.known) handle(f);
      }
      in.erase(0, at);
    }
    void handle(const mux::Frame& f) {
      MuxFrame m{f.type, f.stream, f.request, f.closeCode, {}};
      if (f.type == mux::FrameType::Data)
        m.data.assign(reinterpret_cast<const char*>(f.data), f.dataLen);
      hub.frames.push_back(m);
      std::string out;
      switch (f.type) {
        case mux::FrameType::Open:
          if (hub.onOpen) return hub.onOpen(*ws, m);
          mux::appendAccept(out, f.stream, 256 * 1024);
          break;
        case mux::FrameType::Ping:
          if (!(f.flags & mux::kFlagAck)) mux::appendPing(out, f.ping, true);
          break;
        case mux::FrameType::Close:
          // The answer to a CLOSE of ours ends the stream; the client's CLOSE gets one back.
          if (closedByHub.erase(f.stream) == 0) mux::appendClose(out, f.stream, f.closeCode, "");
          break;
        default:
          break;
      }
      if (!out.empty()) send(*ws, out);
    }
    void onWsText(std::string text) override { hub.texts.push_back(std::move(text)); }
    void onWsClosed(uint16_t, const std::string&) override { ++hub.closed_; }
    FakeHub& hub;
    bool multiplexed;
    WsConnection* ws = nullptr;
    std::string in;
    std::set<uint32_t> closedByHub;
  };

 public:
  // Closes `stream` from the hub's side (its CLOSE answer is then not answered).
  void closeStream(WsConnection& ws, uint32_t stream, uint16_t code) {
    for (auto& s : sinks_) {
      if (s->ws == &ws) s->closedByHub.insert(stream);
    }
    std::string out;
    mux::appendClose(out, stream, code, "");
    send(ws, out);
  }

 private:
  struct Conn {
    FakeHub* hub;
    BufferEventPtr bev;
  };
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<FakeHub*>(arg);
    auto c = std::make_unique<Conn>(Conn{self, tls::acceptSocket(self->loop_, self->ctx_, fd)});
    bufferevent_setcb(c->bev.get(), &FakeHub::onRead, nullptr, nullptr, c.get());
    bufferevent_enable(c->bev.get(), EV_READ | EV_WRITE);
    self->conns_.push_back(std::move(c));
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    http::Request req;
    http::ParseResult r = http::parseRequest(std::string_view(p, len), req);
    if (r.status != http::ParseStatus::Done) return;
    uint64_t bodyLen = http::contentLength(req.headers).value_or(0);
    if (len < r.consumed + bodyLen) return;
    std::string body(p + r.consumed, bodyLen);
    evbuffer_drain(in, r.consumed + bodyLen);
    FakeHub* hub = c->hub;
    hub->requests.push_back(req.method + " " + req.target);
    hub->bodies.push_back(std::move(body));
    std::string out;
    const std::string* key = req.headers.find("Sec-WebSocket-Key");
    const std::string* offered = req.headers.find("Sec-WebSocket-Protocol");
    if (key) hub->protocols.push_back(offered ? *offered : "");
    if (hub->refuse != 0) {
      out = httpResponse(hub->refuse, "application/json",
                         R"({"error":"refused","message":"the fake hub refuses"})");
    } else if (key) {
      bool multiplexed =
          hub->mux && req.headers.hasToken("Sec-WebSocket-Protocol", mux::kWsProtocol);
      out = wshs::serverResponse(*key, multiplexed ? mux::kWsProtocol : std::string_view());
      bufferevent_write(bev, out.data(), out.size());
      bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
      hub->sinks_.push_back(std::make_unique<Sink>(*hub, multiplexed));
      Sink* sink = hub->sinks_.back().get();
      auto ws = std::make_unique<WsConnection>(hub->loop_, std::move(c->bev),
                                               WsConnection::Role::Server, WsLimits{}, sink);
      sink->ws = ws.get();
      ws->start();
      hub->channels.push_back(std::move(ws));
      return;
    } else if (req.target == "/api/v1/devices") {
      out = httpResponse(200, "application/json", R"({"devices":[]})");
    } else {
      nlohmann::json grant = {
          {"stream_id", "s1"}, {"url", "wss://127.0.0.1:1/api/v1/streams/s1"}, {"token", "t1"}};
      out = httpResponse(200, "application/json", grant.dump());
    }
    bufferevent_write(bev, out.data(), out.size());
  }

  Loop& loop_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  int closed_ = 0;
  SslCtxPtr own_;
  SSL_CTX* ctx_;
  ListenerPtr listener_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
};

// How the hub client reaches `hub`: loopback, its certificate verified as "localhost" with `ssl`
// (a client context trusting fakeHubFiles()).
inline hubclient::HubTarget targetOf(const FakeHub& hub, SSL_CTX* ssl) {
  hubclient::HubTarget t;
  t.host = "127.0.0.1";
  t.port = hub.port();
  t.serverName = "localhost";
  t.resourceHost = "localhost";
  t.ssl = ssl;
  return t;
}

// A fixture with a fake hub on a loop, the hub client's way to it and a safety bound: the
// base of the tests that drive the hub client against it.
class FakeHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    clientCtx_ = tls::clientContext(fakeHubFiles().caCert, err);
    ASSERT_TRUE(clientCtx_) << err;
    target_ = targetOf(hub_, clientCtx_.get());
    safety_.arm(std::chrono::seconds(10));
  }

  bool until(const std::function<bool()>& pred) { return runUntil(loop_, timedOut_, pred); }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  FakeHub hub_{loop_};
  SslCtxPtr clientCtx_;
  hubclient::HubTarget target_;
};

}  // namespace ds::test
