// A reconnecting keepalive channel to the hub: the agent's control channel and the daemon's
// service channel. One attempt at a time (an upgrade through `Dial`), pings every `keepalive`
// once open, and after a failed attempt or a lost channel a wait from hubclient/backoff.h (full
// jitter; the slowest pace when the hub refused the credentials) before the next attempt.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "common/event.h"
#include "common/ws_conn.h"
#include "hubclient/backoff.h"
#include "hubclient/hub_client.h"

namespace ds::hubclient {

class ReconnectingChannel : private WsConnection::Callbacks {
 public:
  using Clock = Backoff::Clock;

  // What the channel tells its user; every call comes from a loop callback.
  class Events {
   public:
    virtual ~Events() = default;
    // The channel is open (pings enabled; started right after this returns).
    virtual void onChannelUp(WsConnection& ws) = 0;
    // An attempt failed with `error` (the exchange's text: "HTTP 401 ..." for a refusal). True
    // when the hub refused the credentials: the next attempt waits the longest bound.
    virtual bool onChannelFailed(const std::string& error) = 0;
    // The open channel is gone (already freed); a reconnect follows unless stopped.
    virtual void onChannelDown(uint16_t code, const std::string& reason) = 0;
    virtual void onChannelText(std::string message) = 0;
    virtual void onChannelData(evbuffer* payload) = 0;
    // The channel's output fell below half its high watermark (WsConnection::onWsDrained).
    virtual void onChannelDrained() {}
    // The next attempt is due in `delay`.
    virtual void onReconnectIn(std::chrono::milliseconds /*delay*/) {}
  };

  struct Options {
    std::chrono::milliseconds keepalive{20000};
    std::chrono::milliseconds keepaliveTimeout{0};  // 0: three intervals
    std::chrono::milliseconds reconnectMin{500}, reconnectMax{30000};
    // The time the backoff reads (tests may pass their own).
    std::function<Clock::time_point()> now = [] { return Clock::now(); };
  };

  // Starts one attempt; `done` runs once, from the loop.
  using Dial = std::function<ExchangePtr(WsDone done)>;

  ReconnectingChannel(Loop& loop, Options opts, Dial dial, Events& events);
  // Drops the channel without a close handshake, and any attempt.
  ~ReconnectingChannel() override;
  ReconnectingChannel(const ReconnectingChannel&) = delete;
  ReconnectingChannel& operator=(const ReconnectingChannel&) = delete;

  // The first attempt, now.
  void start();
  // No further attempts (one in progress is abandoned); an open channel is closed with `code`.
  // Nothing is reported after this.
  void stop(uint16_t code, std::string_view reason);
  // The hub answers again: when waiting for the next attempt, attempt now.
  void redialNow();
  // Closes the open channel with `code`/`closeReason` and handles it as lost with `why`.
  void drop(uint16_t code, std::string_view closeReason, const std::string& why);
  // Closes the open channel without telling anyone; attempts go on (stop() ends them).
  void closeQuietly(uint16_t code, std::string_view reason);

  WsConnection* channel() const { return ws_.get(); }
  bool waiting() const { return reconnect_.armed(); }
  bool connecting() const { return connecting_ != nullptr; }

 private:
  void connect();
  void onConnected(std::unique_ptr<WsConnection> ws, const std::string& error);
  void scheduleReconnect(bool slow);
  void lost(uint16_t code, const std::string& reason);
  void onWsData(evbuffer* payload) override { events_.onChannelData(payload); }
  void onWsDrained() override { events_.onChannelDrained(); }
  void onWsText(std::string message) override { events_.onChannelText(std::move(message)); }
  void onWsClosed(uint16_t code, const std::string& reason) override { lost(code, reason); }

  Loop& loop_;
  Options opts_;
  Dial dial_;
  Events& events_;
  ExchangePtr connecting_;
  std::unique_ptr<WsConnection> ws_;
  Timer reconnect_;
  Backoff backoff_;
  std::mt19937_64 rng_;
  bool stopped_ = false;
};

}  // namespace ds::hubclient
