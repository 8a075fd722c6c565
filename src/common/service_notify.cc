// sd_notify and sd_listen_fds behind a small interface (see service_notify.h).
#include "common/service_notify.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <exception>

#include "common/guard.h"
#include "common/log.h"

#if DS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace ds::service {

namespace {

void notify(const std::string& message) {
#if DS_HAVE_SYSTEMD
  if (!message.empty()) sd_notify(0, message.c_str());
#else
  (void)message;
#endif
}

// STATUS= is one line: newlines would end the assignment.
std::string oneLine(std::string_view text) {
  std::string s(text);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

bool available() { return DS_HAVE_SYSTEMD != 0; }

std::string countOf(size_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

Notifier::Notifier(Loop& loop, Probe probe, std::chrono::milliseconds interval)
    : probe_(std::move(probe)), period_(interval) {
  // Not run by a service manager (or built without libsystemd): no timer, no probing.
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = available() && socket != nullptr && *socket != '\0';
  if (!enabled_) return;
#if DS_HAVE_SYSTEMD
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_ = true;
    period_ = std::min(period_, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::microseconds(usec / 2)));
    period_ = std::max(period_, std::chrono::milliseconds(1));
  }
#endif
  timer_.reset(event_new(loop.base(), -1, EV_PERSIST, &Notifier::onTimer, this));
  timeval tv{static_cast<decltype(timeval::tv_sec)>(period_.count() / 1000),
             static_cast<decltype(timeval::tv_usec)>((period_.count() % 1000) * 1000)};
  event_add(timer_.get(), &tv);
  tick();
}

void Notifier::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Notifier*>(arg);
  guarded("service status", [self] { self->tick(); });
}

void Notifier::tick() {
  if (!enabled_) return;
  std::string message;
  if (!stopping_) {
    State s;
    try {
      s = probe_();
    } catch (const std::exception& e) {  // never out of a timer callback
      LOG_WARN("service status: %s", e.what());
      s = State{ready_, status_};
    }
    if (s.ready && !ready_) {
      ready_ = true;
      message += "READY=1\n";
    }
    if (std::string line = oneLine(s.status); line != status_) {
      status_ = line;
      message += "STATUS=" + line + "\n";
    }
  }
  if (watchdog_) message += "WATCHDOG=1\n";
  notify(message);
}

void Notifier::stopping(std::string_view status) {
  if (!enabled_) return;
  stopping_ = true;
  status_ = oneLine(status);
  notify("STOPPING=1\nSTATUS=" + status_ + "\n");
}

int inheritedSocket(uint16_t& boundPort) {
#if DS_HAVE_SYSTEMD
  int n = sd_listen_fds(1);
  if (n <= 0) return -1;
  int fd = SD_LISTEN_FDS_START;
  if (n != 1 || sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
    LOG_WARN("socket activation passed %d sockets; expected one listening TCP socket, ignored", n);
    return -1;
  }
  evutil_make_socket_nonblocking(fd);
  evutil_make_socket_closeonexec(fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
    boundPort = ntohs(sin6->sin6_port);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
    boundPort = ntohs(sin->sin_port);
  }
  LOG_INFO("listening socket %s:%u passed by socket activation", host, boundPort);
  return fd;
#else
  (void)boundPort;
  return -1;
#endif
}

}  // namespace ds::service
