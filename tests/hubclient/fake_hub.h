// A fake hub for hubclient unit tests: a real TLS server on loopback (certificates made once per
// test program) that answers what the hub client asks. A POST gets a stream grant, GET
// /api/v1/devices an empty list, an upgrade 101 (the channel's server side is then kept in
// `channels`, the text it receives in `texts`); `refuse` makes it answer every request with that
// status instead. Requests and their bodies are recorded.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/http.h"
#include "common/http_exchange.h"
#include "common/pki.h"
#include "common/tls.h"
#include "common/ws_conn.h"
#include "hubclient/hub_client.h"
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

  std::vector<std::string> requests;  // "METHOD target" of each request seen
  std::vector<std::string> bodies;    // the body of each request seen
  std::vector<std::string> texts;     // text messages received on the channels
  int refuse = 0;                     // answer every request with this status (0: serve)
  std::vector<std::unique_ptr<WsConnection>> channels;  // upgraded connections, server side
  // Channels that ended (closed by either side).
  int channelsClosed() const { return sink_.closed; }

 private:
  // The server side of channels: text messages kept, data dropped, closes counted.
  struct Sink : WsConnection::Callbacks {
    explicit Sink(FakeHub& hub) : hub(hub) {}
    void onWsData(evbuffer* payload) override {
      evbuffer_drain(payload, evbuffer_get_length(payload));
    }
    void onWsText(std::string text) override { hub.texts.push_back(std::move(text)); }
    void onWsClosed(uint16_t, const std::string&) override { ++closed; }
    FakeHub& hub;
    int closed = 0;
  };

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
    if (hub->refuse != 0) {
      out = httpResponse(hub->refuse, "application/json",
                         R"({"error":"refused","message":"the fake hub refuses"})");
    } else if (key) {
      out = wshs::serverResponse(*key);
      bufferevent_write(bev, out.data(), out.size());
      bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
      auto ws = std::make_unique<WsConnection>(hub->loop_, std::move(c->bev),
                                               WsConnection::Role::Server, WsLimits{}, &hub->sink_);
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
  Sink sink_{*this};
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
