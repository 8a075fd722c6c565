// Loop::closeAfterFlush over loopback TCP: everything queued reaches the peer, also when the
// peer half-closed first, and the connection then ends.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/event.h"
#include "support/pattern.h"
#include "support/run_loop.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

class CloseAfterFlushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    test::tcpPair(fds);
    ASSERT_FALSE(HasFatalFailure());
    peer_ = fds[0];
    ::fcntl(peer_, F_SETFL, ::fcntl(peer_, F_GETFL) | O_NONBLOCK);
    bev_ = newSocketBufferEvent(loop_, fds[1]);
    ASSERT_TRUE(bev_);
    safety_.arm(std::chrono::seconds(10));
  }
  void TearDown() override {
    if (peer_ >= 0) ::close(peer_);
  }

  // Hands the connection to closeAfterFlush with `data` queued; the peer must read all of it.
  void expectAllDelivered(const std::string& data) {
    bufferevent_write(bev_.get(), data.data(), data.size());
    loop_.closeAfterFlush(std::move(bev_));
    std::string got = readToEof();
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
  }

  // Reads at the peer until EOF, turning the loop meanwhile.
  std::string readToEof() {
    std::string got;
    char buf[65536];
    bool eof = false;
    test::runUntil(loop_, timedOut_, [&] {
      for (;;) {
        ssize_t n = ::read(peer_, buf, sizeof buf);
        if (n > 0) {
          got.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) eof = true;
        break;
      }
      return eof;
    });
    return got;
  }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  int peer_ = -1;
  BufferEventPtr bev_;
};

TEST_F(CloseAfterFlushTest, DeliversEverythingQueued) {
  expectAllDelivered(test::pattern(8 << 20));
  ::close(peer_);
  peer_ = -1;
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return loop_.lingering() == 0; }));
}

TEST_F(CloseAfterFlushTest, PeerThatHalfClosedFirstStillGetsEverything) {
  // The peer is done sending and has said so before the last words are flushed; it is still
  // reading, as `ssh` or `curl` do after their request.
  ASSERT_EQ(::shutdown(peer_, SHUT_WR), 0);
  bufferevent_enable(bev_.get(), EV_READ);
  test::spin(loop_, 20);
  expectAllDelivered(test::pattern(8 << 20));
  // Both directions are done: the connection ends without waiting for the bound.
  ASSERT_TRUE(test::runUntil(loop_, timedOut_, [&] { return loop_.lingering() == 0; }));
}

}  // namespace
}  // namespace ds
