// attachSocketIo's bulk reader over real sockets: large reads, the watermark, disabled reading,
// EOF after the data, and a reset reported as an error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "common/event.h"
#include "support/pattern.h"
#include "support/run_loop.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

class BulkReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    peer_ = sv[0];
    // Blocking on purpose: the reader must never wait (it makes its side non-blocking).
    bev_ = newSocketBufferEvent(loop_, sv[1]);
    ASSERT_TRUE(bev_);
    int size = 1 << 20;
    ::setsockopt(peer_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    bufferevent_setcb(bev_.get(), &BulkReadTest::onRead, nullptr, &BulkReadTest::onEvent, this);
    safety_.arm(std::chrono::seconds(10));
  }
  void TearDown() override {
    bev_.reset();
    if (peer_ >= 0) ::close(peer_);
  }

  static void onRead(bufferevent* bev, void* arg) {
    auto* self = static_cast<BulkReadTest*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    self->largest_ = std::max(self->largest_, n);
    ++self->callbacks_;
    if (self->events_ != 0) self->dataAfterEvent_ = true;
    std::string chunk(n, '\0');
    evbuffer_remove(in, chunk.data(), n);
    self->got_ += chunk;
  }
  static void onEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<BulkReadTest*>(arg);
    self->events_ = what;
    self->eventErrno_ = errno;
  }

  void writeAll(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(peer_, data.data() + off, data.size() - off);
      ASSERT_GT(n, 0);
      off += static_cast<size_t>(n);
    }
  }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  int peer_ = -1;
  BufferEventPtr bev_;
  std::string got_;
  size_t largest_ = 0;
  int callbacks_ = 0;
  short events_ = 0;
  int eventErrno_ = 0;
  bool dataAfterEvent_ = false;
};

TEST_F(BulkReadTest, ReadsFarMoreThanFourKibPerCallback) {
  const std::string data = test::pattern(512 * 1024);
  writeAll(data);
  bufferevent_enable(bev_.get(), EV_READ);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return got_.size() == data.size(); }));
  EXPECT_EQ(got_, data);
  // libevent alone delivers at most 4 KiB per read, and so per callback here.
  EXPECT_GE(largest_, 64u * 1024) << callbacks_ << " callbacks";
  EXPECT_LT(callbacks_, 64);
}

TEST_F(BulkReadTest, NeverReadsPastTheReadHighWatermark) {
  // (A read callback must drain at the high watermark: libevent 2.1 calls it again and again
  // while the input stays there, so this one takes everything each time.)
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, 32 * 1024);
  const std::string data = test::pattern(512 * 1024);
  writeAll(data);
  bufferevent_enable(bev_.get(), EV_READ);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return got_.size() == data.size(); }));
  EXPECT_EQ(got_, data);
  EXPECT_LE(largest_, 32u * 1024);
  EXPECT_GT(largest_, 4u * 1024);
}

TEST_F(BulkReadTest, DisabledReadingReadsNothing) {
  writeAll(test::pattern(64 * 1024));
  bufferevent_enable(bev_.get(), EV_READ);
  bufferevent_disable(bev_.get(), EV_READ);
  test::spin(loop_, 50);
  EXPECT_EQ(evbuffer_get_length(bufferevent_get_input(bev_.get())), 0u);
  EXPECT_EQ(callbacks_, 0);
}

TEST_F(BulkReadTest, EofComesAfterAllTheData) {
  const std::string data = test::pattern(300 * 1024);
  writeAll(data);
  ::shutdown(peer_, SHUT_WR);
  bufferevent_enable(bev_.get(), EV_READ);
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return events_ != 0; }));
  EXPECT_TRUE(events_ & BEV_EVENT_EOF);
  EXPECT_EQ(got_, data);
  EXPECT_FALSE(dataAfterEvent_);
}

TEST_F(BulkReadTest, ResetIsReportedAsAnError) {
  // Unix sockets have no reset; a TCP pair over loopback does.
  bev_.reset();
  ::close(peer_);
  peer_ = -1;
  int pair[2];
  test::tcpPair(pair);
  ASSERT_FALSE(HasFatalFailure());
  peer_ = pair[0];
  bev_ = newSocketBufferEvent(loop_, pair[1]);
  bufferevent_setcb(bev_.get(), &BulkReadTest::onRead, nullptr, &BulkReadTest::onEvent, this);
  writeAll("last words");
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] {
    bufferevent_enable(bev_.get(), EV_READ);
    return got_.size() == 10;
  }));
  linger l{1, 0};
  ::setsockopt(peer_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(peer_);
  peer_ = -1;
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return events_ != 0; }));
  EXPECT_TRUE(events_ & BEV_EVENT_ERROR) << "events " << events_;
  EXPECT_EQ(eventErrno_, ECONNRESET);
  EXPECT_EQ(got_, "last words");
}

}  // namespace
}  // namespace ds
