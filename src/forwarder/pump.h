// A byte pump between a TCP connection and a WebSocket stream: binary frames carry the bytes,
// the text message {"type":"eof"} carries a half-close, watermarks on both sides carry
// backpressure end to end, and a close on either side closes the other. Only a stream that
// ended normally (an eof each way, then close 1000) ends the TCP side with FIN; every other end
// resets it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/event.h"
#include "common/ws_conn.h"
#include "forwarder/gate.h"

namespace ds {

class StreamPump : public Deletable, private WsConnection::Callbacks {
 public:
  // Called once when both directions are finished or either side failed; `reason` says why.
  // The owner frees the pump with Loop::deferDelete.
  using Done = std::function<void(StreamPump*, const std::string& reason)>;

  StreamPump(Loop& loop, BufferEventPtr tcp, std::unique_ptr<WsConnection> ws, size_t highWatermark,
             Done done);
  ~StreamPump() override;
  // Before start(): only what `gate` lets through goes from TCP to the stream.
  void setUpstreamGate(UpstreamGate gate) { gate_ = std::move(gate); }
  // Starts both directions; bytes already buffered on either side are pumped first.
  void start();
  // Ends both sides now (the stream with 1001 and `reason`, the TCP side with a reset); Done
  // follows.
  void close(const std::string& reason);

  uint64_t bytesToStream() const { return up_; }      // TCP -> WebSocket
  uint64_t bytesFromStream() const { return down_; }  // WebSocket -> TCP

  static constexpr std::string_view kEofMessage = R"({"type":"eof"})";

 private:
  static void onTcpRead(bufferevent*, void* arg);
  static void onTcpWrite(bufferevent*, void* arg);
  static void onTcpEvent(bufferevent*, short what, void* arg);

  void onWsData(evbuffer* payload) override;
  void onWsText(std::string message) override;
  void onWsClosed(uint16_t code, const std::string& reason) override;
  void onWsDrained() override;

  void pumpUp();
  void maybeShutdownTcp();
  void maybeFinish();
  // `clean`: FIN after what is buffered for the TCP peer; otherwise a reset.
  void finish(const std::string& reason, bool clean);
  // The failure boundary: an exception from a TCP callback ends the stream (reset, 1011).
  void internalError();

  Loop& loop_;
  BufferEventPtr tcp_;
  std::unique_ptr<WsConnection> ws_;
  size_t high_;
  Done done_;
  UpstreamGate gate_;
  bool gateDone_ = false;  // the gate let through all it will: later TCP input is dropped
  bool tcpReadPaused_ = false;
  bool tcpEof_ = false;     // the TCP peer half-closed: we sent eof
  bool streamEof_ = false;  // the stream sent eof: we half-close TCP once output drains
  bool tcpShutdown_ = false;
  bool finished_ = false;
  uint64_t up_ = 0;
  uint64_t down_ = 0;
};

}  // namespace ds
