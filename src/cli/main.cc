// devstreams: the command line. `connect HOST PORT` is a stdio tunnel through the local
// daemon's SOCKS5 endpoint, made for `ssh -o ProxyCommand='devstreams connect %h %p'`;
// `hub ...` administers the hub's registry and shows its streams (hub_admin.h); `status`,
// `streams`, `devices` and `forward ...` talk to the local daemon's control API (daemon_ctl.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/daemon_ctl.h"
#include "cli/hub_admin.h"
#include "cli/stdio_tunnel.h"
#include "common/config.h"
#include "common/event.h"
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
int socksConnect(const ds::config::Endpoint& socks, const std::string& host, uint16_t port,
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

// Pumps stdin -> socket and socket -> stdout with half-close, until the socket side ends.
struct Tunnel {
  ds::Loop loop;
  ds::BufferEventPtr in, out, sock;
  bool inEof = false;

  static void onSockRead(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    bufferevent_write_buffer(t->out.get(), bufferevent_get_input(t->sock.get()));
    // Backpressure: stop reading the socket while stdout is behind.
    if (evbuffer_get_length(bufferevent_get_output(t->out.get())) > 1 << 20) {
      bufferevent_disable(t->sock.get(), EV_READ);
    }
  }
  static void onOutWrite(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    if (t->sock) bufferevent_enable(t->sock.get(), EV_READ);
    if (!t->sock) t->loop.stop();
  }
  static void onInRead(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    bufferevent_write_buffer(t->sock.get(), bufferevent_get_input(t->in.get()));
    if (evbuffer_get_length(bufferevent_get_output(t->sock.get())) > 1 << 20) {
      bufferevent_disable(t->in.get(), EV_READ);
    }
  }
  static void onSockWrite(bufferevent*, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    if (t->inEof) {
      ::shutdown(bufferevent_getfd(t->sock.get()), SHUT_WR);
    } else {
      bufferevent_enable(t->in.get(), EV_READ);
    }
  }
  static void onInEvent(bufferevent*, short, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    t->inEof = true;
    bufferevent_disable(t->in.get(), EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(t->sock.get())) == 0) {
      ::shutdown(bufferevent_getfd(t->sock.get()), SHUT_WR);
    }
  }
  static void onSockEvent(bufferevent*, short what, void* arg) {
    auto* t = static_cast<Tunnel*>(arg);
    if (what & BEV_EVENT_ERROR) std::fprintf(stderr, "devstreams: connection lost\n");
    onSockRead(nullptr, t);
    t->sock.reset();
    if (evbuffer_get_length(bufferevent_get_output(t->out.get())) == 0) t->loop.stop();
  }

  int run(int fd) {
    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_nonblocking(0);
    evutil_make_socket_nonblocking(1);
    sock = ds::newSocketBufferEvent(loop, fd);
    in.reset(bufferevent_socket_new(loop.base(), 0, 0));
    out.reset(bufferevent_socket_new(loop.base(), 1, 0));
    bufferevent_setcb(sock.get(), onSockRead, onSockWrite, onSockEvent, this);
    bufferevent_setcb(in.get(), onInRead, nullptr, onInEvent, this);
    bufferevent_setcb(out.get(), nullptr, onOutWrite, nullptr, this);
    bufferevent_enable(sock.get(), EV_READ | EV_WRITE);
    bufferevent_enable(in.get(), EV_READ);
    bufferevent_enable(out.get(), EV_WRITE);
    loop.run();
    return 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  ds::platform::initProcess();
  CLI::App app{"devstreams: reach TCP ports of devices through a devstreams hub"};
  app.require_subcommand(1);
  const char* env = std::getenv("DEVSTREAMS_SOCKS");
  std::string socksAddr = env && *env ? env : "127.0.0.1:1080";
  app.add_option("--socks", socksAddr, "the daemon's SOCKS5 endpoint (env DEVSTREAMS_SOCKS)");

  auto* connect = app.add_subcommand(
      "connect", "stdio tunnel to HOST:PORT (HOST is DEVICE.hub), for ssh ProxyCommand");
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
    // --help and --version end here with 0; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (admin.chosen()) return admin.run();
  if (ctl.chosen()) return ctl.run();

  auto socks = ds::config::parseEndpoint(socksAddr);
  if (!socks || socks->port == 0) return fail("invalid --socks address '" + socksAddr + "'", 2);
  if (host.empty() || host.size() > 255) return fail("invalid host '" + host + "'", 2);
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
