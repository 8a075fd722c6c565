// A MuxSession (mux.h) on a WebSocket that is already open: the binary messages of the
// connection feed the session, the session's frames go out as binary messages, batched once per
// loop turn and only while the connection's output is short (a slow or wide-area link never
// holds more than a watermark of frames in user space), and each stream's events go to the
// handler its owner gave it. The WebSocket stays its owner's: the owner forwards binary
// payloads (receive) and drain notifications (drained) and takes text messages itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/event.h"
#include "common/mux.h"
#include "common/ws_conn.h"

namespace ds::mux {

// The WebSocket subprotocol (Sec-WebSocket-Protocol) by which a client offers, and the hub
// selects, streams multiplexed on a control or service channel.
inline constexpr std::string_view kWsProtocol = "devstreams.mux.1";

// What one stream's owner hears. Every call comes from a loop callback or from inside a
// MuxChannel call of that owner; a handler may call back into the channel.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Our open was accepted; data may flow.
  virtual void onMuxAccepted() {}
  // Our open was refused (final: the handler is detached).
  virtual void onMuxRejected(proto::Reject /*code*/, std::string_view /*codeText*/,
                             std::string_view /*reason*/) {}
  // Bytes from the peer; they hold the stream's credit until MuxChannel::consumed().
  virtual void onMuxData(const uint8_t* data, size_t len) = 0;
  // The peer sends nothing more.
  virtual void onMuxEof() = 0;
  // The stream ended: the peer's Close, a stream error, or the channel's end (final: the
  // handler is detached).
  virtual void onMuxClosed(uint16_t code, std::string_view reason) = 0;
  // Up to `max` bytes to send (0: nothing now; call MuxChannel::wantWrite when there is).
  virtual size_t onMuxPull(uint8_t* buf, size_t max) = 0;
};

class MuxChannel : private MuxSession::Callbacks {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // The peer opened stream `id`: answer with accept() (and a handler) or reject(), now or
    // later.
    virtual void onMuxOpen(uint32_t id, const OpenRequest& request) = 0;
    // The peer broke the channel protocol: the channel closed the WebSocket with `code` and
    // every stream got onMuxClosed. The owner ends the connection as when it closes, freeing
    // the channel with Loop::deferDelete (never inside a channel callback).
    virtual void onMuxFailed(uint16_t code, const std::string& reason) = 0;
  };

  // Output is written while the WebSocket's output is below `highWatermark`, and again on
  // drained(); the connection's high watermark is set to it.
  MuxChannel(Loop& loop, Role role, const Limits& limits, WsConnection& ws, Owner& owner,
             size_t highWatermark = 256 * 1024);
  // Ends every stream still open (onMuxClosed 1001) without writing anything.
  ~MuxChannel() override;
  MuxChannel(const MuxChannel&) = delete;
  MuxChannel& operator=(const MuxChannel&) = delete;

  // ---- the owner's WebSocket ----
  // A piece of a binary message from the peer (the owner's onWsData): drained.
  void receive(evbuffer* payload);
  // The owner's onWsDrained: the output fell below half the watermark.
  void drained();
  // The WebSocket closed or is being closed: every stream ends with `code` (1001 when the
  // transport dropped) and nothing more is written.
  void shutdown(uint16_t code, std::string_view reason);

  // ---- streams ----
  // Opens a stream with `handler`; 0 when the channel is down or its limits leave no room.
  uint32_t open(const OpenRequest& request, StreamHandler* handler);
  // Accepts a peer's open; `handler` (when not null) replaces the one set with setHandler.
  bool accept(uint32_t id, StreamHandler* handler);
  // `codeText` as for MuxSession::reject.
  bool reject(uint32_t id, proto::Reject code, std::string_view reason,
              std::string_view codeText = {});
  // Sets or replaces a live stream's handler (a stream that changes owner, or a peer's open
  // whose handler exists before it is accepted). Bytes for a stream without a handler are
  // dropped and their credit returned.
  void setHandler(uint32_t id, StreamHandler* handler);
  void wantWrite(uint32_t id);
  void eof(uint32_t id);
  // Ends the stream from our side; no callback follows (the handler is detached).
  void close(uint32_t id, uint16_t code, std::string_view reason);
  void consumed(uint32_t id, size_t n);

  bool up() const { return !down_; }
  MuxSession& session() { return session_; }
  const MuxSession& session() const { return session_; }
  size_t handlers() const { return handlers_.size(); }

 private:
  // MuxSession::Callbacks: routed to the stream's handler.
  void onOpen(uint32_t id, const OpenRequest& request) override;
  void onAccepted(uint32_t id) override;
  void onRejected(uint32_t id, proto::Reject code, std::string_view codeText,
                  std::string_view reason) override;
  void onData(uint32_t id, const uint8_t* data, size_t len) override;
  void onEof(uint32_t id) override;
  void onClosed(uint32_t id, uint16_t code, std::string_view reason) override;
  size_t onPull(uint32_t id, uint8_t* buf, size_t max) override;

  StreamHandler* handler(uint32_t id) const;
  // Output is due: flushed at the end of the loop pass (once for everything the pass handled),
  // not per call; from within a flush, on the next pass.
  void schedule();
  void flush();
  void onTick();
  // The session failed (a peer's protocol error): close the WebSocket with its code.
  void fail();
  // An exception left the flush (the failure boundary): close with 1011.
  void failInternal();

  Loop& loop_;
  WsConnection& ws_;
  Owner& owner_;
  size_t high_;
  MuxSession session_;
  std::unordered_map<uint32_t, StreamHandler*> handlers_;
  Timer flushTimer_;
  Timer tick_;
  std::chrono::milliseconds pingInterval_;
  bool down_ = false;
  bool flushing_ = false;
  bool delayed_ = false;  // flushTimer_ is armed for kAnswerDelay
};

}  // namespace ds::mux
