// Warm TLS connections to the hub and stream-side upgrades over them.
#include "hubclient/warm_pool.h"

#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>

#include <algorithm>

#include "common/guard.h"
#include "common/http.h"
#include "common/http_exchange.h"
#include "common/log.h"
#include "common/net.h"
#include "common/protocol.h"
#include "common/tls.h"
#include "common/ws_frame.h"

namespace ds::hubclient {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kMaxErrorBody = 64 * 1024;

// "wss://h:p/a/b" -> "h:p" parsed, and "/a/b".
bool splitUrl(const std::string& url, net::Endpoint& where, std::string& path) {
  auto parsed = net::splitUrl(url);
  if (!parsed) return false;
  where = {parsed->url.host, parsed->url.port};
  path = std::move(parsed->path);
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry: one connection being made or ready.

class WarmPool::Entry : public Deletable {
 public:
  explicit Entry(WarmPool& pool) : pool_(pool), timer_(pool.loop_, [this] { fail(); }) {}

  bool start() {
    bev_ = tls::newClient(pool_.loop_, pool_.hub_.ssl, pool_.hub_.serverName);
    if (!bev_) return false;
    if (pool_.session_) {
      SSL_set_session(bufferevent_openssl_get_ssl(bev_.get()), pool_.session_.get());
    }
    bufferevent_setcb(bev_.get(), &Entry::onRead, nullptr, &Entry::onEvent, this);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    timer_.arm(pool_.opts_.connectTimeout);
    if (tls::connect(bev_.get(), pool_.loop_.dns(), pool_.hub_.host, pool_.hub_.port) != 0) {
      // Reported from the timer, never from inside start().
      timer_.arm(milliseconds(0));
    }
    return true;
  }

  bool ready() const { return ready_; }

  // Hands the ready connection over; the entry is then empty.
  BufferEventPtr release() {
    timer_.cancel();
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    ready_ = false;
    return std::move(bev_);
  }

 private:
  static void onEvent(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<Entry*>(arg);
    guarded(
        "warm connection", [&] { self->event(bev, what); }, [&] { self->fail(); });
  }
  void event(bufferevent* bev, short what) {
    Entry* self = this;
    if (what & BEV_EVENT_CONNECTED) {
      // bufferevent_openssl reports CONNECTED once the TLS handshake is complete.
      net::setNoDelay(bufferevent_getfd(bev));
      self->ready_ = true;
      self->timer_.arm(self->pool_.opts_.maxAge);
      self->pool_.failures_ = 0;
      return;
    }
    if (!self->ready_) {
      LOG_DEBUG("warm connection to %s:%u failed: %s", self->pool_.hub_.host.c_str(),
                self->pool_.hub_.port, tls::lastError(bev).c_str());
      return self->fail();
    }
    self->pool_.drop(self);  // the hub closed an idle connection
  }
  static void onRead(bufferevent* bev, void* arg) {
    auto* self = static_cast<Entry*>(arg);
    // The hub speaks first only to give up on the connection (408); it also delivers the TLS
    // session ticket, which bufferevent_openssl consumes without data.
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    guarded("warm connection", [&] { self->pool_.drop(self); });
  }
  void fail() {
    if (!ready_) ++pool_.failures_;
    pool_.drop(this);
  }

  WarmPool& pool_;
  Timer timer_;
  BufferEventPtr bev_;
  bool ready_ = false;
};

// ---------------------------------------------------------------------------------------------
// Open: one stream side, over a warm connection or a fresh one.

class WarmPool::Open : public SideOpen {
 public:
  Open(WarmPool& pool, std::string url, std::string token, const WsLimits& limits,
       milliseconds timeout, WsDone done)
      : pool_(pool),
        url_(std::move(url)),
        token_(std::move(token)),
        limits_(limits),
        timeout_(timeout),
        done_(std::move(done)),
        timer_(pool.loop_, [this] { onTimer(); }) {}

  void start(BufferEventPtr warm) {
    starting_ = true;
    deadline_ = SteadyClock::now() + timeout_;
    if (warm) {
      startWarm(std::move(warm));
    } else {
      startFresh();
    }
    starting_ = false;
  }

  void cancel() override {
    done_ = nullptr;
    timer_.cancel();
    if (bev_) bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    bev_.reset();
    if (ex_) ex_->cancel();
  }

 private:
  void startWarm(BufferEventPtr bev) {
    net::Endpoint where;
    std::string path;
    splitUrl(url_, where, path);
    key_ = ws::randomHandshakeKey();
    std::string req =
        wshs::clientRequest(net::formatHostPort(where.host, where.port), path, key_,
                            {"Authorization: Bearer " + token_, "User-Agent: devstreams/0.1"});
    bev_ = std::move(bev);
    bufferevent_setcb(bev_.get(), &Open::onRead, nullptr, &Open::onEvent, this);
    bufferevent_write(bev_.get(), req.data(), req.size());
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    timer_.arm(timeout_);
  }

  void startFresh() {
    auto left = std::chrono::duration_cast<milliseconds>(deadline_ - SteadyClock::now());
    left = std::max(left, milliseconds(1));
    ex_ = hubclient::openStream(pool_.loop_, pool_.hub_, url_, token_, limits_, left,
                                [this](std::unique_ptr<WsConnection> ws, std::string error) {
                                  if (ex_) pool_.loop_.deferDelete(std::move(ex_));
                                  finish(std::move(ws), std::move(error));
                                });
  }

  static void onRead(bufferevent*, void* arg) {
    auto* self = static_cast<Open*>(arg);
    guarded(
        "stream side", [&] { self->parse(); }, [&] { self->internalError(); });
  }
  static void onEvent(bufferevent* bev, short what, void* arg) {
    auto* self = static_cast<Open*>(arg);
    guarded(
        "stream side", [&] { self->event(bev, what); }, [&] { self->internalError(); });
  }
  void internalError() {
    if (done_) finish(nullptr, "internal error");
  }
  void event(bufferevent* bev, short what) {
    Open* self = this;
    if (what & BEV_EVENT_EOF) self->parse();
    if (!self->bev_ || !self->done_) return;
    std::string err = tls::lastError(bev);
    if (self->noAnswerYet()) return self->retryFresh("warm connection lost");
    self->finish(nullptr, err.empty() ? "connection closed before the response was complete" : err);
  }

  bool noAnswerYet() const {
    return !haveHead_ && evbuffer_get_length(bufferevent_get_input(bev_.get())) == 0;
  }

  // The hub never read the request: try once more on a connection of its own.
  void retryFresh(const char* why) {
    LOG_DEBUG("stream side %s: %s; opening a fresh connection", url_.c_str(), why);
    timer_.cancel();
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    bev_.reset();
    ++pool_.misses_;
    startFresh();
  }

  void parse() {
    if (!bev_ || !done_) return;
    evbuffer* in = bufferevent_get_input(bev_.get());
    if (!haveHead_) {
      size_t len = std::min<size_t>(evbuffer_get_length(in), http::Limits{}.maxHeadBytes + 4);
      const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
      http::ParseResult r = http::parseResponse(std::string_view(p, len), response_);
      if (r.status == http::ParseStatus::NeedMore) return;
      if (r.status == http::ParseStatus::Invalid) {
        return finish(nullptr, std::string("bad response from server: ") + r.error);
      }
      evbuffer_drain(in, r.consumed);
      haveHead_ = true;
      if (response_.status == 408) {
        // The hub gave up on the idle connection just before our request arrived.
        return retryFresh("the hub closed the idle connection (408)");
      }
      if (response_.status == 101) {
        std::string err;
        if (!wshs::checkServerResponse(response_, key_, err)) return finish(nullptr, err);
        timer_.cancel();
        bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
        bufferevent_disable(bev_.get(), EV_READ);
        return finish(std::make_unique<WsConnection>(pool_.loop_, std::move(bev_),
                                                     WsConnection::Role::Client, limits_, nullptr),
                      {});
      }
      bool valid = true;
      bodyLength_ = http::contentLength(response_.headers, &valid).value_or(0);
      if (!valid || bodyLength_ > kMaxErrorBody) bodyLength_ = 0;
    }
    if (evbuffer_get_length(in) < bodyLength_) return;
    std::string body(bodyLength_, '\0');
    evbuffer_remove(in, body.data(), bodyLength_);
    auto a = proto::parseAnswerBody(response_.status, body);
    std::string detail = a ? a->message : std::string();
    finish(nullptr, "HTTP " + std::to_string(response_.status) + " " + response_.reason +
                        (detail.empty() ? "" : ": " + detail));
  }

  void onTimer() {
    if (pending_) {
      // A result found while starting, delivered now.
      pending_ = false;
      return finish(std::move(pendingWs_), std::move(pendingError_));
    }
    finish(nullptr, "timed out");
  }

  void finish(std::unique_ptr<WsConnection> ws, std::string error) {
    if (!done_) return;
    if (starting_) {
      // Never call back from inside openStream(): deliver from the loop.
      pending_ = true;
      pendingWs_ = std::move(ws);
      pendingError_ = std::move(error);
      timer_.arm(milliseconds(0));
      return;
    }
    timer_.cancel();
    if (bev_) {
      bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
      pool_.loop_.closeAfterFlush(std::move(bev_));
    }
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(ws), error.empty() && !ws ? "connection failed" : std::move(error));
  }

  WarmPool& pool_;
  std::string url_, token_;
  WsLimits limits_;
  milliseconds timeout_;
  WsDone done_;
  Timer timer_;
  SteadyClock::time_point deadline_;
  BufferEventPtr bev_;
  ExchangePtr ex_;
  std::string key_;
  http::Response response_;
  bool haveHead_ = false;
  uint64_t bodyLength_ = 0;
  bool starting_ = false;
  bool pending_ = false;
  std::unique_ptr<WsConnection> pendingWs_;
  std::string pendingError_;
};

// ---------------------------------------------------------------------------------------------

WarmPool::WarmPool(Loop& loop, const HubTarget& hub, Options opts)
    : loop_(loop), hub_(hub), opts_(opts), busyTarget_(opts.busy), refill_(loop, [this] {
        fill();
      }) {}

WarmPool::~WarmPool() = default;

void WarmPool::start() {
  // Through an HTTP proxy every connection is a CONNECT tunnel of its own: no pool.
  enabled_ = !hub_.proxy.enabled() && hub_.ssl != nullptr;
  fill();
}

size_t WarmPool::ready() const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const auto& e) { return e->ready(); }));
}

void WarmPool::setStandby(bool on) {
  if (on == standby_) return;
  standby_ = on;
  if (!on) return fill();
  refill_.cancel();
  for (auto& e : entries_) {
    e->release();  // closed now, and nothing of it calls back
    loop_.deferDelete(std::move(e));
  }
  entries_.clear();
}

size_t WarmPool::target() const {
  if (standby_) return 0;
  bool busy =
      lastUse_ != SteadyClock::time_point{} && SteadyClock::now() - lastUse_ < opts_.busyFor;
  return std::min(busy ? std::max(busyTarget_, opts_.idle) : opts_.idle, opts_.max);
}

void WarmPool::fill() {
  if (!enabled_) return;
  while (entries_.size() < target()) {
    auto e = std::make_unique<Entry>(*this);
    if (!e->start()) return;
    entries_.push_back(std::move(e));
  }
}

void WarmPool::scheduleFill(milliseconds after) {
  if (!refill_.armed()) refill_.arm(after);
}

void WarmPool::drop(Entry* e) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->get() != e) continue;
    loop_.deferDelete(std::move(*it));
    entries_.erase(it);
    break;
  }
  // Failures in a row back off (up to 10 s) so an unreachable hub is not hammered.
  milliseconds after(0);
  if (failures_ > 0) {
    after = milliseconds(100) * (1 << std::min(failures_ - 1, 7u));
    after = std::min(after, milliseconds(10000));
  }
  scheduleFill(after);
}

void WarmPool::keepSession(SSL* ssl) {
  SSL_SESSION* s = SSL_get1_session(ssl);
  if (s && SSL_SESSION_is_resumable(s)) {
    session_.reset(s);
  } else if (s) {
    SSL_SESSION_free(s);
  }
}

BufferEventPtr WarmPool::take() {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!(*it)->ready()) continue;
    BufferEventPtr bev = (*it)->release();
    loop_.deferDelete(std::move(*it));
    entries_.erase(it);
    keepSession(bufferevent_openssl_get_ssl(bev.get()));
    return bev;
  }
  return nullptr;
}

bool WarmPool::samePlace(const std::string& url) const {
  net::Endpoint where;
  std::string path;
  return splitUrl(url, where, path) && where.host == hub_.host && where.port == hub_.port;
}

SideOpenPtr WarmPool::openStream(const std::string& url, const std::string& token,
                                 const WsLimits& limits, milliseconds timeout, WsDone done) {
  auto open = std::make_unique<Open>(*this, url, token, limits, timeout, std::move(done));
  BufferEventPtr warm;
  if (enabled_ && !standby_ && samePlace(url)) {
    auto now = SteadyClock::now();
    if (lastUse_ == SteadyClock::time_point{} || now - lastUse_ >= opts_.busyFor) {
      busyTarget_ = opts_.busy;  // a new burst starts from the configured size
    }
    lastUse_ = now;
    warm = take();
    if (warm) {
      ++hits_;
    } else {
      ++misses_;
      busyTarget_ = std::min(busyTarget_ + 1, opts_.max);
    }
    scheduleFill(milliseconds(0));
  }
  open->start(std::move(warm));
  return open;
}

}  // namespace ds::hubclient
