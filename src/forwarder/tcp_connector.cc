// Outbound TCP connects with the errno of a failure mapped once.
#include "forwarder/tcp_connector.h"

#ifndef _WIN32
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/guard.h"
#include "common/net.h"

namespace ds {

namespace {

ConnectResult resultFor(int err) {
  switch (err) {
    case ECONNREFUSED:
      return ConnectResult::Refused;
    case ENETUNREACH:
      return ConnectResult::NetworkUnreachable;
    case EHOSTUNREACH:
      return ConnectResult::HostUnreachable;
    case ETIMEDOUT:
      return ConnectResult::TimedOut;
    default:
      return ConnectResult::Failed;
  }
}

// Keeps a bufferevent alive until the running callback has returned.
struct DeadBufferEvent : Deletable {
  explicit DeadBufferEvent(BufferEventPtr b) : bev(std::move(b)) {}
  BufferEventPtr bev;
};

}  // namespace

TcpConnector::TcpConnector(Loop& loop, Done done)
    : loop_(loop), done_(std::move(done)), timer_(loop, [this] {
        // Armed at 0 ms for a connect that failed at once, else the connector's bound.
        if (early_) return finish(*early_);
        finish({ConnectResult::TimedOut, "timed out"});
      }) {}

TcpConnector::~TcpConnector() {
  if (bev_) bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
}

void TcpConnector::begin(std::chrono::milliseconds timeout) {
  bev_ = newSocketBufferEvent(loop_, -1);
  bufferevent_setcb(bev_.get(), nullptr, nullptr, &TcpConnector::onEvent, this);
  if (timeout.count() > 0) timer_.arm(timeout);
}

void TcpConnector::connect(evdns_base* dns, const std::string& host, uint16_t port,
                           std::chrono::milliseconds timeout) {
  begin(timeout);
  if (bufferevent_socket_connect_hostname(bev_.get(), dns, AF_UNSPEC, host.c_str(), port) != 0) {
    // Failures found at once are reported from the loop, like every other outcome.
    early_ = ConnectOutcome{ConnectResult::Failed, "cannot connect"};
    timer_.arm(std::chrono::milliseconds(0));
  }
}

void TcpConnector::connect(const sockaddr* sa, int len, std::chrono::milliseconds timeout) {
  begin(timeout);
  if (bufferevent_socket_connect(bev_.get(), const_cast<sockaddr*>(sa), len) != 0) {
    int err = EVUTIL_SOCKET_ERROR();
    early_ = ConnectOutcome{resultFor(err), evutil_socket_error_to_string(err)};
    timer_.arm(std::chrono::milliseconds(0));
  }
}

void TcpConnector::onEvent(bufferevent* bev, short what, void* arg) {
  auto* self = static_cast<TcpConnector*>(arg);
  guarded(
      "outbound connect",
      [&] {
        if (what & BEV_EVENT_CONNECTED) {
          net::setNoDelay(bufferevent_getfd(bev));
          return self->finish({ConnectResult::Connected, ""});
        }
        int dnsErr = bufferevent_socket_get_dns_error(bev);
        if (dnsErr != 0) {
          return self->finish({ConnectResult::NameNotResolved, evutil_gai_strerror(dnsErr)});
        }
        int err = EVUTIL_SOCKET_ERROR();
        self->finish({resultFor(err), evutil_socket_error_to_string(err)});
      },
      [&] {
        self->finish({ConnectResult::Failed, "internal error"});
      });
}

void TcpConnector::finish(const ConnectOutcome& outcome) {
  if (!done_) return;
  timer_.cancel();
  if (bev_) bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  BufferEventPtr bev;
  if (outcome.result == ConnectResult::Connected) {
    bev = std::move(bev_);
  } else if (bev_) {
    // This may run inside the bufferevent's own callback: free it once that has returned.
    loop_.deferDelete(std::make_unique<DeadBufferEvent>(std::move(bev_)));
  }
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(bev), outcome);  // may destroy this object
}

}  // namespace ds
