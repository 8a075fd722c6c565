// A stream request from the allow-list decision to a connected target (pending_stream.h).
#include "agent/pending_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#ifndef _WIN32
#include <sys/un.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/guard.h"
#include "common/log.h"
#include "common/net.h"

namespace ds::agent {

bool setTcpKeepalive(evutil_socket_t fd) {
  if (fd < 0) return false;
  int on = 1, idle = 30, interval = 10, probes = 3;
  return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) == 0;
}

namespace {

std::string target(const std::string& host, uint16_t port) {
  return net::formatHostPort(host, port);
}

// At most this many addresses of one name are tried (a bounded answer to a hostile resolver).
constexpr size_t kMaxAddresses = 16;

}  // namespace

std::string describe(const proto::StreamRequest& req) {
  std::string s = "caller " + (req.caller.policy.empty() ? std::string("(none)")
                                                         : printable(req.caller.policy));
  if (!req.caller.user.empty()) s += ", user " + printable(req.caller.user) + " (asserted)";
  s += ", target ";
  s += req.socketPath.empty() ? printable(target(req.host, req.port))
                              : "unix:" + printable(req.socketPath);
  if (!req.name.empty()) s += ", name '" + printable(req.name) + "'";
  return s;
}

PendingStream::PendingStream(const Env& env, const proto::StreamRequest& req, std::string logId)
    : loop_(env.loop),
      logId_(std::move(logId)),
      who_(describe(req)),
      rules_(env.rules),
      dns_(env.dns),
      connectTimeout_(env.connectTimeout),
      requested_(req.host),
      socketPath_(req.socketPath),
      caller_(req.caller),
      port_(req.port),
      timer_(env.loop, [this] { onTimeout(); }) {}

PendingStream::~PendingStream() { cancelLookups(); }

void PendingStream::abandon() {
  stopped_ = true;
  decided_ = true;
  connecting_ = false;
  timer_.cancel();
  // This may run inside the connector's callback.
  if (connector_) loop_.deferDelete(std::move(connector_));
  cancelLookups();
}

void PendingStream::cancelLookups() {
  for (Lookup* l : lookups_) {
    l->owner = nullptr;
    // The callback still runs once (with EVUTIL_EAI_CANCEL) and frees the lookup.
    if (l->req) evdns_getaddrinfo_cancel(l->req);
  }
  lookups_.clear();
}

void PendingStream::start() {
  timer_.arm(connectTimeout_);
  if (!socketPath_.empty()) return startSocket();
  std::string why;
  auto host = parseHost(requested_, why);
  if (!host) {
    return fail(reject::kBadHost,
                "\"" + printable(requested_) + "\" is not a valid host (" + why + ")");
  }
  host_ = *host;
  shown_ = target(host_.toString(), port_);
  if (!anyRuleFor(rules_, port_, &caller_)) return notAllowed();
  std::vector<std::string> names = namesToResolve(rules_, host_, port_, &caller_);
  starting_ = true;
  for (const std::string& name : names) {
    auto* l = new Lookup{this, nullptr, name};
    lookups_.push_back(l);
    evutil_addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // May answer at once (/etc/hosts, errors): then `l` is gone when this returns null.
    evdns_getaddrinfo_request* req =
        evdns_getaddrinfo(dns_, name.c_str(), nullptr, &hints, &onLookup, l);
    if (req) l->req = req;
  }
  starting_ = false;
  if (!decided_ && lookups_.empty()) decide();
}

void PendingStream::onLookup(int result, evutil_addrinfo* res, void* arg) {
  auto* l = static_cast<Lookup*>(arg);
  PendingStream* self = l->owner;
  if (self) std::erase(self->lookups_, l);
  if (self && !self->decided_) {
    guarded(
        "allow-list lookup", [&] { self->onResolved(l->name, result, res); },
        [&] { self->fail(reject::kUnreachable, "internal error"); });
  }
  if (res) evutil_freeaddrinfo(res);
  delete l;
}

void PendingStream::onResolved(const std::string& name, int result, evutil_addrinfo* res) {
  std::vector<IpAddress>& out = resolved_[name];
  for (evutil_addrinfo* ai = res; ai && out.size() < kMaxAddresses; ai = ai->ai_next) {
    auto a = IpAddress::fromSockaddr(ai->ai_addr);
    if (a && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  if (result != 0) {
    LOG_DEBUG("stream %s: resolving %s: %s", logId_.c_str(), name.c_str(),
              evutil_gai_strerror(result));
    if (!host_.isAddress && name == host_.name) lookupError_ = result;
  }
  if (lookups_.empty() && !starting_) decide();
}

// Every lookup answered: keep the addresses a rule covers, or refuse.
void PendingStream::decide() {
  decided_ = true;
  std::vector<IpAddress> candidates;
  if (host_.isAddress) {
    candidates.push_back(host_.address);
  } else {
    candidates = resolved_[host_.name];
    if (candidates.empty()) {
      return fail(reject::kUnreachable,
                  "cannot resolve " + host_.name + ": " +
                      (lookupError_ ? evutil_gai_strerror(lookupError_) : "no address"));
    }
  }
  allowed_ = allowedAddresses(rules_, port_, candidates, resolved_, &caller_);
  if (allowed_.empty()) {
    std::string addresses;
    if (!host_.isAddress) {
      for (const IpAddress& a : candidates) {
        addresses += (addresses.empty() ? " (" : ", ") + a.toString();
      }
      addresses += ")";
    }
    return notAllowed(addresses);
  }
  std::string by;
  for (const Allowed& a : allowed_) {
    by +=
        (by.empty() ? "" : ", ") + ("address " + a.address.toString()) + " by rule " + a.rule->text;
  }
  LOG_INFO("stream %s: %s allowed: %s (%s)", logId_.c_str(), shown_.c_str(), by.c_str(),
           who_.c_str());
  connectNext();
}

// The same reason whether no rule covers the target or the rules that do admit other callers:
// a refusal does not tell who else may connect.
void PendingStream::notAllowed(const std::string& addresses) {
  fail(reject::kPortNotAllowed, shown_ + addresses + " is not in the device's allow-list");
}

// A Unix socket target: a rule naming the path and admitting the caller, then a connect.
void PendingStream::startSocket() {
  shown_ = "unix:" + printable(socketPath_);
  current_ = shown_;
  decided_ = true;
  const Rule* rule = socketRule(rules_, socketPath_, &caller_);
  if (!rule) return notAllowed();
  LOG_INFO("stream %s: %s allowed: by rule %s (%s)", logId_.c_str(), shown_.c_str(),
           rule->text.c_str(), who_.c_str());
  connectSocket();
}

// A non-blocking connect to a local stream socket completes or fails at once (Linux), so the
// outcome is known here; the socket then takes the TCP targets' path (bufferevent and pump).
void PendingStream::connectSocket() {
#ifdef _WIN32
  // No socket rule compiles on Windows (settings.cc), so this is not reached.
  fail(reject::kUnreachable, "Unix socket targets are not supported on this device");
#else
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socketPath_.size() >= sizeof sa.sun_path) {
    return fail(reject::kUnreachable, shown_ + ": path too long");
  }
  std::memcpy(sa.sun_path, socketPath_.data(), socketPath_.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    return fail(reject::kUnreachable, "cannot create a socket: " + std::string(strerror(e)));
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    close(fd);
    switch (e) {
      case ENOENT:
      case ENOTDIR:
        return fail(reject::kConnectionRefused, "no socket at " + shown_);
      case ECONNREFUSED:
        return fail(reject::kConnectionRefused, "connection to " + shown_ + " refused");
      case EAGAIN:
        return fail(reject::kConnectionRefused,
                    shown_ + " accepts no more connections (listen queue full)");
      case EACCES:
      case EPERM:
        // The device's own permissions refuse the agent: a decision of the device.
        return fail(reject::kPortNotAllowed, "the agent may not open " + shown_);
      default:
        return fail(reject::kUnreachable,
                    "cannot connect to " + shown_ + ": " + std::string(strerror(e)));
    }
  }
  BufferEventPtr bev = newSocketBufferEvent(loop_, fd);
  if (!bev) {
    close(fd);
    return fail(reject::kUnreachable, "internal error");
  }
  connected(std::move(bev));
#endif
}

void PendingStream::onTimeout() {
  if (connecting_) {
    fail(reject::kTargetTimeout, "connect to " + shown_ + " timed out after " +
                                     std::to_string(connectTimeout_.count()) + " ms");
  } else if (!decided_) {
    fail(reject::kTargetTimeout, "resolving names for " + shown_ + " took longer than " +
                                     std::to_string(connectTimeout_.count()) + " ms");
  }
}

// Connects to the next allowed address; when none is left, fails with the last error.
void PendingStream::connectNext() {
  if (next_ >= allowed_.size()) {
    connecting_ = false;
    return fail(lastCode_ ? lastCode_ : reject::kUnreachable, lastReason_);
  }
  const IpAddress& a = allowed_[next_++].address;
  current_ = target(a.toString(), port_);
  connecting_ = true;
  // This may run inside the previous connector's callback.
  if (connector_) loop_.deferDelete(std::move(connector_));
  connector_ =
      std::make_unique<TcpConnector>(loop_, [this](BufferEventPtr bev, const ConnectOutcome& o) {
        guarded(
            "target connect", [&] { onConnect(std::move(bev), o); },
            [&] { fail(reject::kUnreachable, "internal error"); });
      });
  sockaddr_storage sa;
  socklen_t len = a.toSockaddr(port_, sa);
  // The stream's own timer bounds all attempts together.
  connector_->connect(reinterpret_cast<sockaddr*>(&sa), static_cast<int>(len),
                      std::chrono::milliseconds(0));
}

void PendingStream::onConnect(BufferEventPtr bev, const ConnectOutcome& o) {
  if (stopped_) return;  // refused or abandoned meanwhile: `bev` closes here
  if (bev) {
    connecting_ = false;
    // A peer on this machine cannot vanish unseen (its kernel resets or closes the
    // connection), so only a target elsewhere needs probes to find a dead link.
    if (!allowed_[next_ - 1].address.isLoopback()) setTcpKeepalive(bufferevent_getfd(bev.get()));
    return connected(std::move(bev));
  }
  if (o.result == ConnectResult::Refused) {
    lastCode_ = reject::kConnectionRefused;
    lastReason_ = "connection to " + current_ + " refused";
  } else if (o.result == ConnectResult::TimedOut) {
    lastCode_ = reject::kTargetTimeout;
    lastReason_ = "connect to " + current_ + " timed out";
  } else {
    lastCode_ = reject::kUnreachable;
    lastReason_ = "cannot connect to " + current_ + ": " + o.detail;
  }
  LOG_DEBUG("stream %s: %s", logId_.c_str(), lastReason_.c_str());
  connectNext();
}

void PendingStream::connected(BufferEventPtr bev) {
  timer_.cancel();
  tcp_ = std::move(bev);
  openSide();
}

void PendingStream::fail(const std::string& code, const std::string& reason) {
  if (stopped_) return;
  abandon();
  LOG_INFO("stream %s: rejected (%s): %s (%s)", logId_.c_str(), code.c_str(), reason.c_str(),
           who_.c_str());
  refused(code, reason);
}

}  // namespace ds::agent
