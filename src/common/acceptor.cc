// Accepting with admission limits and without spinning on accept errors.
#include "common/acceptor.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "common/guard.h"
#include "common/log.h"

namespace ds {

struct Admission::Ticket::State {
  size_t open = 0;
  std::map<std::string, uint64_t> perKey;
};

Admission::Ticket::Ticket(Ticket&& o) noexcept
    : state_(std::move(o.state_)), key_(std::move(o.key_)) {}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    Ticket gone(std::move(*this));
    state_ = std::move(o.state_);
    key_ = std::move(o.key_);
  }
  return *this;
}

Admission::Ticket::~Ticket() {
  if (!state_) return;
  --state_->open;
  auto it = state_->perKey.find(key_);
  if (it != state_->perKey.end() && --it->second == 0) state_->perKey.erase(it);
}

Admission::Admission(AdmissionLimits limits)
    : limits_(limits), state_(std::make_shared<Ticket::State>()) {}

std::string Admission::sourceKey(const sockaddr* sa) {
  if (!sa) return "?";
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    return std::string(reinterpret_cast<const char*>(&a->sin_addr), 4);
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    const auto* b = reinterpret_cast<const char*>(&a->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) return std::string(b + 12, 4);
    return std::string(b, 8);
  }
  return "local";  // Unix sockets: one source
}

Admission::Ticket Admission::admit(const sockaddr* peer, Verdict& why) {
  Ticket t;
  std::string key = sourceKey(peer);
  if (limits_.total && state_->open >= limits_.total) {
    why = Verdict::Total;
    return t;
  }
  uint64_t& n = state_->perKey[key];
  if (limits_.perAddress && n >= limits_.perAddress) {
    if (n == 0) state_->perKey.erase(key);
    why = Verdict::PerAddress;
    return t;
  }
  ++n;
  ++state_->open;
  t.state_ = state_;
  t.key_ = std::move(key);
  why = Verdict::Ok;
  return t;
}

size_t Admission::open() const { return state_->open; }

size_t Admission::openFrom(const sockaddr* peer) const {
  auto it = state_->perKey.find(sourceKey(peer));
  return it == state_->perKey.end() ? 0 : it->second;
}

Acceptor::Acceptor(Loop& loop, AdmissionLimits limits, OnAccept onAccept, std::string name)
    : loop_(loop),
      admission_(limits),
      onAccept_(std::move(onAccept)),
      name_(std::move(name)),
      resume_(loop, [this] {
        if (listener_) evconnlistener_enable(listener_.get());
      }) {}

Acceptor::~Acceptor() = default;

bool Acceptor::listen(const std::string& host, uint16_t port, uint16_t& boundPort,
                      std::string& err) {
  listener_ = listenTcp(loop_, host, port, &Acceptor::onAccept, this, boundPort, err);
  if (!listener_) return false;
  attach();
  return true;
}

bool Acceptor::adopt(evutil_socket_t fd, std::string& err) {
  evutil_make_socket_nonblocking(fd);
  listener_.reset(
      evconnlistener_new(loop_.base(), &Acceptor::onAccept, this, LEV_OPT_CLOSE_ON_FREE, -1, fd));
  if (!listener_) {
    err = name_ + ": cannot use the inherited socket";
    return false;
  }
  attach();
  return true;
}

void Acceptor::attach() { evconnlistener_set_error_cb(listener_.get(), &Acceptor::onError); }

void Acceptor::close() {
  resume_.cancel();
  listener_.reset();
}

void Acceptor::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int, void* arg) {
  auto* self = static_cast<Acceptor*>(arg);
  guarded(
      self->name_.c_str(),
      [&] {
        Admission::Verdict why;
        Admission::Ticket t = self->admission_.admit(sa, why);
        if (!t) {
          ++self->refused_;
          // A flood must not become a flood of log lines: one line a second at most.
          auto now = std::chrono::steady_clock::now();
          if (now - self->lastRefusalLog_ > std::chrono::seconds(1)) {
            self->lastRefusalLog_ = now;
            LOG_WARN("%s: connection from %s refused: %s (%llu refused so far)",
                     self->name_.c_str(), peerName(fd).c_str(),
                     why == Admission::Verdict::Total ? "too many connections"
                                                      : "too many connections from that address",
                     static_cast<unsigned long long>(self->refused_));
          }
          evutil_closesocket(fd);
          return;
        }
        self->onAccept_(fd, sa, std::move(t));
      },
      [] {});
}

void Acceptor::onError(evconnlistener* l, void* arg) {
  auto* self = static_cast<Acceptor*>(arg);
  int err = EVUTIL_SOCKET_ERROR();
  ++self->acceptErrors_;
  // Out of descriptors or memory: the pending connection stays queued and the listener stays
  // readable, so retrying at once would spin. Pause, then try again.
  if (self->acceptErrors_ == 1 || self->acceptErrors_ % 100 == 0) {
    LOG_WARN("%s: accept failed: %s; pausing %lld ms (%llu accept errors)", self->name_.c_str(),
             evutil_socket_error_to_string(err), static_cast<long long>(kPause.count()),
             static_cast<unsigned long long>(self->acceptErrors_));
  }
  evconnlistener_disable(l);
  self->resume_.arm(kPause);
}

}  // namespace ds
