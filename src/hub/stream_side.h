// One side of a stream at the hub, as the relay sees it: bytes, half-close (EOF), close with a
// code, backpressure and a byte count. Two kinds: a WebSocket of its own (WsSide, the stream
// endpoint: binary frames, text {"type":"eof"}) and a stream multiplexed on a control or service
// channel (MuxSide, docs/mux.md). The relay (stream.h) pairs any two.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/acceptor.h"
#include "common/event.h"
#include "common/mux_channel.h"
#include "common/protocol.h"
#include "common/ws_conn.h"
#include "hub/lifecycle.h"

namespace ds::hub {

using Side = StreamLifecycle::Side;

// What a side tells its stream. Every call comes from a loop callback of the side's transport.
class SideEvents {
 public:
  virtual ~SideEvents() = default;
  // Bytes from the side's peer: the callee takes them (drains `data`).
  virtual void onSideData(Side from, evbuffer* data) = 0;
  // A text message from a WebSocket side (stream control, relayed as it is).
  virtual void onSideText(Side from, std::string_view message) = 0;
  // The side's peer sends nothing more.
  virtual void onSideEof(Side from) = 0;
  // The side's output fell below half its watermark after having been full.
  virtual void onSideDrained(Side side) = 0;
  // The side ended (its peer's close code, 1006 for a dropped transport). Final.
  virtual void onSideClosed(Side from, uint16_t code, std::string_view reason) = 0;
  // A stream the hub opened on a channel was answered: accepted, or refused (then final).
  virtual void onSideAnswer(Side from, const proto::StreamResponse& answer) = 0;
  // What the side held for its peer is out (see StreamSide::drainThenNotify).
  virtual void onSideFlushed(Side side) = 0;
};

class StreamSide {
 public:
  virtual ~StreamSide() = default;
  // The stream that hears this side's events, and which side it is.
  void bind(SideEvents& events, Side side) {
    events_ = &events;
    side_ = side;
  }
  // The stream is paired: start reading (a WebSocket is held unread until then) and, for a
  // WebSocket, pinging every `keepalive`.
  virtual void start(std::chrono::milliseconds keepalive) = 0;
  // Bytes toward the side's peer (drains `data`), after everything sent before.
  virtual void send(evbuffer* data) = 0;
  // Stream control from a WebSocket peer: a WebSocket side relays it as it is, a channel side
  // understands {"type":"eof"} only.
  virtual void sendText(std::string_view message) = 0;
  virtual void sendEof() = 0;
  // Ends the side with `code` (no event follows).
  virtual void close(uint16_t code, std::string_view reason) = 0;
  virtual bool open() const = 0;
  // Output toward the peer above the watermark: the other side should pause.
  virtual bool full() const = 0;
  // Stop and restart taking bytes from the peer (a WebSocket stops reading, a channel stream
  // holds back its credit, so only this stream waits).
  virtual void pause() = 0;
  virtual void resume() = 0;
  // Payload bytes received from the peer.
  virtual uint64_t bytesIn() const = 0;
  // Before a normal close: true when the side still holds bytes or an Eof for its peer that a
  // close now would lose; it then calls onSideFlushed once they are out. A WebSocket's close
  // frame follows its data anyway (false).
  virtual bool drainThenNotify() { return false; }

 protected:
  SideEvents* events_ = nullptr;
  Side side_ = Side::Service;
};

// A side on a WebSocket of its own (GET /api/v1/streams/{id}).
class WsSide : public StreamSide, private WsConnection::Callbacks {
 public:
  WsSide(std::unique_ptr<WsConnection> ws, Admission::Ticket ticket, size_t highWatermark);
  ~WsSide() override;

  void start(std::chrono::milliseconds keepalive) override;
  void send(evbuffer* data) override { ws_->sendBinary(data); }
  void sendText(std::string_view message) override { ws_->sendText(message); }
  void sendEof() override;
  void close(uint16_t code, std::string_view reason) override;
  bool open() const override { return ws_->open(); }
  bool full() const override { return ws_->overHighWatermark(); }
  void pause() override { ws_->pauseReading(); }
  void resume() override { ws_->resumeReading(); }
  uint64_t bytesIn() const override { return ws_->bytesIn(); }

 private:
  void onWsData(evbuffer* payload) override;
  void onWsText(std::string message) override;
  void onWsDrained() override;
  void onWsClosed(uint16_t code, const std::string& reason) override;

  std::unique_ptr<WsConnection> ws_;
  Admission::Ticket ticket_;
};

// A side multiplexed on a channel: a stream the peer opened (accepted with this side as its
// handler) or one the hub opens toward a device (open()). Bytes toward the peer wait in a queue
// bounded by the watermark until the channel pulls them; bytes from the peer are reported
// consumed (their credit goes back) once the other side took them, so a slow reader holds back
// only its own stream. Once the channel ended the stream, the side never touches the channel.
class MuxSide : public StreamSide, public mux::StreamHandler {
 public:
  MuxSide(Loop& loop, mux::MuxChannel& channel, size_t highWatermark, uint32_t id = 0);
  ~MuxSide() override;
  // Opens the stream on the channel with this side as its handler; false when the channel's
  // limits leave no room.
  bool openStream(const mux::OpenRequest& request);
  uint32_t id() const { return id_; }

  void start(std::chrono::milliseconds) override {}
  void send(evbuffer* data) override;
  void sendText(std::string_view message) override;
  void sendEof() override;
  void close(uint16_t code, std::string_view reason) override;
  bool open() const override { return !closed_; }
  bool full() const override;
  void pause() override { paused_ = true; }
  void resume() override;
  uint64_t bytesIn() const override { return bytesIn_; }
  bool drainThenNotify() override;

 private:
  void onMuxAccepted() override;
  void onMuxRejected(proto::Reject code, std::string_view codeText,
                     std::string_view reason) override;
  void onMuxData(const uint8_t* data, size_t len) override;
  void onMuxEof() override;
  void onMuxClosed(uint16_t code, std::string_view reason) override;
  size_t onMuxPull(uint8_t* buf, size_t max) override;
  void onNotify();

  mux::MuxChannel& channel_;
  size_t high_;
  uint32_t id_;
  EvBufferPtr queue_;    // toward the peer, not yet pulled
  EvBufferPtr scratch_;  // from the peer, on its way to the other side
  Timer notify_;         // onSideDrained / onSideFlushed, outside the channel's flush
  uint64_t bytesIn_ = 0;
  size_t unconsumed_ = 0;  // bytes from the peer whose credit is held back while paused
  bool paused_ = false;
  bool wasFull_ = false;
  bool closed_ = false;
  bool eofWanted_ = false;  // sendEof() called
  bool draining_ = false;   // drainThenNotify() waits for the queue to empty
  bool drainedDue_ = false, flushedDue_ = false;
};

// The request of a stream a service opened on its channel as an initiation body, checked as the
// JSON request is (proto::parseInitiateBody): host, port or socket path, user and name.
proto::Parsed<proto::InitiateBody> initiateBody(const mux::OpenRequest& request);

}  // namespace ds::hub
