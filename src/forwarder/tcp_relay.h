// A byte relay between two TCP connections, for destinations the daemon reaches directly: the
// same rules as StreamPump (watermarks on both sides, half-close passed on, a failure on either
// side resets the other; only a relay whose both sides half-closed ends without a reset).
#pragma once

#include <functional>
#include <string>

#include "common/event.h"
#include "forwarder/gate.h"

namespace ds {

class TcpRelay : public Deletable {
 public:
  // Called once when both directions are finished or either side failed; the owner frees the
  // relay with Loop::deferDelete.
  using Done = std::function<void(TcpRelay*, const std::string& reason)>;

  TcpRelay(Loop& loop, BufferEventPtr client, BufferEventPtr target, size_t highWatermark,
           Done done);
  ~TcpRelay() override;
  // Before start(): only what `gate` lets through goes from the client to the target.
  void setUpstreamGate(UpstreamGate gate) { gate_ = std::move(gate); }
  // Starts both directions; bytes already buffered on either side are relayed first.
  void start();
  // Ends both sides now with a reset; Done follows.
  void close(const std::string& reason);

  uint64_t bytesToTarget() const { return side_[0].moved; }
  uint64_t bytesFromTarget() const { return side_[1].moved; }

 private:
  // side_[0] reads the client and writes the target; side_[1] the other way.
  struct Side {
    TcpRelay* relay = nullptr;
    int index = 0;
    BufferEventPtr bev;
    bool eof = false;       // this side's peer half-closed
    bool shutDown = false;  // we half-closed this side's socket
    uint64_t moved = 0;     // bytes read here and passed on
  };
  static void onRead(bufferevent*, void* arg);
  static void onWrite(bufferevent*, void* arg);
  static void onEvent(bufferevent*, short what, void* arg);
  void move(Side& from);
  void maybeShutdown(Side& to);
  void finish(const std::string& reason, bool clean);
  Side& other(const Side& s) { return side_[1 - s.index]; }

  Loop& loop_;
  Side side_[2];
  size_t high_;
  Done done_;
  UpstreamGate gate_;
  bool gateDone_ = false;
  bool finished_ = false;
};

}  // namespace ds
