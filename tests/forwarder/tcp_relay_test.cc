// Tests for TcpRelay over a real libevent loop on socketpairs: the test plays the client on one
// pair and the target on the other. Covers bytes both ways with half-close in order, the end of
// the relay, a failing side (the other side is reset: only a relay whose both sides half-closed
// ends with FIN), and backpressure (a target that does not read stops the client).
#include "forwarder/tcp_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <random>
#include <string>

#include "support/bytes.h"
#include "support/run_loop.h"
#include "support/tcp_pair.h"

namespace ds {
namespace {

using test::randomBytes;
using test::writable;

class TcpRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int c[2], t[2];
    test::tcpPair(c);
    test::tcpPair(t);
    client_ = c[0];
    target_ = t[0];
    for (int fd : {client_, target_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    relay_ = std::make_unique<TcpRelay>(
        loop_, newSocketBufferEvent(loop_, c[1]), newSocketBufferEvent(loop_, t[1]), kHigh,
        [this](TcpRelay*, const std::string& why) { reason_ = why; });
    safety_.arm(std::chrono::seconds(20));
  }
  void TearDown() override {
    relay_.reset();
    ::close(client_);
    ::close(target_);
  }

  // Turns the loop until `done` holds. The test's own sockets are not in the loop, so it never
  // blocks in it: a turn that finds nothing to do waits briefly on the test's sockets instead.
  bool drive(const std::function<bool()>& done) {
    return test::driveAround(loop_, timedOut_, {client_, target_}, done);
  }

  // Writes all of `data` to `from`, half-closes it and reads `to` until EOF, turning the loop
  // in between (backpressure would stall a writer that waits for the whole write first).
  std::string pass(int from, const std::string& data, int to) {
    size_t off = 0;
    bool eof = false;
    std::string got;
    char buf[65536];
    drive([&] {
      if (off < data.size()) {
        ssize_t n = ::write(from, data.data() + off, data.size() - off);
        if (n > 0) off += static_cast<size_t>(n);
        if (off == data.size()) ::shutdown(from, SHUT_WR);
      }
      ssize_t n = ::read(to, buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      eof = n == 0;
      return eof;
    });
    return got;
  }
  // Reads from `fd` into `got` while turning the loop, until `done(n)` holds for a read's result.
  void readUntil(int fd, std::string& got, const std::function<bool(ssize_t)>& done) {
    char buf[65536];
    drive([&] {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      return done(n);
    });
  }
  // Reads from `fd` until EOF while turning the loop.
  std::string readToEof(int fd) {
    std::string got;
    readUntil(fd, got, [](ssize_t n) { return n == 0; });
    return got;
  }
  // Reads from `fd` until its connection ends: true for a reset, false for a FIN.
  bool readToEnd(int fd, std::string& got) {
    bool reset = false;
    readUntil(fd, got, [&](ssize_t n) {
      reset = n < 0 && errno == ECONNRESET;
      return n == 0 || reset;
    });
    return reset;
  }
  // Reads from `fd` until exactly `size` bytes have come.
  std::string readBytes(int fd, size_t size) {
    std::string got;
    readUntil(fd, got, [&](ssize_t) { return got.size() == size; });
    return got;
  }
  static void resetSocket(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  }

  static constexpr size_t kHigh = 64 * 1024;
  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  int client_ = -1, target_ = -1;
  std::unique_ptr<TcpRelay> relay_;
  std::string reason_;
};

TEST_F(TcpRelayTest, BytesBothWaysWithHalfCloseInOrder) {
  relay_->start();
  const std::string up = randomBytes(3 << 20, 1), down = randomBytes(1 << 20, 2);
  std::string got = pass(client_, up, target_);
  EXPECT_EQ(got.size(), up.size());
  EXPECT_TRUE(got == up);
  // The client's half-close did not end the other direction.
  EXPECT_EQ(reason_, "");
  got = pass(target_, down, client_);
  EXPECT_EQ(got.size(), down.size());
  EXPECT_TRUE(got == down);
  drive([&] { return !reason_.empty(); });
  EXPECT_EQ(reason_, "done");
  EXPECT_EQ(relay_->bytesToTarget(), up.size());
  EXPECT_EQ(relay_->bytesFromTarget(), down.size());
}

TEST_F(TcpRelayTest, BytesBufferedBeforeStartGoFirst) {
  ASSERT_EQ(::write(client_, "early", 5), 5);
  relay_->start();
  char buf[8];
  ssize_t n = 0;
  drive([&] { return (n = ::read(target_, buf, sizeof buf)) > 0; });
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "early");
}

TEST_F(TcpRelayTest, FailingTargetResetsTheClientAfterWhatItSent) {
  relay_->start();
  ASSERT_EQ(::write(target_, "last words", 10), 10);
  // Let the bytes reach the client side before the reset.
  std::string got = readBytes(client_, 10);
  resetSocket(target_);
  target_ = ::dup(client_);  // keeps TearDown's close balanced
  std::string rest;
  EXPECT_TRUE(readToEnd(client_, rest)) << "the client must see the failure, not a clean end";
  EXPECT_EQ(got + rest, "last words");
  EXPECT_EQ(reason_, "target connection failed");
}

TEST_F(TcpRelayTest, FailingClientResetsTheTarget) {
  relay_->start();
  ASSERT_EQ(::write(client_, "partial upload", 14), 14);
  std::string got = readBytes(target_, 14);
  resetSocket(client_);
  client_ = ::dup(target_);
  std::string rest;
  EXPECT_TRUE(readToEnd(target_, rest));
  EXPECT_EQ(got + rest, "partial upload");
  EXPECT_EQ(reason_, "client connection failed");
}

TEST_F(TcpRelayTest, CloseResetsBothSides) {
  relay_->start();
  relay_->close("shutting down");
  std::string a, b;
  EXPECT_TRUE(readToEnd(client_, a));
  EXPECT_TRUE(readToEnd(target_, b));
  EXPECT_EQ(reason_, "shutting down");
}

TEST_F(TcpRelayTest, TargetThatDoesNotReadStopsTheClient) {
  relay_->start();
  const std::string chunk(64 * 1024, 'x');
  size_t written = 0;
  // With no backpressure the client could write forever; the relay must stop reading it once
  // the target's output passes the watermark, so the client's socket fills up.
  while (written < (256u << 20) && !timedOut_) {
    test::spin(loop_, 5);
    if (!writable(client_)) {
      test::spin(loop_, 50);
      if (!writable(client_)) break;
    }
    ssize_t n = ::write(client_, chunk.data(), chunk.size());
    if (n > 0) written += static_cast<size_t>(n);
  }
  EXPECT_FALSE(writable(client_)) << "client still writable after " << written << " bytes";
  EXPECT_LT(written, 256u << 20);
  // Reading at the target lets everything through.
  readBytes(target_, written);
  EXPECT_EQ(relay_->bytesToTarget(), written);
}

}  // namespace
}  // namespace ds
