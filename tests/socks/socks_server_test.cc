// Tests for SocksSession over a real libevent loop on a socketpair: negotiation delivered at once
// and byte by byte, accept() with early data kept for the stream, reject(), refused methods and
// commands, unsupported address types, malformed greetings, and the negotiation timeout.
#include "socks/socks_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "support/run_loop.h"

namespace ds::socks {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Eq;
using ::testing::Field;
using ::testing::StrictMock;

class MockHandler : public SocksSession::Handler {
 public:
  MOCK_METHOD(void, onSocksConnect, (SocksSession * s, const Request& request), (override));
  MOCK_METHOD(void, onSocksDone, (SocksSession * s), (override));
};

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

const std::string kGreeting = bytes({0x05, 0x01, 0x00});
// CONNECT dev01.hub:22
const std::string kDomainRequest =
    bytes({0x05, 0x01, 0x00, 0x03, 9}) + "dev01.hub" + bytes({0x00, 22});
const std::string kMethodOk = bytes({0x05, 0x00});

std::string replyBytes(int code) { return bytes({0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0}); }

auto IsDomainConnect(const std::string& host, uint16_t port) {
  return AllOf(Field(&Request::command, Eq(Command::Connect)),
               Field(&Request::type, Eq(AddressType::Domain)), Field(&Request::host, Eq(host)),
               Field(&Request::port, Eq(port)));
}

// The client end: collects what the server sends and notices EOF.
struct Client {
  BufferEventPtr bev;
  std::string in;
  bool eof = false;

  static void onRead(bufferevent* b, void* arg) {
    auto* self = static_cast<Client*>(arg);
    evbuffer* input = bufferevent_get_input(b);
    size_t n = evbuffer_get_length(input);
    size_t old = self->in.size();
    self->in.resize(old + n);
    evbuffer_remove(input, self->in.data() + old, n);
  }
  static void onEvent(bufferevent* b, short what, void* arg) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      onRead(b, arg);
      static_cast<Client*>(arg)->eof = true;
    }
  }
  int fd() const { return bufferevent_getfd(bev.get()); }
  // Straight into the socket, so the bytes are there before the next loop turn.
  void send(std::string_view s) {
    ASSERT_EQ(::write(fd(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
};

class SocksSessionTest : public ::testing::Test {
 protected:
  SocksSessionTest()
      : guard_(loop_, [this] {
          timedOut_ = true;
          event_base_loopbreak(loop_.base());
        }) {
    std::signal(SIGPIPE, SIG_IGN);
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    serverFd_ = fds[0];
    client_.bev = newSocketBufferEvent(loop_, fds[1]);
    bufferevent_setcb(client_.bev.get(), &Client::onRead, nullptr, &Client::onEvent, &client_);
    bufferevent_enable(client_.bev.get(), EV_READ | EV_WRITE);
    // Only ends a test that would otherwise hang; firing is a failure.
    guard_.arm(std::chrono::seconds(30));
  }

  ~SocksSessionTest() override {
    if (serverFd_ >= 0) ::close(serverFd_);
  }

  void startSession(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    session_ = std::make_unique<SocksSession>(loop_, newSocketBufferEvent(loop_, serverFd_),
                                              &handler_, timeout);
    serverFd_ = -1;
    session_->start();
  }

  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }

  void spin(int turns = 20) { test::spin(loop_, turns); }

  // Expects onSocksConnect with a domain CONNECT and returns once it has come.
  void expectConnect(const std::string& host, uint16_t port) {
    EXPECT_CALL(handler_, onSocksConnect(session_.get(), IsDomainConnect(host, port)))
        .WillOnce([this] { connected_ = true; });
  }

  Loop loop_;
  Timer guard_;
  bool timedOut_ = false;
  int serverFd_ = -1;
  Client client_;
  StrictMock<MockHandler> handler_;
  std::unique_ptr<SocksSession> session_;
  bool connected_ = false;
  bool done_ = false;
};

TEST_F(SocksSessionTest, GreetingAndRequestInOneWrite) {
  startSession();
  expectConnect("dev01.hub", 22);
  client_.send(kGreeting + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 2; }));
  spin();
  EXPECT_EQ(client_.in, kMethodOk);
  EXPECT_FALSE(client_.eof);
}

TEST_F(SocksSessionTest, GreetingAndRequestByteByByte) {
  startSession();
  expectConnect("dev01.hub", 22);
  const std::string all = kGreeting + kDomainRequest;
  for (char c : all) {
    EXPECT_FALSE(connected_);
    client_.send(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 2; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(SocksSessionTest, Ipv4Request) {
  startSession();
  Request got;
  EXPECT_CALL(handler_, onSocksConnect(session_.get(), _))
      .WillOnce([&](SocksSession*, const Request& r) {
        got = r;
        connected_ = true;
      });
  client_.send(kGreeting + bytes({0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x1f, 0x90}));
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  EXPECT_EQ(got.type, AddressType::IPv4);
  EXPECT_EQ(got.host, "127.0.0.1");
  EXPECT_EQ(got.port, 8080);
}

TEST_F(SocksSessionTest, Ipv6Request) {
  startSession();
  Request got;
  EXPECT_CALL(handler_, onSocksConnect(session_.get(), _))
      .WillOnce([&](SocksSession*, const Request& r) {
        got = r;
        connected_ = true;
      });
  client_.send(kGreeting + bytes({0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0,    0,
                                  0,    0,    0,    0,    0, 0, 0, 0, 1, 0x00, 0x16}));
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  EXPECT_EQ(got.type, AddressType::IPv6);
  EXPECT_EQ(got.host, "::1");
  EXPECT_EQ(got.port, 22);
  EXPECT_EQ(got.target(), "[::1]:22");
}

TEST_F(SocksSessionTest, AcceptSendsSuccessAndKeepsEarlyData) {
  startSession();
  expectConnect("dev01.hub", 22);
  // The client pipelines its first payload bytes behind the request.
  client_.send(kGreeting + kDomainRequest + "EARLY");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  // More bytes while the owner is still setting up the stream.
  client_.send("LATER");
  spin();

  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  BufferEventPtr conn = session_->accept();
  EXPECT_TRUE(done_);
  ASSERT_TRUE(conn);

  evbuffer* input = bufferevent_get_input(conn.get());
  size_t n = evbuffer_get_length(input);
  std::string early(n, '\0');
  evbuffer_copyout(input, early.data(), n);
  EXPECT_EQ(early, "EARLY");

  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 12; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x00));
  EXPECT_FALSE(client_.eof);

  // The handed-over connection is a working stream in both directions.
  Client stream;
  stream.bev = std::move(conn);
  bufferevent_setcb(stream.bev.get(), &Client::onRead, nullptr, &Client::onEvent, &stream);
  bufferevent_enable(stream.bev.get(), EV_READ | EV_WRITE);
  Client::onRead(stream.bev.get(), &stream);
  ASSERT_TRUE(runUntil([&] { return stream.in.size() >= 10; }));
  EXPECT_EQ(stream.in, "EARLYLATER");
  bufferevent_write(stream.bev.get(), "pong", 4);
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 16; }));
  EXPECT_EQ(client_.in.substr(12), "pong");
}

TEST_F(SocksSessionTest, AcceptInsideOnSocksConnect) {
  startSession();
  BufferEventPtr conn;
  EXPECT_CALL(handler_, onSocksConnect(session_.get(), IsDomainConnect("dev01.hub", 22)))
      .WillOnce([&](SocksSession* s, const Request&) { conn = s->accept(); });
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + kDomainRequest + "x");
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(conn.get())), 1u);
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 12; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x00));
}

TEST_F(SocksSessionTest, RejectSendsReplyThenEof) {
  startSession();
  expectConnect("dev01.hub", 22);
  client_.send(kGreeting + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  session_->reject(Reply::NotAllowed);
  EXPECT_TRUE(done_);
  ASSERT_TRUE(runUntil([&] { return client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x02));
  // A second answer is ignored.
  session_->reject(Reply::GeneralFailure);
}

TEST_F(SocksSessionTest, NoAcceptableMethod) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  // Username/password only; the request behind it must never be parsed.
  client_.send(bytes({0x05, 0x01, 0x02}) + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, bytes({0x05, 0xFF}));
}

TEST_F(SocksSessionTest, NoAuthAmongSeveralMethodsIsSelected) {
  startSession();
  expectConnect("dev01.hub", 22);
  client_.send(bytes({0x05, 0x03, 0x02, 0x01, 0x00}) + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 2; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(SocksSessionTest, BindIsCommandNotSupported) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + bytes({0x05, 0x02, 0x00, 0x01, 10, 0, 0, 1, 0, 80}));
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x07));
}

TEST_F(SocksSessionTest, UdpAssociateIsCommandNotSupported) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + bytes({0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x07));
}

TEST_F(SocksSessionTest, UnknownCommandIsCommandNotSupported) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + bytes({0x05, 0x09}));
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x07));
}

TEST_F(SocksSessionTest, UnknownAddressTypeIsAddressTypeNotSupported) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + bytes({0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0, 80}));
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x08));
}

TEST_F(SocksSessionTest, WrongVersionGreetingClosesWithoutReply) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(bytes({0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0}));
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, "");
}

TEST_F(SocksSessionTest, ClientGoneDuringNegotiation) {
  startSession();
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(bytes({0x05, 0x01}));
  ::shutdown(client_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return done_; }));
}

TEST_F(SocksSessionTest, NegotiationTimeout) {
  // 50 ms bounds the negotiation; the test waits for the outcome, not for a time.
  startSession(std::chrono::milliseconds(50));
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  client_.send(kGreeting + bytes({0x05, 0x01}));  // a request that never completes
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(SocksSessionTest, TimeoutWithoutAnyByte) {
  startSession(std::chrono::milliseconds(50));
  EXPECT_CALL(handler_, onSocksDone(session_.get())).WillOnce([&] { done_ = true; });
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, "");
}

TEST_F(SocksSessionTest, DestroyingAnUnfinishedSessionClosesTheClient) {
  startSession();
  client_.send(bytes({0x05}));
  spin();
  session_.reset();
  ASSERT_TRUE(runUntil([&] { return client_.eof; }));
}

}  // namespace
}  // namespace ds::socks
