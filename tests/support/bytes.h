// Bytes for loopback tests and what a test's own socket shows: seeded random data, all of an
// evbuffer taken into a string, whether a socket takes writes, what the kernel holds to read.
#pragma once

#include <event2/buffer.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace ds::test {

// `n` bytes from a generator seeded with `seed`: the same bytes on every run.
inline std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Moves everything `from` holds to the end of `to`.
inline void appendAll(std::string& to, evbuffer* from) {
  size_t n = evbuffer_get_length(from);
  size_t old = to.size();
  to.resize(old + n);
  evbuffer_remove(from, to.data() + old, n);
}

inline bool writable(int fd) {
  pollfd p{fd, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0;
}

// Bytes waiting in the kernel to be read from `fd`.
inline size_t kernelReadable(int fd) {
  int n = 0;
  ::ioctl(fd, FIONREAD, &n);
  return static_cast<size_t>(n);
}

}  // namespace ds::test
