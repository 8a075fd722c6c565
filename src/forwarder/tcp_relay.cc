// TcpRelay: TCP <-> TCP with watermarks and half-close.
#include "forwarder/tcp_relay.h"

#include <sys/socket.h>

#include "common/guard.h"
#include "forwarder/reset.h"

namespace ds {

TcpRelay::TcpRelay(Loop& loop, BufferEventPtr client, BufferEventPtr target, size_t highWatermark,
                   Done done)
    : loop_(loop), high_(highWatermark), done_(std::move(done)) {
  side_[0].bev = std::move(client);
  side_[1].bev = std::move(target);
  for (int i = 0; i < 2; ++i) {
    Side& s = side_[i];
    s.relay = this;
    s.index = i;
    bufferevent_setcb(s.bev.get(), &TcpRelay::onRead, &TcpRelay::onWrite, &TcpRelay::onEvent, &s);
    // The write callback fires when the output falls to half the watermark (see move()).
    bufferevent_setwatermark(s.bev.get(), EV_WRITE, high_ / 2, 0);
  }
}

TcpRelay::~TcpRelay() {
  // Freed before it finished: neither side ended normally.
  for (Side& s : side_) resetConnection(std::move(s.bev));
}

void TcpRelay::start() {
  for (Side& s : side_) enableReadWrite(s.bev.get());
  for (Side& s : side_) {
    if (finished_) return;
    move(s);
  }
}

void TcpRelay::close(const std::string& reason) { finish(reason, false); }

void TcpRelay::onRead(bufferevent*, void* arg) {
  auto* s = static_cast<Side*>(arg);
  guarded(
      "tcp relay", [&] { s->relay->move(*s); }, [&] { s->relay->finish("internal error", false); });
}

// Passes what `from` has read to the other side; stops reading `from` while the other side's
// output is above the watermark.
void TcpRelay::move(Side& from) {
  if (finished_) return;
  Side& to = other(from);
  evbuffer* in = bufferevent_get_input(from.bev.get());
  evbuffer* out = bufferevent_get_output(to.bev.get());
  if (from.index == 0 && gate_) {
    if (gateDone_) return (void)evbuffer_drain(in, evbuffer_get_length(in));
    GateState st = moveThroughGate(in, out, gate_, from.moved);
    if (st == GateState::Failed) return finish("malformed request from the client", false);
    gateDone_ = st == GateState::Done;
  } else if (size_t n = evbuffer_get_length(in); n > 0) {
    from.moved += n;
    evbuffer_add_buffer(out, in);
  }
  if (evbuffer_get_length(out) > high_) bufferevent_disable(from.bev.get(), EV_READ);
}

void TcpRelay::onWrite(bufferevent*, void* arg) {
  auto* to = static_cast<Side*>(arg);
  guarded(
      "tcp relay",
      [&] {
        TcpRelay* self = to->relay;
        if (self->finished_) return;
        Side& from = self->other(*to);
        if (!from.eof) bufferevent_enable(from.bev.get(), EV_READ);
        self->maybeShutdown(*to);
      },
      [&] { to->relay->finish("internal error", false); });
}

// Half-closes `to` once the other side's peer half-closed and everything before it is sent.
void TcpRelay::maybeShutdown(Side& to) {
  if (finished_ || to.shutDown || !other(to).eof) return;
  if (evbuffer_get_length(bufferevent_get_output(to.bev.get())) != 0) return;
  to.shutDown = true;
  ::shutdown(bufferevent_getfd(to.bev.get()), SHUT_WR);
  if (side_[0].shutDown && side_[1].shutDown) finish("done", true);
}

void TcpRelay::onEvent(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Side*>(arg);
  guarded(
      "tcp relay",
      [&] {
        TcpRelay* self = s->relay;
        if (self->finished_) return;
        if (what & BEV_EVENT_EOF) {
          // Bytes held back by backpressure go first; the half-close follows them.
          Side& to = self->other(*s);
          self->move(*s);
          if (self->finished_) return;
          evbuffer* in = bufferevent_get_input(s->bev.get());
          s->moved += evbuffer_get_length(in);
          evbuffer_add_buffer(bufferevent_get_output(to.bev.get()), in);
          s->eof = true;
          bufferevent_disable(s->bev.get(), EV_READ);
          self->maybeShutdown(to);
          return;
        }
        self->finish(s->index == 0 ? "client connection failed" : "target connection failed",
                     false);
      },
      [&] { s->relay->finish("internal error", false); });
}

void TcpRelay::finish(const std::string& reason, bool clean) {
  if (finished_) return;
  finished_ = true;
  // A normal end (both half-closes passed on) lets the sockets linger as usual; any other end
  // resets both, so that neither peer takes a cut connection for a complete one.
  for (Side& s : side_) endConnection(loop_, std::move(s.bev), clean);
  if (done_) done_(this, reason);
}

}  // namespace ds
