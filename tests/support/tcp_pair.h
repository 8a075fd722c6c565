// A connected loopback TCP pair, for tests that need TCP's half-close and resets (a Unix
// socketpair has neither reset nor the same buffering).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ds::test {

// A TCP socket listening on 127.0.0.1 at a free port, which `a` receives.
inline int loopbackListener(sockaddr_in& a) {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), len), 0);
  EXPECT_EQ(::listen(l, 1), 0);
  EXPECT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  return l;
}

inline void tcpPair(int fds[2]) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  int l = loopbackListener(a);
  ASSERT_FALSE(::testing::Test::HasFailure());
  fds[0] = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(fds[0], reinterpret_cast<sockaddr*>(&a), len), 0);
  fds[1] = ::accept(l, nullptr, nullptr);
  ASSERT_GE(fds[1], 0);
  ::close(l);
}

}  // namespace ds::test
