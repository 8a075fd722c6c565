// The process event loop, deferred deletion and timers.
#include "common/event.h"

#include <arpa/inet.h>
#include <event2/bufferevent_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "common/guard.h"
#include "common/log.h"
#include "common/net.h"

namespace ds {

Loop::Loop() {
  // epoll: the changes of one loop turn go to the kernel together, and a change undone within
  // the turn (a write event added and removed again) never reaches it.
  std::unique_ptr<event_config, decltype(&event_config_free)> cfg(event_config_new(),
                                                                  &event_config_free);
  if (cfg) event_config_set_flag(cfg.get(), EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_.reset(cfg ? event_base_new_with_config(cfg.get()) : event_base_new());
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
#ifdef SIGPIPE  // Winsock has none
  std::signal(SIGPIPE, SIG_IGN);
#endif
}

void Loop::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Loop*>(arg);
  guarded("signal handler", [&] {
    if (self->signalCb_) self->signalCb_(static_cast<int>(sig));
  });
}

Timer::Timer(Loop& loop, std::function<void()> cb)
    : cb_(std::move(cb)), ev_(evtimer_new(loop.base(), &Timer::onFire, this)) {}

void Timer::arm(std::chrono::milliseconds after) {
  timeval tv{static_cast<decltype(timeval::tv_sec)>(after.count() / 1000),
             static_cast<decltype(timeval::tv_usec)>((after.count() % 1000) * 1000)};
  evtimer_add(ev_.get(), &tv);
}

void Timer::armThisPass() {
  if (!armed()) event_active(ev_.get(), EV_TIMEOUT, 0);
}

void Timer::cancel() { evtimer_del(ev_.get()); }

bool Timer::armed() const { return evtimer_pending(ev_.get(), nullptr) != 0; }

void Timer::onFire(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  guarded("timer", [self] { self->cb_(); });
}

BufferEventPtr newSocketBufferEvent(Loop& loop, evutil_socket_t fd) {
  BufferEventPtr bev(
      bufferevent_socket_new(loop.base(), fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  if (!bev) return nullptr;
  bufferevent_set_max_single_write(bev.get(), kMaxSocketIo);
  attachSocketIo(bev.get(), bev.get());
  return bev;
}

namespace {

// The socket of a socket bufferevent, made non-blocking once per socket (libevent expects
// non-blocking sockets, and a blocking one would make an eager write wait). One per bufferevent,
// shared by its reader and writer: a socket set later (connect, setfd) costs one fcntl.
class NonBlockingFd {
 public:
  explicit NonBlockingFd(bufferevent* sock) : sock_(sock), seen_(bufferevent_getfd(sock)) {
    if (seen_ >= 0) evutil_make_socket_nonblocking(seen_);
  }
  evutil_socket_t get() {
    evutil_socket_t fd = bufferevent_getfd(sock_);
    if (fd >= 0 && fd != seen_) evutil_make_socket_nonblocking(fd);
    seen_ = fd;
    return fd;
  }

 private:
  bufferevent* sock_;
  evutil_socket_t seen_;
};

// Reads on after libevent's reader. That reader takes what FIONREAD announces but at most
// kLibeventRead; when it took that much, more is likely waiting, and this reads it in the same
// callback, up to kMaxSocketIo. Small messages cost libevent's read alone; nothing else watches
// the socket.
class BulkReader {
 public:
  BulkReader(bufferevent* sock, NonBlockingFd& fd)
      : sock_(sock),
        in_(bufferevent_get_input(sock)),
        errorEv_(event_new(bufferevent_get_base(sock), -1, 0, &BulkReader::onError, this)),
        nonBlocking_(fd) {
    if (errorEv_) changed_ = evbuffer_add_cb(in_, &BulkReader::onInputChanged, this);
  }
  ~BulkReader() {
    if (changed_) evbuffer_remove_cb_entry(in_, changed_);
  }
  BulkReader(const BulkReader&) = delete;
  BulkReader& operator=(const BulkReader&) = delete;

 private:
  // The most libevent 2.1 reads into a socket bufferevent per call (EVBUFFER_MAX_READ).
  static constexpr size_t kLibeventRead = 4096;
  // Reads up to this size go through a buffer on the stack and are added at their exact size:
  // reserving room in the input would allocate a chunk that size for every small message, and
  // those chunks, freed between long-lived allocations, fragment the heap (about 8 KiB of RSS
  // per TLS connection at 16 KiB). Above it, reads go straight into reserved space.
  static constexpr size_t kSmallRead = 16 * 1024;

  // How much may be read now: up to the read high watermark (or kMaxSocketIo without one).
  size_t room() const {
    if (!(bufferevent_get_enabled(sock_) & EV_READ)) return 0;
    size_t high = 0;
    bufferevent_getwatermark(sock_, EV_READ, nullptr, &high);
    size_t limit = high != 0 ? high : kMaxSocketIo;
    size_t have = evbuffer_get_length(in_);
    return have >= limit ? 0 : std::min(limit - have, kMaxSocketIo);
  }

  // Runs inside libevent's read, between its read and the read callback, with the end of the
  // input unfrozen for it.
  static void onInputChanged(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    auto* self = static_cast<BulkReader*>(arg);
    if (self->committing_ || info->n_added < kLibeventRead) return;
    self->readMore();
  }

  void readMore() {
    evutil_socket_t fd = nonBlocking_.get();
    size_t room = this->room();
    if (fd < 0 || room == 0) return;
    // The read size follows what the socket delivers: it doubles while reads fill it.
    size_t want = std::min(room, next_);
    ssize_t got = readInto(fd, want);
    int err = errno;
    // EOF (0) stays readable: libevent's reader reports it on its next read, after the data.
    if (got == 0 || (got < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))) return;
    if (got < 0) {
      // The kernel reports a socket error once, so libevent's next read would see only EOF:
      // it is reported from here, as libevent would, once the data read so far is delivered.
      if (err != ENOTSOCK) {
        error_ = err;
        event_active(errorEv_.get(), EV_READ, 0);
      }
      return;
    }
    if (static_cast<size_t>(got) == want) {
      next_ = std::min(next_ * 2, kMaxSocketIo);
    } else if (static_cast<size_t>(got) < want / 4) {
      next_ = std::max(next_ / 2, kSmallRead);
    }
  }

  static void onError(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<BulkReader*>(arg);
    bufferevent_disable(self->sock_, EV_READ);
    errno = self->error_;
    bufferevent_trigger_event(self->sock_, BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
  }

  // One read into up to `want` bytes at the end of the input; what was read is committed.
  // Returns what recv/recvmsg returned (errno is kept).
  ssize_t readInto(evutil_socket_t fd, size_t want) {
    if (want <= kSmallRead) {
      char buf[kSmallRead];
      ssize_t got = ::recv(fd, buf, want, MSG_DONTWAIT);
      if (got <= 0) return got;
      int saved = errno;
      committing_ = true;
      evbuffer_add(in_, buf, static_cast<size_t>(got));
      committing_ = false;
      errno = saved;
      return got;
    }
    evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(in_, static_cast<ev_ssize_t>(want), vec, 2);
    if (n <= 0) {
      errno = ENOMEM;
      return -1;
    }
    iovec iov[2];
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
      size_t len = std::min(vec[i].iov_len, want - total);
      iov[i] = {vec[i].iov_base, len};
      total += len;
    }
    // MSG_DONTWAIT whatever the socket's mode. A descriptor that is not a socket fails with
    // ENOTSOCK and is left to libevent.
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t got = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (got <= 0) return got;
    int saved = errno;
    size_t left = static_cast<size_t>(got);
    int used = 0;
    for (int i = 0; i < n && left > 0; ++i, ++used) {
      vec[i].iov_len = std::min(left, iov[i].iov_len);
      left -= vec[i].iov_len;
    }
    committing_ = true;
    evbuffer_commit_space(in_, vec, used);
    committing_ = false;
    errno = saved;
    return got;
  }

  bufferevent* sock_;
  evbuffer* in_;
  EventPtr errorEv_;
  NonBlockingFd& nonBlocking_;
  evbuffer_cb_entry* changed_ = nullptr;
  int error_ = 0;
  bool committing_ = false;
  size_t next_ = kSmallRead;
};

class EagerWriter {
 public:
  EagerWriter(bufferevent* sock, NonBlockingFd& fd)
      : sock_(sock),
        out_(bufferevent_get_output(sock)),
        ev_(event_new(bufferevent_get_base(sock), -1, 0, &EagerWriter::onPassEnd, this)),
        nonBlocking_(fd) {
    if (ev_) changed_ = evbuffer_add_cb(out_, &EagerWriter::onOutputChanged, this);
  }
  ~EagerWriter() {
    if (changed_) evbuffer_remove_cb_entry(out_, changed_);
  }
  EagerWriter(const EagerWriter&) = delete;
  EagerWriter& operator=(const EagerWriter&) = delete;

 private:
  // Runs before libevent's own callback on the same output (evbuffer_add_cb puts the newest
  // first), so libevent's write event tells what it was doing before this data came.
  static void onOutputChanged(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    auto* self = static_cast<EagerWriter*>(arg);
    if (info->n_added == 0 || info->orig_size != 0 || self->scheduled_) return;
    // With nothing queued, libevent's write event is pending only while the socket connects (or
    // once after an enable): that write, and the connect it reports, stay libevent's.
    if (event_pending(&self->sock_->ev_write, EV_WRITE, nullptr)) return;
    self->scheduled_ = true;
    self->fd_ = bufferevent_getfd(self->sock_);
    event_active(self->ev_.get(), EV_WRITE, 0);
  }

  static void onPassEnd(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<EagerWriter*>(arg);
    self->scheduled_ = false;
    bufferevent* sock = self->sock_;
    evutil_socket_t fd = self->nonBlocking_.get();
    // A socket set or connected since the data came (fd_) is libevent's to write: it may be
    // connecting.
    if (fd < 0 || fd != self->fd_ || !(bufferevent_get_enabled(sock) & EV_WRITE) ||
        evbuffer_get_length(self->out_) == 0) {
      return;
    }
    // A socket bufferevent keeps the start of its output frozen except while it writes itself.
    evbuffer_unfreeze(self->out_, 1);
    int n = evbuffer_write_atmost(self->out_, fd, static_cast<ev_ssize_t>(kMaxSocketIo));
    evbuffer_freeze(self->out_, 1);
    // Nothing written (a full socket, an error): libevent's pending write event takes over and
    // reports what there is to report.
    if (n <= 0) return;
    // All written: the write event libevent added for this data is withdrawn within the same
    // pass, so epoll never hears of it. Its callback would have run the write callback on a
    // later turn; it runs deferred, after the callbacks already due (an owner hears of an error
    // that came with this data before anything the write callback finds out).
    if (evbuffer_get_length(self->out_) == 0) event_del(&sock->ev_write);
    bufferevent_trigger(sock, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
  }

  bufferevent* sock_;
  evbuffer* out_;
  EventPtr ev_;
  NonBlockingFd& nonBlocking_;
  evbuffer_cb_entry* changed_ = nullptr;
  evutil_socket_t fd_ = -1;
  bool scheduled_ = false;
};

// What drives one socket bufferevent's reads and writes besides libevent.
struct SocketIo {
  NonBlockingFd fd;  // before the reader and the writer, which hold it
  BulkReader reader;
  EagerWriter writer;
  explicit SocketIo(bufferevent* sock) : fd(sock), reader(sock, fd), writer(sock, fd) {}
};

// By the bufferevent that owns them; one event loop per thread.
thread_local std::unordered_map<bufferevent*, std::unique_ptr<SocketIo>> socketIo;

}  // namespace

void attachSocketIo(bufferevent* owner, bufferevent* sock) {
  socketIo[owner] = std::make_unique<SocketIo>(sock);
}

void BufferEventFree::operator()(bufferevent* bev) const {
  // The reader and writer go first: they watch the socket that freeing the bufferevent closes.
  if (!socketIo.empty()) socketIo.erase(bev);
  bufferevent_free(bev);
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
  std::string name = net::formatHostPort(host, port);
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
  return peerName(reinterpret_cast<const sockaddr*>(&ss));
}

std::string peerName(const sockaddr* sa) {
  if (!sa) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return net::formatHostPort(host, port);
  }
  if (sa->sa_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return net::formatHostPort(host, port);
  }
  return "?";
}

}  // namespace ds

namespace ds {

// Owns a bufferevent during its last flush.
struct Loop::Linger : Deletable {
  Loop* loop;
  BufferEventPtr bev;
  bool shut = false;
  bool peerDone = false;  // the peer half-closed first; it may still be reading
  bool finished = false;
  // A filter (TLS) passes its output down to a socket bufferevent; the flush is done only when
  // that one is empty too, and only its draining says so.
  evbuffer* socketOutput = nullptr;
  evbuffer_cb_entry* socketDrained = nullptr;

  Linger(Loop* l, BufferEventPtr b) : loop(l), bev(std::move(b)) {
    if (bufferevent* sock = bufferevent_get_underlying(bev.get())) {
      socketOutput = bufferevent_get_output(sock);
      socketDrained = evbuffer_add_cb(socketOutput, &Linger::onSocketDrained, this);
    }
  }
  ~Linger() override {
    if (socketDrained) evbuffer_remove_cb_entry(socketOutput, socketDrained);
  }
  Linger(const Linger&) = delete;
  Linger& operator=(const Linger&) = delete;

  static void onRead(bufferevent* bev, void*) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  static void onWrite(bufferevent*, void* arg) { static_cast<Linger*>(arg)->halfClose(); }
  static void onSocketDrained(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    if (info->n_deleted != 0) static_cast<Linger*>(arg)->halfClose();
  }
  static void onEvent(bufferevent* b, short what, void* arg) {
    auto* self = static_cast<Linger*>(arg);
    if (self->finished) return;
    // A peer that half-closed first still reads: what is queued for it goes out before the end.
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !self->shut) {
      self->peerDone = true;
      bufferevent_disable(b, EV_READ);
      return;
    }
    // Otherwise (EOF after our half-close, an error, a timeout) the conversation is over.
    self->loop->lingers_.erase(self);
    delete self;
  }
  void halfClose() {
    if (shut || evbuffer_get_length(bufferevent_get_output(bev.get())) != 0) return;
    if (socketOutput && evbuffer_get_length(socketOutput) != 0) return;
    shut = true;
    evutil_socket_t fd = bufferevent_getfd(bev.get());
    if (fd >= 0) ::shutdown(fd, SHUT_WR);
    // Both directions are done. This may run inside libevent's write path: the end waits.
    if (peerDone) {
      finished = true;
      loop->lingers_.erase(this);
      loop->deferDelete(std::unique_ptr<Deletable>(this));
    }
  }
};

Loop::~Loop() {
  pending_.clear();
  for (Linger* l : lingers_) delete l;
  lingers_.clear();
  // A freed bufferevent stays allocated while a deferred callback of it is pending (the callback
  // holds a reference), and a TLS filter frees its socket bufferevent only when it is finalized.
  // Freeing the base cancels such callbacks without dropping their references, so a few turns
  // let them run (their callbacks are cleared) and the bufferevents go.
  for (int i = 0; i < 4 && event_base_get_num_events(base_.get(), EVENT_BASE_COUNT_ACTIVE) > 0;
       ++i) {
    event_base_loop(base_.get(), EVLOOP_NONBLOCK);
  }
  signals_.clear();
  drainPoll_.reset();
  cleanup_.reset();
  dns_.reset();
}

void Loop::closeAfterFlush(BufferEventPtr bev, std::chrono::milliseconds bound) {
  if (!bev) return;
  auto* linger = new Linger(this, std::move(bev));
  lingers_.insert(linger);
  bufferevent* b = linger->bev.get();
  bufferevent_setcb(b, &Linger::onRead, &Linger::onWrite, &Linger::onEvent, linger);
  bufferevent_setwatermark(b, EV_WRITE, 0, 0);
  timeval tv{static_cast<decltype(timeval::tv_sec)>(bound.count() / 1000),
             static_cast<decltype(timeval::tv_usec)>((bound.count() % 1000) * 1000)};
  bufferevent_set_timeouts(b, &tv, &tv);
  bufferevent_enable(b, EV_READ | EV_WRITE);
  Linger::onRead(b, linger);
  linger->halfClose();
}

}  // namespace ds
