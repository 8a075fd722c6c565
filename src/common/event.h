// RAII ownership for every libevent and OpenSSL handle, the process event loop with deferred
// deletion, and one-shot timers. Every handle in the project lives in one of these aliases.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/handle.h"

namespace ds {

using EventBasePtr = std::unique_ptr<event_base, FreeWith<event_base_free>>;
using EventPtr = std::unique_ptr<event, FreeWith<event_free>>;
// Frees a bufferevent together with its reader and writer (attachSocketIo), if it has them.
struct BufferEventFree {
  void operator()(bufferevent* bev) const;
};
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventFree>;
using EvBufferPtr = std::unique_ptr<evbuffer, FreeWith<evbuffer_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, FreeWith<evconnlistener_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, FreeWith<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, FreeWith<SSL_free>>;

struct EvDnsFree {
  void operator()(evdns_base* p) const { evdns_base_free(p, 1); }
};
using EvDnsBasePtr = std::unique_ptr<evdns_base, EvDnsFree>;

// Objects whose destruction must wait until the current callback has returned.
class Deletable {
 public:
  virtual ~Deletable() = default;
};

// The one event loop of a process. Owns the event_base, an evdns resolver and the list of
// objects waiting for deferred deletion (never free a session inside its own callback).
class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  event_base* base() const { return base_.get(); }
  evdns_base* dns() const { return dns_.get(); }

  // Destroys `obj` after the running callback returns.
  void deferDelete(std::unique_ptr<Deletable> obj);
  int run();
  void stop();
  // Stops once every connection handed to closeAfterFlush is done (its close frame or error
  // reply delivered and the peer gone), or after `bound`: for a clean exit on SIGTERM.
  void stopWhenFlushed(std::chrono::milliseconds bound = std::chrono::seconds(2));
  // Calls `cb` on SIGINT/SIGTERM (the loop keeps running; cb decides).
  void onSignals(std::function<void(int)> cb);
  // Flushes what `bev` still has to send, half-closes the socket, discards input until the peer
  // closes or `bound` passes, then frees it. For the last words of a connection (a SOCKS error
  // reply, an HTTP error response, a WebSocket close frame) so they are not lost to a reset.
  void closeAfterFlush(BufferEventPtr bev,
                       std::chrono::milliseconds bound = std::chrono::seconds(2));
  size_t lingering() const { return lingers_.size(); }

 private:
  static void onCleanup(evutil_socket_t, short, void* arg);
  static void onSignal(evutil_socket_t, short, void* arg);

  EventBasePtr base_;
  EvDnsBasePtr dns_;
  EventPtr cleanup_;
  std::vector<std::unique_ptr<Deletable>> pending_;
  struct Linger;
  std::set<Linger*> lingers_;
  std::vector<EventPtr> signals_;
  EventPtr drainPoll_;
  std::chrono::steady_clock::time_point drainUntil_;
  std::function<void(int)> signalCb_;
};

// A one-shot timer bound to a loop; disarmed when destroyed.
class Timer {
 public:
  Timer(Loop& loop, std::function<void()> cb);
  void arm(std::chrono::milliseconds after);
  // Runs the callback at the end of the current loop pass, after the callbacks already due in it
  // (no wait for the next poll of the sockets). A callback that does this for its own timer
  // runs again in the same pass: use arm(0) there.
  void armThisPass();
  void cancel();
  bool armed() const;

 private:
  static void onFire(evutil_socket_t, short, void* arg);
  std::function<void()> cb_;
  EventPtr ev_;
};

// Creates a socket bufferevent with the options every plain TCP stream in the project uses:
// deferred callbacks, reads in bulk and eager writes (attachSocketIo) of up to kMaxSocketIo per
// call.
BufferEventPtr newSocketBufferEvent(Loop& loop, evutil_socket_t fd);

// The most one system call reads or writes (attachSocketIo, bufferevent_set_max_single_write) on a
// data connection's socket.
inline constexpr size_t kMaxSocketIo = 256 * 1024;

// Reads and writes of the socket of `sock` besides libevent's own:
// - Reads in bulk. libevent 2.1 reads at most 4 KiB per system call into a socket bufferevent,
//   whatever bufferevent_set_max_single_read says, which makes every hop of a fast stream cost
//   a read (and a WebSocket frame, and a TLS record) per 4 KiB. A second reader takes up to
//   kMaxSocketIo per call, honours the read watermark and enabled state of `sock`, and runs its
//   read callback as libevent would. EOF is left to libevent's own reader, so it arrives after
//   all data; a socket error, which the kernel reports only once, is reported by this reader as
//   libevent would.
// - Eager writes. libevent writes only once epoll reports the socket writable, a loop turn and
//   two epoll_ctl calls after the data came. What is added to an empty output is written at the
//   end of the loop pass that added it (everything the pass queued in one writev); only what
//   the socket does not take then waits for the write event. Connects stay libevent's.
// `owner` is the bufferevent whose BufferEventPtr frees `sock`: `sock` itself, or a TLS filter
// over it. Both follow the socket when it is set later (connect, setfd).
void attachSocketIo(bufferevent* owner, bufferevent* sock);

// Enables reading and writing on `bev`, writing only if it is off. A socket bufferevent starts
// with writing on, and libevent registers its write event on every enable: on an idle socket
// that costs a poll for writability and a write callback with nothing written.
inline void enableReadWrite(bufferevent* bev) {
  bufferevent_enable(bev, (bufferevent_get_enabled(bev) & EV_WRITE) ? EV_READ : EV_READ | EV_WRITE);
}

// Fills `ss` from a numeric IPv4 or IPv6 address (no brackets) and a port; false otherwise.
bool numericSockaddr(const std::string& host, uint16_t port, sockaddr_storage& ss, socklen_t& len);

// Binds and listens on a numeric address; port 0 takes any free port. `boundPort` receives the
// port bound. Returns null with `err` set on failure.
ListenerPtr listenTcp(Loop& loop, const std::string& host, uint16_t port, evconnlistener_cb cb,
                      void* arg, uint16_t& boundPort, std::string& err);

// "1.2.3.4:5" / "[::1]:5" for log lines.
std::string peerName(evutil_socket_t fd);
// The same from the address accept() gave (no system call); "?" for null or another family.
std::string peerName(const sockaddr* sa);

}  // namespace ds
