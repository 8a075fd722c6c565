// The agent against a fake hub on loopback (TLS and the real hub client on the agent's side):
// streams the hub opens on a control channel that selected devstreams.mux.1, written and read
// with the frame codec of mux.h (not a second MuxSession), to targets that are loopback listeners
// the test drives with plain sockets; and stream_request messages, as before, when the hub does
// not select the subprotocol or the agent does not offer it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "common/log.h"
#include "common/mux.h"
#include "common/mux_channel.h"
#include "common/sas.h"
#include "hubclient/fake_hub.h"
#include "support/bytes.h"
#include "support/loop_test.h"
#include "support/socket_end.h"
#include "support/temp_dir.h"
#include "support/ws_peer.h"

namespace ds::agent {
namespace {

using namespace std::chrono_literals;
using mux::FrameType;
using json = nlohmann::json;

// ---- log lines ----------------------------------------------------------------------------

std::vector<std::string>& logLines() {
  static std::vector<std::string> lines;
  return lines;
}
void captureLog(Level, std::string_view line) { logLines().emplace_back(line); }
bool logged(const std::string& text) {
  for (const auto& l : logLines()) {
    if (l.find(text) != std::string::npos) return true;
  }
  return false;
}

// ---- the target: plain sockets the test drives between loop turns ---------------------------

// A socket of `type` bound to 127.0.0.1 on a free port.
int boundLoopback(int type, uint16_t& port) {
  int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  port = ntohs(a.sin_port);
  return fd;
}

// A listener on 127.0.0.1 (or a Unix socket) and the connections it accepted.
struct Target {
  Target() : fd(boundLoopback(SOCK_STREAM, port)) { listenNow(); }
  explicit Target(const std::string& path) : fd(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    listenNow();
  }
  ~Target() { ::close(fd); }
  void listenNow() {
    EXPECT_EQ(::listen(fd, 16), 0);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  void step() {
    for (int c; (c = ::accept(fd, nullptr, nullptr)) >= 0;) {
      conns.push_back(std::make_unique<test::SocketEnd>(c));
    }
    for (auto& c : conns) c->step();
  }
  void fds(std::vector<pollfd>& out) const {
    out.push_back({fd, POLLIN, 0});
    for (const auto& c : conns) out.push_back({c->fd, POLLIN, 0});
  }

  uint16_t port = 0;
  int fd;
  std::vector<std::unique_ptr<test::SocketEnd>> conns;
};

// A loopback port where nothing listens (bound, never listening: connects are refused).
struct ClosedPort {
  ClosedPort() : fd(boundLoopback(SOCK_STREAM, port)) {}
  ~ClosedPort() { ::close(fd); }
  uint16_t port = 0;
  int fd;
};

// A name server that never answers (a bound UDP socket nobody reads): lookups through it hang.
struct SilentDns {
  SilentDns() : fd(boundLoopback(SOCK_DGRAM, port)) {}
  ~SilentDns() { ::close(fd); }
  uint16_t port = 0;
  int fd;
};

// ---- the fake hub -----------------------------------------------------------------------------

// A frame the agent sent, its payload copied.
struct Got {
  FrameType type;
  uint32_t stream;
  std::string code, reason;
  uint16_t closeCode = 0;
  std::string data;
};

// The hub's side of the device's control channel: frames decoded as they come (pings answered),
// text messages kept.
struct Control : WsConnection::Callbacks {
  std::unique_ptr<WsConnection> ws;
  std::string offered;  // Sec-WebSocket-Protocol of the upgrade ("" for none)
  std::string in;
  std::vector<Got> frames;
  std::vector<std::string> texts;
  std::optional<uint16_t> closed;

  void onWsData(evbuffer* payload) override {
    test::appendAll(in, payload);
    size_t off = 0;
    for (;;) {
      mux::Frame f;
      auto r = mux::decode(reinterpret_cast<const uint8_t*>(in.data()) + off, in.size() - off, f);
      if (r.status == mux::DecodeStatus::NeedMore) break;
      if (r.status == mux::DecodeStatus::Invalid) {
        ADD_FAILURE() << "the agent sent an invalid frame: " << r.error;
        in.clear();
        return;
      }
      off += r.consumed;
      if (!r.known) continue;
      if (f.type == FrameType::Ping) {
        if (!(f.flags & mux::kFlagAck)) {
          std::string out;
          mux::appendPing(out, f.ping, true);
          send(out);
        }
        continue;
      }
      frames.push_back({f.type, f.stream, f.codeText, f.reason, f.closeCode,
                        std::string(reinterpret_cast<const char*>(f.data), f.dataLen)});
    }
    in.erase(0, off);
  }
  void onWsText(std::string message) override { texts.push_back(std::move(message)); }
  void onWsClosed(uint16_t code, const std::string&) override { closed = code; }

  void send(const std::string& frames) {
    if (!ws || !ws->open()) return;
    EvBufferPtr b(evbuffer_new());
    evbuffer_add(b.get(), frames.data(), frames.size());
    ws->sendBinary(b.get());
  }
  void open(uint32_t id, const mux::OpenRequest& req) {
    std::string out;
    ASSERT_TRUE(mux::appendOpen(out, id, 256 * 1024, req));
    send(out);
  }
  void data(uint32_t id, const std::string& bytes) {
    std::string out;
    mux::appendData(out, id, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    send(out);
  }
  void eof(uint32_t id) {
    std::string out;
    mux::appendEof(out, id);
    send(out);
  }
  void close(uint32_t id, uint16_t code) {
    std::string out;
    mux::appendClose(out, id, code, "");
    send(out);
  }
  // The first frame of `type` on stream `id`, or null.
  const Got* find(FrameType type, uint32_t id) const {
    for (const auto& f : frames) {
      if (f.type == type && f.stream == id) return &f;
    }
    return nullptr;
  }
  // The answer to an open: ACCEPT, REJECT, or a CLOSE (a cancel answered).
  const Got* answer(uint32_t id) const {
    for (const auto& f : frames) {
      if (f.stream == id && (f.type == FrameType::Accept || f.type == FrameType::Reject ||
                             f.type == FrameType::Close)) {
        return &f;
      }
    }
    return nullptr;
  }
  std::string dataOf(uint32_t id) const {
    std::string s;
    for (const auto& f : frames) {
      if (f.type == FrameType::Data && f.stream == id) s += f.data;
    }
    return s;
  }
};

// A TLS server that answers upgrades: /api/v1/devices/.../control becomes a Control (selecting
// devstreams.mux.1 when offered and `selectMux`), /api/v1/streams/... a stream side (WsPeer).
class Hub {
 public:
  Hub(Loop& loop, bool selectMux) : loop_(loop), selectMux_(selectMux) {
    std::string err;
    ctx_ = tls::serverContext(test::fakeHubFiles().cert, test::fakeHubFiles().key, err);
    EXPECT_TRUE(ctx_) << err;
    listener_ = listenTcp(loop, "127.0.0.1", 0, &Hub::onAccept, this, port_, err);
    EXPECT_TRUE(listener_) << err;
  }
  ~Hub() {
    for (auto& c : conns_) {
      if (c->bev) bufferevent_setcb(c->bev.get(), nullptr, nullptr, nullptr, nullptr);
    }
  }
  uint16_t port() const { return port_; }
  Control* control() const { return controls_.empty() ? nullptr : controls_.back().get(); }
  size_t controls() const { return controls_.size(); }
  std::vector<std::unique_ptr<test::WsPeer>> sides;
  std::vector<std::string> sideTargets;  // the request target of each side

 private:
  struct Conn {
    Hub* hub;
    BufferEventPtr bev;
  };
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<Hub*>(arg);
    auto c =
        std::make_unique<Conn>(Conn{self, tls::acceptSocket(self->loop_, self->ctx_.get(), fd)});
    bufferevent_setcb(c->bev.get(), &Hub::onRead, nullptr, nullptr, c.get());
    bufferevent_enable(c->bev.get(), EV_READ | EV_WRITE);
    self->conns_.push_back(std::move(c));
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    http::Request req;
    if (http::parseRequest(std::string_view(p, len), req).status != http::ParseStatus::Done) return;
    evbuffer_drain(in, len);
    Hub* hub = c->hub;
    const std::string* key = req.headers.find("Sec-WebSocket-Key");
    if (!key) {
      std::string out = httpResponse(404, "application/json", R"({"error":"not_found"})");
      bufferevent_write(bev, out.data(), out.size());
      return;
    }
    const std::string* offered = req.headers.find("Sec-WebSocket-Protocol");
    bool control = req.target.find("/control") != std::string::npos;
    bool mux = control && hub->selectMux_ &&
               req.headers.hasToken("Sec-WebSocket-Protocol", mux::kWsProtocol);
    std::string out = wshs::serverResponse(*key, mux ? mux::kWsProtocol : std::string_view());
    bufferevent_write(bev, out.data(), out.size());
    bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
    auto ws = std::make_unique<WsConnection>(hub->loop_, std::move(c->bev),
                                             WsConnection::Role::Server, WsLimits{}, nullptr);
    if (control) {
      auto ch = std::make_unique<Control>();
      ch->offered = offered ? *offered : "";
      ch->ws = std::move(ws);
      ch->ws->setCallbacks(ch.get());
      ch->ws->start();
      hub->controls_.push_back(std::move(ch));
    } else {
      auto side = std::make_unique<test::WsPeer>();
      side->ws = std::move(ws);
      side->ws->setCallbacks(side.get());
      side->ws->start();
      hub->sides.push_back(std::move(side));
      hub->sideTargets.push_back(req.target);
    }
  }

  Loop& loop_;
  bool selectMux_;
  SslCtxPtr ctx_;
  ListenerPtr listener_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::unique_ptr<Control>> controls_;
};

// ---- the fixture --------------------------------------------------------------------------

mux::OpenRequest tcpOpen(uint16_t port, const std::string& policy = "ops",
                         const std::string& user = "", const std::string& host = "127.0.0.1") {
  mux::OpenRequest r;
  r.host = host;
  r.port = port;
  r.policy = policy;
  r.user = user;
  r.name = "test";
  return r;
}

config::AllowRule allow(uint16_t port, std::vector<std::string> from = {}) {
  config::AllowRule r{"127.0.0.1", port, port};
  r.from = std::move(from);
  return r;
}

class AgentMuxTest : public test::LoopTest {
 protected:
  void SetUp() override {
    logLines().clear();
    setLogSink(&captureLog);
    setLogLevel(Level::Debug);  // each step of a stream is a debug line
  }
  void TearDown() override {
    if (agent_) agent_->shutdown();
    spin(20);
    agent_.reset();
    hub_.reset();
    spin(20);
    setLogSink(nullptr);
  }

  // The hub, and an agent on it whose allow-list has `rules`; waits until the agent is online.
  void start(std::vector<config::AllowRule> rules, bool selectMux = true,
             const std::function<void(config::AgentConfig&)>& tweak = {}) {
    hub_ = std::make_unique<Hub>(loop_, selectMux);
    config::AgentConfig c;
    c.hubUrl = "wss://127.0.0.1:" + std::to_string(hub_->port());
    c.ca = test::fakeHubFiles().caCert;
    c.serverName = "localhost";
    c.deviceId = "dev01";
    c.deviceKey = sas::randomKey();
    c.allow = std::move(rules);
    c.connectTimeout = 20s;
    c.reconnectMin = 50ms;
    c.reconnectMax = 500ms;
    if (tweak) tweak(c);
    agent_ = std::make_unique<Agent>(loop_, c);
    std::string err;
    ASSERT_TRUE(agent_->start(err)) << err;
    ASSERT_TRUE(run([&] { return agent_->online() && hub_->control(); }));
  }

  // Turns the loop and steps the targets until `done` holds (false when the safety stop fired).
  bool run(const std::function<bool()>& done) {
    while (!done()) {
      if (timedOut_) {
        ADD_FAILURE() << "safety stop: the awaited condition never came";
        return false;
      }
      event_base_loop(loop_.base(), EVLOOP_NONBLOCK);
      std::vector<pollfd> fds;
      for (Target* t : targets_) t->fds(fds);
      ::poll(fds.data(), fds.size(), 1);
      for (Target* t : targets_) t->step();
    }
    return true;
  }
  // Loop turns with the targets stepped, for checking that something does not happen.
  void settle(int turns = 50) {
    int n = 0;
    run([&] { return ++n > turns; });
  }
  Target& target() {
    owned_.push_back(std::make_unique<Target>());
    targets_.push_back(owned_.back().get());
    return *owned_.back();
  }
  Target& target(const std::string& path) {
    owned_.push_back(std::make_unique<Target>(path));
    targets_.push_back(owned_.back().get());
    return *owned_.back();
  }

  Control& control() { return *hub_->control(); }
  // Opens stream `id` and waits for the agent's answer.
  const Got* openAndWait(uint32_t id, const mux::OpenRequest& req) {
    control().open(id, req);
    if (!run([&] { return control().answer(id) != nullptr; })) return nullptr;
    return control().answer(id);
  }

  std::vector<std::unique_ptr<Target>> owned_;
  std::vector<Target*> targets_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<Agent> agent_;
};

// ---- streams on the channel -----------------------------------------------------------------

TEST_F(AgentMuxTest, OpenAcceptedBytesBothWaysEofEachWayThenCloseAndFin) {
  Target& t = target();
  start({allow(t.port)});
  EXPECT_EQ(control().offered, mux::kWsProtocol);
  ASSERT_TRUE(agent_->multiplexed());
  EXPECT_TRUE(logged("online: control channel to 127.0.0.1:" + std::to_string(hub_->port()) +
                     " open, streams multiplexed on it"));

  const Got* a = openAndWait(2, tcpOpen(t.port, "ops", "alice"));
  ASSERT_TRUE(a);
  ASSERT_EQ(a->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  test::SocketEnd& c = *t.conns[0];
  EXPECT_EQ(agent_->streams(), 1u);

  const std::string up = test::randomBytes(100000, 1), down = test::randomBytes(70000, 2);
  control().data(2, up);
  c.out = down;
  ASSERT_TRUE(
      run([&] { return c.in.size() == up.size() && control().dataOf(2).size() == down.size(); }));
  EXPECT_EQ(c.in, up);
  EXPECT_EQ(control().dataOf(2), down);

  // EOF each way: the target sees FIN, the hub an EOF, then the agent closes with 1000.
  control().eof(2);
  ASSERT_TRUE(run([&] { return c.gotFin; }));
  EXPECT_FALSE(control().find(FrameType::Close, 2));
  c.finAfterSend = true;
  ASSERT_TRUE(run([&] { return control().find(FrameType::Close, 2) != nullptr; }));
  EXPECT_TRUE(control().find(FrameType::Eof, 2));
  EXPECT_EQ(control().find(FrameType::Close, 2)->closeCode, 1000);
  control().close(2, 1000);
  // Gone at once, not when its lookup fails (it never answers: that takes evdns' timeouts).
  ASSERT_TRUE(run([&] { return agent_->streams() == 0; }));
  EXPECT_FALSE(logged("rejected"));
  settle();
  EXPECT_FALSE(c.gotReset);

  std::string who =
      "caller ops, user alice (asserted), target 127.0.0.1:" + std::to_string(t.port) +
      ", name 'test'";
  EXPECT_TRUE(logged("stream m2: 127.0.0.1:" + std::to_string(t.port) +
                     " allowed: address 127.0.0.1 by rule 127.0.0.1:" + std::to_string(t.port) +
                     " (" + who + ")"));
  EXPECT_TRUE(logged("stream m2: connected to 127.0.0.1:" + std::to_string(t.port)));
  EXPECT_TRUE(
      logged("stream m2: done (70000 bytes to the service, 100000 to the target; " + who + ")"));
}

TEST_F(AgentMuxTest, PortNotInTheAllowListIsRejectedAndNeverConnected) {
  Target& allowed = target();
  Target& other = target();
  start({allow(allowed.port)});
  const Got* a = openAndWait(2, tcpOpen(other.port));
  ASSERT_TRUE(a);
  ASSERT_EQ(a->type, FrameType::Reject);
  EXPECT_EQ(a->code, "port-not-allowed");
  EXPECT_EQ(a->reason,
            "127.0.0.1:" + std::to_string(other.port) + " is not in the device's allow-list");
  settle();
  EXPECT_TRUE(other.conns.empty());
  EXPECT_EQ(agent_->streams(), 0u);
  EXPECT_TRUE(
      logged("stream m2: rejected (port-not-allowed): 127.0.0.1:" + std::to_string(other.port) +
             " is not in the device's allow-list (caller ops"));
}

// The hub's stream id, when the OPEN carries it, names the stream in the log (as the audit does).
TEST_F(AgentMuxTest, TheHubsStreamIdNamesTheStreamInTheLog) {
  Target& t = target();
  start({allow(t.port)});
  mux::OpenRequest req = tcpOpen(t.port);
  req.streamId = "9f3a0c";
  ASSERT_EQ(openAndWait(2, req)->type, FrameType::Accept);
  EXPECT_TRUE(logged("stream 9f3a0c: connected to 127.0.0.1:" + std::to_string(t.port)));
  req.port = 1;                 // not allowed
  req.streamId = "a0\xc3\xa9";  // not ASCII: escaped
  ASSERT_EQ(openAndWait(4, req)->type, FrameType::Reject);
  EXPECT_TRUE(logged("stream a0\\xc3\\xa9: rejected (port-not-allowed)"));
  EXPECT_FALSE(logged("stream m2:"));
}

TEST_F(AgentMuxTest, ConnectionRefusedIsRejectedWithItsCode) {
  ClosedPort closed;
  start({allow(closed.port)});
  const Got* a = openAndWait(2, tcpOpen(closed.port));
  ASSERT_TRUE(a);
  ASSERT_EQ(a->type, FrameType::Reject);
  EXPECT_EQ(a->code, "connection-refused");
  EXPECT_EQ(a->reason, "connection to 127.0.0.1:" + std::to_string(closed.port) + " refused");
}

TEST_F(AgentMuxTest, BadRequestsAreRejectedBeforeAnything) {
  Target& t = target();
  start({allow(t.port)}, true, [](config::AgentConfig& c) { c.maxStreams = 1; });
  const Got* a = openAndWait(2, tcpOpen(t.port, "ops", "", "bad host"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, FrameType::Reject);
  EXPECT_EQ(a->code, "bad-host");
  mux::OpenRequest rel = tcpOpen(0);
  rel.host.clear();
  rel.socketPath = "run/app.sock";
  a = openAndWait(4, rel);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, "bad-host");
  a = openAndWait(6, tcpOpen(0));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, "port-not-allowed");
  EXPECT_EQ(a->reason, "not a valid target port");
  // max_streams: one open stream, the next is refused.
  a = openAndWait(8, tcpOpen(t.port));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, FrameType::Accept);
  a = openAndWait(10, tcpOpen(t.port));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, FrameType::Reject);
  EXPECT_EQ(a->code, "too-many-streams");
  EXPECT_EQ(a->reason, "the device serves its maximum of 1 streams");
  settle();
  EXPECT_EQ(t.conns.size(), 1u);
}

// The same callers get the same answers whether the hub asks with stream_request or OPEN.
TEST_F(AgentMuxTest, CallersAreDecidedAsForStreamRequests) {
  Target& a = target();
  Target& b = target();
  std::vector<config::AllowRule> rules{allow(a.port, {"ops"}), allow(b.port, {"support/alice"})};
  struct Case {
    uint16_t port;
    std::string policy, user, expected;  // expected: "" accepted, else the code
  };
  std::vector<Case> cases{
      {a.port, "ops", "", ""},
      {a.port, "ops", "bob", ""},
      {a.port, "web", "", "port-not-allowed"},
      {a.port, "", "", "port-not-allowed"},
      {b.port, "support", "alice", ""},
      {b.port, "support", "bob", "port-not-allowed"},
      {b.port, "support", "", "port-not-allowed"},
      {b.port, "ops", "alice", "port-not-allowed"},
  };

  // Multiplexed.
  start(rules);
  std::vector<std::string> viaMux;
  uint32_t id = 2;
  for (const Case& c : cases) {
    const Got* g = openAndWait(id, tcpOpen(c.port, c.policy, c.user));
    ASSERT_TRUE(g);
    viaMux.push_back(g->type == FrameType::Accept ? "" : g->code);
    id += 2;
  }
  agent_->shutdown();
  spin(20);
  agent_.reset();

  // stream_request on a hub that does not select the subprotocol.
  start(rules, false);
  ASSERT_FALSE(agent_->multiplexed());
  std::vector<std::string> viaJson;
  int n = 0;
  for (const Case& c : cases) {
    std::string sid = "s" + std::to_string(++n);
    json req = {
        {"type", "stream_request"},
        {"stream_id", sid},
        {"host", "127.0.0.1"},
        {"port", c.port},
        {"url", "wss://127.0.0.1:" + std::to_string(hub_->port()) + "/api/v1/streams/" + sid},
        {"token", "t"}};
    if (!c.policy.empty()) {
      req["caller"] = {{"policy", c.policy}};
      if (!c.user.empty()) req["caller"]["asserted_user"] = c.user;
    }
    control().ws->sendText(req.dump());
    ASSERT_TRUE(run([&] { return control().texts.size() == static_cast<size_t>(n); }));
    json resp = json::parse(control().texts.back());
    EXPECT_EQ(resp["stream_id"], sid);
    viaJson.push_back(resp["accept"].get<bool>() ? "" : resp["code"].get<std::string>());
  }

  std::vector<std::string> expected;
  for (const Case& c : cases) expected.push_back(c.expected);
  EXPECT_EQ(viaMux, expected);
  EXPECT_EQ(viaJson, expected);
}

TEST_F(AgentMuxTest, CloseBeforeTheAnswerCancelsTheRequest) {
  SilentDns dns;
  Target& t = target();
  start({allow(t.port)}, true, [&](config::AgentConfig& c) {
    c.nameservers = {{"127.0.0.1", dns.port}};
  });
  control().open(2, tcpOpen(t.port, "ops", "", "slow.example"));
  ASSERT_TRUE(run([&] { return agent_->streams() == 1; }));
  control().close(2, 1000);
  // Gone at once, not when its lookup fails (it never answers: that takes evdns' timeouts).
  ASSERT_TRUE(run([&] { return agent_->streams() == 0; }));
  EXPECT_FALSE(logged("rejected"));
  ASSERT_TRUE(run([&] { return control().answer(2) != nullptr; }));
  EXPECT_EQ(control().answer(2)->type, FrameType::Close);
  settle();
  EXPECT_FALSE(control().find(FrameType::Accept, 2));
  EXPECT_FALSE(control().find(FrameType::Reject, 2));
  EXPECT_TRUE(t.conns.empty());
  EXPECT_TRUE(logged("stream m2: cancelled before it was accepted (close 1000 )"));
}

TEST_F(AgentMuxTest, StreamsEndWithTheControlChannel) {
  Target& t = target();
  start({allow(t.port)});
  ASSERT_EQ(openAndWait(2, tcpOpen(t.port))->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  control().data(2, "x");
  ASSERT_TRUE(run([&] { return t.conns[0]->in == "x"; }));
  control().ws->close(1001, "hub going away");
  // Not a clean end: the target is reset, not given a FIN.
  ASSERT_TRUE(run([&] { return t.conns[0]->gotReset || t.conns[0]->gotFin; }));
  EXPECT_TRUE(t.conns[0]->gotReset);
  EXPECT_EQ(agent_->streams(), 0u);
  EXPECT_TRUE(
      logged("control channel closed (1001 hub going away); 1 multiplexed streams ended with it, "
             "0 continue on their own connections"));
  // The agent comes back, multiplexed again, and serves new streams.
  ASSERT_TRUE(run([&] { return hub_->controls() == 2 && agent_->multiplexed(); }));
  ASSERT_EQ(openAndWait(2, tcpOpen(t.port))->type, FrameType::Accept);
}

TEST_F(AgentMuxTest, ShutdownClosesStreamsWith1001) {
  Target& t = target();
  start({allow(t.port)});
  ASSERT_EQ(openAndWait(2, tcpOpen(t.port))->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  agent_->shutdown();
  ASSERT_TRUE(run([&] { return control().closed.has_value(); }));
  const Got* c = control().find(FrameType::Close, 2);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->closeCode, 1001);
  EXPECT_EQ(*control().closed, 1001);
  ASSERT_TRUE(run([&] { return t.conns[0]->gotReset || t.conns[0]->gotFin; }));
  EXPECT_TRUE(t.conns[0]->gotReset);
}

TEST_F(AgentMuxTest, ReloadKeepsOpenStreams) {
  Target& t = target();
  start({allow(t.port)});
  ASSERT_EQ(openAndWait(2, tcpOpen(t.port))->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  std::string err;
  ASSERT_TRUE(agent_->setAllowList({}, err)) << err;
  EXPECT_TRUE(
      logged("allow-list reloaded: (empty: every request is refused) (1 open streams kept)"));
  control().data(2, "still");
  t.conns[0]->out = "here";
  ASSERT_TRUE(run([&] { return t.conns[0]->in == "still" && control().dataOf(2) == "here"; }));
  // New requests see the new list.
  const Got* a = openAndWait(4, tcpOpen(t.port));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, "port-not-allowed");
}

TEST_F(AgentMuxTest, UnixSocketTarget) {
  test::TempDir dir("ds-agent-mux");
  std::string path = dir / "app.sock";
  Target& t = target(path);
  config::AllowRule rule;
  rule.path = path;
  start({rule});
  mux::OpenRequest req = tcpOpen(0);
  req.host.clear();
  req.socketPath = path;
  const Got* a = openAndWait(2, req);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  control().data(2, "ping");
  ASSERT_TRUE(run([&] { return t.conns[0]->in == "ping"; }));
  EXPECT_TRUE(logged("stream m2: unix:" + path + " allowed: by rule unix:" + path));
  EXPECT_TRUE(logged("stream m2: connected to unix:" + path));
}

// Freed without shutdown() (as when start-up fails later): streams end, lookups are cancelled,
// nothing is left behind.
TEST_F(AgentMuxTest, DestroyedWithStreamsOpenAndPending) {
  SilentDns dns;
  Target& t = target();
  start({allow(t.port)}, true, [&](config::AgentConfig& c) {
    c.nameservers = {{"127.0.0.1", dns.port}};
  });
  ASSERT_EQ(openAndWait(2, tcpOpen(t.port))->type, FrameType::Accept);
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  control().open(4, tcpOpen(t.port, "ops", "", "slow.example"));
  ASSERT_TRUE(run([&] { return agent_->streams() == 2; }));
  agent_.reset();
  ASSERT_TRUE(run([&] { return t.conns[0]->gotReset || t.conns[0]->gotFin; }));
  EXPECT_TRUE(t.conns[0]->gotReset);
  settle();
  EXPECT_EQ(t.conns.size(), 1u);
}

// ---- without the subprotocol: stream_request as before ------------------------------------

TEST_F(AgentMuxTest, HubWithoutMuxSendsStreamRequestsAndTheStreamGetsItsOwnWebSocket) {
  Target& t = target();
  start({allow(t.port)}, false);
  EXPECT_EQ(control().offered, mux::kWsProtocol);  // offered, not taken
  EXPECT_FALSE(agent_->multiplexed());
  json req = {{"type", "stream_request"},
              {"stream_id", "s1"},
              {"host", "127.0.0.1"},
              {"port", t.port},
              {"url", "wss://127.0.0.1:" + std::to_string(hub_->port()) + "/api/v1/streams/s1"},
              {"token", "t1"},
              {"caller", {{"policy", "ops"}}}};
  control().ws->sendText(req.dump());
  ASSERT_TRUE(run([&] { return !control().texts.empty(); }));
  json resp = json::parse(control().texts[0]);
  EXPECT_EQ(resp["stream_id"], "s1");
  EXPECT_EQ(resp["accept"], true);
  ASSERT_EQ(hub_->sides.size(), 1u);
  EXPECT_EQ(hub_->sideTargets[0], "/api/v1/streams/s1");
  ASSERT_TRUE(run([&] { return t.conns.size() == 1; }));
  hub_->sides[0]->send("to the target");
  t.conns[0]->out = "to the service";
  ASSERT_TRUE(run([&] {
    return t.conns[0]->in == "to the target" && hub_->sides[0]->data == "to the service";
  }));
  EXPECT_TRUE(control().frames.empty());
}

// A hub may still send stream_request on a multiplexed channel: served as before.
TEST_F(AgentMuxTest, StreamRequestOnAMultiplexedChannelIsServedToo) {
  Target& t = target();
  start({allow(t.port)});
  ASSERT_TRUE(agent_->multiplexed());
  json req = {{"type", "stream_request"},
              {"stream_id", "s1"},
              {"port", t.port},
              {"url", "wss://127.0.0.1:" + std::to_string(hub_->port()) + "/api/v1/streams/s1"},
              {"token", "t1"}};
  control().ws->sendText(req.dump());
  ASSERT_TRUE(run([&] { return !control().texts.empty(); }));
  EXPECT_EQ(json::parse(control().texts[0])["accept"], true);
  ASSERT_EQ(hub_->sides.size(), 1u);
  hub_->sides[0]->send("x");
  ASSERT_TRUE(run([&] { return t.conns.size() == 1 && t.conns[0]->in == "x"; }));
  EXPECT_TRUE(logged("stream s1: connected to 127.0.0.1:" + std::to_string(t.port)));
}

TEST_F(AgentMuxTest, MultiplexFalseOffersNoSubprotocol) {
  Target& t = target();
  start({allow(t.port)}, true, [](config::AgentConfig& c) { c.multiplex = false; });
  EXPECT_EQ(control().offered, "");
  EXPECT_FALSE(agent_->multiplexed());
  EXPECT_TRUE(
      logged("online: control channel to 127.0.0.1:" + std::to_string(hub_->port()) + " open"));
  EXPECT_FALSE(logged("streams multiplexed on it"));
}

}  // namespace
}  // namespace ds::agent
