// Tests for ProxySession over a real libevent loop on a socketpair: protocol sniffing; SOCKS5
// with and without RFC 1929 authentication, pipelined and byte by byte; SOCKS4 and SOCKS4a;
// HTTP CONNECT, absolute-form forwarding with its rewritten head, Basic proxy authentication,
// the PAC file, the mapping of rejects to statuses; bad, oversized and slow heads.
#include "socks/proxy_session.h"

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
#include <utility>

#include "common/sas.h"
#include "socks/http_proxy.h"
#include "support/raw_peer.h"
#include "support/run_loop.h"

namespace ds::socks {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::StrictMock;

class MockHandler : public ProxySession::Handler {
 public:
  MOCK_METHOD(void, onProxyConnect, (ProxySession * s, const Target& target), (override));
  MOCK_METHOD(void, onProxyDone, (ProxySession * s), (override));
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

std::string userPass(const std::string& user, const std::string& pass) {
  return bytes({0x01, static_cast<int>(user.size())}) + user +
         bytes({static_cast<int>(pass.size())}) + pass;
}

// SOCKS4a CONNECT dev01.hub:22, user id "u".
const std::string kSocks4a =
    bytes({0x04, 0x01, 0x00, 22, 0, 0, 0, 1}) + "u" + bytes({0}) + "dev01.hub" + bytes({0});
const std::string kSocks4Granted = bytes({0x00, 0x5A, 0, 0, 0, 0, 0, 0});
const std::string kSocks4Rejected = bytes({0x00, 0x5B, 0, 0, 0, 0, 0, 0});

const std::string kHttpConnect = "CONNECT dev01.hub:22 HTTP/1.1\r\nHost: dev01.hub:22\r\n\r\n";

auto IsTarget(const std::string& host, uint16_t port, AddressType type, Via via,
              const std::string& user = "") {
  return AllOf(Field(&Target::host, Eq(host)), Field(&Target::port, Eq(port)),
               Field(&Target::type, Eq(type)), Field(&Target::via, Eq(via)),
               Field(&Target::user, Eq(user)));
}

std::string inputOf(bufferevent* bev) {
  evbuffer* input = bufferevent_get_input(bev);
  std::string s(evbuffer_get_length(input), '\0');
  evbuffer_copyout(input, s.data(), s.size());
  return s;
}

// The client end: collects what the server sends and notices EOF (test::RawPeer), and writes
// straight into the socket, so the bytes are there before the next loop turn.
struct Client : test::RawPeer {
  void send(std::string_view s) {
    ASSERT_EQ(::write(fd(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
};

class ProxySessionTest : public ::testing::Test {
 protected:
  ProxySessionTest()
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
    client_.attach(loop_, fds[1]);
    // Only ends a test that would otherwise hang; firing is a failure.
    guard_.arm(std::chrono::seconds(30));
  }

  ~ProxySessionTest() override {
    if (serverFd_ >= 0) ::close(serverFd_);
  }

  void startSession() {
    session_ = std::make_unique<ProxySession>(loop_, newSocketBufferEvent(loop_, serverFd_),
                                              &handler_, options_);
    serverFd_ = -1;
    session_->start();
  }

  bool runUntil(const std::function<bool()>& done) {
    return test::runUntil(loop_, timedOut_, done);
  }

  void spin(int turns = 20) { test::spin(loop_, turns); }

  template <typename M>
  void expectConnect(M matcher) {
    EXPECT_CALL(handler_, onProxyConnect(session_.get(), matcher)).WillOnce([this] {
      connected_ = true;
    });
  }

  void expectDone() {
    EXPECT_CALL(handler_, onProxyDone(session_.get())).WillOnce([this] { done_ = true; });
  }

  // Sends `request`, waits for the session to end and the connection to close; what came back.
  std::string answerTo(const std::string& request) {
    expectDone();
    client_.send(request);
    EXPECT_TRUE(runUntil([&] { return done_ && client_.eof; }));
    return client_.in;
  }

  Loop loop_;
  Timer guard_;
  bool timedOut_ = false;
  int serverFd_ = -1;
  Client client_;
  ProxyOptions options_;
  StrictMock<MockHandler> handler_;
  std::unique_ptr<ProxySession> session_;
  bool connected_ = false;
  bool done_ = false;
};

// ---------------------------------------------------------------------------------------------
// Pure helpers

TEST(ProxyCredentials, ConstantTimeCheck) {
  std::map<std::string, std::string> users = {{"alice", "secret"}, {"bob", "hunter2"}};
  EXPECT_TRUE(checkCredentials(users, "alice", "secret"));
  EXPECT_TRUE(checkCredentials(users, "bob", "hunter2"));
  EXPECT_FALSE(checkCredentials(users, "alice", "hunter2"));
  EXPECT_FALSE(checkCredentials(users, "alice", "secre"));
  EXPECT_FALSE(checkCredentials(users, "alice", "secret "));
  EXPECT_FALSE(checkCredentials(users, "carol", "secret"));
  EXPECT_FALSE(checkCredentials(users, "", ""));
  EXPECT_FALSE(checkCredentials({}, "alice", "secret"));
}

TEST(ProxyVia, Names) {
  EXPECT_STREQ(viaName(Via::Socks5), "socks5");
  EXPECT_STREQ(viaName(Via::Socks4), "socks4");
  EXPECT_STREQ(viaName(Via::HttpConnect), "http-connect");
  EXPECT_STREQ(viaName(Via::HttpForward), "http");
  Target t{"::1", 22, AddressType::IPv6, Via::Socks5, ""};
  EXPECT_EQ(t.hostPort(), "[::1]:22");
}

// ---------------------------------------------------------------------------------------------
// Sniffing and negotiation bounds

TEST_F(ProxySessionTest, UnknownFirstByteClosesWithoutReply) {
  startSession();
  EXPECT_EQ(answerTo(bytes({0x16, 0x03, 0x01, 0x00})), "");
}

TEST_F(ProxySessionTest, TimeoutWithoutAnyByteClosesSilently) {
  options_.timeout = std::chrono::milliseconds(50);
  startSession();
  expectDone();
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, "");
}

TEST_F(ProxySessionTest, ClientGoneDuringNegotiation) {
  startSession();
  expectDone();
  client_.send(bytes({0x05, 0x01}));
  ::shutdown(client_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return done_; }));
}

TEST_F(ProxySessionTest, DestroyingAnUnfinishedSessionClosesTheClient) {
  startSession();
  client_.send("CONN");
  spin();
  session_.reset();
  ASSERT_TRUE(runUntil([&] { return client_.eof; }));
}

// ---------------------------------------------------------------------------------------------
// SOCKS5

TEST_F(ProxySessionTest, Socks5GreetingAndRequestInOneWrite) {
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks5));
  client_.send(kGreeting + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 2; }));
  spin();
  EXPECT_EQ(client_.in, kMethodOk);
  EXPECT_FALSE(client_.eof);
  EXPECT_EQ(session_->target().hostPort(), "dev01.hub:22");
}

TEST_F(ProxySessionTest, Socks5ByteByByte) {
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks5));
  for (char c : kGreeting + kDomainRequest) {
    EXPECT_FALSE(connected_);
    client_.send(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 2; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(ProxySessionTest, Socks5Ipv4AndIpv6Targets) {
  startSession();
  expectConnect(IsTarget("::1", 22, AddressType::IPv6, Via::Socks5));
  client_.send(kGreeting + bytes({0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0,    0,
                                  0,    0,    0,    0,    0, 0, 0, 0, 1, 0x00, 0x16}));
  ASSERT_TRUE(runUntil([&] { return connected_; }));
}

TEST_F(ProxySessionTest, Socks5Ipv4Target) {
  startSession();
  expectConnect(IsTarget("127.0.0.1", 8080, AddressType::IPv4, Via::Socks5));
  client_.send(kGreeting + bytes({0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x1f, 0x90}));
  ASSERT_TRUE(runUntil([&] { return connected_; }));
}

TEST_F(ProxySessionTest, Socks5AcceptSendsSuccessAndKeepsEarlyData) {
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks5));
  client_.send(kGreeting + kDomainRequest + "EARLY");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  client_.send("LATER");  // while the owner is still setting up the stream
  spin();

  expectDone();
  BufferEventPtr conn = session_->accept();
  EXPECT_TRUE(done_);
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "EARLY");
  EXPECT_FALSE(session_->accept()) << "a second accept has nothing to hand over";
  session_->reject(Reply::GeneralFailure);  // ignored once over

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

TEST_F(ProxySessionTest, Socks5AcceptInsideOnProxyConnect) {
  startSession();
  BufferEventPtr conn;
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { conn = s->accept(); });
  expectDone();
  client_.send(kGreeting + kDomainRequest + "x");
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "x");
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 12; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x00));
}

TEST_F(ProxySessionTest, Socks5RejectInsideOnProxyConnect) {
  startSession();
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { s->reject(Reply::HostUnreachable); });
  EXPECT_EQ(answerTo(kGreeting + kDomainRequest), kMethodOk + replyBytes(0x04));
}

TEST_F(ProxySessionTest, Socks5RejectSendsReplyThenEof) {
  startSession();
  expectConnect(_);
  client_.send(kGreeting + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  expectDone();
  session_->reject(Reply::NotAllowed);
  EXPECT_TRUE(done_);
  ASSERT_TRUE(runUntil([&] { return client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk + replyBytes(0x02));
  session_->reject(Reply::GeneralFailure);  // a second answer is ignored
}

TEST_F(ProxySessionTest, Socks5UserPassOnlyWithoutUsersIsRefused) {
  startSession();
  // The request behind it must never be parsed.
  EXPECT_EQ(answerTo(bytes({0x05, 0x01, 0x02}) + kDomainRequest), bytes({0x05, 0xFF}));
}

TEST_F(ProxySessionTest, Socks5GssapiOnlyIsRefused) {
  startSession();
  EXPECT_EQ(answerTo(bytes({0x05, 0x01, 0x01})), bytes({0x05, 0xFF}));
}

TEST_F(ProxySessionTest, Socks5NoAuthAmongSeveralMethodsIsSelected) {
  startSession();
  expectConnect(_);
  client_.send(bytes({0x05, 0x03, 0x02, 0x01, 0x00}) + kDomainRequest);
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 2; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(ProxySessionTest, Socks5UnsupportedCommandsAndAddressTypes) {
  startSession();
  EXPECT_EQ(answerTo(kGreeting + bytes({0x05, 0x02, 0x00, 0x01, 10, 0, 0, 1, 0, 80})),
            kMethodOk + replyBytes(0x07));
}

TEST_F(ProxySessionTest, Socks5UdpAssociateIsCommandNotSupported) {
  startSession();
  EXPECT_EQ(answerTo(kGreeting + bytes({0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0})),
            kMethodOk + replyBytes(0x07));
}

TEST_F(ProxySessionTest, Socks5UnknownCommandIsCommandNotSupported) {
  startSession();
  EXPECT_EQ(answerTo(kGreeting + bytes({0x05, 0x09})), kMethodOk + replyBytes(0x07));
}

TEST_F(ProxySessionTest, Socks5UnknownAddressType) {
  startSession();
  EXPECT_EQ(answerTo(kGreeting + bytes({0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0, 80})),
            kMethodOk + replyBytes(0x08));
}

TEST_F(ProxySessionTest, Socks5NegotiationTimeout) {
  options_.timeout = std::chrono::milliseconds(50);
  startSession();
  expectDone();
  client_.send(kGreeting + bytes({0x05, 0x01}));  // a request that never completes
  ASSERT_TRUE(runUntil([&] { return done_ && client_.eof; }));
  EXPECT_EQ(client_.in, kMethodOk);
}

TEST_F(ProxySessionTest, Socks5AuthPipelinedWithEarlyData) {
  options_.users = {{"alice", "secret"}, {"bob", "pw"}};
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks5, "alice"));
  client_.send(bytes({0x05, 0x02, 0x00, 0x02}) + userPass("alice", "secret") + kDomainRequest +
               "EARLY");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  expectDone();
  BufferEventPtr conn = session_->accept();
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "EARLY");
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 14; }));
  EXPECT_EQ(client_.in, bytes({0x05, 0x02, 0x01, 0x00}) + replyBytes(0x00));
}

TEST_F(ProxySessionTest, Socks5AuthByteByByte) {
  options_.users = {{"alice", "secret"}};
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks5, "alice"));
  for (char c : bytes({0x05, 0x01, 0x02}) + userPass("alice", "secret") + kDomainRequest) {
    EXPECT_FALSE(connected_);
    client_.send(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return connected_ && client_.in.size() >= 4; }));
  EXPECT_EQ(client_.in, bytes({0x05, 0x02, 0x01, 0x00}));
}

TEST_F(ProxySessionTest, Socks5WrongPasswordGetsStatus1ThenEof) {
  options_.users = {{"alice", "secret"}};
  startSession();
  EXPECT_EQ(answerTo(bytes({0x05, 0x01, 0x02}) + userPass("alice", "wrong") + kDomainRequest),
            bytes({0x05, 0x02, 0x01, 0x01}));
}

TEST_F(ProxySessionTest, Socks5UnknownUserGetsStatus1ThenEof) {
  options_.users = {{"alice", "secret"}};
  startSession();
  EXPECT_EQ(answerTo(bytes({0x05, 0x01, 0x02}) + userPass("", "")),
            bytes({0x05, 0x02, 0x01, 0x01}));
}

TEST_F(ProxySessionTest, Socks5NoAuthOnlyIsRefusedWhenUsersAreConfigured) {
  options_.users = {{"alice", "secret"}};
  startSession();
  EXPECT_EQ(answerTo(kGreeting + kDomainRequest), bytes({0x05, 0xFF}));
}

// ---------------------------------------------------------------------------------------------
// SOCKS4

TEST_F(ProxySessionTest, Socks4ConnectAcceptKeepsEarlyData) {
  startSession();
  expectConnect(IsTarget("10.0.0.7", 8080, AddressType::IPv4, Via::Socks4));
  client_.send(bytes({0x04, 0x01, 0x1f, 0x90, 10, 0, 0, 7}) + "someone" + bytes({0}) + "EARLY");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  expectDone();
  BufferEventPtr conn = session_->accept();
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "EARLY");
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= 8; }));
  EXPECT_EQ(client_.in, kSocks4Granted);
}

TEST_F(ProxySessionTest, Socks4aByteByByte) {
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::Socks4));
  for (char c : kSocks4a) {
    EXPECT_FALSE(connected_);
    client_.send(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  EXPECT_EQ(client_.in, "");
}

TEST_F(ProxySessionTest, Socks4RejectIs5B) {
  startSession();
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { s->reject(Reply::NetworkUnreachable); });
  EXPECT_EQ(answerTo(kSocks4a), kSocks4Rejected);
}

TEST_F(ProxySessionTest, Socks4BindIsRejected) {
  startSession();
  EXPECT_EQ(answerTo(bytes({0x04, 0x02, 0x00, 80, 1, 2, 3, 4, 0})), kSocks4Rejected);
}

TEST_F(ProxySessionTest, Socks4UserIdTooLongIsRejected) {
  startSession();
  EXPECT_EQ(answerTo(bytes({0x04, 0x01, 0x00, 80, 1, 2, 3, 4}) + std::string(300, 'u')),
            kSocks4Rejected);
}

TEST_F(ProxySessionTest, Socks4RefusedWhenAuthIsRequired) {
  options_.users = {{"alice", "secret"}};
  startSession();
  EXPECT_EQ(answerTo(kSocks4a), kSocks4Rejected);
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT and forwarding

TEST_F(ProxySessionTest, HttpConnectAcceptKeepsEarlyData) {
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::HttpConnect));
  client_.send(kHttpConnect + "SSH-2.0-x\r\n");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  expectDone();
  BufferEventPtr conn = session_->accept();
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "SSH-2.0-x\r\n");
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= kConnectEstablished.size(); }));
  EXPECT_EQ(client_.in, kConnectEstablished);
  EXPECT_FALSE(client_.eof);
}

TEST_F(ProxySessionTest, HttpConnectByteByByte) {
  startSession();
  expectConnect(IsTarget("::1", 443, AddressType::IPv6, Via::HttpConnect));
  for (char c : std::string("CONNECT [::1]:443 HTTP/1.1\r\n\r\n")) {
    EXPECT_FALSE(connected_);
    client_.send(std::string_view(&c, 1));
    spin(3);
  }
  ASSERT_TRUE(runUntil([&] { return connected_; }));
}

TEST_F(ProxySessionTest, HttpClientHalfClosedAfterItsRequestStillGetsTheAnswer) {
  startSession();
  expectConnect(_);
  client_.send(kHttpConnect);
  ::shutdown(client_.fd(), SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  spin();
  expectDone();
  BufferEventPtr conn = session_->accept();
  ASSERT_TRUE(conn);
  ASSERT_TRUE(runUntil([&] { return client_.in.size() >= kConnectEstablished.size(); }));
  EXPECT_EQ(client_.in, kConnectEstablished);
}

TEST_F(ProxySessionTest, HttpForwardPutsTheRewrittenHeadBeforeTheBody) {
  startSession();
  expectConnect(IsTarget("web.lab", 8080, AddressType::Domain, Via::HttpForward));
  client_.send(
      "POST http://web.lab:8080/submit?x=1 HTTP/1.1\r\n"
      "Host: web.lab:8080\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "Connection: keep-alive\r\n"
      "Content-Length: 10\r\n\r\n"
      "01234");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  client_.send("56789");
  spin();
  expectDone();
  BufferEventPtr conn = session_->accept();
  ASSERT_TRUE(conn);
  const std::string head =
      "POST /submit?x=1 HTTP/1.1\r\nHost: web.lab:8080\r\nContent-Length: 10\r\n"
      "Connection: close\r\n\r\n";
  EXPECT_EQ(inputOf(conn.get()), head + "01234");
  RequestFramer framer = session_->forwardFramer();
  const std::string all = head + "0123456789GET http://other/ HTTP/1.1\r\n\r\n";
  EXPECT_EQ(framer.feed(all.data(), all.size()), head.size() + 10);
  EXPECT_TRUE(framer.done());

  Client stream;
  stream.bev = std::move(conn);
  bufferevent_setcb(stream.bev.get(), &Client::onRead, nullptr, &Client::onEvent, &stream);
  bufferevent_enable(stream.bev.get(), EV_READ | EV_WRITE);
  Client::onRead(stream.bev.get(), &stream);
  ASSERT_TRUE(runUntil([&] { return stream.in.size() >= head.size() + 10; }));
  EXPECT_EQ(stream.in, head + "0123456789");
  spin();
  EXPECT_EQ(client_.in, "") << "the origin server answers a forwarded request, not the proxy";
}

TEST_F(ProxySessionTest, HttpForwardHeadOnlyWhenNoBody) {
  startSession();
  BufferEventPtr conn;
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), IsTarget("10.1.1.1", 80, AddressType::IPv4,
                                                                Via::HttpForward)))
      .WillOnce([&](ProxySession* s, const Target&) { conn = s->accept(); });
  expectDone();
  client_.send("GET http://10.1.1.1/ HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "GET / HTTP/1.0\r\nHost: 10.1.1.1\r\nConnection: close\r\n\r\n");
}

TEST_F(ProxySessionTest, HttpForwardFramerStopsBeforeAPipelinedRequest) {
  startSession();
  BufferEventPtr conn;
  RequestFramer framer;
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) {
        framer = s->forwardFramer();
        conn = s->accept();
      });
  expectDone();
  const std::string second = "GET http://other.hub/ HTTP/1.1\r\nHost: other.hub\r\n\r\n";
  client_.send("GET http://web.lab/ HTTP/1.1\r\nHost: web.lab\r\n\r\n" + second);
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  const std::string head = "GET / HTTP/1.1\r\nHost: web.lab\r\nConnection: close\r\n\r\n";
  const std::string in = inputOf(conn.get());
  EXPECT_EQ(in, head + second);
  EXPECT_EQ(framer.feed(in.data(), in.size()), head.size());
  EXPECT_TRUE(framer.done());
}

TEST_F(ProxySessionTest, HttpForwardChunkedBodyIsFramed) {
  startSession();
  BufferEventPtr conn;
  RequestFramer framer;
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) {
        framer = s->forwardFramer();
        conn = s->accept();
      });
  expectDone();
  client_.send(
      "POST http://web.lab/ HTTP/1.1\r\nHost: web.lab\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\nNEXT");
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  const std::string in = inputOf(conn.get());
  ASSERT_GT(in.size(), 4u);
  EXPECT_EQ(framer.feed(in.data(), in.size()), in.size() - 4);
  EXPECT_TRUE(framer.done());
}

TEST_F(ProxySessionTest, NonForwardFramerIsDone) {
  startSession();
  expectConnect(_);
  client_.send(kHttpConnect);
  ASSERT_TRUE(runUntil([&] { return connected_; }));
  EXPECT_TRUE(session_->forwardFramer().done());
}

class HttpRejectTest : public ProxySessionTest,
                       public ::testing::WithParamInterface<std::pair<Reply, int>> {};

TEST_P(HttpRejectTest, MapsToStatusWithOneLineBodyAndClose) {
  const auto [reply, status] = GetParam();
  startSession();
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { s->reject(reply); });
  std::string got = answerTo(kHttpConnect);
  http::Response resp;
  http::ParseResult r = http::parseResponse(got, resp);
  ASSERT_EQ(r.status, http::ParseStatus::Done) << got;
  EXPECT_EQ(resp.status, status);
  EXPECT_TRUE(resp.headers.hasToken("Connection", "close"));
  std::string body = got.substr(r.consumed);
  EXPECT_EQ(body.find('\n'), body.size() - 1) << body;
  EXPECT_THAT(body, HasSubstr(replyName(reply)));
}

INSTANTIATE_TEST_SUITE_P(Replies, HttpRejectTest,
                         ::testing::Values(std::pair{Reply::NotAllowed, 403},
                                           std::pair{Reply::HostUnreachable, 404},
                                           std::pair{Reply::NetworkUnreachable, 503},
                                           std::pair{Reply::ConnectionRefused, 502},
                                           std::pair{Reply::TtlExpired, 504},
                                           std::pair{Reply::GeneralFailure, 502}));

TEST_F(ProxySessionTest, HttpForwardRejectIsAnHttpError) {
  startSession();
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { s->reject(Reply::NotAllowed); });
  EXPECT_THAT(answerTo("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
              StartsWith("HTTP/1.1 403 Forbidden\r\n"));
}

TEST_F(ProxySessionTest, HttpAuthMissingIs407) {
  options_.users = {{"alice", "secret"}};
  startSession();
  std::string got = answerTo(kHttpConnect);
  EXPECT_THAT(got, StartsWith("HTTP/1.1 407 Proxy Authentication Required\r\n"));
  EXPECT_THAT(got, HasSubstr("Proxy-Authenticate: Basic realm=\"devstreams\"\r\n"));
}

TEST_F(ProxySessionTest, HttpAuthWrongIs407) {
  options_.users = {{"alice", "secret"}};
  startSession();
  EXPECT_THAT(answerTo("CONNECT dev01.hub:22 HTTP/1.1\r\nProxy-Authorization: Basic " +
                       sas::base64Encode("alice:nope") + "\r\n\r\n"),
              StartsWith("HTTP/1.1 407 "));
}

TEST_F(ProxySessionTest, HttpAuthGoodConnects) {
  options_.users = {{"alice", "secret"}};
  startSession();
  expectConnect(IsTarget("dev01.hub", 22, AddressType::Domain, Via::HttpConnect, "alice"));
  client_.send("CONNECT dev01.hub:22 HTTP/1.1\r\nProxy-Authorization: Basic " +
               sas::base64Encode("alice:secret") + "\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return connected_; }));
}

TEST_F(ProxySessionTest, HttpForwardWithAuthDropsTheCredentials) {
  options_.users = {{"alice", "secret"}};
  startSession();
  BufferEventPtr conn;
  EXPECT_CALL(handler_, onProxyConnect(session_.get(), _))
      .WillOnce([&](ProxySession* s, const Target&) { conn = s->accept(); });
  expectDone();
  client_.send("GET http://web.lab/ HTTP/1.1\r\nHost: web.lab\r\nProxy-Authorization: Basic " +
               sas::base64Encode("alice:secret") + "\r\n\r\n");
  ASSERT_TRUE(runUntil([&] { return done_; }));
  ASSERT_TRUE(conn);
  EXPECT_EQ(inputOf(conn.get()), "GET / HTTP/1.1\r\nHost: web.lab\r\nConnection: close\r\n\r\n");
}

TEST_F(ProxySessionTest, HttpBadRequestIs400) {
  startSession();
  EXPECT_THAT(answerTo("GET https://dev01.hub/ HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
}

TEST_F(ProxySessionTest, HttpMalformedHeadIs400) {
  startSession();
  EXPECT_THAT(answerTo("CONNECT dev01.hub:22 HTTP/1.1\nHost: x\n\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
}

TEST_F(ProxySessionTest, HttpOversizedHeadIs431) {
  options_.maxHeadBytes = 256;
  startSession();
  EXPECT_THAT(answerTo("CONNECT dev01.hub:22 HTTP/1.1\r\nX-Pad: " + std::string(1000, 'p')),
              StartsWith("HTTP/1.1 431 "));
}

TEST_F(ProxySessionTest, HttpSlowHeadIs408) {
  options_.timeout = std::chrono::milliseconds(50);
  startSession();
  EXPECT_THAT(answerTo("CONNECT dev01.hub:22 HTTP/1.1\r\n"),
              StartsWith("HTTP/1.1 408 Request Timeout\r\n"));
}

// ---------------------------------------------------------------------------------------------
// Requests to the proxy itself

TEST_F(ProxySessionTest, PacIsServedWithTheHostTheClientUsed) {
  std::string seenHost = "unset";
  options_.pac = [&](const std::string& host) {
    seenHost = host;
    return std::string("function FindProxyForURL(u, h) { return \"DIRECT\"; }\n");
  };
  startSession();
  std::string got = answerTo("GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1:1080\r\n\r\n");
  EXPECT_EQ(seenHost, "127.0.0.1:1080");
  http::Response resp;
  http::ParseResult r = http::parseResponse(got, resp);
  ASSERT_EQ(r.status, http::ParseStatus::Done);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(*resp.headers.find("Content-Type"), "application/x-ns-proxy-autoconfig");
  EXPECT_EQ(*resp.headers.find("Cache-Control"), "no-store");
  EXPECT_TRUE(resp.headers.hasToken("Connection", "close"));
  EXPECT_EQ(got.substr(r.consumed), "function FindProxyForURL(u, h) { return \"DIRECT\"; }\n");
}

TEST_F(ProxySessionTest, PacHeadHasNoBodyAndOddHostIsNotPassedOn) {
  std::string seenHost = "unset";
  options_.pac = [&](const std::string& host) {
    seenHost = host;
    return std::string("PAC");
  };
  startSession();
  std::string got = answerTo("HEAD /proxy.pac?v=1 HTTP/1.1\r\nHost: a;PROXY evil:1\r\n\r\n");
  EXPECT_EQ(seenHost, "");
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, HasSubstr("Content-Length: 3\r\n"));
  EXPECT_EQ(got.substr(got.size() - 4), "\r\n\r\n");
}

TEST_F(ProxySessionTest, PacNeedsNoProxyCredentials) {
  options_.users = {{"alice", "secret"}};
  options_.pac = [](const std::string&) { return std::string("PAC"); };
  startSession();
  EXPECT_THAT(answerTo("GET /proxy.pac HTTP/1.1\r\nHost: h\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(ProxySessionTest, PacWithoutProviderIs404) {
  startSession();
  EXPECT_THAT(answerTo("GET /proxy.pac HTTP/1.1\r\nHost: h\r\n\r\n"), StartsWith("HTTP/1.1 404 "));
}

TEST_F(ProxySessionTest, PacPostIs405) {
  options_.pac = [](const std::string&) { return std::string("PAC"); };
  startSession();
  std::string got = answerTo("POST /proxy.pac HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(got, StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(got, HasSubstr("Allow: GET, HEAD\r\n"));
}

TEST_F(ProxySessionTest, OtherOriginFormIs404) {
  options_.pac = [](const std::string&) { return std::string("PAC"); };
  startSession();
  EXPECT_THAT(answerTo("GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n"), StartsWith("HTTP/1.1 404 "));
}

}  // namespace
}  // namespace ds::socks
