// StreamOpener and WarmPool against a real in-process hub and agent on loopback: pipelined
// opens on the service channel, the POST fallback while the channel is down, errors with the
// hub's statuses, cancel, and every `done` exactly once and never inside open().
#include "hubclient/stream_opener.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "common/event.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/sas.h"
#include "common/tls.h"
#include "hub/hub.h"
#include "hubclient/fake_hub.h"
#include "hubclient/warm_pool.h"
#include "support/run_loop.h"

namespace ds::hubclient {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A TCP echo server on the loop (the device's target).
class Echo {
 public:
  explicit Echo(Loop& loop) : loop_(loop) {
    std::string err;
    listener_ = listenTcp(loop, "127.0.0.1", 0, &Echo::onAccept, this, port_, err);
  }
  ~Echo() {
    for (auto& b : conns_) bufferevent_setcb(b.get(), nullptr, nullptr, nullptr, nullptr);
  }
  uint16_t port() const { return port_; }

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<Echo*>(arg);
    self->conns_.push_back(newSocketBufferEvent(self->loop_, fd));
    bufferevent* b = self->conns_.back().get();
    bufferevent_setcb(
        b,
        [](bufferevent* bev, void*) { bufferevent_write_buffer(bev, bufferevent_get_input(bev)); },
        nullptr, [](bufferevent*, short, void*) {}, nullptr);
    bufferevent_enable(b, EV_READ | EV_WRITE);
  }
  Loop& loop_;
  ListenerPtr listener_;
  uint16_t port_ = 0;
  std::vector<BufferEventPtr> conns_;
};

struct Outcome {
  int calls = 0;
  std::unique_ptr<WsConnection> ws;
  std::unique_ptr<test::MuxStream> mux;  // a multiplexed stream, taken inside `done`
  OpenResult result;
};

class StreamOpenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setLogLevel(Level::Warn);
    std::signal(SIGPIPE, SIG_IGN);  // as the programs do (Loop::onSignals)
    dir_ = fs::temp_directory_path() /
           ("ds-opener-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(dir_);
    deviceKey_ = sas::randomKey();
    serviceKey_ = sas::randomKey();
    readerKey_ = sas::randomKey();
    std::ofstream(dir_ / "bootstrap.yaml")
        << "devices:\n  - id: dev01\n    primary_key: \"" << deviceKey_
        << "\"\npolicies:\n  - name: service\n    key: \"" << serviceKey_
        << "\"\n    permissions: [connect]\n  - name: reader\n    key: \"" << readerKey_
        << "\"\n    permissions: [registry-read]\n";
    config::HubConfig hc;
    hc.listen = {"127.0.0.1", 0};
    hc.hostname = "127.0.0.1";
    hc.stateDir = dir_.string();
    hc.registry = (dir_ / "registry.db").string();
    hc.bootstrapRegistry = (dir_ / "bootstrap.yaml").string();
    hc.tlsNames = {"127.0.0.1"};
    hc.handshakeTimeout = 20s;
    hub_ = std::make_unique<hub::Hub>(loop_, hc);
    std::string err;
    ASSERT_TRUE(hub_->start(err)) << err;
    hubUrl_ = "https://127.0.0.1:" + std::to_string(hub_->port());
    ssl_ = tls::clientContext(pki::hubFiles(dir_.string()).caCert, err);
    ASSERT_TRUE(ssl_) << err;
    ASSERT_TRUE(makeTarget(hubUrl_, "", "", ssl_.get(), target_, err)) << err;
    echo_ = std::make_unique<Echo>(loop_);
    safety_ = std::make_unique<Timer>(loop_, [this] { timedOut_ = true; });
    safety_->arm(60s);
  }

  void TearDown() override {
    opener_.reset();
    if (agent_) agent_->shutdown();
    agent_.reset();
    if (hub_) hub_->shutdown();
    test::spin(loop_, 50);
    hub_.reset();
    echo_.reset();
    test::spin(loop_, 20);
    safety_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void startAgent() {
    config::AgentConfig ac;
    ac.hubUrl = "wss://127.0.0.1:" + std::to_string(hub_->port());
    ac.ca = pki::hubFiles(dir_.string()).caCert;
    ac.deviceId = "dev01";
    ac.deviceKey = deviceKey_;
    ac.allow = {{"127.0.0.1", echo_->port(), echo_->port()}};
    agent_ = std::make_unique<agent::Agent>(loop_, ac);
    std::string err;
    ASSERT_TRUE(agent_->start(err)) << err;
    ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return agent_->online(); }));
  }

  // One WebSocket per stream unless `multiplex` (the multiplexed cases in detail, against a
  // fake hub: stream_opener_mux_test).
  void makeOpener(const std::string& policy, const std::string& key, bool start = true,
                  bool multiplex = false) {
    StreamOpener::Options o;
    o.policy = policy;
    o.key = key;
    o.handshakeTimeout = 20s;
    o.multiplex = multiplex;
    opener_ = std::make_unique<StreamOpener>(loop_, target_, o);
    if (start) opener_->start();
  }

  // Opens and records; checks that `done` never runs inside open().
  uint64_t open(Outcome& out, uint16_t port, const std::string& device = "dev01") {
    inside_ = true;
    uint64_t id =
        opener_->open(device, "127.0.0.1", port, [&out, this](OpenedStream s, OpenResult r) {
          EXPECT_FALSE(inside_) << "done ran inside open()";
          ++out.calls;
          out.ws = s.takeWs();
          if (s.multiplexed()) {
            OpenedStream::Mux m = s.takeMux();
            out.mux = std::make_unique<test::MuxStream>();
            out.mux->channel = m.channel;
            out.mux->id = m.id;
            m.channel->setHandler(m.id, out.mux.get());
          }
          out.result = std::move(r);
        });
    inside_ = false;
    return id;
  }

  // One byte through the stream and back.
  void echoOnce(WsConnection& ws) {
    struct Cb : WsConnection::Callbacks {
      std::string got;
      void onWsData(evbuffer* p) override {
        size_t n = evbuffer_get_length(p);
        std::string s(n, '\0');
        evbuffer_remove(p, s.data(), n);
        got += s;
      }
      void onWsText(std::string) override {}
      void onWsClosed(uint16_t, const std::string&) override {}
    } cb;
    ws.setCallbacks(&cb);
    ws.start();
    EvBufferPtr b(evbuffer_new());
    evbuffer_add(b.get(), "x", 1);
    ws.sendBinary(b.get());
    ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return cb.got == "x"; }));
    ws.setCallbacks(nullptr);
    ws.close(1000, "done");
  }

  static inline int counter_ = 0;
  Loop loop_;
  fs::path dir_;
  std::string deviceKey_, serviceKey_, readerKey_, hubUrl_;
  std::unique_ptr<hub::Hub> hub_;
  SslCtxPtr ssl_;
  HubTarget target_;
  std::unique_ptr<Echo> echo_;
  std::unique_ptr<agent::Agent> agent_;
  std::unique_ptr<StreamOpener> opener_;
  bool inside_ = false;  // open() is running
  std::unique_ptr<Timer> safety_;
  bool timedOut_ = false;
};

TEST_F(StreamOpenerTest, PipelinedOpensOnTheChannelEachAnsweredOnce) {
  startAgent();
  makeOpener("service", serviceKey_);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return opener_->connected(); }));
  EXPECT_TRUE(opener_->lastError().empty());
  constexpr int kN = 20;
  std::vector<Outcome> out(kN);
  for (auto& o : out) open(o, echo_->port());
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] {
    for (auto& o : out)
      if (o.calls == 0) return false;
    return true;
  }));
  test::spin(loop_);
  std::map<std::string, int> ids;
  for (auto& o : out) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_EQ(o.result.status, 200) << o.result.code << " " << o.result.message;
    ASSERT_TRUE(o.ws);
    ++ids[o.result.streamId];
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kN));
  EXPECT_EQ(opener_->viaChannel(), static_cast<uint64_t>(kN));
  EXPECT_EQ(opener_->viaPost(), 0u);
  EXPECT_EQ(opener_->inFlight(), 0u);
  echoOnce(*out[0].ws);
  echoOnce(*out[kN - 1].ws);
}

TEST_F(StreamOpenerTest, MultiplexedOpensThroughTheHubAndAgent) {
  startAgent();
  makeOpener("service", serviceKey_, true, /*multiplex=*/true);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return opener_->multiplexed(); }));
  EXPECT_TRUE(opener_->pool().standby());
  constexpr int kN = 20;
  std::vector<Outcome> out(kN);
  for (auto& o : out) open(o, echo_->port());
  Outcome notAllowed, unknown;
  open(notAllowed, 1);
  open(unknown, echo_->port(), "nosuchdevice");
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] {
    for (auto& o : out)
      if (o.calls == 0) return false;
    return notAllowed.calls > 0 && unknown.calls > 0;
  }));
  for (auto& o : out) {
    EXPECT_EQ(o.calls, 1);
    ASSERT_EQ(o.result.status, 200) << o.result.code << " " << o.result.message;
    ASSERT_TRUE(o.mux);
    EXPECT_FALSE(o.ws);
  }
  EXPECT_EQ(opener_->viaMux(), static_cast<uint64_t>(kN + 2));
  EXPECT_EQ(opener_->viaChannel() + opener_->viaPost(), 0u);
  // The same statuses and codes as over the JSON channel (ErrorsCarryTheHubsStatusAndCode).
  EXPECT_EQ(notAllowed.result.status, 403);
  EXPECT_EQ(notAllowed.result.code, "port-not-allowed");
  EXPECT_EQ(unknown.result.status, 404);
  EXPECT_EQ(unknown.result.code, "device_unknown");
  for (int i : {0, kN - 1}) {
    test::MuxStream& m = *out[i].mux;
    m.out = "x" + std::to_string(i);
    std::string want = m.out;
    m.channel->wantWrite(m.id);
    ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return m.in == want; }));
  }
  for (auto& o : out) {
    if (!o.mux->closed) o.mux->channel->close(o.mux->id, 1000, "done");
  }
}

TEST_F(StreamOpenerTest, ErrorsCarryTheHubsStatusAndCode) {
  startAgent();
  makeOpener("service", serviceKey_);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return opener_->connected(); }));
  Outcome unknown, notAllowed;
  open(unknown, echo_->port(), "nosuchdevice");
  open(notAllowed, 1);
  ASSERT_TRUE(
      test::runUntil(loop_, timedOut_, [&] { return unknown.calls > 0 && notAllowed.calls > 0; }));
  test::spin(loop_);
  EXPECT_EQ(unknown.calls, 1);
  EXPECT_EQ(unknown.result.status, 404);
  EXPECT_EQ(unknown.result.code, "device_unknown");
  EXPECT_FALSE(unknown.ws);
  EXPECT_EQ(notAllowed.calls, 1);
  EXPECT_EQ(notAllowed.result.status, 403);
  EXPECT_EQ(notAllowed.result.code, "port-not-allowed");
  EXPECT_EQ(opener_->viaPost(), 0u);
  // The channel is still up after the errors.
  EXPECT_TRUE(opener_->connected());
}

TEST_F(StreamOpenerTest, FallsBackToPostWhileTheChannelIsDown) {
  startAgent();
  makeOpener("service", serviceKey_, /*start=*/false);  // no channel
  Outcome ok, offline;
  open(ok, echo_->port());
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return ok.calls > 0; }));
  EXPECT_EQ(ok.result.status, 200) << ok.result.code << " " << ok.result.message;
  ASSERT_TRUE(ok.ws);
  EXPECT_EQ(opener_->viaPost(), 1u);
  EXPECT_FALSE(opener_->connected());
  echoOnce(*ok.ws);
}

TEST_F(StreamOpenerTest, RefusedChannelIsReportedAndOpensStillAnswer) {
  startAgent();
  makeOpener("reader", readerKey_);  // lacks `connect`
  ASSERT_TRUE(test::runUntil(
      loop_, timedOut_, [&] { return opener_->lastError().find("403") != std::string::npos; }));
  EXPECT_FALSE(opener_->connected());
  Outcome o;
  open(o, echo_->port());
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return o.calls > 0; }));
  test::spin(loop_);
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.result.status, 403);
  EXPECT_EQ(o.result.code, "forbidden");
}

TEST_F(StreamOpenerTest, CancelledOpensNeverAnswer) {
  startAgent();
  makeOpener("service", serviceKey_);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return opener_->connected(); }));
  // Cancelled while the request is on the channel.
  Outcome onChannel, control;
  opener_->cancel(open(onChannel, echo_->port()));
  open(control, echo_->port());
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return control.calls > 0; }));
  EXPECT_EQ(control.result.status, 200);
  // Cancelled while the POST is under way (an opener without a channel).
  StreamOpener::Options o;
  o.policy = "service";
  o.key = serviceKey_;
  StreamOpener posting(loop_, target_, o);
  Outcome onPost, postControl;
  bool inside = true;
  uint64_t id = posting.open("dev01", "127.0.0.1", echo_->port(),
                             [&](OpenedStream, OpenResult) { ++onPost.calls; });
  posting.cancel(id);
  posting.open("dev01", "127.0.0.1", echo_->port(), [&](OpenedStream s, OpenResult r) {
    EXPECT_FALSE(inside);
    ++postControl.calls;
    postControl.ws = s.takeWs();
    postControl.result = std::move(r);
  });
  inside = false;
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return postControl.calls > 0; }));
  EXPECT_EQ(postControl.result.status, 200);
  test::spin(loop_, 50);
  EXPECT_EQ(onChannel.calls, 0);
  EXPECT_EQ(onPost.calls, 0);
  EXPECT_EQ(control.calls, 1);
  EXPECT_EQ(postControl.calls, 1);
  EXPECT_EQ(opener_->inFlight(), 0u);
  EXPECT_EQ(posting.inFlight(), 0u);
  opener_->cancel(12345);  // unknown: ignored
}

TEST_F(StreamOpenerTest, UnreachableHubAnswersWithStatusZeroOnce) {
  // A port nothing listens on (the hub's, after it is gone).
  uint16_t port = hub_->port();
  hub_->shutdown();
  hub_.reset();
  test::spin(loop_);
  HubTarget t = target_;
  t.port = port;
  StreamOpener::Options o;
  o.policy = "service";
  o.key = serviceKey_;
  opener_ = std::make_unique<StreamOpener>(loop_, t, o);
  opener_->start();
  Outcome out;
  open(out, 22);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return out.calls > 0; }));
  test::spin(loop_, 20);
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.result.status, 0);
  EXPECT_FALSE(opener_->connected());
  EXPECT_FALSE(opener_->lastError().empty());
}

TEST_F(StreamOpenerTest, WarmPoolServesSidesFromReadyConnections) {
  startAgent();
  makeOpener("service", serviceKey_);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_,
                             [&] { return opener_->connected() && opener_->pool().ready() >= 1; }));
  for (int i = 0; i < 5; ++i) {
    Outcome o;
    open(o, echo_->port());
    ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return o.calls > 0; }));
    ASSERT_EQ(o.result.status, 200) << o.result.message;
    echoOnce(*o.ws);
    // Let the pool refill before the next one.
    ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return opener_->pool().ready() >= 1; }));
  }
  EXPECT_EQ(opener_->pool().hits(), 5u);
}

}  // namespace
}  // namespace ds::hubclient
