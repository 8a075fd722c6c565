// StreamPump: TCP <-> WebSocket with watermarks and half-close.
#include "forwarder/pump.h"

#include <sys/socket.h>

#include "common/guard.h"
#include "common/log.h"
#include "forwarder/reset.h"

namespace ds {

StreamPump::StreamPump(Loop& loop, BufferEventPtr tcp, std::unique_ptr<WsConnection> ws,
                       size_t highWatermark, Done done)
    : loop_(loop),
      tcp_(std::move(tcp)),
      ws_(std::move(ws)),
      high_(highWatermark),
      done_(std::move(done)) {
  bufferevent_setcb(tcp_.get(), &StreamPump::onTcpRead, &StreamPump::onTcpWrite,
                    &StreamPump::onTcpEvent, this);
  // Reading stops at the high watermark until the stream drains (see pumpUp); the write
  // callback fires when the TCP output falls to half of it.
  bufferevent_setwatermark(tcp_.get(), EV_WRITE, high_ / 2, 0);
  bufferevent_setwatermark(tcp_.get(), EV_READ, 0, high_);
  ws_->setCallbacks(this);
  ws_->setHighWatermark(high_);
}

StreamPump::~StreamPump() {
  if (ws_) ws_->setCallbacks(nullptr);
  // Freed before it finished: the stream did not end normally.
  resetConnection(std::move(tcp_));
}

void StreamPump::start() {
  enableReadWrite(tcp_.get());
  ws_->start();
  pumpUp();
}

void StreamPump::close(const std::string& reason) {
  if (finished_) return;
  ws_->close(ws::close_code::GoingAway, reason);
  finish(reason, false);
}

void StreamPump::onTcpRead(bufferevent*, void* arg) {
  auto* self = static_cast<StreamPump*>(arg);
  guarded(
      "stream pump", [&] { self->pumpUp(); }, [&] { self->internalError(); });
}

void StreamPump::pumpUp() {
  if (finished_ || !tcp_) return;
  evbuffer* in = bufferevent_get_input(tcp_.get());
  if (gate_) {
    if (gateDone_) {
      evbuffer_drain(in, evbuffer_get_length(in));
      return;
    }
    EvBufferPtr pass(evbuffer_new());
    GateState st = moveThroughGate(in, pass.get(), gate_, up_);
    if (evbuffer_get_length(pass.get()) > 0) ws_->sendBinary(pass.get());
    if (st == GateState::Failed) {
      ws_->close(ws::close_code::Normal, "malformed request from the client");
      return finish("malformed request from the client", false);
    }
    if (st == GateState::Done) {
      // The client is still read (and what it sends dropped) so that its FIN or reset is seen.
      gateDone_ = true;
      return;
    }
  } else if (size_t n = evbuffer_get_length(in); n > 0) {
    up_ += n;
    ws_->sendBinary(in);
  }
  if (ws_->overHighWatermark()) {
    if (!tcpReadPaused_) {
      tcpReadPaused_ = true;
      bufferevent_disable(tcp_.get(), EV_READ);
    }
  }
}

void StreamPump::onWsDrained() {
  if (finished_ || !tcpReadPaused_) return;
  tcpReadPaused_ = false;
  if (!tcpEof_) bufferevent_enable(tcp_.get(), EV_READ);
  pumpUp();
}

void StreamPump::onWsData(evbuffer* payload) {
  if (finished_) return;
  down_ += evbuffer_get_length(payload);
  evbuffer* out = bufferevent_get_output(tcp_.get());
  evbuffer_add_buffer(out, payload);
  if (evbuffer_get_length(out) > high_) ws_->pauseReading();
}

void StreamPump::onTcpWrite(bufferevent*, void* arg) {
  auto* self = static_cast<StreamPump*>(arg);
  guarded(
      "stream pump",
      [&] {
        if (self->finished_) return;
        // Resuming may deliver an eof and a close that finish the pump before it returns.
        self->ws_->resumeReading();
        self->maybeShutdownTcp();
      },
      [&] { self->internalError(); });
}

void StreamPump::onWsText(std::string message) {
  if (finished_) return;
  if (message == kEofMessage) {
    streamEof_ = true;
    maybeShutdownTcp();
    return;
  }
  LOG_WARN("stream: unknown control message ignored");
}

void StreamPump::maybeShutdownTcp() {
  if (finished_ || !streamEof_ || tcpShutdown_) return;
  if (evbuffer_get_length(bufferevent_get_output(tcp_.get())) != 0) return;
  tcpShutdown_ = true;
  ::shutdown(bufferevent_getfd(tcp_.get()), SHUT_WR);
  maybeFinish();
}

void StreamPump::onTcpEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<StreamPump*>(arg);
  guarded(
      "stream pump",
      [&] {
        if (self->finished_) return;
        if (what & BEV_EVENT_EOF) {
          self->pumpUp();
          if (self->finished_) return;
          // Bytes still in the input (paused by backpressure) go first; eof follows them in order.
          evbuffer* in = bufferevent_get_input(self->tcp_.get());
          if (evbuffer_get_length(in) > 0) self->ws_->sendBinary(in);
          self->tcpEof_ = true;
          self->ws_->sendText(kEofMessage);
          self->maybeFinish();
          return;
        }
        self->ws_->close(ws::close_code::GoingAway, "target connection failed");
        self->finish("TCP connection failed", false);
      },
      [&] { self->internalError(); });
}

void StreamPump::maybeFinish() {
  if (tcpEof_ && tcpShutdown_) {
    ws_->close(ws::close_code::Normal, "done");
    finish("done", true);
  }
}

void StreamPump::onWsClosed(uint16_t code, const std::string& reason) {
  if (finished_) return;
  // A normal end is a 1000 after an eof each way: what the stream delivered still reaches the
  // TCP peer, then FIN. Anything else (the far side failed, the hub or the link went away) is
  // a reset, so that the TCP peer cannot mistake a cut stream for a complete one.
  bool normal = code == ws::close_code::Normal && streamEof_ && tcpEof_;
  finish("stream closed (" + std::to_string(code) + (reason.empty() ? "" : " " + reason) + ")" +
             (normal ? "" : ", TCP side reset"),
         normal);
}

void StreamPump::internalError() {
  if (finished_) return;
  ws_->close(ws::close_code::InternalError, "internal error");
  finish("internal error", false);
}

void StreamPump::finish(const std::string& reason, bool clean) {
  if (finished_) return;
  finished_ = true;
  endConnection(loop_, std::move(tcp_), clean, tcpEof_ && tcpShutdown_);
  if (done_) done_(this, reason);
}

}  // namespace ds
