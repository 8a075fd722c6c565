// A WebSocket connection on an established bufferevent (after the HTTP upgrade): frame reading
// with streaming binary payloads, text message reassembly, ping/pong, the close handshake,
// keepalive and read pausing for backpressure.
#pragma once

#include <cstdint>
#include <string>

#include "common/event.h"
#include "common/ws_frame.h"

namespace ds {

struct WsLimits {
  uint64_t maxFrame = 1 << 20;      // largest frame payload accepted
  uint64_t maxMessage = 1 << 20;    // largest reassembled text message
  size_t maxSendFrame = 64 * 1024;  // binary sends are split into frames of at most this size
};

class WsConnection : public Deletable {
 public:
  enum class Role { Client, Server };

  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // A piece of a binary message, already unmasked. The callee takes the bytes (drains
    // `payload`); whatever is left is discarded.
    virtual void onWsData(evbuffer* payload) = 0;
    // A complete text message (valid UTF-8).
    virtual void onWsText(std::string message) = 0;
    // The connection ended: the peer's close code, or 1006 for a dropped transport, or the code
    // we failed the connection with. No callback follows; the owner frees the connection later.
    virtual void onWsClosed(uint16_t code, const std::string& reason) = 0;
    // The output buffer fell to the low watermark after having been above the high one.
    virtual void onWsDrained() {}
  };

  // Takes over `bev` (its callbacks are replaced). Input already buffered in `bev` is processed
  // on start().
  WsConnection(Loop& loop, BufferEventPtr bev, Role role, const WsLimits& limits,
               Callbacks* callbacks);
  ~WsConnection() override;
  WsConnection(const WsConnection&) = delete;
  WsConnection& operator=(const WsConnection&) = delete;

  void start();
  void setCallbacks(Callbacks* callbacks) { callbacks_ = callbacks; }

  // Sends all bytes of `data` as one binary message, fragmented into frames of at most
  // maxSendFrame bytes; `data` is drained. An empty buffer sends an empty message.
  void sendBinary(evbuffer* data);
  // One binary message whose payload `fill(dst, cap)` writes straight into the output (no copy
  // through a buffer of the caller's), up to `max` bytes (at most 65,535) and returning how many
  // it wrote; 0 sends nothing. What `fill` itself sends on this connection goes ahead of the
  // message. Returns the payload length sent.
  template <typename Fill>
  size_t sendBinaryInPlace(size_t max, Fill&& fill) {
    uint8_t* dst = beginInPlace(max);
    return dst ? endInPlace(dst, fill(dst, max)) : 0;
  }
  void sendText(std::string_view text);
  // Ends the connection from our side: sends a close frame and hands the transport to
  // Loop::closeAfterFlush, which delivers what is queued and waits briefly for the peer's
  // answer. No callback follows; the owner may free the connection right away.
  void close(uint16_t code, std::string_view reason);

  // Backpressure: output above `high` bytes is the caller's cue to stop feeding us; when it
  // drains to `high / 2` onWsDrained() is called.
  void setHighWatermark(size_t high);
  size_t outputLength() const;
  bool overHighWatermark() const { return outputLength() > high_; }
  void pauseReading();
  void resumeReading();

  // Sends a ping every `interval` and fails the connection (1006, "keepalive timeout") when
  // nothing arrived for `timeout` (0: three intervals). Pending output counts as the peer being
  // busy reading, unless expectReading() was called and it has not moved for `timeout`.
  void enableKeepalive(std::chrono::milliseconds interval,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // The peer reads this connection whatever else it does (a channel whose streams have their own
  // credit): output that stops moving means the peer is wedged, and keepalive treats it so.
  void expectReading() { expectReading_ = true; }
  // The transport's socket (for socket options such as TCP keepalive); -1 when closed.
  evutil_socket_t fd() const { return bev_ ? bufferevent_getfd(bev_.get()) : -1; }

  bool open() const { return state_ == State::Open; }
  // The subprotocol the upgrade selected ("" for none).
  const std::string& protocol() const { return protocol_; }
  void setProtocol(std::string protocol) { protocol_ = std::move(protocol); }
  uint64_t bytesIn() const { return bytesIn_; }
  uint64_t bytesOut() const { return bytesOut_; }
  std::string peer() const;

 private:
  enum class State { Open, Closing, Closed };
  enum class ReadState { Header, Payload };

  static void onReadCb(bufferevent*, void* arg);
  static void onWriteCb(bufferevent*, void* arg);
  static void onEventCb(bufferevent*, short what, void* arg);

  void process();
  bool handleFrameEnd();
  void sendFrame(ws::Opcode op, const void* data, size_t len);
  void sendControl(ws::Opcode op, std::string_view payload);
  void fail(uint16_t code, const std::string& reason);
  void finish(uint16_t code, const std::string& reason);
  void onKeepalive();
  // An exception left a handler: fail the connection with 1011 (the failure boundary).
  void internalError();
  void applyWriteWatermark();
  // sendBinaryInPlace: reserves room for the header and `max` payload bytes and returns where
  // the payload goes (nullptr when not open); then writes the header before the `len` bytes
  // written there, masks them (client), commits and moves the message to the output.
  uint8_t* beginInPlace(size_t& max);
  size_t endInPlace(uint8_t* payload, size_t len);

  Loop& loop_;
  BufferEventPtr bev_;
  Role role_;
  WsLimits limits_;
  Callbacks* callbacks_;
  State state_ = State::Open;
  ReadState readState_ = ReadState::Header;
  ws::FrameHeader frame_;
  uint64_t frameOffset_ = 0;
  bool inMessage_ = false;  // a fragmented message is in progress
  ws::Opcode messageOp_ = ws::Opcode::Binary;
  std::string textBuf_;     // text message being assembled
  std::string controlBuf_;  // control frame payload being assembled
  EvBufferPtr chunk_;
  bool paused_ = false;
  bool peerEof_ = false;  // the peer's FIN arrived; frames before it may wait for resumeReading
  bool processing_ = false;
  bool wantDrained_ = false;
  bool pongDue_ = false;     // a ping waits for the output to drain before its pong
  std::string pongPayload_;  // the latest such ping's payload
  size_t high_ = 256 * 1024;
  Timer keepaliveTimer_;
  std::chrono::milliseconds keepalive_{0};
  std::chrono::milliseconds keepaliveTimeout_{0};
  std::chrono::steady_clock::time_point lastPing_;
  std::chrono::steady_clock::time_point lastInput_;
  bool expectReading_ = false;
  // Whether our output moved towards the peer: the write callback ran (the output fell to its
  // low mark) or the output shrank since the last keepalive check, and when it last did.
  bool outputMoved_ = false;
  size_t outputAtCheck_ = 0;
  std::chrono::steady_clock::time_point lastOutputMove_;
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
  std::string peer_;
  std::string protocol_;
  evbuffer_iovec inPlace_{};  // the reservation of sendBinaryInPlace
  EvBufferPtr inPlaceBuf_;    // where it is made
};

}  // namespace ds
