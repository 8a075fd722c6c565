// One end of a stream socket (TCP or Unix) that a test drives without blocking, between loop
// turns: it sends `out` (then FIN when asked), collects what arrives, and notes FIN and reset.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>

namespace ds::test {

struct SocketEnd {
  int fd = -1;
  std::string out, in;
  size_t sent = 0;
  bool finAfterSend = false, finSent = false, gotFin = false, gotReset = false;
  bool reading = true;

  explicit SocketEnd(int f) : fd(f) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }
  ~SocketEnd() {
    if (fd >= 0) ::close(fd);
  }
  SocketEnd(const SocketEnd&) = delete;
  SocketEnd& operator=(const SocketEnd&) = delete;

  void step() {
    while (sent < out.size()) {
      ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    if (finAfterSend && !finSent && sent == out.size()) {
      ::shutdown(fd, SHUT_WR);
      finSent = true;
    }
    while (reading && !gotFin && !gotReset) {
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
      } else if (n == 0) {
        gotFin = true;
      } else {
        if (errno == ECONNRESET) gotReset = true;
        break;
      }
    }
  }
};

}  // namespace ds::test
