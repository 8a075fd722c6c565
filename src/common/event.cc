// The process event loop, deferred deletion and timers.
#include "common/event.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <csignal>
#include <cstdlib>
#include <string>

#include "common/log.h"

namespace ds {

Loop::Loop() {
  base_.reset(event_base_new());
  if (!base_) {
    logFatal("event_base_new failed");
  }
  dns_.reset(evdns_base_new(base_.get(), EVDNS_BASE_INITIALIZE_NAMESERVERS));
  if (!dns_) {
    // Without resolv.conf name servers, numeric addresses and /etc/hosts still resolve.
    dns_.reset(evdns_base_new(base_.get(), 0));
    evdns_base_load_hosts(dns_.get(), nullptr);
  }
  cleanup_.reset(event_new(base_.get(), -1, 0, &Loop::onCleanup, this));
}

void Loop::deferDelete(std::unique_ptr<Deletable> obj) {
  if (!obj) return;
  pending_.push_back(std::move(obj));
  event_active(cleanup_.get(), 0, 0);
}

void Loop::onCleanup(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Loop*>(arg);
  // Destructors may defer more deletions; loop until the list stays empty.
  while (!self->pending_.empty()) {
    auto batch = std::move(self->pending_);
    self->pending_.clear();
    batch.clear();
  }
}

int Loop::run() { return event_base_dispatch(base_.get()); }

void Loop::stop() { event_base_loopexit(base_.get(), nullptr); }

void Loop::stopWhenFlushed(std::chrono::milliseconds bound) {
  drainUntil_ = std::chrono::steady_clock::now() + bound;
  drainPoll_.reset(event_new(
      base_.get(), -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<Loop*>(arg);
        if (self->lingers_.empty() || std::chrono::steady_clock::now() >= self->drainUntil_) {
          self->stop();
        }
      },
      this));
  // Polling every 10 ms keeps this simple; it runs only while the process is exiting.
  timeval tv{0, 10000};
  event_add(drainPoll_.get(), &tv);
}

void Loop::onSignals(std::function<void(int)> cb) {
  signalCb_ = std::move(cb);
  for (int sig : {SIGINT, SIGTERM}) {
    signals_.emplace_back(evsignal_new(base_.get(), sig, &Loop::onSignal, this));
    event_add(signals_.back().get(), nullptr);
  }
  std::signal(SIGPIPE, SIG_IGN);
}

void Loop::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Loop*>(arg);
  if (self->signalCb_) self->signalCb_(static_cast<int>(sig));
}

Timer::Timer(Loop& loop, std::function<void()> cb)
    : cb_(std::move(cb)), ev_(evtimer_new(loop.base(), &Timer::onFire, this)) {}

void Timer::arm(std::chrono::milliseconds after) {
  timeval tv{static_cast<time_t>(after.count() / 1000),
             static_cast<suseconds_t>((after.count() % 1000) * 1000)};
  evtimer_add(ev_.get(), &tv);
}

void Timer::cancel() { evtimer_del(ev_.get()); }

bool Timer::armed() const { return evtimer_pending(ev_.get(), nullptr) != 0; }

void Timer::onFire(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  self->cb_();
}

BufferEventPtr newSocketBufferEvent(Loop& loop, evutil_socket_t fd) {
  return BufferEventPtr(
      bufferevent_socket_new(loop.base(), fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
}

bool numericSockaddr(const std::string& host, uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  ss = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

ListenerPtr listenTcp(Loop& loop, const std::string& host, uint16_t port, evconnlistener_cb cb,
                      void* arg, uint16_t& boundPort, std::string& err) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  std::string name =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (!numericSockaddr(host, port, ss, len)) {
    err = "cannot listen on " + name + ": not a numeric IP address";
    return nullptr;
  }
  ListenerPtr l(evconnlistener_new_bind(loop.base(), cb, arg,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
                                        reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len)));
  if (!l) {
    err = "cannot listen on " + name + ": " + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    return nullptr;
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(evconnlistener_get_fd(l.get()), reinterpret_cast<sockaddr*>(&bound), &blen);
  boundPort = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return l;
}

std::string peerName(evutil_socket_t fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

}  // namespace ds

namespace ds {

// Owns a bufferevent during its last flush.
struct Loop::Linger {
  Loop* loop;
  BufferEventPtr bev;
  bool shut = false;

  static void onRead(bufferevent* bev, void*) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  static void onWrite(bufferevent*, void* arg) { static_cast<Linger*>(arg)->halfClose(); }
  static void onEvent(bufferevent*, short, void* arg) {
    // EOF, error or timeout: either way the conversation is over.
    auto* self = static_cast<Linger*>(arg);
    self->loop->lingers_.erase(self);
    delete self;
  }
  void halfClose() {
    if (shut || evbuffer_get_length(bufferevent_get_output(bev.get())) != 0) return;
    shut = true;
    evutil_socket_t fd = bufferevent_getfd(bev.get());
    if (fd >= 0) ::shutdown(fd, SHUT_WR);
  }
};

Loop::~Loop() {
  pending_.clear();
  for (Linger* l : lingers_) delete l;
  lingers_.clear();
  signals_.clear();
  drainPoll_.reset();
  cleanup_.reset();
  dns_.reset();
}

void Loop::closeAfterFlush(BufferEventPtr bev, std::chrono::milliseconds bound) {
  if (!bev) return;
  auto* linger = new Linger{this, std::move(bev)};
  lingers_.insert(linger);
  bufferevent* b = linger->bev.get();
  bufferevent_setcb(b, &Linger::onRead, &Linger::onWrite, &Linger::onEvent, linger);
  bufferevent_setwatermark(b, EV_WRITE, 0, 0);
  timeval tv{static_cast<time_t>(bound.count() / 1000),
             static_cast<suseconds_t>((bound.count() % 1000) * 1000)};
  bufferevent_set_timeouts(b, &tv, &tv);
  bufferevent_enable(b, EV_READ | EV_WRITE);
  Linger::onRead(b, linger);
  linger->halfClose();
}

}  // namespace ds
