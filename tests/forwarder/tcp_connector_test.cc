// TcpConnector on loopback: a listener accepts (Connected, TCP_NODELAY set), a closed port
// refuses (Refused), a connect that cannot start fails from the loop, never inside connect().
#include "forwarder/tcp_connector.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include "support/run_loop.h"

namespace ds {
namespace {

using namespace std::chrono_literals;

class TcpConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override { safety_.arm(10s); }

  // Connects to 127.0.0.1:`port` by address, or by name when `byName`; the outcome.
  ConnectOutcome connectTo(uint16_t port, bool byName) {
    TcpConnector c(loop_, [&](BufferEventPtr b, const ConnectOutcome& o) {
      bev_ = std::move(b);
      got_ = o;
    });
    if (byName) {
      c.connect(loop_.dns(), "127.0.0.1", port, 5s);
    } else {
      sockaddr_storage ss;
      socklen_t len;
      EXPECT_TRUE(numericSockaddr("127.0.0.1", port, ss, len));
      c.connect(reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len), 0ms);
    }
    EXPECT_FALSE(got_.has_value());  // never from inside connect()
    test::runUntil(loop_, timedOut_, [&] { return got_.has_value(); });
    return got_.value_or(ConnectOutcome{});
  }

  // A port nothing listens on (bound, never listening).
  uint16_t closedPort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    held_ = fd;
    return ntohs(sin.sin_port);
  }

  void TearDown() override {
    if (held_ >= 0) ::close(held_);
  }

  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void*) {
    evutil_closesocket(fd);
  }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  std::optional<ConnectOutcome> got_;
  BufferEventPtr bev_;
  int held_ = -1;
};

TEST_F(TcpConnectorTest, ConnectsWithNoDelay) {
  for (bool byName : {false, true}) {
    SCOPED_TRACE(byName ? "by name" : "by address");
    got_.reset();
    uint16_t port = 0;
    std::string err;
    ListenerPtr l = listenTcp(loop_, "127.0.0.1", 0, &onAccept, nullptr, port, err);
    ASSERT_TRUE(l) << err;
    ConnectOutcome o = connectTo(port, byName);
    EXPECT_EQ(o.result, ConnectResult::Connected) << o.detail;
    ASSERT_TRUE(bev_);
    int on = 0;
    socklen_t len = sizeof on;
    ASSERT_EQ(getsockopt(bufferevent_getfd(bev_.get()), IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    EXPECT_NE(on, 0);
    bev_.reset();
  }
}

TEST_F(TcpConnectorTest, ClosedPortIsRefused) {
  for (bool byName : {false, true}) {
    SCOPED_TRACE(byName ? "by name" : "by address");
    got_.reset();
    ConnectOutcome o = connectTo(closedPort(), byName);
    EXPECT_EQ(o.result, ConnectResult::Refused) << o.detail;
    EXPECT_FALSE(o.detail.empty());
    EXPECT_FALSE(bev_);
    ::close(held_);
    held_ = -1;
  }
}

TEST_F(TcpConnectorTest, ConnectThatCannotStartFailsFromTheLoop) {
  TcpConnector c(loop_, [&](BufferEventPtr b, const ConnectOutcome& o) {
    bev_ = std::move(b);
    got_ = o;
  });
  sockaddr_storage ss{};
  ss.ss_family = 255;  // no such address family: socket() fails at once
  c.connect(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in), 0ms);
  EXPECT_FALSE(got_.has_value());
  test::runUntil(loop_, timedOut_, [&] { return got_.has_value(); });
  EXPECT_EQ(got_->result, ConnectResult::Failed);
  EXPECT_FALSE(bev_);
}

TEST_F(TcpConnectorTest, DestroyedBeforeTheOutcomeCallsNothing) {
  bool called = false;
  {
    TcpConnector c(loop_, [&](BufferEventPtr, const ConnectOutcome&) { called = true; });
    c.connect(loop_.dns(), "127.0.0.1", closedPort(), 5s);
  }
  test::spin(loop_);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace ds
