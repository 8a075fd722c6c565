// A small pool of TLS connections to the hub, connected and handshaken ahead of need, so that
// opening one side of a stream costs a single HTTP upgrade round trip on the critical path
// instead of TCP + TLS + upgrade. Used by the daemon (through StreamOpener) and the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "common/event.h"
#include "common/ws_conn.h"
#include "hubclient/hub_client.h"

namespace ds::hubclient {

// One stream side being opened; cancel() abandons it without calling `done`. Free it with
// Loop::deferDelete when it is inside its own callback.
class SideOpen : public Deletable {
 public:
  virtual void cancel() = 0;
};
using SideOpenPtr = std::unique_ptr<SideOpen>;

class WarmPool {
 public:
  struct Options {
    // Connections kept ready when nothing happened for `busyFor`, and while streams are opened.
    // A miss (no ready connection) raises the busy target by one, up to `max`.
    size_t idle = 1;
    size_t busy = 4;
    size_t max = 32;
    std::chrono::milliseconds busyFor{30000};
    // A ready connection unused for this long is closed (and replaced when the target asks for
    // it). Below the hub's request_timeout (10 s by default), which answers an idle connection
    // with 408 and closes it.
    std::chrono::milliseconds maxAge{5000};
    std::chrono::milliseconds connectTimeout{10000};
  };

  WarmPool(Loop& loop, const HubTarget& hub, Options opts);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Starts filling the pool (to `idle`). Without start() every open is fresh.
  void start();
  // Opens one side of a stream at `url` with its token, over a ready connection when the URL
  // names the pool's hub and one is ready, else over a fresh one (as openStream). A warm
  // connection that turns out dead (closed, or a 408 from the hub) is retried once on a fresh
  // connection: the hub never saw the request, so the token is still unused. `done` runs exactly
  // once unless the result is cancelled, never inside this call. The result is never null.
  SideOpenPtr openStream(const std::string& url, const std::string& token, const WsLimits& limits,
                         std::chrono::milliseconds timeout, WsDone done);

  // On standby (streams open on the multiplexed service channel instead) the pool keeps nothing
  // ready: its connections are closed and none is made, so an idle daemon costs the hub no TLS
  // handshake every maxAge. openStream() still works (on a fresh connection). Off: it refills.
  void setStandby(bool on);
  bool standby() const { return standby_; }

  size_t ready() const;
  // Connections held: ready or being made.
  size_t held() const { return entries_.size(); }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

  class Entry;
  class Open;

 private:
  friend class Entry;
  friend class Open;
  // A ready connection, or null.
  BufferEventPtr take();
  void fill();
  void drop(Entry* e);
  size_t target() const;
  bool samePlace(const std::string& url) const;
  void scheduleFill(std::chrono::milliseconds after);
  void keepSession(SSL* ssl);

  Loop& loop_;
  HubTarget hub_;
  Options opts_;
  bool enabled_ = false;
  bool standby_ = false;
  std::list<std::unique_ptr<Entry>> entries_;
  std::chrono::steady_clock::time_point lastUse_{};
  size_t busyTarget_;
  uint64_t hits_ = 0, misses_ = 0;
  unsigned failures_ = 0;  // connections that failed in a row (refills back off)
  Timer refill_;
  // The last resumable TLS session: new pool connections resume it (no certificate exchange
  // and verification, no signature at the hub).
  std::unique_ptr<SSL_SESSION, FreeWith<SSL_SESSION_free>> session_;
};

}  // namespace ds::hubclient
