// Interoperability with libwebsockets as the independent WebSocket implementation:
//  - our client stack (HttpExchange, the upgrade checks, TLS, WsConnection) against an lws
//    echo server;
//  - an lws device (control channel and streaming endpoint) against an in-process hub, with our
//    stream initiation and streaming client on the other end of the relay.
// lws runs on its own thread; our side runs on this thread's ds::Loop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/http_exchange.h"
#include "common/sas.h"
#include "common/tls.h"
#include "common/ws_conn.h"
#include "common/ws_frame.h"
#include "hub/hub.h"
#include "hub/settings.h"
#include "hubclient/hub_client.h"
#include "lws_peer.h"
#include "support/bytes.h"
#include "test_pki.h"

namespace ds {
namespace {

using test::randomBytes;

using interop::Conn;
using interop::LwsPeer;
using interop::MsgKind;
using interop::Observed;
using interop::OutMsg;
using interop::pki;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr size_t kMiB = 1 << 20;
constexpr auto kWait = 20s;  // the most any single step may take

// Runs `loop` until `pred` holds or `timeout` passes; true when it holds.
bool runUntil(Loop& loop, const std::function<bool()>& pred,
              std::chrono::milliseconds timeout = kWait) {
  if (pred()) return true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool met = false;
  std::unique_ptr<Timer> poll;
  poll = std::make_unique<Timer>(loop, [&] {
    if (pred()) {
      met = true;
      loop.stop();
    } else if (std::chrono::steady_clock::now() >= deadline) {
      loop.stop();
    } else {
      poll->arm(2ms);
    }
  });
  poll->arm(2ms);
  loop.run();
  return met;
}

// Runs `loop` for `d`.
void runFor(Loop& loop, std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  runUntil(
      loop, [&] { return std::chrono::steady_clock::now() >= until; }, d + 1s);
}

// Valid UTF-8 of exactly `n` bytes with one- to four-byte sequences throughout.
std::string utf8Text(size_t n) {
  static const std::string kPattern = "devstreams h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\x80 ";
  std::string s;
  while (s.size() + kPattern.size() <= n) s += kPattern;
  s.append(n - s.size(), 'x');
  return s;
}

// Equality of large byte strings with a short message on failure.
::testing::AssertionResult sameBytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure() << "got " << got.size() << " bytes, want " << want.size()
                                       << "; first difference at offset " << i;
}

void sendBinary(WsConnection& ws, const std::string& data) {
  EvBufferPtr b(evbuffer_new());
  evbuffer_add(b.get(), data.data(), data.size());
  ws.sendBinary(b.get());
}

// Our side's view of a WebSocket.
struct Collector : WsConnection::Callbacks {
  std::string bin;
  std::vector<std::string> texts;
  bool closed = false;
  uint16_t code = 0;
  std::string reason;

  void onWsData(evbuffer* payload) override { test::appendAll(bin, payload); }
  void onWsText(std::string message) override { texts.push_back(std::move(message)); }
  void onWsClosed(uint16_t c, const std::string& r) override {
    closed = true;
    code = c;
    reason = r;
  }
};

config::HubConfig hubConfig(uint16_t port) {
  config::HubConfig cfg;
  cfg.listen = {"127.0.0.1", port};
  cfg.hostname = "localhost";
  cfg.cert = pki().certPath;
  cfg.key = pki().keyPath;
  cfg.keepalive = std::chrono::seconds(1);  // pings flow on the control channel during the tests
  // A registry file of its own for every hub a test starts.
  static int serial = 0;
  cfg.registry = pki().dir + "/registry-" + std::to_string(::getpid()) + "-" +
                 std::to_string(++serial) + ".db";
  return cfg;
}

// "wss://h:p/a/b" -> "/a/b"
std::string urlPath(const std::string& url) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

// ---------------------------------------------------------------------------------------------
// Our WebSocket client against an lws echo server.

class LwsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    ASSERT_TRUE(pki().ok) << pki().error;
    LwsPeer::Options o;
    o.listen = true;
    o.certPath = pki().certPath;
    o.keyPath = pki().keyPath;
    peer_ = std::make_unique<LwsPeer>(o);
    ASSERT_TRUE(peer_->ok()) << "cannot create the lws server";
    ASSERT_GT(peer_->port(), 0);
    std::string err;
    ssl_ = tls::clientContext(pki().caPath, err);
    ASSERT_TRUE(ssl_) << err;
  }

  // Upgrades a TLS connection to the lws server and starts a WebSocket reporting to `cb`.
  std::unique_ptr<WsConnection> connect(Collector& cb) {
    auto port = static_cast<uint16_t>(peer_->port());
    std::string key = ws::randomHandshakeKey();
    std::string req = wshs::clientRequest("127.0.0.1:" + std::to_string(port), "/echo", key,
                                          {"User-Agent: devstreams-interop"});
    BufferEventPtr bev = tls::newClient(loop_, ssl_.get(), "127.0.0.1");
    if (!bev) {
      ADD_FAILURE() << "cannot create a TLS bufferevent";
      return nullptr;
    }
    std::optional<HttpResult> result;
    HttpExchange ex(loop_, std::move(bev), "127.0.0.1", port, req, 10s,
                    [&](HttpResult&& r) { result = std::move(r); });
    ex.start();
    if (!runUntil(loop_, [&] { return result.has_value(); })) {
      ADD_FAILURE() << "no answer to the upgrade request";
      return nullptr;
    }
    if (!result->ok()) {
      ADD_FAILURE() << "upgrade failed: " << result->error;
      return nullptr;
    }
    std::string err;
    if (!wshs::checkServerResponse(result->response, key, err)) {
      ADD_FAILURE() << "lws's 101 response refused: " << err;
      return nullptr;
    }
    auto ws = std::make_unique<WsConnection>(loop_, std::move(result->upgraded),
                                             WsConnection::Role::Client, WsLimits{}, &cb);
    ws->start();
    return ws;
  }

  Conn* acceptedConn() {
    Conn* c = nullptr;
    EXPECT_TRUE(runUntil(loop_, [&] { return (c = peer_->accepted(0)) != nullptr; }));
    return c;
  }

  // Connects a client that reports to col_ and waits for lws to accept it (server_).
  bool openSession() {
    ws_ = connect(col_);
    if (!ws_) return false;
    server_ = acceptedConn();
    return server_ != nullptr;
  }

  Loop loop_;
  SslCtxPtr ssl_;
  std::unique_ptr<LwsPeer> peer_;
  Collector col_;
  std::unique_ptr<WsConnection> ws_;
  Conn* server_ = nullptr;
};

TEST_F(LwsServerTest, EchoKeepsBinaryAndTextIntactAndPeerSeesCloseCode) {
  ASSERT_TRUE(openSession());

  // Binary, one message at a time (lws answers in frames of 32 KiB).
  const std::vector<size_t> sizes = {1, 125, 126, 127, 65535, 65536, 65537, kMiB};
  for (size_t n : sizes) {
    std::string data = randomBytes(n, static_cast<uint32_t>(n));
    col_.bin.clear();
    sendBinary(*ws_, data);
    ASSERT_TRUE(runUntil(loop_, [&] { return col_.bin.size() >= n || col_.closed; }))
        << "no echo of " << n << " bytes; got " << col_.bin.size();
    ASSERT_FALSE(col_.closed) << col_.code << " " << col_.reason;
    EXPECT_TRUE(sameBytes(col_.bin, data)) << "binary message of " << n << " bytes";
  }

  // Text, including multi-byte UTF-8 that lws splits across frames.
  const std::vector<std::string> texts = {"",
                                          "a",
                                          "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9f\x9a\x80",
                                          utf8Text(125),
                                          utf8Text(126),
                                          utf8Text(65536),
                                          utf8Text(100001),
                                          utf8Text(kMiB)};
  for (const auto& t : texts) {
    size_t before = col_.texts.size();
    ws_->sendText(t);
    ASSERT_TRUE(runUntil(loop_, [&] { return col_.texts.size() > before || col_.closed; }))
        << "no echo of a text message of " << t.size() << " bytes";
    ASSERT_FALSE(col_.closed) << col_.code << " " << col_.reason;
    EXPECT_TRUE(sameBytes(col_.texts.back(), t)) << "text message of " << t.size() << " bytes";
  }

  // Everything again, back to back, binary and text interleaved.
  col_.bin.clear();
  col_.texts.clear();
  std::string allBin;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string data = randomBytes(sizes[i], static_cast<uint32_t>(1000 + i));
    allBin += data;
    sendBinary(*ws_, data);
    ws_->sendText(texts[i]);
  }
  ASSERT_TRUE(runUntil(loop_,
                       [&] {
                         return (col_.bin.size() >= allBin.size() &&
                                 col_.texts.size() >= sizes.size()) ||
                                col_.closed;
                       }))
      << "got " << col_.bin.size() << " of " << allBin.size() << " bytes and " << col_.texts.size()
      << " of " << sizes.size() << " texts";
  EXPECT_TRUE(sameBytes(col_.bin, allBin));
  ASSERT_EQ(col_.texts.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) EXPECT_TRUE(sameBytes(col_.texts[i], texts[i])) << i;

  // lws got every byte we sent, as whole messages of the right type.
  uint64_t sent = 0;
  for (size_t n : sizes) sent += 2 * n;
  for (const auto& t : texts) sent += t.size();
  for (size_t i = 0; i < sizes.size(); ++i) sent += texts[i].size();
  peer_->with(server_, [&](const Observed& o) { EXPECT_EQ(o.bytesReceived, sent); });

  ws_->close(ws::close_code::Normal, "done");
  ASSERT_TRUE(runUntil(loop_, [&] {
    return peer_->with(server_, [](const Observed& o) { return o.closed; });
  })) << "lws did not see the connection end";
  peer_->with(server_, [](const Observed& o) {
    EXPECT_EQ(o.peerCloseCode, 1000);
    EXPECT_EQ(o.peerCloseReason, "done");
  });
}

// WsConnection::sendBinary promises "all bytes of `data` as one binary message (split into frames
// of maxSendFrame)": lws, which reassembles messages, must see exactly one message per call.
TEST_F(LwsServerTest, EachSendBinaryArrivesAsOneMessage) {
  ASSERT_TRUE(openSession());

  const std::vector<size_t> sizes = {0, 1, 65536, 65537, 200000, kMiB};
  std::vector<std::string> want;
  for (size_t n : sizes) {
    sendBinary(*ws_, randomBytes(n, static_cast<uint32_t>(n)));
    want.push_back("binary " + std::to_string(n));
  }
  ws_->sendText("end");
  want.push_back("text 3");
  ASSERT_TRUE(runUntil(loop_, [&] {
    return peer_->with(server_, [](const Observed& o) {
      return !o.messages.empty() && !o.messages.back().binary && o.messages.back().data == "end";
    });
  }));
  std::vector<std::string> got;
  peer_->with(server_, [&](const Observed& o) {
    for (const auto& m : o.messages) {
      got.push_back((m.binary ? "binary " : "text ") + std::to_string(m.size));
    }
  });
  EXPECT_EQ(got, want);
  ws_->close(ws::close_code::Normal, "done");
  runUntil(loop_, [&] { return peer_->with(server_, [](const Observed& o) { return o.closed; }); });
}

// WsConnection::close ends the connection from our side: the peer gets the close frame with
// our code and reason, and no callback follows (the owner may free the connection at once).
TEST_F(LwsServerTest, CloseSendsCodeAndEndsWithoutCallback) {
  ASSERT_TRUE(openSession());
  ws_->close(ws::close_code::Normal, "done");
  EXPECT_FALSE(ws_->open());
  ASSERT_TRUE(runUntil(
      loop_, [&] { return peer_->with(server_, [](const Observed& o) { return o.closed; }); }));
  peer_->with(server_, [](const Observed& o) { EXPECT_EQ(o.peerCloseCode, 1000); });
  ws_.reset();
  EXPECT_FALSE(col_.closed) << "onWsClosed called after close()";
}

TEST_F(LwsServerTest, PingsFragmentsAndCloseFromLws) {
  ASSERT_TRUE(openSession());

  // A ping is answered with a pong carrying the same payload.
  peer_->send(server_, OutMsg{MsgKind::Ping, "are you there?"});
  ASSERT_TRUE(runUntil(loop_, [&] {
    return peer_->with(server_, [](const Observed& o) { return !o.pongs.empty(); });
  }));
  peer_->with(server_, [](const Observed& o) { EXPECT_EQ(o.pongs[0], "are you there?"); });

  // Fragmented messages with pings between the fragments (RFC 6455 5.4 allows control frames
  // in the middle of a fragmented message).
  std::string text = utf8Text(200000);        // 7 frames of at most 32 KiB
  std::string data = randomBytes(100000, 7);  // 4 frames
  peer_->send(server_, OutMsg{MsgKind::Text, text, 0, true});
  peer_->send(server_, OutMsg{MsgKind::Binary, data, 0, true});
  ASSERT_TRUE(runUntil(loop_, [&] {
    return (!col_.texts.empty() && col_.bin.size() >= data.size()) || col_.closed;
  }));
  ASSERT_FALSE(col_.closed) << col_.code << " " << col_.reason;
  ASSERT_EQ(col_.texts.size(), 1u);
  EXPECT_TRUE(sameBytes(col_.texts[0], text));
  EXPECT_TRUE(sameBytes(col_.bin, data));
  ASSERT_TRUE(runUntil(loop_, [&] {
    return peer_->with(server_, [](const Observed& o) { return o.pongs.size() >= 1 + 6 + 3; });
  }));
  peer_->with(server_, [](const Observed& o) {
    EXPECT_EQ(o.pongs.size(), 1u + 6 + 3);
    for (size_t i = 1; i < o.pongs.size(); ++i) EXPECT_EQ(o.pongs[i], "between");
  });

  // lws closes with an application code: we report its code and reason.
  peer_->send(server_, OutMsg{MsgKind::Close, "bye", 4001});
  ASSERT_TRUE(runUntil(loop_, [&] { return col_.closed; }));
  EXPECT_EQ(col_.code, 4001);
  EXPECT_EQ(col_.reason, "bye");
  EXPECT_TRUE(runUntil(
      loop_, [&] { return peer_->with(server_, [](const Observed& o) { return o.closed; }); }));
}

// ---------------------------------------------------------------------------------------------
// An lws device against our hub.

class LwsDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    ASSERT_TRUE(pki().ok) << pki().error;
    deviceKey_ = sas::randomKey(32);
    policyKey_ = sas::randomKey(32);

    config::HubConfig cfg = hubConfig(0);
    {
      std::string err;
      auto reg = hub::Registry::open(cfg.registry, err);
      ASSERT_TRUE(reg) << err;
      ASSERT_EQ(reg->addDevice({"dev01", deviceKey_, "", true, 0, 0}), hub::DbResult::Ok);
      ASSERT_EQ(reg->addPolicy({"service", policyKey_, {"connect"}}), hub::DbResult::Ok);
    }
    hub_ = std::make_unique<hub::Hub>(loop_, cfg);
    std::string err;
    ASSERT_TRUE(hub_->start(err)) << err;
    port_ = hub_->port();
    ASSERT_GT(port_, 0);

    ssl_ = tls::clientContext(pki().caPath, err);
    ASSERT_TRUE(ssl_) << err;
    ASSERT_TRUE(hubclient::makeTarget("wss://127.0.0.1:" + std::to_string(port_), "localhost",
                                      "localhost", ssl_.get(), target_, err))
        << err;

    LwsPeer::Options o;
    o.caPath = pki().caPath;
    peer_ = std::make_unique<LwsPeer>(o);
    ASSERT_TRUE(peer_->ok()) << "cannot create the lws client context";
  }

  void TearDown() override {
    // lws goes first so that it does not race the hub's shutdown.
    peer_.reset();
    hub_.reset();
  }

  std::string deviceToken(const std::string& key) {
    return sas::makeToken("localhost/devices/dev01", key, std::time(nullptr) + 3600).value_or("");
  }

  // An lws control connection for dev01, not yet started.
  Conn* controlConn(const std::string& authorization) {
    Conn* c = peer_->newConn();
    c->port = port_;
    c->path = "/api/v1/devices/dev01/control";
    c->authorization = authorization;
    return c;
  }

  // The device side of the stream protocol, run by lws: answers each stream_request on `ctl`,
  // either by opening the streaming side (an echo) and then accepting, or by refusing with
  // not_allowed. The streaming connection is published in `stream`.
  void actAsDevice(Conn* ctl, bool accept, std::atomic<Conn*>* stream) {
    uint16_t port = port_;
    ctl->onMessage = [accept, stream, port](Conn& c, bool binary, const std::string& text) {
      if (binary) return;
      json m = json::parse(text, nullptr, false);
      if (!m.is_object() || m.value("type", "") != "stream_request") return;
      std::string sid = m.value("stream_id", "");
      if (!accept) {
        c.peer->sendNow(&c, OutMsg{MsgKind::Text, json{{"type", "stream_response"},
                                                       {"stream_id", sid},
                                                       {"accept", false},
                                                       {"code", "not_allowed"},
                                                       {"reason", "port 22 is not allowed"}}
                                                      .dump()});
        return;
      }
      Conn* s = c.peer->newConn();
      s->port = port;
      s->path = urlPath(m.value("url", ""));
      s->authorization = "Bearer " + m.value("token", "");
      s->echo = true;
      Conn* ctlConn = &c;
      s->onEstablished = [ctlConn, sid](Conn& st) {
        st.peer->sendNow(
            ctlConn,
            OutMsg{MsgKind::Text,
                   json{{"type", "stream_response"}, {"stream_id", sid}, {"accept", true}}.dump()});
      };
      if (stream) stream->store(s);
      c.peer->connectNow(s);
    };
  }

  bool established(Conn* c) {
    return runUntil(loop_,
                    [&] {
                      return peer_->with(
                          c, [](const Observed& o) { return o.established || o.closed; });
                    }) &&
           peer_->with(c, [](const Observed& o) { return o.established && !o.closed; });
  }

  hubclient::InitiateResult initiate() {
    std::optional<hubclient::InitiateResult> result;
    auto ex = hubclient::initiateStream(
        loop_, target_, "service", policyKey_, "dev01", "127.0.0.1", 22, 10s,
        [&](hubclient::InitiateResult&& r) { result = std::move(r); });
    if (!runUntil(loop_, [&] { return result.has_value(); })) {
      ADD_FAILURE() << "no answer to the stream initiation";
      return {};
    }
    return *result;
  }

  Loop loop_;
  std::string deviceKey_, policyKey_;
  std::unique_ptr<hub::Hub> hub_;
  uint16_t port_ = 0;
  SslCtxPtr ssl_;
  hubclient::HubTarget target_;
  std::unique_ptr<LwsPeer> peer_;
};

TEST_F(LwsDeviceTest, StreamRelaysBetweenOurClientAndLwsDevice) {
  Conn* ctl = controlConn(deviceToken(deviceKey_));
  std::atomic<Conn*> streamConn{nullptr};
  actAsDevice(ctl, true, &streamConn);
  peer_->connect(ctl);
  ASSERT_TRUE(established(ctl)) << peer_->with(ctl, [](const Observed& o) { return o.error; });

  auto r = initiate();
  ASSERT_EQ(r.status, 200) << r.code << ": " << r.message;
  EXPECT_FALSE(r.grant.streamId.empty());
  EXPECT_EQ(r.grant.url,
            "wss://localhost:" + std::to_string(port_) + "/api/v1/streams/" + r.grant.streamId);

  // What the device was told.
  json req;
  peer_->with(ctl, [&](const Observed& o) {
    ASSERT_EQ(o.messages.size(), 1u);
    EXPECT_FALSE(o.messages[0].binary);
    req = json::parse(o.messages[0].data, nullptr, false);
  });
  ASSERT_TRUE(req.is_object());
  EXPECT_EQ(req.value("type", ""), "stream_request");
  EXPECT_EQ(req.value("stream_id", ""), r.grant.streamId);
  EXPECT_EQ(req.value("host", ""), "127.0.0.1");
  EXPECT_EQ(req.value("port", 0), 22);
  EXPECT_EQ(req.value("url", ""), r.grant.url);
  EXPECT_FALSE(req.value("token", "").empty());
  EXPECT_NE(req.value("token", ""), r.grant.token);
  Conn* stream = streamConn.load();
  ASSERT_TRUE(stream);
  EXPECT_TRUE(peer_->with(stream, [](const Observed& o) { return o.established; }));

  // Our side of the stream.
  std::unique_ptr<WsConnection> ws;
  std::string wsErr;
  bool opened = false;
  auto ex = hubclient::openStream(loop_, target_, r.grant.url, r.grant.token, WsLimits{}, 10s,
                                  [&](std::unique_ptr<WsConnection> w, std::string e) {
                                    ws = std::move(w);
                                    wsErr = std::move(e);
                                    opened = true;
                                  });
  ASSERT_TRUE(runUntil(loop_, [&] { return opened; }));
  ASSERT_TRUE(ws) << wsErr;
  Collector col;
  ws->setCallbacks(&col);
  ws->start();

  const std::vector<size_t> sizes = {1, 125, 126, 65535, 65536, 65537, kMiB};
  uint64_t total = 0;
  for (size_t n : sizes) {
    std::string data = randomBytes(n, static_cast<uint32_t>(n + 17));
    col.bin.clear();
    sendBinary(*ws, data);
    total += n;
    ASSERT_TRUE(runUntil(loop_, [&] { return col.bin.size() >= n || col.closed; }))
        << "no echo of " << n << " bytes through the relay; got " << col.bin.size();
    ASSERT_FALSE(col.closed) << col.code << " " << col.reason;
    EXPECT_TRUE(sameBytes(col.bin, data)) << n << " bytes through the relay";
  }
  std::string text = utf8Text(70000);
  ws->sendText(text);
  ASSERT_TRUE(runUntil(loop_, [&] { return !col.texts.empty() || col.closed; }));
  ASSERT_EQ(col.texts.size(), 1u);
  EXPECT_TRUE(sameBytes(col.texts[0], text));
  peer_->with(stream, [&](const Observed& o) { EXPECT_EQ(o.bytesReceived, total + text.size()); });

  // Closing our side closes the device's side with the same code.
  ws->close(ws::close_code::Normal, "done");
  ASSERT_TRUE(runUntil(loop_, [&] {
    return peer_->with(stream, [](const Observed& o) { return o.closed; });
  })) << "the lws stream side was not closed";
  peer_->with(stream, [](const Observed& o) { EXPECT_EQ(o.peerCloseCode, 1000); });

  // The control channel outlives several keepalive rounds (lws answers our pings).
  runFor(loop_, 3500ms);
  EXPECT_FALSE(peer_->with(ctl, [](const Observed& o) { return o.closed; }));

  // Hub shutdown says going away on the control channel.
  hub_->shutdown();
  ASSERT_TRUE(runUntil(
      loop_, [&] { return peer_->with(ctl, [](const Observed& o) { return o.closed; }); }));
  peer_->with(ctl, [](const Observed& o) { EXPECT_EQ(o.peerCloseCode, 1001); });
}

TEST_F(LwsDeviceTest, WrongSasIsRefusedWith401) {
  Conn* ctl = controlConn(deviceToken(sas::randomKey(32)));
  peer_->connect(ctl);
  ASSERT_TRUE(runUntil(
      loop_, [&] { return peer_->with(ctl, [](const Observed& o) { return o.closed; }); }));
  peer_->with(ctl, [](const Observed& o) {
    EXPECT_FALSE(o.established);
    EXPECT_TRUE(o.connectionError);
    // lws reads the status line of the refusal.
    EXPECT_EQ(o.httpStatus, 401u) << "lws: " << o.error;
  });

  // The device did not come online.
  auto r = initiate();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.code, "device_offline");
}

TEST_F(LwsDeviceTest, DeviceRefusalIs403NotAllowed) {
  Conn* ctl = controlConn(deviceToken(deviceKey_));
  actAsDevice(ctl, false, nullptr);
  peer_->connect(ctl);
  ASSERT_TRUE(established(ctl)) << peer_->with(ctl, [](const Observed& o) { return o.error; });

  auto r = initiate();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.code, "not_allowed");
  EXPECT_EQ(r.message, "port 22 is not allowed");
  EXPECT_FALSE(peer_->with(ctl, [](const Observed& o) { return o.closed; }));
}

TEST_F(LwsDeviceTest, SecondControlConnectionReplacesTheFirst) {
  Conn* first = controlConn(deviceToken(deviceKey_));
  peer_->connect(first);
  ASSERT_TRUE(established(first));
  Conn* second = controlConn(deviceToken(deviceKey_));
  actAsDevice(second, false, nullptr);
  peer_->connect(second);
  ASSERT_TRUE(established(second));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return peer_->with(first, [](const Observed& o) { return o.closed; }); }));
  peer_->with(first, [](const Observed& o) {
    EXPECT_EQ(o.peerCloseCode, 4000);
    EXPECT_EQ(o.peerCloseReason, "replaced by a new connection");
  });
  // The hub now talks to the second connection.
  auto r = initiate();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.code, "not_allowed");
}

// HubConfig and config.h promise that listen port 0 binds an ephemeral port (for tests), and
// Hub::start then follows the bound port.
TEST(HubEphemeralPort, HubListensOnAnEphemeralPort) {
  ASSERT_TRUE(pki().ok) << pki().error;
  Loop loop;
  hub::Hub hub(loop, hubConfig(0));
  std::string err;
  EXPECT_TRUE(hub.start(err)) << err;
  EXPECT_GT(hub.port(), 0);
}

}  // namespace
}  // namespace ds
