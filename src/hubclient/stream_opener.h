// The daemon's way to open streams: a warm service control channel to the hub. When the hub
// selects the multiplexing subprotocol (docs/mux.md) a stream is a channel on it: one OPEN and
// its ACCEPT, no connection and no upgrade of its own. Otherwise the channel carries pipelined
// stream requests and each stream side is an HTTP upgrade on a warm TLS connection
// (docs/protocol.md, "Stream setup"). While the channel is down, opens use the HTTPS POST
// endpoint instead, so nothing waits on a reconnect.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/event.h"
#include "common/mux_channel.h"
#include "common/ws_conn.h"
#include "hubclient/channel.h"
#include "hubclient/hub_client.h"
#include "hubclient/warm_pool.h"

namespace ds::hubclient {

struct OpenResult {
  int status = 0;  // 200 on success; 0 transport failure; else the hub's HTTP-style status
  std::string code, message, streamId;  // the hub's error code and message; the stream on 200
};

// What an open gives on success: the stream side's own WebSocket, or a stream on the
// multiplexed service channel. A multiplexed stream's bytes may follow at once, so inside `done`
// it is taken (takeMux()) and given its handler there and then (MuxPump::start or
// MuxChannel::setHandler); one not taken is closed (1001) when this is destroyed, which must
// happen before `done` returns.
class OpenedStream {
 public:
  struct Mux {
    mux::MuxChannel* channel = nullptr;
    uint32_t id = 0;
  };
  OpenedStream() = default;
  explicit OpenedStream(std::unique_ptr<WsConnection> ws) : ws_(std::move(ws)) {}
  OpenedStream(mux::MuxChannel& channel, uint32_t id) : mux_{&channel, id} {}
  OpenedStream(OpenedStream&& o) noexcept : ws_(std::move(o.ws_)), mux_(o.mux_) { o.mux_ = {}; }
  OpenedStream& operator=(OpenedStream&& o) noexcept;
  ~OpenedStream() { closeMux(); }

  explicit operator bool() const { return ws_ || mux_.channel; }
  bool multiplexed() const { return mux_.channel != nullptr; }
  std::unique_ptr<WsConnection> takeWs() { return std::move(ws_); }
  Mux takeMux() { return std::exchange(mux_, {}); }

 private:
  void closeMux();
  std::unique_ptr<WsConnection> ws_;
  Mux mux_;
};

class StreamOpener : private ReconnectingChannel::Events, private mux::MuxChannel::Owner {
 public:
  struct Options {
    std::string policy, key;  // service policy with `connect`
    WsLimits limits;
    // The hub's handshake_timeout; each open is bounded by it plus a margin.
    std::chrono::milliseconds handshakeTimeout{60000};
    // The service channel: pings every `keepalive`, dropped when silent for `keepaliveTimeout`
    // (0: three intervals); reconnects with full-jitter backoff between the two bounds, kept
    // short after the loss of a channel that had been up (hubclient/backoff.h).
    std::chrono::milliseconds keepalive{20000};
    std::chrono::milliseconds keepaliveTimeout{0};
    std::chrono::milliseconds reconnectMin{500}, reconnectMax{30000};
    std::chrono::milliseconds connectTimeout{10000};  // channel connect + upgrade
    WarmPool::Options pool;                           // warm connections for stream sides
    // Offer the multiplexing subprotocol on the service channel; streams go on it when the hub
    // selects it (the warm pool then rests: WarmPool::setStandby).
    bool multiplex = true;
    mux::Limits mux;
  };

  StreamOpener(Loop& loop, const HubTarget& hub, Options opts);
  ~StreamOpener() override;
  StreamOpener(const StreamOpener&) = delete;
  StreamOpener& operator=(const StreamOpener&) = delete;

  // Opens the service channel and keeps it up; starts the warm pool.
  void start();

  using Done = std::function<void(OpenedStream stream, OpenResult r)>;
  // Opens a stream to `target` (its user and name go along for the device's log and the hub's
  // audit): on the multiplexed channel when it is up, else by a request on the channel or a
  // POST and then a stream side. `done` runs exactly once (with the stream on status 200, else
  // an empty one), never inside open(), unless cancelled; it is bounded by handshakeTimeout
  // plus 5 s. A refusal has the status and code a POST gets for it, whichever way it went.
  // Returns the id for cancel().
  uint64_t open(const StreamTarget& target, Done done);
  // The same for host:port on `device`.
  uint64_t open(const std::string& device, const std::string& host, uint16_t port, Done done) {
    return open(StreamTarget{device, host, port, "", "", ""}, std::move(done));
  }
  // `done` of that open will not run; its resources are freed (a multiplexed open is closed
  // with 1001). Unknown ids are ignored.
  void cancel(uint64_t id);

  // The service channel is open.
  bool connected() const { return channel_.channel() != nullptr; }
  // The service channel is open and multiplexes streams.
  bool multiplexed() const;
  // The hub's state, for `devstreams status`: reachable while the channel is open, and also while
  // it is down but the hub answered a request since (opens fall back to the POST endpoint, so
  // streams work; the channel is redialled at once). `lastError` is empty while reachable;
  // `since` is when the current state began.
  bool reachable() const { return reachable_; }
  const std::string& lastError() const { return lastError_; }
  std::chrono::system_clock::time_point since() const { return since_; }

  // Counters for tests and logs.
  size_t inFlight() const { return opens_.size(); }
  uint64_t viaChannel() const { return viaChannel_; }
  uint64_t viaPost() const { return viaPost_; }
  uint64_t viaMux() const { return viaMux_; }
  const WarmPool& pool() const { return pool_; }

  class Open;
  class MuxLink;

 private:
  friend class Open;
  // Outcome of a request that did not use the channel: `answered` when the hub answered at all.
  void onHubContact(bool answered, const std::string& error);
  void setReachable(bool up, const std::string& error);
  // ReconnectingChannel::Events
  void onChannelUp(WsConnection& ws) override;
  bool onChannelFailed(const std::string& error) override;
  void onChannelDown(uint16_t code, const std::string& reason) override;
  void onChannelText(std::string message) override;
  void onChannelData(evbuffer*) override;
  void onChannelDrained() override;
  // mux::MuxChannel::Owner
  void onMuxOpen(uint32_t id, const mux::OpenRequest& request) override;
  void onMuxFailed(uint16_t code, const std::string& reason) override;
  // Opens `o` on the multiplexed channel; false when it is down or refuses (limits, fields).
  bool openOnMux(Open* o);
  bool sendRequest(Open* o);
  void endOpen(Open* o);

  Loop& loop_;
  HubTarget hub_;
  Options opts_;
  WarmPool pool_;
  ReconnectingChannel channel_;
  std::unique_ptr<MuxLink> mux_;  // while the channel multiplexes
  bool started_ = false;
  bool reachable_ = false;
  bool answered_ = false;  // the last failed channel attempt got an HTTP answer (a refusal)
  std::string lastError_ = "not connected yet";
  std::chrono::system_clock::time_point since_;
  uint64_t nextId_ = 1;
  std::map<uint64_t, std::unique_ptr<Open>> opens_;
  uint64_t viaChannel_ = 0, viaPost_ = 0, viaMux_ = 0;
};

}  // namespace ds::hubclient
