// devstreams: the command line. `connect HOST PORT` is a stdio tunnel through the local
// daemon's SOCKS5 endpoint, made for `ssh -o ProxyCommand='devstreams connect %h %p'`;
// `hub ...` administers the hub's registry and shows its streams (hub_admin.h); `status`,
// `streams`, `devices` and `forward ...` talk to the local daemon's control API (daemon_ctl.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#ifndef _WIN32
#include <sys/epoll.h>
#endif
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/daemon_ctl.h"
#include "cli/hub_admin.h"
#include "cli/stdio_tunnel.h"
#include "common/event.h"
#include "common/guard.h"
#include "common/net.h"
#include "common/platform.h"
#include "socks/socks5.h"

namespace {

// Reads exactly `n` bytes (the SOCKS replies are tiny; blocking is fine before the pump starts).
bool readFull(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool writeFull(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

int fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "devstreams: %s\n", msg.c_str());
  return code;
}

// Connects to the daemon and negotiates CONNECT host:port. Returns the socket or -1.
int socksConnect(const ds::net::Endpoint& socks, const std::string& host, uint16_t port,
                 std::string& err) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!ds::numericSockaddr(socks.host, socks.port, ss, len)) {
    err = "bad SOCKS address " + socks.toString() + " (use a numeric address)";
    return -1;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    err = "cannot reach the daemon's SOCKS endpoint at " + socks.toString() + ": " +
          std::strerror(errno) + " (is devstreamsd running?)";
    if (fd >= 0) evutil_closesocket(fd);
    return -1;
  }
  // Greeting and request in one write: the daemon parses them in order.
  std::string msg = {5, 1, 0, 5, 1, 0, 3, static_cast<char>(host.size())};
  msg += host;
  msg += static_cast<char>(port >> 8);
  msg += static_cast<char>(port & 0xff);
  uint8_t reply[12];
  if (!writeFull(fd, reinterpret_cast<const uint8_t*>(msg.data()), msg.size()) ||
      !readFull(fd, reply, 2) || reply[0] != 5 || reply[1] != 0 || !readFull(fd, reply, 10)) {
    err = "the daemon closed the connection during the SOCKS handshake";
    evutil_closesocket(fd);
    return -1;
  }
  if (reply[1] != 0) {
    err = host + ":" + std::to_string(port) + ": " +
          ds::socks::replyName(static_cast<ds::socks::Reply>(reply[1])) + " (SOCKS reply " +
          std::to_string(reply[1]) + ")";
    evutil_closesocket(fd);
    return -1;
  }
  return fd;
}

#ifndef _WIN32  // Windows: stdio_tunnel.h
// Whether the loop can wait on `fd` for `events`: pipes, ttys and sockets can be polled; regular
// files, /dev/null and other devices cannot (epoll refuses them), but they never block for long.
bool pollable(int fd, uint32_t events) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return false;
  epoll_event ev{};
  ev.events = events;
  bool ok = ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
  ::close(ep);
  return ok;
}

// Closed standard descriptors would be reused by the next socket: point them at /dev/null.
void fillStdio() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    int null = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

// Pumps stdin -> socket and socket -> stdout with half-close, until the socket side ends. Any
// kind of stdio works: pollable ones through bufferevents, others (files, /dev/null) with plain
// reads and writes in turns of the loop. Returns 0 after a clean end, 1 when the connection was
// reset or lost, or stdout failed.
struct Tunnel {
  static constexpr size_t kMark = 1 << 20;
  static constexpr size_t kChunk = 256 * 1024;

  ds::Loop loop;
  ds::BufferEventPtr in, out, sock;
  ds::Timer fileRead{loop, [this] { readFile(); }};
  bool inEof = false;
  int status = 0;
  int inFlags = -1, outFlags = -1;  // restored at exit: a tty is shared with the shell

  ~Tunnel() {
    in.reset();
    out.reset();
    if (inFlags >= 0) ::fcntl(0, F_SETFL, inFlags);
    if (outFlags >= 0) ::fcntl(1, F_SETFL, outFlags);
  }

  size_t toSock() const { return evbuffer_get_length(bufferevent_get_output(sock.get())); }

  void stdinDone() {
    inEof = true;
    if (in) bufferevent_disable(in.get(), EV_READ);
    if (sock && toSock() == 0) ::shutdown(bufferevent_getfd(sock.get()), SHUT_WR);
  }

  // stdin that cannot be polled: one read per turn while the socket keeps up.
  void readFile() {
    if (!sock || inEof) return;
    std::string buf(kChunk, '\0');
    ssize_t n;
    do {
      n = ::read(0, buf.data(), buf.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) std::fprintf(stderr, "devstreams: stdin: %s\n", std::strerror(errno));
    if (n <= 0) return stdinDone();
    bufferevent_write(sock.get(), buf.data(), static_cast<size_t>(n));
    if (toSock() <= kMark) fileRead.arm(std::chrono::milliseconds(0));
  }

  void fail(const char* what) {
    std::fprintf(stderr, "devstreams: %s\n", what);
    status = 1;
    loop.stop();
  }

  static void onSockRead(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect",
        [&] {
          evbuffer* data = bufferevent_get_input(t->sock.get());
          if (!t->out) {
            // stdout that cannot be polled: written through at once.
            while (evbuffer_get_length(data) > 0) {
              auto* p = evbuffer_pullup(data, -1);
              ssize_t n = ::write(1, p, evbuffer_get_length(data));
              if (n < 0 && errno == EINTR) continue;
              if (n <= 0) return t->fail("stdout: write failed");
              evbuffer_drain(data, static_cast<size_t>(n));
            }
            return;
          }
          bufferevent_write_buffer(t->out.get(), data);
          // Backpressure: stop reading the socket while stdout is behind.
          if (evbuffer_get_length(bufferevent_get_output(t->out.get())) > kMark) {
            bufferevent_disable(t->sock.get(), EV_READ);
          }
        },
        [&] { t->fail("internal error"); });
  }
  static void onOutWrite(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect",
        [&] {
          if (t->sock) bufferevent_enable(t->sock.get(), EV_READ);
          if (!t->sock) t->loop.stop();
        },
        [&] { t->fail("internal error"); });
  }
  static void onOutEvent(bufferevent*, short, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect", [&] { t->fail("stdout closed"); },
        [&] { t->fail("internal error"); });
  }
  static void onInRead(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect",
        [&] {
          bufferevent_write_buffer(t->sock.get(), bufferevent_get_input(t->in.get()));
          if (t->toSock() > kMark) bufferevent_disable(t->in.get(), EV_READ);
        },
        [&] { t->fail("internal error"); });
  }
  static void onSockWrite(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect",
        [&] {
          if (t->inEof) {
            ::shutdown(bufferevent_getfd(t->sock.get()), SHUT_WR);
          } else if (t->in) {
            bufferevent_enable(t->in.get(), EV_READ);
          } else if (!t->fileRead.armed()) {
            t->fileRead.arm(std::chrono::milliseconds(0));
          }
        },
        [&] { t->fail("internal error"); });
  }
  static void onInEvent(bufferevent*, short, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect", [&] { t->stdinDone(); }, [&] { t->fail("internal error"); });
  }
  static void onSockEvent(bufferevent*, short what, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    ds::guarded(
        "devstreams connect",
        [&] {
          if (what & BEV_EVENT_ERROR) {
            int err = EVUTIL_SOCKET_ERROR();
            std::fprintf(stderr, "devstreams: connection lost: %s\n",
                         err == ECONNRESET ? "the stream was reset" : std::strerror(err));
            t->status = 1;
          }
          onSockRead(nullptr, t);
          t->sock.reset();
          if (!t->out || evbuffer_get_length(bufferevent_get_output(t->out.get())) == 0)
            t->loop.stop();
        },
        [&] { t->fail("internal error"); });
  }

  int run(int fd) {
    // A reset stream or a closed stdout is reported and ends the tunnel with 1, not a signal.
    std::signal(SIGPIPE, SIG_IGN);
    evutil_make_socket_nonblocking(fd);
    // Both before any change: stdin and stdout may be one open file (a tty).
    int flags0 = ::fcntl(0, F_GETFL), flags1 = ::fcntl(1, F_GETFL);
    sock = ds::newSocketBufferEvent(loop, fd);
    bufferevent_setcb(sock.get(), onSockRead, onSockWrite, onSockEvent, this);
    bufferevent_enable(sock.get(), EV_READ | EV_WRITE);
    if (pollable(0, EPOLLIN)) {
      inFlags = flags0;
      evutil_make_socket_nonblocking(0);
      in.reset(bufferevent_socket_new(loop.base(), 0, 0));
      bufferevent_setcb(in.get(), onInRead, nullptr, onInEvent, this);
      bufferevent_enable(in.get(), EV_READ);
    } else {
      fileRead.arm(std::chrono::milliseconds(0));
    }
    if (pollable(1, EPOLLOUT)) {
      outFlags = flags1;
      evutil_make_socket_nonblocking(1);
      out.reset(bufferevent_socket_new(loop.base(), 1, 0));
      bufferevent_setcb(out.get(), nullptr, onOutWrite, onOutEvent, this);
      bufferevent_enable(out.get(), EV_WRITE);
    }
    loop.run();
    return status;
  }
};

#endif

}  // namespace

int main(int argc, char** argv) {
  ds::platform::initProcess();
  CLI::App app{"devstreams: reach TCP ports of devices through a devstreams hub"};
  app.require_subcommand(1);
  const char* env = std::getenv("DEVSTREAMS_SOCKS");
  std::string socksAddr = env && *env ? env : "127.0.0.1:1080";
  app.add_option("--socks", socksAddr, "the daemon's SOCKS5 endpoint (env DEVSTREAMS_SOCKS)");

  auto* connect = app.add_subcommand(
      "connect",
      "stdio tunnel to HOST:PORT (DEVICE.hub, or HOST.via.DEVICE.hub for a host on the "
      "device's network), for ssh ProxyCommand");
  std::string host;
  uint16_t port = 0;
  connect->add_option("host", host, "device address, e.g. dev01.hub")->required();
  connect->add_option("port", port, "TCP port on the device")
      ->required()
      ->check(CLI::Range(1, 65535));
  ds::cli::HubAdmin admin(app);
  ds::cli::DaemonCtl ctl(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A word that is neither a command nor an option leaves no command chosen: name the word
    // rather than say that a command is missing.
    std::vector<std::string> left = app.remaining();
    if (dynamic_cast<const CLI::RequiredError*>(&e) && !left.empty()) {
      std::fprintf(stderr, "devstreams: unknown command or option '%s' (see devstreams --help)\n",
                   left.front().c_str());
      return 2;
    }
    // --help and --version end here with 0; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (admin.chosen()) return admin.run();
  if (ctl.chosen()) return ctl.run();

  auto socks = ds::net::parseEndpoint(socksAddr);
  if (!socks || socks->port == 0) return fail("invalid --socks address '" + socksAddr + "'", 2);
  if (host.empty() || host.size() > 255) return fail("invalid host '" + host + "'", 2);
#ifndef _WIN32
  fillStdio();
#endif
  std::string err;
  int fd = socksConnect(*socks, host, port, err);
  if (fd < 0) return fail(err);
#ifdef _WIN32
  return ds::cli::runStdioTunnel(fd);
#else
  Tunnel t;
  return t.run(fd);
#endif
}
