// attachSocketIo's eager writer over real sockets: a write goes out in the loop pass that made it,
// the write callback still runs, what the socket does not take waits for libevent, and a connect
// is still reported when data was queued before it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/event.h"
#include "support/pattern.h"
#include "support/run_loop.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

class EagerWriteTest : public ::testing::Test {
 protected:
  void SetUp() override { safety_.arm(std::chrono::seconds(10)); }
  void TearDown() override {
    bev_.reset();
    if (peer_ >= 0) ::close(peer_);
  }

  void pair() {
    int fds[2];
    test::tcpPair(fds);
    ASSERT_FALSE(HasFatalFailure());
    peer_ = fds[0];
    bev_ = newSocketBufferEvent(loop_, fds[1]);
    ASSERT_TRUE(bev_);
    bufferevent_setcb(bev_.get(), nullptr, &EagerWriteTest::onWrite, &EagerWriteTest::onEvent,
                      this);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  }

  // What the peer has received by now, without waiting.
  std::string peerHas() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(peer_, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, buf + n);
    return out;
  }

  static void onWrite(bufferevent*, void* arg) { ++static_cast<EagerWriteTest*>(arg)->writes_; }
  static void onEvent(bufferevent*, short what, void* arg) {
    static_cast<EagerWriteTest*>(arg)->events_ |= what;
  }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  int peer_ = -1;
  BufferEventPtr bev_;
  int writes_ = 0;
  short events_ = 0;
};

TEST_F(EagerWriteTest, AWriteGoesOutInThePassThatMadeIt) {
  pair();
  ASSERT_FALSE(HasFatalFailure());
  // Let the enable's first write event come and go: the socket is idle, its output empty.
  test::spin(loop_, 3);
  Timer writer(loop_, [&] { bufferevent_write(bev_.get(), "hello", 5); });
  writer.armThisPass();
  // One pass, which polls nothing in between: libevent alone would write only once a later
  // poll reported the socket writable.
  event_base_loop(loop_.base(), EVLOOP_NONBLOCK | EVLOOP_ONCE);
  EXPECT_EQ(peerHas(), "hello");
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_output(bev_.get())), 0u);
  // The write callback still runs (deferred, as libevent's would).
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return writes_ > 0; }));
}

TEST_F(EagerWriteTest, WritesOfOnePassGoOutTogether) {
  pair();
  ASSERT_FALSE(HasFatalFailure());
  test::spin(loop_, 3);
  Timer writer(loop_, [&] {
    for (int i = 0; i < 10; ++i) bufferevent_write(bev_.get(), "0123456789", 10);
  });
  writer.armThisPass();
  event_base_loop(loop_.base(), EVLOOP_NONBLOCK | EVLOOP_ONCE);
  EXPECT_EQ(peerHas().size(), 100u);
}

TEST_F(EagerWriteTest, WhatTheSocketDoesNotTakeFollowsOnWritable) {
  pair();
  ASSERT_FALSE(HasFatalFailure());
  int small = 16 * 1024;
  ::setsockopt(bufferevent_getfd(bev_.get()), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  test::spin(loop_, 3);
  const std::string data = test::pattern(1024 * 1024);
  bufferevent_write(bev_.get(), data.data(), data.size());
  std::string got;
  ASSERT_TRUE(test::driveAround(loop_, timedOut_, {peer_}, [&] {
    got += peerHas();
    return got.size() == data.size();
  }));
  EXPECT_EQ(got, data);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return writes_ > 0; }));
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_output(bev_.get())), 0u);
}

TEST_F(EagerWriteTest, DataQueuedBeforeAConnectStillSeesTheConnect) {
  // A listener of the test's own; the bufferevent connects to it with data already queued.
  sockaddr_in a{};
  socklen_t len = sizeof a;
  int l = test::loopbackListener(a);
  ASSERT_FALSE(HasFailure());
  bev_ = newSocketBufferEvent(loop_, -1);
  ASSERT_TRUE(bev_);
  bufferevent_setcb(bev_.get(), nullptr, &EagerWriteTest::onWrite, &EagerWriteTest::onEvent, this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  bufferevent_write(bev_.get(), "early", 5);
  ASSERT_EQ(bufferevent_socket_connect(bev_.get(), reinterpret_cast<sockaddr*>(&a),
                                       static_cast<int>(len)),
            0);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return events_ != 0; }));
  EXPECT_EQ(events_, BEV_EVENT_CONNECTED);
  peer_ = ::accept(l, nullptr, nullptr);
  ::close(l);
  ASSERT_GE(peer_, 0);
  std::string got;
  ASSERT_TRUE(test::driveAround(loop_, timedOut_, {peer_}, [&] {
    got += peerHas();
    return got.size() >= 5;
  }));
  EXPECT_EQ(got, "early");
  // Later writes, on the connected socket, go out eagerly.
  test::spin(loop_, 3);
  Timer writer(loop_, [&] { bufferevent_write(bev_.get(), "later", 5); });
  writer.armThisPass();
  event_base_loop(loop_.base(), EVLOOP_NONBLOCK | EVLOOP_ONCE);
  EXPECT_EQ(peerHas(), "later");
}

TEST_F(EagerWriteTest, DisabledWritingWritesNothing) {
  pair();
  ASSERT_FALSE(HasFatalFailure());
  test::spin(loop_, 3);
  bufferevent_disable(bev_.get(), EV_WRITE);
  Timer writer(loop_, [&] { bufferevent_write(bev_.get(), "held", 4); });
  writer.armThisPass();
  test::spin(loop_, 3);
  EXPECT_EQ(peerHas(), "");
  bufferevent_enable(bev_.get(), EV_WRITE);
  std::string got;
  ASSERT_TRUE(test::driveAround(loop_, timedOut_, {peer_}, [&] {
    got += peerHas();
    return got.size() >= 4;
  }));
  EXPECT_EQ(got, "held");
}

}  // namespace
}  // namespace ds
