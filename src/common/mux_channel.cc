// A MuxSession on an open WebSocket (mux_channel.h).
#include "common/mux_channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/guard.h"
#include "common/log.h"

namespace ds::mux {

namespace {

// Frames per binary message: enough to batch a round-robin turn over many streams, small enough
// that the receiver's parser never holds much.
constexpr size_t kMessage = 65535;  // the most a 16-bit WebSocket length carries

// The kernel reports the socket writable only while its unsent queue is below this, so frames
// wait in our buffers (where the round-robin and control-first order still apply) rather than
// in the socket's (where an interactive stream would queue behind a bulk one).
constexpr int kNotSentLowat = 128 * 1024;

}  // namespace

MuxChannel::MuxChannel(Loop& loop, Role role, const Limits& limits, WsConnection& ws, Owner& owner,
                       size_t highWatermark)
    : loop_(loop),
      ws_(ws),
      owner_(owner),
      high_(highWatermark),
      session_(role, limits, *this),
      flushTimer_(loop, [this] { flush(); }),
      tick_(loop, [this] { onTick(); }),
      pingInterval_(limits.pingInterval) {
  ws_.setHighWatermark(high_);
  // Each stream has its own credit, so a live peer always reads its channel.
  ws_.expectReading();
#ifdef TCP_NOTSENT_LOWAT
  evutil_socket_t fd = ws_.fd();
  int lowat = kNotSentLowat;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
#endif
  // The first RTT sample right away, then one every pingInterval.
  session_.tick(Clock::now());
  schedule();
  tick_.arm(pingInterval_);
}

MuxChannel::~MuxChannel() {
  down_ = true;
  flushTimer_.cancel();
  tick_.cancel();
  // Nothing is written any more; handlers still hear that their stream ended.
  session_.shutdown(close_code::GoingAway, "channel closed");
}

void MuxChannel::receive(evbuffer* payload) {
  if (down_) {
    evbuffer_drain(payload, evbuffer_get_length(payload));
    return;
  }
  TimePoint now = Clock::now();
  // Chain by chain, without copying the payload into one piece.
  while (evbuffer_get_length(payload) > 0 && !down_) {
    evbuffer_iovec v;
    if (evbuffer_peek(payload, -1, nullptr, &v, 1) < 1 || v.iov_len == 0) break;
    size_t n = v.iov_len;
    bool ok = session_.receive(static_cast<const uint8_t*>(v.iov_base), n, now);
    if (down_) return;  // a handler shut the channel down; `payload` may be gone with it
    evbuffer_drain(payload, n);
    if (!ok) return fail();
  }
  if (!down_ && session_.wantsFlush()) schedule();
}

void MuxChannel::drained() {
  if (!down_ && session_.wantsFlush()) flush();
}

void MuxChannel::shutdown(uint16_t code, std::string_view reason) {
  if (down_) return;
  down_ = true;
  flushTimer_.cancel();
  tick_.cancel();
  session_.shutdown(code, reason);
}

uint32_t MuxChannel::open(const OpenRequest& request, StreamHandler* handler) {
  if (down_) return 0;
  uint32_t id = session_.open(request);
  if (id == 0) return 0;
  handlers_[id] = handler;
  schedule();
  return id;
}

bool MuxChannel::accept(uint32_t id, StreamHandler* handler) {
  if (down_) return false;
  if (handler) handlers_[id] = handler;
  if (!session_.accept(id)) {
    handlers_.erase(id);
    return false;
  }
  schedule();
  return true;
}

bool MuxChannel::reject(uint32_t id, proto::Reject code, std::string_view reason,
                        std::string_view codeText) {
  if (down_) return false;
  handlers_.erase(id);
  bool ok = session_.reject(id, code, reason, codeText);
  schedule();
  return ok;
}

void MuxChannel::setHandler(uint32_t id, StreamHandler* handler) {
  auto it = handlers_.find(id);
  if (it != handlers_.end()) it->second = handler;
}

void MuxChannel::wantWrite(uint32_t id) {
  if (down_) return;
  session_.wantWrite(id);
  schedule();
}

void MuxChannel::eof(uint32_t id) {
  if (down_) return;
  session_.eof(id);
  schedule();
}

void MuxChannel::close(uint32_t id, uint16_t code, std::string_view reason) {
  handlers_.erase(id);
  if (down_) return;
  session_.close(id, code, reason);
  schedule();
}

void MuxChannel::consumed(uint32_t id, size_t n) {
  if (down_ || n == 0) return;
  session_.consumed(id, n);
  if (session_.wantsFlush()) schedule();
}

// ---- the session's callbacks, routed -------------------------------------------------------

StreamHandler* MuxChannel::handler(uint32_t id) const {
  auto it = handlers_.find(id);
  return it == handlers_.end() ? nullptr : it->second;
}

void MuxChannel::onOpen(uint32_t id, const OpenRequest& request) {
  handlers_[id] = nullptr;  // until accepted with one
  owner_.onMuxOpen(id, request);
}

void MuxChannel::onAccepted(uint32_t id) {
  if (StreamHandler* h = handler(id)) h->onMuxAccepted();
}

void MuxChannel::onRejected(uint32_t id, proto::Reject code, std::string_view codeText,
                            std::string_view reason) {
  StreamHandler* h = handler(id);
  handlers_.erase(id);
  if (h) h->onMuxRejected(code, codeText, reason);
}

void MuxChannel::onData(uint32_t id, const uint8_t* data, size_t len) {
  if (StreamHandler* h = handler(id)) {
    h->onMuxData(data, len);
  } else {
    // Nobody takes these bytes (a stream between owners): their credit goes back at once.
    session_.consumed(id, len);
  }
}

void MuxChannel::onEof(uint32_t id) {
  if (StreamHandler* h = handler(id)) h->onMuxEof();
}

void MuxChannel::onClosed(uint32_t id, uint16_t code, std::string_view reason) {
  StreamHandler* h = handler(id);
  handlers_.erase(id);
  if (h) h->onMuxClosed(code, reason);
}

size_t MuxChannel::onPull(uint32_t id, uint8_t* buf, size_t max) {
  StreamHandler* h = handler(id);
  return h ? h->onMuxPull(buf, max) : 0;
}

// ---- output ----------------------------------------------------------------------------------

void MuxChannel::schedule() {
  if (down_ || !session_.wantsFlush()) return;
  if (!session_.flushDue()) {
    // Only answers that may wait: they go with the next frames, or after kAnswerDelay.
    if (!flushTimer_.armed()) {
      flushTimer_.arm(kAnswerDelay);
      delayed_ = true;
    }
    return;
  }
  if (flushTimer_.armed() && !delayed_) return;
  delayed_ = false;
  // A flush that asks for another (a handler's callback) gets it on the next pass, so that one
  // pass never loops on flushes without polling the sockets.
  if (flushing_) {
    flushTimer_.arm(std::chrono::milliseconds(0));
  } else {
    flushTimer_.cancel();
    flushTimer_.armThisPass();
  }
}

void MuxChannel::flush() {
  // Everything goes now, the answers that could wait included (drained() may come first).
  flushTimer_.cancel();
  delayed_ = false;
  flushing_ = true;
  guarded(
      "mux channel",
      [&] {
        // Frames go out while the connection's output is short; the rest waits for drained().
        // The session writes its frames straight into the message (sendBinaryInPlace, one
        // message per pass), whose buffer then moves to the output: no copy in between.
        while (!down_ && ws_.open() && session_.wantsFlush() && !ws_.overHighWatermark()) {
          const TimePoint now = Clock::now();
          if (ws_.sendBinaryInPlace(kMessage, [&](uint8_t* dst, size_t cap) {
                return session_.flush(dst, cap, now);
              }) == 0) {
            break;
          }
        }
        if (!down_ && session_.failed()) fail();
      },
      [&] { failInternal(); });
  flushing_ = false;
}

void MuxChannel::onTick() {
  if (down_) return;
  session_.tick(Clock::now());
  schedule();
  tick_.arm(pingInterval_);
}

void MuxChannel::fail() {
  if (down_) return;
  uint16_t code = session_.channelCloseCode();
  std::string reason = session_.channelError();
  LOG_WARN("%s: multiplexed channel failed: %s", ws_.peer().c_str(), reason.c_str());
  down_ = true;
  flushTimer_.cancel();
  tick_.cancel();
  ws_.close(code, reason);
  // The session told every stream (onClosed) when it failed.
  owner_.onMuxFailed(code, reason);
}

void MuxChannel::failInternal() {
  if (down_) return;
  down_ = true;
  flushTimer_.cancel();
  tick_.cancel();
  session_.shutdown(close_code::InternalError, "internal error");
  ws_.close(close_code::InternalError, "internal error");
  owner_.onMuxFailed(close_code::InternalError, "internal error");
}

}  // namespace ds::mux
