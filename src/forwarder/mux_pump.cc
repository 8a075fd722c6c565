// MuxPump: TCP <-> one multiplexed stream, with credit as backpressure and half-close.
#include "forwarder/mux_pump.h"

#include <sys/socket.h>

#include "common/guard.h"
#include "common/log.h"
#include "forwarder/reset.h"

namespace ds {

namespace cc = mux::close_code;

MuxPump::MuxPump(Loop& loop, BufferEventPtr tcp, mux::MuxChannel& channel, uint32_t id,
                 size_t highWatermark, Done done)
    : loop_(loop),
      tcp_(std::move(tcp)),
      channel_(&channel),
      id_(id),
      high_(highWatermark),
      done_(std::move(done)),
      pending_(evbuffer_new()) {
  // From now on the stream's events come here: bytes that arrive before start() wait in the
  // TCP output.
  channel_->setHandler(id_, this);
  bufferevent_setcb(tcp_.get(), &MuxPump::onTcpRead, &MuxPump::onTcpWrite, &MuxPump::onTcpEvent,
                    this);
  // Reading stops at the high watermark until the stream pulls (readable); the write callback
  // fires whenever the TCP output shrinks to half of it, which is when credit goes back.
  bufferevent_setwatermark(tcp_.get(), EV_WRITE, high_ / 2, 0);
  bufferevent_setwatermark(tcp_.get(), EV_READ, 0, high_);
}

MuxPump::~MuxPump() {
  if (channel_) channel_->close(id_, cc::GoingAway, "stream abandoned");
  // Freed before it finished: the stream did not end normally.
  if (tcp_) resetConnection(std::move(tcp_));
}

void MuxPump::start() {
  enableReadWrite(tcp_.get());
  readable();
  written();
}

void MuxPump::close(const std::string& reason) {
  if (finished_) return;
  if (channel_) channel_->close(id_, cc::GoingAway, reason);
  channel_ = nullptr;
  finish(reason, false);
}

// ---- TCP -> stream ----------------------------------------------------------------------------

void MuxPump::onTcpRead(bufferevent*, void* arg) {
  auto* self = static_cast<MuxPump*>(arg);
  guarded(
      "mux pump", [&] { self->readable(); }, [&] { self->internalError(); });
}

// Input is there: the stream is told, and pulls it (onMuxPull) as its credit allows.
void MuxPump::readable() {
  if (finished_ || !tcp_ || !channel_) return;
  evbuffer* in = bufferevent_get_input(tcp_.get());
  if (gate_) {
    if (gateDone_) {
      evbuffer_drain(in, evbuffer_get_length(in));
    } else {
      uint64_t passed = 0;
      GateState st = moveThroughGate(in, pending_.get(), gate_, passed);
      if (st == GateState::Failed) {
        channel_->close(id_, cc::Normal, "malformed request from the client");
        channel_ = nullptr;
        return finish("malformed request from the client", false);
      }
      // The client is still read (and what it sends dropped) so that its FIN or reset is seen.
      if (st == GateState::Done) gateDone_ = true;
    }
  } else if (evbuffer_get_length(in) > 0) {
    evbuffer_add_buffer(pending_.get(), in);
  }
  size_t queued = evbuffer_get_length(pending_.get());
  // Backpressure: past the watermark, TCP reads wait until the stream has pulled.
  if (queued >= high_ && !readPaused_) {
    readPaused_ = true;
    bufferevent_disable(tcp_.get(), EV_READ);
  }
  if (queued > 0) channel_->wantWrite(id_);
}

size_t MuxPump::onMuxPull(uint8_t* buf, size_t max) {
  if (finished_) return 0;
  int n = evbuffer_remove(pending_.get(), buf, max);
  size_t got = n > 0 ? static_cast<size_t>(n) : 0;
  up_ += got;
  if (evbuffer_get_length(pending_.get()) > 0) {
    channel_->wantWrite(id_);  // a later turn takes the rest
  } else if (tcpEof_) {
    channel_->eof(id_);  // Eof follows the last bytes
    if (tcpShutdown_) {
      maybeFinish();  // the Close queued now goes out after this Data and the Eof
      return got;
    }
  }
  if (readPaused_ && evbuffer_get_length(pending_.get()) < high_ / 2 && !tcpEof_) {
    readPaused_ = false;
    bufferevent_enable(tcp_.get(), EV_READ);
  }
  return got;
}

// ---- stream -> TCP ----------------------------------------------------------------------------

void MuxPump::onMuxData(const uint8_t* data, size_t len) {
  if (finished_ || !tcp_) return;
  down_ += len;
  evbuffer_add(bufferevent_get_output(tcp_.get()), data, len);
  unconsumed_ += len;
  written();
}

void MuxPump::onTcpWrite(bufferevent*, void* arg) {
  auto* self = static_cast<MuxPump*>(arg);
  guarded(
      "mux pump", [&] { self->written(); }, [&] { self->internalError(); });
}

// The TCP output shrank: what left it is consumed, and its credit goes back to the peer. Credit
// is what bounds the bytes in flight toward a slow TCP reader, so a reader that stops stops
// only its own stream.
void MuxPump::written() {
  if (finished_ || !tcp_) return;
  size_t queued = evbuffer_get_length(bufferevent_get_output(tcp_.get()));
  if (queued < unconsumed_) {
    size_t done = unconsumed_ - queued;
    unconsumed_ = queued;
    if (channel_) channel_->consumed(id_, done);
  }
  maybeShutdownTcp();
}

void MuxPump::onMuxEof() {
  if (finished_) return;
  streamEof_ = true;
  maybeShutdownTcp();
}

void MuxPump::maybeShutdownTcp() {
  if (finished_ || !streamEof_ || tcpShutdown_ || !tcp_) return;
  if (evbuffer_get_length(bufferevent_get_output(tcp_.get())) != 0) return;
  tcpShutdown_ = true;
  ::shutdown(bufferevent_getfd(tcp_.get()), SHUT_WR);
  maybeFinish();
}

// ---- ends -------------------------------------------------------------------------------------

void MuxPump::onTcpEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<MuxPump*>(arg);
  guarded(
      "mux pump",
      [&] {
        if (self->finished_) return;
        if (what & BEV_EVENT_EOF) {
          self->readable();
          if (self->finished_) return;
          self->tcpEof_ = true;
          // Bytes still queued (credit was short) go first; Eof follows them in onMuxPull.
          if (evbuffer_get_length(self->pending_.get()) == 0 && self->channel_) {
            self->channel_->eof(self->id_);
          }
          self->maybeFinish();
          return;
        }
        if (self->channel_) self->channel_->close(self->id_, cc::GoingAway, "TCP side failed");
        self->channel_ = nullptr;
        self->finish("TCP connection failed", false);
      },
      [&] { self->internalError(); });
}

void MuxPump::maybeFinish() {
  // Both directions are done once our Eof went out after the last byte and the peer's Eof
  // reached the TCP peer as FIN; the stream then ends with 1000.
  if (!tcpEof_ || !tcpShutdown_ || evbuffer_get_length(pending_.get()) != 0) return;
  if (channel_) channel_->close(id_, cc::Normal, "done");
  channel_ = nullptr;
  finish("done", true);
}

void MuxPump::onMuxClosed(uint16_t code, std::string_view reason) {
  channel_ = nullptr;  // the stream is gone: nothing more is sent on it
  if (finished_) return;
  // A normal end is a 1000 after an Eof each way; anything else resets the TCP side so the
  // peer cannot mistake a cut stream for a complete one.
  bool normal = code == cc::Normal && streamEof_ && tcpEof_;
  finish("stream closed (" + std::to_string(code) +
             (reason.empty() ? "" : " " + std::string(reason)) + ")" +
             (normal ? "" : ", TCP side reset"),
         normal);
}

void MuxPump::internalError() {
  if (finished_) return;
  if (channel_) channel_->close(id_, cc::InternalError, "internal error");
  channel_ = nullptr;
  finish("internal error", false);
}

void MuxPump::finish(const std::string& reason, bool clean) {
  if (finished_) return;
  finished_ = true;
  endConnection(loop_, std::move(tcp_), clean, tcpEof_ && tcpShutdown_);
  if (done_) done_(this, reason);
}

}  // namespace ds
