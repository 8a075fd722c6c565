// The POSIX socket API the project uses, on Winsock. Windows builds put this folder first on the
// include path, so <sys/socket.h>, <netinet/in.h>, <arpa/inet.h>, <netinet/tcp.h>, <sys/uio.h>,
// <sys/un.h> and <poll.h> all land here. Calls that Winsock declares with other types (char*
// option values, int lengths) get overloads with the POSIX types, and the wrappers that report
// errors copy WSAGetLastError() into errno, so the callers' errno checks mean the same thing.
// Sockets are still closed with evutil_closesocket (close() is for CRT descriptors on Windows).
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
// winsock2.h comes first: ws2tcpip.h needs its types.
#include <winsock2.h>
// Then the TCP/IP additions.
#include <ws2tcpip.h>

#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>

#ifndef SHUT_RD
#define SHUT_RD SD_RECEIVE
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
#endif
// Winsock never raises SIGPIPE; sockets handed to libevent are non-blocking already.
#define MSG_NOSIGNAL 0
#define MSG_DONTWAIT 0
// Windows 10 1709 and later (ws2ipdef.h of newer SDKs).
#ifndef TCP_KEEPIDLE
#define TCP_KEEPIDLE 3
#endif
#ifndef TCP_KEEPCNT
#define TCP_KEEPCNT 16
#endif
#ifndef TCP_KEEPINTVL
#define TCP_KEEPINTVL 17
#endif
// socket() type flags as on Linux; posixSocket() takes them off. Winsock handles are not
// inherited unless asked, so SOCK_CLOEXEC needs nothing more.
#define SOCK_NONBLOCK 0x800
#define SOCK_CLOEXEC 0x80000

namespace ds::win {
// errno for the calling thread's last Winsock error.
inline int errnoFromWsa(int wsa) {
  switch (wsa) {
    case WSAEWOULDBLOCK:
      return EAGAIN;
    case WSAEINTR:
      return EINTR;
    case WSAEINPROGRESS:
    case WSAEALREADY:
      return EINPROGRESS;
    case WSAENOTSOCK:
      return ENOTSOCK;
    case WSAECONNREFUSED:
      return ECONNREFUSED;
    case WSAECONNRESET:
      return ECONNRESET;
    case WSAECONNABORTED:
      return ECONNABORTED;
    case WSAETIMEDOUT:
      return ETIMEDOUT;
    case WSAEADDRINUSE:
      return EADDRINUSE;
    case WSAEADDRNOTAVAIL:
      return EADDRNOTAVAIL;
    case WSAENETUNREACH:
      return ENETUNREACH;
    case WSAEHOSTUNREACH:
      return EHOSTUNREACH;
    case WSAENOTCONN:
      return ENOTCONN;
    case WSAEACCES:
      return EACCES;
    case WSAEMFILE:
      return EMFILE;
    case WSAENOBUFS:
      return ENOBUFS;
    case WSAEINVAL:
      return EINVAL;
    case WSAEAFNOSUPPORT:
      return EAFNOSUPPORT;
    default:
      return EIO;
  }
}
template <typename T>
inline T syncErrno(T rc) {
  if (rc < 0) errno = errnoFromWsa(WSAGetLastError());
  return rc;
}
}  // namespace ds::win

// Templates so that the POSIX argument types (an int or intptr_t descriptor, any pointer, size_t
// lengths) match better than Winsock's own declarations; the result and errno are POSIX-like.
template <std::integral S, typename V, std::integral L>
int setsockopt(S s, int level, int name, const V* v, L len) {
  return ds::win::syncErrno(::setsockopt(static_cast<SOCKET>(s), level, name,
                                         reinterpret_cast<const char*>(v), static_cast<int>(len)));
}
template <std::integral S, typename V>
int getsockopt(S s, int level, int name, V* v, socklen_t* len) {
  return ds::win::syncErrno(
      ::getsockopt(static_cast<SOCKET>(s), level, name, reinterpret_cast<char*>(v), len));
}
template <std::integral S, typename B, std::integral L>
ptrdiff_t recv(S s, B* buf, L len, int flags) {
  return ds::win::syncErrno<ptrdiff_t>(
      ::recv(static_cast<SOCKET>(s), reinterpret_cast<char*>(buf), static_cast<int>(len), flags));
}
template <std::integral S, typename B, std::integral L>
ptrdiff_t send(S s, const B* buf, L len, int flags) {
  return ds::win::syncErrno<ptrdiff_t>(::send(
      static_cast<SOCKET>(s), reinterpret_cast<const char*>(buf), static_cast<int>(len), flags));
}
template <std::integral S, typename A, std::integral L>
int connect(S s, const A* a, L len) {
  return ds::win::syncErrno(::connect(static_cast<SOCKET>(s), reinterpret_cast<const sockaddr*>(a),
                                      static_cast<int>(len)));
}
template <std::integral S, typename A, std::integral L>
int bind(S s, const A* a, L len) {
  return ds::win::syncErrno(
      ::bind(static_cast<SOCKET>(s), reinterpret_cast<const sockaddr*>(a), static_cast<int>(len)));
}
template <std::integral S>
int shutdown(S s, int how) {
  return ds::win::syncErrno(::shutdown(static_cast<SOCKET>(s), how));
}
namespace ds::win {
// socket() as on POSIX: -1 on failure, with errno (Winsock handles fit in an int).
inline intptr_t posixSocket(int family, int type, int protocol) {
  SOCKET s = ::socket(family, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), protocol);
  if (s == INVALID_SOCKET) {
    errno = errnoFromWsa(WSAGetLastError());
    return -1;
  }
  u_long on = 1;
  if ((type & SOCK_NONBLOCK) && ioctlsocket(s, FIONBIO, &on) != 0) {
    errno = errnoFromWsa(WSAGetLastError());
    closesocket(s);
    return -1;
  }
  return static_cast<intptr_t>(s);
}
}  // namespace ds::win
// Winsock's socket() matches POSIX calls exactly but returns an unsigned SOCKET.
#define socket(...) ds::win::posixSocket(__VA_ARGS__)

struct iovec {
  void* iov_base;
  size_t iov_len;
};
struct msghdr {
  void* msg_name = nullptr;
  socklen_t msg_namelen = 0;
  iovec* msg_iov = nullptr;
  size_t msg_iovlen = 0;
  void* msg_control = nullptr;
  size_t msg_controllen = 0;
  int msg_flags = 0;
};
// recvmsg for the scatter read of attachSocketIo (event.cc): data only, through WSARecv.
inline ptrdiff_t recvmsg(intptr_t s, msghdr* msg, int) {
  WSABUF bufs[8];
  size_t n = msg->msg_iovlen < 8 ? msg->msg_iovlen : 8;
  for (size_t i = 0; i < n; ++i) {
    bufs[i].buf = static_cast<char*>(msg->msg_iov[i].iov_base);
    bufs[i].len = static_cast<ULONG>(msg->msg_iov[i].iov_len);
  }
  DWORD got = 0;
  DWORD flags = 0;
  if (WSARecv(static_cast<SOCKET>(s), bufs, static_cast<DWORD>(n), &got, &flags, nullptr,
              nullptr) != 0) {
    errno = ds::win::errnoFromWsa(WSAGetLastError());
    return -1;
  }
  return static_cast<ptrdiff_t>(got);
}
inline int poll(pollfd* fds, unsigned long n, int timeoutMs) {
  return ds::win::syncErrno(WSAPoll(fds, n, timeoutMs));
}
