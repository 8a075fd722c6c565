// Tests for HttpServerSession over a real event loop on socketpairs: requests split at every
// byte, the limits (431, 413), malformed requests (400, 505), request framing with
// Transfer-Encoding (501 or 400), answers later through Pending, keep-alive with pipelined
// requests, the upgrade hand-off and the timeouts.
#include "common/http_server.h"

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/bytes.h"
#include "support/loop_test.h"
#include "support/raw_peer.h"
#include "support/run_loop.h"

namespace ds {
namespace {

using test::kernelReadable;

// One parsed answer from the front of `bytes` (removed from it); status 0 when incomplete.
struct Answer {
  int status = 0;
  http::Response head;
  std::string body;
};
Answer takeAnswer(std::string& bytes) {
  Answer a;
  http::ParseResult r = http::parseResponse(bytes, a.head);
  if (r.status != http::ParseStatus::Done) return a;
  uint64_t len = http::contentLength(a.head.headers).value_or(0);
  if (bytes.size() < r.consumed + len) return a;
  a.status = a.head.status;
  a.body = bytes.substr(r.consumed, len);
  bytes.erase(0, r.consumed + len);
  return a;
}

enum class Mode { Echo, Hold, Upgrade, Throw };

struct Refusal {
  std::string_view request;
  int status;
};

class HttpServerTest : public test::LoopTest, public HttpServerSession::Handler {
 protected:
  // A fresh connection: the session on one end, the raw client on the other.
  void connect(const HttpServerOptions& options = {}) {
    session_.reset();
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    evutil_make_socket_nonblocking(fds[0]);
    evutil_make_socket_nonblocking(fds[1]);
    serverFd_ = fds[0];
    session_ = std::make_unique<HttpServerSession>(loop_, newSocketBufferEvent(loop_, fds[0]),
                                                   options, *this);
    client_ = test::RawPeer{};
    client_.attach(loop_, fds[1]);
    ended_ = false;
    established_ = 0;
    requests_.clear();
    refusals_.clear();
    session_->start();
  }

  // Until the session has read everything the client sent so far.
  bool drained() {
    return runUntil([this] {
      return evbuffer_get_length(bufferevent_get_output(client_.bev.get())) == 0 &&
             (ended_ || kernelReadable(serverFd_) == 0);
    });
  }
  Answer answer() {
    Answer a;
    runUntil([&] {
      a = takeAnswer(client_.in);
      return a.status != 0 || client_.eof;
    });
    return a;
  }

  // Each request, on a connection of its own, is refused with its status before any handler
  // sees it, and the connection ends.
  void expectRefused(std::initializer_list<Refusal> cases) {
    for (const Refusal& c : cases) {
      SCOPED_TRACE(c.request);
      connect();
      client_.write(c.request);
      EXPECT_EQ(answer().status, c.status);
      EXPECT_TRUE(requests_.empty());
      EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
    }
  }

  void onRequest(HttpServerSession& s) override {
    requests_.push_back({s.request().method, s.request().target, s.body()});
    switch (mode_) {
      case Mode::Echo:
        return s.respond(200, "text/plain",
                         s.request().method + " " + s.request().target + " " + s.body());
      case Mode::Hold:
        held_ = s.pending();
        return s.waitForAnswer([this] { ++goneCalls_; });
      case Mode::Upgrade:
        taken_ = s.takeConnection();
        return;
      case Mode::Throw:
        throw std::runtime_error("handler failed");
    }
  }
  void onRefused(HttpServerSession& s, int status, std::string_view reason) override {
    refusals_.push_back(status);
    s.respond(status, "text/plain", reason);
  }
  void onEnd(HttpServerSession& s) override {
    EXPECT_EQ(&s, session_.get());
    EXPECT_FALSE(ended_) << "onEnd twice";
    ended_ = true;
    loop_.deferDelete(std::move(session_));
  }
  void onEstablished(HttpServerSession&) override { ++established_; }

  struct Seen {
    std::string method, target, body;
  };

  int serverFd_ = -1;
  std::unique_ptr<HttpServerSession> session_;
  test::RawPeer client_;
  Mode mode_ = Mode::Echo;
  bool ended_ = false;
  int established_ = 0;
  int goneCalls_ = 0;
  std::vector<Seen> requests_;
  std::vector<int> refusals_;
  HttpServerSession::Pending held_;
  BufferEventPtr taken_;
};

constexpr std::string_view kPost =
    "POST /api/x?y=1 HTTP/1.1\r\nHost: hub\r\nContent-Length: 5\r\n\r\nhello";

TEST_F(HttpServerTest, RequestSplitAtEveryByteIsReadWhole) {
  for (size_t cut = 0; cut <= kPost.size(); ++cut) {
    SCOPED_TRACE(cut);
    connect();
    client_.write(kPost.substr(0, cut));
    ASSERT_TRUE(drained());
    if (cut < kPost.size()) {
      EXPECT_TRUE(requests_.empty());
      EXPECT_TRUE(refusals_.empty());
      client_.write(kPost.substr(cut));
    }
    Answer a = answer();
    ASSERT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "POST /api/x?y=1 hello");
    ASSERT_EQ(requests_.size(), 1u);
    EXPECT_EQ(requests_[0].body, "hello");
    EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
  }
}

TEST_F(HttpServerTest, RequestOneByteAtATime) {
  connect();
  for (size_t i = 0; i < kPost.size(); ++i) {
    EXPECT_TRUE(requests_.empty()) << i;
    client_.write(kPost.substr(i, 1));
    ASSERT_TRUE(drained());
  }
  Answer a = answer();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "POST /api/x?y=1 hello");
  EXPECT_EQ(established_, 1);
}

TEST_F(HttpServerTest, AnswerClosesWithoutKeepAlive) {
  connect();
  client_.write("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
  Answer a = answer();
  EXPECT_EQ(a.status, 200);
  ASSERT_NE(a.head.headers.find("Connection"), nullptr);
  EXPECT_EQ(*a.head.headers.find("Connection"), "close");
  EXPECT_TRUE(runUntil([&] { return client_.eof; }));
  EXPECT_EQ(requests_.size(), 1u);
  EXPECT_EQ(takeAnswer(client_.in).status, 0);
}

TEST_F(HttpServerTest, KeepAliveAnswersPipelinedRequestsInOrder) {
  HttpServerOptions o;
  o.keepAlive = true;
  connect(o);
  client_.write(
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: "
      "2\r\n\r\nhiGET /c");
  Answer a = answer();
  Answer b = answer();
  EXPECT_EQ(a.body, "GET /a ");
  EXPECT_EQ(b.body, "POST /b hi");
  EXPECT_EQ(a.head.headers.find("Connection"), nullptr);
  EXPECT_FALSE(client_.eof);
  EXPECT_FALSE(ended_);
  // The rest of the third request, asking to close.
  client_.write(" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  Answer c = answer();
  EXPECT_EQ(c.body, "GET /c ");
  ASSERT_NE(c.head.headers.find("Connection"), nullptr);
  EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
  EXPECT_EQ(requests_.size(), 3u);
}

TEST_F(HttpServerTest, KeepAliveIsNotForHttp10) {
  HttpServerOptions o;
  o.keepAlive = true;
  connect(o);
  client_.write("GET /a HTTP/1.0\r\n\r\n");
  EXPECT_EQ(answer().status, 200);
  EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
}

TEST_F(HttpServerTest, OversizeHeadIs431) {
  HttpServerOptions o;
  o.maxHeadBytes = 256;
  connect(o);
  client_.write("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(300, 'a'));
  EXPECT_EQ(answer().status, 431);
  EXPECT_EQ(refusals_, std::vector<int>{431});
  EXPECT_TRUE(requests_.empty());
  EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
}

TEST_F(HttpServerTest, OversizeBodyIs413BeforeItArrives) {
  HttpServerOptions o;
  o.maxBodyBytes = 100;
  connect(o);
  client_.write("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n");
  EXPECT_EQ(answer().status, 413);
  EXPECT_TRUE(requests_.empty());
  // The limit itself is fine.
  connect(o);
  client_.write("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" +
                std::string(100, 'b'));
  EXPECT_EQ(answer().status, 200);
}

TEST_F(HttpServerTest, MalformedRequestsAreRefused) {
  expectRefused({
      {"GET / HTTP/1.1\n\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
  });
}

TEST_F(HttpServerTest, TransferEncodingIs501OrForAmbiguousFraming400) {
  expectRefused({
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
       400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
  });
}

TEST_F(HttpServerTest, CheckRequestFramingIsPure) {
  http::Request r;
  r.headers.list = {{"Content-Length", "12"}};
  uint64_t len = 0;
  const char* why = "";
  EXPECT_EQ(checkRequestFraming(r, len, why), 0);
  EXPECT_EQ(len, 12u);
  r.headers.list = {};
  EXPECT_EQ(checkRequestFraming(r, len, why), 0);
  EXPECT_EQ(len, 0u);
  r.headers.list = {{"Transfer-Encoding", "chunked"}};
  EXPECT_EQ(checkRequestFraming(r, len, why), 501);
}

TEST_F(HttpServerTest, AnswerLaterThroughPending) {
  mode_ = Mode::Hold;
  connect();
  client_.write(kPost);
  ASSERT_TRUE(runUntil([&] { return requests_.size() == 1; }));
  HttpServerSession* s = held_.session();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->waitingForAnswer());
  s->respond(204, "application/json", "ignored");
  EXPECT_EQ(held_.session(), nullptr);
  Answer a = answer();
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.head.headers.find("Content-Length"), nullptr);
  EXPECT_EQ(a.head.headers.find("Content-Type"), nullptr);
  EXPECT_EQ(goneCalls_, 0);
  EXPECT_TRUE(runUntil([&] { return ended_; }));
  EXPECT_EQ(held_.session(), nullptr);
}

TEST_F(HttpServerTest, PeerLeavingWhileWaitingRunsOnGone) {
  mode_ = Mode::Hold;
  connect();
  client_.write(kPost);
  ASSERT_TRUE(runUntil([&] { return requests_.size() == 1; }));
  client_.bev.reset();
  ASSERT_TRUE(runUntil([&] { return ended_; }));
  EXPECT_EQ(goneCalls_, 1);
  EXPECT_EQ(held_.session(), nullptr);
}

TEST_F(HttpServerTest, HalfCloseAfterRequestStillGetsTheAnswerWhenAsked) {
  HttpServerOptions o;
  o.answerAfterHalfClose = true;
  mode_ = Mode::Hold;
  connect(o);
  client_.write(kPost);
  ASSERT_TRUE(runUntil([&] { return requests_.size() == 1; }));
  ASSERT_TRUE(drained());
  ::shutdown(bufferevent_getfd(client_.bev.get()), SHUT_WR);
  test::spin(loop_);
  ASSERT_NE(held_.session(), nullptr);
  held_.session()->respond(200, "text/plain", "late");
  Answer a = answer();
  EXPECT_EQ(a.body, "late");
  EXPECT_EQ(goneCalls_, 0);
}

TEST_F(HttpServerTest, UpgradeHandsOverTheConnectionWithWhatFollowsTheHead) {
  mode_ = Mode::Upgrade;
  connect();
  client_.write("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\nearly");
  ASSERT_TRUE(runUntil([&] { return taken_ != nullptr; }));
  EXPECT_TRUE(ended_);
  evbuffer* in = bufferevent_get_input(taken_.get());
  std::string rest(evbuffer_get_length(in), '\0');
  evbuffer_copyout(in, rest.data(), rest.size());
  EXPECT_EQ(rest, "early");
  std::string hello = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  bufferevent_write(taken_.get(), hello.data(), hello.size());
  bufferevent_enable(taken_.get(), EV_WRITE);
  ASSERT_TRUE(runUntil([&] { return client_.in.size() == hello.size(); }));
  EXPECT_FALSE(client_.eof);
}

TEST_F(HttpServerTest, IncompleteRequestTimesOutWith408) {
  HttpServerOptions o;
  o.requestTimeout = std::chrono::milliseconds(5);
  connect(o);
  client_.write("GET / HTTP/1.1\r\nHost: h\r\n");
  EXPECT_EQ(answer().status, 408);
  EXPECT_EQ(refusals_, std::vector<int>{408});
}

TEST_F(HttpServerTest, UnansweredRequestTimesOutWith504) {
  HttpServerOptions o;
  o.answerTimeout = std::chrono::milliseconds(5);
  mode_ = Mode::Hold;
  connect(o);
  client_.write(kPost);
  EXPECT_EQ(answer().status, 504);
  EXPECT_EQ(held_.session(), nullptr);
  EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
}

TEST_F(HttpServerTest, HandlerThatThrowsGets500AndTheSessionEnds) {
  mode_ = Mode::Throw;
  connect();
  client_.write(kPost);
  EXPECT_EQ(answer().status, 500);
  EXPECT_EQ(refusals_, std::vector<int>{500});
  EXPECT_TRUE(runUntil([&] { return client_.eof && ended_; }));
}

TEST_F(HttpServerTest, ExpectContinueGetsAnInterimAnswer) {
  connect();
  client_.write("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  Answer interim = answer();
  EXPECT_EQ(interim.status, 100);
  EXPECT_TRUE(requests_.empty());
  client_.write("ok");
  EXPECT_EQ(answer().body, "POST / ok");
}

}  // namespace
}  // namespace ds
