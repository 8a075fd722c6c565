// The daemon with streams on its multiplexed service channel, end to end on loopback: a real
// SOCKS5 or HTTP proxy client, the daemon, and a fake hub that answers the frames of
// docs/mux.md with the codec (tests/hubclient/fake_hub.h). Bytes flow both ways and a normal
// end is a FIN; refusals are the SOCKS replies and HTTP statuses of the POST path; a lost
// channel resets the clients of its streams; an HTTP forward lets one request through.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "common/log.h"
#include "common/mux.h"
#include "daemon/daemon.h"
#include "hubclient/fake_hub.h"
#include "support/bytes.h"
#include "support/run_loop.h"

namespace ds::daemon {
namespace {

using namespace std::chrono_literals;
using mux::FrameType;
using test::FakeHub;
using test::MuxFrame;

// A proxy client: its bytes in `in`; `fin` on an orderly end, `reset` on an error (RST).
struct Client {
  BufferEventPtr bev;
  std::string in;
  bool fin = false, reset = false;

  void connect(Loop& loop, uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    evutil_make_socket_nonblocking(fd);
    bev = newSocketBufferEvent(loop, fd);
    bufferevent_setcb(bev.get(), &Client::onRead, nullptr, &Client::onEvent, this);
    bufferevent_enable(bev.get(), EV_READ | EV_WRITE);
  }
  void write(std::string_view s) { bufferevent_write(bev.get(), s.data(), s.size()); }
  void shutdownWrite() { ::shutdown(bufferevent_getfd(bev.get()), SHUT_WR); }
  // SOCKS5 without authentication, CONNECT to a domain name.
  void socks(const std::string& host, uint16_t port) {
    std::string req("\x05\x01\x00\x05\x01\x00\x03", 7);
    req += static_cast<char>(host.size());
    req += host;
    req += static_cast<char>(port >> 8);
    req += static_cast<char>(port & 0xff);
    write(req);
  }
  // The SOCKS5 reply code once the method choice and the 10-byte reply arrived, else -1.
  int socksReply() const { return in.size() >= 12 ? static_cast<uint8_t>(in[3]) : -1; }

  static void onRead(bufferevent* b, void* arg) {
    test::appendAll(static_cast<Client*>(arg)->in, bufferevent_get_input(b));
  }
  static void onEvent(bufferevent* b, short what, void* arg) {
    auto* self = static_cast<Client*>(arg);
    onRead(b, arg);
    if (what & BEV_EVENT_ERROR) {
      self->reset = true;
    } else if (what & BEV_EVENT_EOF) {
      self->fin = true;
    }
  }
};

class DaemonMuxTest : public test::FakeHubTest {
 protected:
  void SetUp() override {
    FakeHubTest::SetUp();
    setLogLevel(Level::Warn);
    hub_.mux = true;
    dir_ = std::filesystem::temp_directory_path() /
           ("ds-daemon-mux-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    config::DaemonConfig cfg;
    cfg.hubUrl = "https://127.0.0.1:" + std::to_string(hub_.port());
    cfg.ca = test::fakeHubFiles().caCert;
    cfg.serverName = "localhost";
    cfg.hubHostname = "localhost";
    cfg.policy = "service";
    cfg.key = "a2V5";
    cfg.socksListen = {"127.0.0.1", 0};
    cfg.controlSocket = (dir_ / "d.sock").string();
    daemon_ = std::make_unique<Daemon>(loop_, cfg);
    std::string err;
    ASSERT_TRUE(daemon_->start(err)) << err;
    ASSERT_TRUE(until([&] { return hub()["multiplexed"] == true; }));
  }

  void TearDown() override {
    if (daemon_) daemon_->shutdown();
    test::spin(loop_, 20);
    daemon_.reset();
    test::spin(loop_, 20);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  nlohmann::json hub() const { return daemon_->status()["hub"]; }
  uint64_t streams() const { return daemon_->status()["streams"].get<uint64_t>(); }

  // A client through SOCKS5 to `host`:`port`, its reply arrived.
  void socks(Client& c, const std::string& host, uint16_t port) {
    c.connect(loop_, daemon_->socksPort());
    c.socks(host, port);
    ASSERT_TRUE(until([&] { return c.socksReply() >= 0 || c.fin || c.reset; }));
  }

  // The stream id of the last OPEN the hub saw.
  uint32_t lastOpen() const {
    const MuxFrame* f = hub_.last(FrameType::Open);
    return f ? f->stream : 0;
  }

  void hubSends(uint32_t stream, std::string_view bytes, bool eof = false) {
    std::string out;
    mux::appendData(out, stream, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (eof) mux::appendEof(out, stream);
    FakeHub::send(*hub_.channels.at(0), out);
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonMuxTest, BytesFlowBothWaysAndANormalEndIsAFin) {
  Client c;
  socks(c, "dev01.hub", 22);
  ASSERT_EQ(c.socksReply(), 0x00);
  c.in.erase(0, 12);
  uint32_t id = lastOpen();
  EXPECT_EQ(hub_.last(FrameType::Open)->request,
            (mux::OpenRequest{"dev01", "127.0.0.1", 22, "", "", "", ""}));
  EXPECT_EQ(streams(), 1u);

  c.write("ping");
  ASSERT_TRUE(until([&] { return hub_.dataOf(id) == "ping"; }));
  hubSends(id, "pong");
  ASSERT_TRUE(until([&] { return c.in == "pong"; }));
  c.shutdownWrite();
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Eof) == 1; }));
  hubSends(id, "bye", /*eof=*/true);
  hub_.closeStream(*hub_.channels.at(0), id, mux::close_code::Normal);
  ASSERT_TRUE(until([&] { return c.fin || c.reset; }));
  EXPECT_TRUE(c.fin);
  EXPECT_FALSE(c.reset);
  EXPECT_EQ(c.in, "pongbye");
  ASSERT_TRUE(until([&] { return streams() == 0; }));
  EXPECT_EQ(daemon_->status()["streams_total"], 1);
  EXPECT_TRUE(hub_.muxError.empty()) << hub_.muxError;
  // The daemon answered the hub's CLOSE with its own.
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Close) == 1; }));
  EXPECT_EQ(hub_.last(FrameType::Close)->closeCode, mux::close_code::Normal);
}

TEST_F(DaemonMuxTest, RefusalsAreThePostPathsRepliesAndStatuses) {
  hub_.onOpen = [](WsConnection& ws, const MuxFrame& f) {
    std::string out;
    if (f.request.device == "offline01") {
      mux::appendReject(out, f.stream, proto::Reject::DeviceOffline, "offline");
    } else if (f.request.port == 1) {
      mux::appendReject(out, f.stream, proto::Reject::PortNotAllowed, "not on the allow-list");
    } else {
      mux::appendReject(out, f.stream, proto::Reject::ConnectionRefused, "closed port");
    }
    FakeHub::send(ws, out);
  };
  Client notAllowed, offline, refused;
  socks(notAllowed, "dev01.hub", 1);
  socks(offline, "offline01.hub", 22);
  socks(refused, "dev01.hub", 23);
  EXPECT_EQ(notAllowed.socksReply(), 0x02);
  EXPECT_EQ(offline.socksReply(), 0x03);
  EXPECT_EQ(refused.socksReply(), 0x05);
  // HTTP CONNECT through the same port: the statuses of the POST path.
  Client http;
  http.connect(loop_, daemon_->socksPort());
  http.write("CONNECT dev01.hub:1 HTTP/1.1\r\nHost: dev01.hub:1\r\n\r\n");
  ASSERT_TRUE(until([&] { return http.in.find("\r\n") != std::string::npos; }));
  EXPECT_EQ(http.in.rfind("HTTP/1.1 403", 0), 0u) << http.in;
  EXPECT_EQ(daemon_->status()["failures_total"], 4);
  EXPECT_EQ(hub()["multiplexed"], true);
}

TEST_F(DaemonMuxTest, LostChannelResetsTheClientsOfItsStreams) {
  Client c;
  socks(c, "dev01.hub", 22);
  ASSERT_EQ(c.socksReply(), 0x00);
  uint32_t id = lastOpen();
  hubSends(id, "partial");
  ASSERT_TRUE(until([&] { return c.in.size() == 12 + 7; }));
  hub_.channels.at(0)->close(1001, "hub going away");
  ASSERT_TRUE(until([&] { return c.fin || c.reset; }));
  EXPECT_TRUE(c.reset) << "a cut stream must not look complete";
  ASSERT_TRUE(until([&] { return streams() == 0; }));
}

TEST_F(DaemonMuxTest, ShutdownResetsTheClientsOfOpenStreams) {
  Client c;
  socks(c, "dev01.hub", 22);
  ASSERT_EQ(c.socksReply(), 0x00);
  daemon_->shutdown();
  ASSERT_TRUE(until([&] { return c.fin || c.reset; }));
  EXPECT_TRUE(c.reset);
  // The service channel closes, and every stream on it ends with it at the hub.
  ASSERT_TRUE(until([&] { return hub_.channelsClosed() == 1; }));
}

TEST_F(DaemonMuxTest, HttpForwardLetsOneRequestThrough) {
  Client c;
  c.connect(loop_, daemon_->socksPort());
  c.write(
      "GET http://dev01.hub:8080/a HTTP/1.1\r\nHost: dev01.hub:8080\r\n\r\n"
      "GET http://dev01.hub:8080/b HTTP/1.1\r\nHost: dev01.hub:8080\r\n\r\n");
  ASSERT_TRUE(until([&] { return hub_.count(FrameType::Open) == 1; }));
  uint32_t id = lastOpen();
  ASSERT_TRUE(until([&] { return hub_.dataOf(id).find("\r\n\r\n") != std::string::npos; }));
  test::spin(loop_, 50);
  std::string sent = hub_.dataOf(id);
  EXPECT_EQ(sent.find("/b "), std::string::npos) << sent;
  EXPECT_EQ(sent.rfind("GET /a HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_EQ(hub_.last(FrameType::Open)->request.port, 8080);
}

}  // namespace
}  // namespace ds::daemon
