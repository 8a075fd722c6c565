// A byte pump between a TCP connection (or a Unix socket) and a stream multiplexed on a channel
// (mux_channel.h): the stream's credit is the backpressure toward the peer (bytes are reported
// consumed only once the TCP output has taken them), the TCP input is read only while the
// stream has room to send, Eof carries a half-close each way, and a Close on either side ends
// the other. As with StreamPump, only a normal end (Eof each way, then Close 1000) ends the TCP
// side with FIN; every other end resets it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/event.h"
#include "common/mux_channel.h"
#include "forwarder/gate.h"

namespace ds {

class MuxPump : public Deletable, private mux::StreamHandler {
 public:
  // Called once when both directions are finished or either side failed; `reason` says why.
  // The owner frees the pump with Loop::deferDelete.
  using Done = std::function<void(MuxPump*, const std::string& reason)>;

  // `id` is an open (accepted) stream of `channel`; the pump becomes its handler on start().
  // `highWatermark` bounds the TCP input read ahead of the stream's credit and the TCP output
  // before the peer's bytes are reported consumed.
  MuxPump(Loop& loop, BufferEventPtr tcp, mux::MuxChannel& channel, uint32_t id,
          size_t highWatermark, Done done);
  // Freed before it finished: the stream is closed with 1001 and the TCP side reset.
  ~MuxPump() override;
  // Before start(): only what `gate` lets through goes from TCP to the stream.
  void setUpstreamGate(UpstreamGate gate) { gate_ = std::move(gate); }
  void start();
  // Ends both sides now (the stream with 1001 and `reason`, the TCP side with a reset); Done
  // follows.
  void close(const std::string& reason);

  uint32_t id() const { return id_; }
  uint64_t bytesToStream() const { return up_; }      // TCP -> stream
  uint64_t bytesFromStream() const { return down_; }  // stream -> TCP

 private:
  static void onTcpRead(bufferevent*, void* arg);
  static void onTcpWrite(bufferevent*, void* arg);
  static void onTcpEvent(bufferevent*, short what, void* arg);

  // mux::StreamHandler
  void onMuxData(const uint8_t* data, size_t len) override;
  void onMuxEof() override;
  void onMuxClosed(uint16_t code, std::string_view reason) override;
  size_t onMuxPull(uint8_t* buf, size_t max) override;

  void readable();
  void written();
  void maybeShutdownTcp();
  void maybeFinish();
  void finish(const std::string& reason, bool clean);
  void internalError();

  Loop& loop_;
  BufferEventPtr tcp_;
  mux::MuxChannel* channel_;  // null once the stream ended
  uint32_t id_;
  size_t high_;
  Done done_;
  UpstreamGate gate_;
  EvBufferPtr pending_;      // what the gate let through, not yet pulled
  bool gateDone_ = false;    // the gate let through all it will: later TCP input is dropped
  bool readPaused_ = false;  // TCP reads stop while the input holds a watermark
  bool tcpEof_ = false;      // the TCP peer half-closed: Eof goes out after its bytes
  bool streamEof_ = false;   // the peer sent Eof: we half-close TCP once output drains
  bool tcpShutdown_ = false;
  bool finished_ = false;
  size_t unconsumed_ = 0;  // stream bytes in the TCP output, not yet reported consumed
  uint64_t up_ = 0;
  uint64_t down_ = 0;
};

}  // namespace ds
