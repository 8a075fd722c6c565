// WebSocket connection state machine over a bufferevent.
#include "common/ws_conn.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "common/guard.h"
#include "common/log.h"

namespace ds {

using ws::Opcode;
namespace cc = ws::close_code;

namespace {

// Copies the first `len` bytes of `src` to `dst`, XORing them with `key` (starting at payload
// position `offset`) on the way: masking and unmasking cost the one copy.
void copyMasked(evbuffer* src, uint8_t* dst, size_t len, const std::array<uint8_t, 4>& key,
                uint64_t offset) {
  int nvec = evbuffer_peek(src, static_cast<ev_ssize_t>(len), nullptr, nullptr, 0);
  std::vector<evbuffer_iovec> in(nvec > 0 ? nvec : 1);
  evbuffer_peek(src, static_cast<ev_ssize_t>(len), nullptr, in.data(), nvec);
  size_t done = 0;
  for (const auto& v : in) {
    size_t piece = v.iov_len < len - done ? v.iov_len : len - done;
    ws::maskCopy(dst + done, static_cast<const uint8_t*>(v.iov_base), piece, key, offset + done);
    done += piece;
    if (done == len) break;
  }
}

// Appends one frame of `len` payload bytes to `out` as one contiguous chain: TLS writes each
// chain as its own records, so a separate header chain would cost a tiny record and a system
// call per frame. A client masks (RFC 6455 5.3). `copy(dst, key)` writes the payload to `dst`,
// masked with `*key` when key is not null: the payload costs one copy, masked or not.
template <class Copy>
void appendFrame(evbuffer* out, bool client, bool fin, ws::Opcode op, size_t len, Copy copy) {
  evbuffer_iovec v;
  evbuffer_reserve_space(out, static_cast<ev_ssize_t>(ws::kMaxHeaderLen + len), &v, 1);
  auto* p = static_cast<uint8_t*>(v.iov_base);
  std::array<uint8_t, 4> key{};
  if (client) key = ws::randomMaskKey();
  size_t h = ws::encodeHeader(p, fin, op, len, client ? key.data() : nullptr);
  copy(p + h, client ? &key : nullptr);
  v.iov_len = h + len;
  evbuffer_commit_space(out, &v, 1);
}

}  // namespace

WsConnection::WsConnection(Loop& loop, BufferEventPtr bev, Role role, const WsLimits& limits,
                           Callbacks* callbacks)
    : loop_(loop),
      bev_(std::move(bev)),
      role_(role),
      limits_(limits),
      callbacks_(callbacks),
      chunk_(evbuffer_new()),
      keepaliveTimer_(loop, [this] { onKeepalive(); }),
      lastInput_(std::chrono::steady_clock::now()) {
  peer_ = peerName(bufferevent_getfd(bev_.get()));
  bufferevent_setcb(bev_.get(), &WsConnection::onReadCb, &WsConnection::onWriteCb,
                    &WsConnection::onEventCb, this);
  // Reads and writes keep libevent's defaults on the TLS bufferevent: the socket bufferevent
  // under it does the large system calls (tls.h). With a larger write maximum on
  // bufferevent_openssl on a socket (libevent 2.1.12) the libwebsockets interop peer dropped the
  // connection.
  // Nothing is read before start(): the owner may still be pairing this connection.
  bufferevent_disable(bev_.get(), EV_READ);
  applyWriteWatermark();
}

WsConnection::~WsConnection() {
  if (bev_) {
    // The owner let go without a close handshake: still try to deliver what was queued.
    loop_.closeAfterFlush(std::move(bev_));
  }
}

std::string WsConnection::peer() const { return peer_; }

void WsConnection::start() {
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  process();
}

void WsConnection::setHighWatermark(size_t high) {
  high_ = high;
  applyWriteWatermark();
}

void WsConnection::applyWriteWatermark() {
  if (bev_) bufferevent_setwatermark(bev_.get(), EV_WRITE, high_ / 2, 0);
}

size_t WsConnection::outputLength() const {
  return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

void WsConnection::pauseReading() {
  if (paused_ || !bev_) return;
  paused_ = true;
  bufferevent_disable(bev_.get(), EV_READ);
}

void WsConnection::resumeReading() {
  if (!paused_ || !bev_) return;
  paused_ = false;
  if (state_ != State::Open) return;
  bufferevent_enable(bev_.get(), EV_READ);
  process();
  if (peerEof_ && state_ == State::Open && !paused_ && !processing_) {
    finish(cc::Abnormal, "connection closed without close frame");
  }
}

void WsConnection::enableKeepalive(std::chrono::milliseconds interval,
                                   std::chrono::milliseconds timeout) {
  keepalive_ = interval;
  keepaliveTimeout_ = timeout.count() > 0 ? timeout : 3 * interval;
  lastPing_ = lastOutputMove_ = std::chrono::steady_clock::now();
  if (interval.count() > 0) keepaliveTimer_.arm(std::min(interval, keepaliveTimeout_));
}

void WsConnection::onKeepalive() {
  using std::chrono::milliseconds;
  if (state_ != State::Open) return;
  auto now = std::chrono::steady_clock::now();
  // Silence counts only while the peer owes us an answer: not while we stopped reading it
  // (backpressure) nor while our output waits for it (a slow reader answers our ping only after
  // the data before it). A peer expected to read (expectReading) whose output has not moved for
  // the whole timeout is wedged, alive to TCP (its kernel acknowledges the zero-window probes):
  // that is silence too.
  const size_t out = outputLength();
  if (std::exchange(outputMoved_, false) || out == 0 || out < outputAtCheck_) lastOutputMove_ = now;
  outputAtCheck_ = out;
  const bool outputMoving = !expectReading_ || now - lastOutputMove_ < keepaliveTimeout_;
  if (paused_ || (out > 0 && outputMoving)) lastInput_ = now;
  auto silent = std::chrono::duration_cast<milliseconds>(now - lastInput_);
  if (silent >= keepaliveTimeout_) {
    LOG_WARN("websocket %s: no input for %lld ms, dropping", peer_.c_str(),
             static_cast<long long>(silent.count()));
    finish(cc::Abnormal, "keepalive timeout");
    return;
  }
  auto sincePing = std::chrono::duration_cast<milliseconds>(now - lastPing_);
  if (sincePing >= keepalive_ - milliseconds(1)) {
    sendControl(Opcode::Ping, {});
    lastPing_ = now;
    sincePing = milliseconds(0);
  }
  // Wake for the next ping or for the moment the silence reaches the timeout, whichever is first.
  milliseconds next = std::min(keepalive_ - sincePing, keepaliveTimeout_ - silent);
  keepaliveTimer_.arm(std::max(next, milliseconds(1)));
}

void WsConnection::onReadCb(bufferevent*, void* arg) {
  auto* self = static_cast<WsConnection*>(arg);
  self->lastInput_ = std::chrono::steady_clock::now();
  guarded(
      "websocket", [self] { self->process(); }, [self] { self->internalError(); });
}

void WsConnection::onWriteCb(bufferevent*, void* arg) {
  auto* self = static_cast<WsConnection*>(arg);
  self->outputMoved_ = true;
  guarded(
      "websocket",
      [self] {
        if (self->pongDue_ && self->outputLength() <= self->high_ / 2) {
          self->pongDue_ = false;
          self->sendControl(Opcode::Pong, self->pongPayload_);
        }
        if (self->wantDrained_ && self->outputLength() <= self->high_ / 2) {
          self->wantDrained_ = false;
          if (self->callbacks_) self->callbacks_->onWsDrained();
        }
      },
      [self] { self->internalError(); });
}

void WsConnection::onEventCb(bufferevent*, short what, void* arg) {
  auto* self = static_cast<WsConnection*>(arg);
  guarded(
      "websocket",
      [self, what] {
        if (what & BEV_EVENT_EOF) {
          // Input that arrived with the EOF may still hold frames (even the close frame); while
          // reading is paused they wait for resumeReading, which ends the connection after them.
          self->peerEof_ = true;
          self->process();
          if (self->state_ == State::Open && !self->paused_)
            self->finish(cc::Abnormal, "connection closed without close frame");
        } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
          if (self->state_ == State::Open) self->finish(cc::Abnormal, "connection lost");
        }
      },
      [self] { self->internalError(); });
}

void WsConnection::internalError() {
  processing_ = false;
  if (state_ == State::Open) {
    fail(cc::InternalError, "internal error");
  } else if (bev_) {
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    bev_.reset();
  }
}

void WsConnection::process() {
  if (processing_ || !bev_) return;
  processing_ = true;
  evbuffer* in = bufferevent_get_input(bev_.get());
  while (state_ == State::Open && !paused_) {
    size_t avail = evbuffer_get_length(in);
    if (readState_ == ReadState::Header) {
      if (avail == 0) break;
      uint8_t hdr[ws::kMaxHeaderLen];
      size_t n = avail < sizeof hdr ? avail : sizeof hdr;
      evbuffer_copyout(in, hdr, n);
      ws::FrameHeader h;
      ws::ParseResult r = ws::parseHeader(hdr, n, role_ == Role::Server, limits_.maxFrame, h);
      if (r.status == ws::ParseStatus::NeedMore) break;
      if (r.status == ws::ParseStatus::Invalid) {
        fail(r.closeCode, r.error);
        break;
      }
      evbuffer_drain(in, r.consumed);
      if (!ws::isControl(h.opcode)) {
        if (h.opcode == Opcode::Continuation) {
          if (!inMessage_) {
            fail(cc::ProtocolError, "continuation frame outside a message");
            break;
          }
        } else {
          if (inMessage_) {
            fail(cc::ProtocolError, "new message inside a fragmented message");
            break;
          }
          messageOp_ = h.opcode;
          textBuf_.clear();
        }
        inMessage_ = !h.fin;
      } else {
        controlBuf_.clear();
      }
      frame_ = h;
      frameOffset_ = 0;
      readState_ = ReadState::Payload;
      if (frame_.payloadLen == 0 && !handleFrameEnd()) break;
      continue;
    }

    if (avail == 0) break;
    uint64_t remaining = frame_.payloadLen - frameOffset_;
    size_t take = remaining < avail ? static_cast<size_t>(remaining) : avail;
    bool control = ws::isControl(frame_.opcode);
    if (!control && messageOp_ == Opcode::Binary) {
      if (!frame_.masked) {
        evbuffer_remove_buffer(in, chunk_.get(), take);
      } else {
        // Unmask while copying into the chunk: one copy, 8 bytes at a time.
        evbuffer_iovec v;
        evbuffer_reserve_space(chunk_.get(), static_cast<ev_ssize_t>(take), &v, 1);
        copyMasked(in, static_cast<uint8_t*>(v.iov_base), take, frame_.maskKey, frameOffset_);
        v.iov_len = take;
        evbuffer_commit_space(chunk_.get(), &v, 1);
        evbuffer_drain(in, take);
      }
      frameOffset_ += take;
      bytesIn_ += take;
      if (callbacks_) callbacks_->onWsData(chunk_.get());
      evbuffer_drain(chunk_.get(), evbuffer_get_length(chunk_.get()));
    } else {
      std::string& buf = control ? controlBuf_ : textBuf_;
      if (!control && buf.size() + take > limits_.maxMessage) {
        fail(cc::TooBig, "text message too large");
        break;
      }
      size_t old = buf.size();
      buf.resize(old + take);
      evbuffer_remove(in, buf.data() + old, take);
      if (frame_.masked) {
        auto* p = reinterpret_cast<uint8_t*>(buf.data() + old);
        ws::maskCopy(p, p, take, frame_.maskKey, frameOffset_);
      }
      frameOffset_ += take;
    }
    if (frameOffset_ == frame_.payloadLen && !handleFrameEnd()) break;
  }
  processing_ = false;
}

// Returns false when the connection ended.
bool WsConnection::handleFrameEnd() {
  readState_ = ReadState::Header;
  switch (frame_.opcode) {
    case Opcode::Ping:
      // A peer that pings without reading must not grow our output: above the watermark only
      // the latest ping is answered, once the output drained (RFC 6455 5.5.3 allows that).
      if (outputLength() > high_) {
        pongDue_ = true;
        pongPayload_ = controlBuf_;
      } else {
        sendControl(Opcode::Pong, controlBuf_);
      }
      return true;
    case Opcode::Pong:
      return true;
    case Opcode::Close: {
      ws::ClosePayload cp;
      if (!ws::parseClosePayload(reinterpret_cast<const uint8_t*>(controlBuf_.data()),
                                 controlBuf_.size(), cp)) {
        fail(cc::ProtocolError, "invalid close frame");
        return false;
      }
      // Echo the code, as RFC 6455 5.5.1 asks; an empty close is answered with an empty one.
      sendControl(Opcode::Close,
                  cp.code == cc::NoStatus ? std::string() : ws::encodeClosePayload(cp.code, ""));
      finish(cp.code, cp.reason);
      return false;
    }
    case Opcode::Text:
    case Opcode::Binary:
    case Opcode::Continuation:
      if (!frame_.fin || messageOp_ != Opcode::Text) return true;
      if (!ws::isValidUtf8(textBuf_)) {
        fail(cc::InvalidData, "text message is not valid UTF-8");
        return false;
      }
      if (callbacks_) callbacks_->onWsText(std::move(textBuf_));
      textBuf_.clear();
      return state_ == State::Open;
  }
  return true;
}

void WsConnection::sendFrame(Opcode op, const void* data, size_t len) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  appendFrame(bufferevent_get_output(bev_.get()), role_ == Role::Client, true, op, len,
              [&](uint8_t* dst, const std::array<uint8_t, 4>* key) {
                if (key) {
                  ws::maskCopy(dst, bytes, len, *key, 0);
                } else if (len) {
                  std::memcpy(dst, bytes, len);
                }
              });
}

void WsConnection::sendBinary(evbuffer* data) {
  if (state_ != State::Open) {
    evbuffer_drain(data, evbuffer_get_length(data));
    return;
  }
  evbuffer* out = bufferevent_get_output(bev_.get());
  size_t total = evbuffer_get_length(data);
  bytesOut_ += total;
  Opcode op = Opcode::Binary;
  do {
    size_t len = total < limits_.maxSendFrame ? total : limits_.maxSendFrame;
    bool fin = len == total;
    appendFrame(out, role_ == Role::Client, fin, op, len,
                [&](uint8_t* dst, const std::array<uint8_t, 4>* key) {
                  if (key) {
                    copyMasked(data, dst, len, *key, 0);
                  } else {
                    evbuffer_copyout(data, dst, len);
                  }
                });
    evbuffer_drain(data, len);
    total -= len;
    op = Opcode::Continuation;
  } while (total > 0);
  if (outputLength() > high_) wantDrained_ = true;
}

// The payload goes where a 16-bit length form puts it (8 header bytes for a client, with the
// mask key, 4 for a server); a payload under 126 bytes takes the 7-bit form (RFC 6455 §5.2:
// the minimal length encoding) and moves back by two bytes. The message is built in a buffer of
// its own and its chain then moved (not copied) to the output, so whatever `fill` may send on
// this connection meanwhile goes ahead of it whole instead of into the reserved space.
uint8_t* WsConnection::beginInPlace(size_t& max) {
  if (state_ != State::Open) return nullptr;
  max = std::min<size_t>(max, 0xffff);
  const size_t room = role_ == Role::Client ? 8 : 4;
  if (!inPlaceBuf_) inPlaceBuf_.reset(evbuffer_new());
  if (!inPlaceBuf_ || evbuffer_reserve_space(inPlaceBuf_.get(), static_cast<ev_ssize_t>(room + max),
                                             &inPlace_, 1) != 1) {
    return nullptr;
  }
  return static_cast<uint8_t*>(inPlace_.iov_base) + room;
}

size_t WsConnection::endInPlace(uint8_t* payload, size_t len) {
  if (len == 0 || state_ != State::Open) return 0;
  const bool client = role_ == Role::Client;
  auto* p = static_cast<uint8_t*>(inPlace_.iov_base);
  std::array<uint8_t, 4> key{};
  if (client) key = ws::randomMaskKey();
  // The header ends at or before the payload's start, so writing it first leaves the payload be.
  const size_t h =
      ws::encodeHeader(p, true, ws::Opcode::Binary, len, client ? key.data() : nullptr);
  if (p + h != payload) std::memmove(p + h, payload, len);
  if (client) ws::maskCopy(p + h, p + h, len, key, 0);
  inPlace_.iov_len = h + len;
  evbuffer_commit_space(inPlaceBuf_.get(), &inPlace_, 1);
  evbuffer_add_buffer(bufferevent_get_output(bev_.get()), inPlaceBuf_.get());
  bytesOut_ += len;
  if (outputLength() > high_) wantDrained_ = true;
  return len;
}

void WsConnection::sendText(std::string_view text) {
  if (state_ != State::Open) return;
  sendFrame(Opcode::Text, text.data(), text.size());
  if (outputLength() > high_) wantDrained_ = true;
}

void WsConnection::sendControl(Opcode op, std::string_view payload) {
  if (!bev_) return;
  sendFrame(op, payload.data(), payload.size());
}

void WsConnection::close(uint16_t code, std::string_view reason) {
  if (state_ != State::Open) return;
  sendControl(Opcode::Close, ws::encodeClosePayload(code, reason));
  state_ = State::Closed;
  keepaliveTimer_.cancel();
  loop_.closeAfterFlush(std::move(bev_));
}

void WsConnection::fail(uint16_t code, const std::string& reason) {
  LOG_WARN("websocket %s: %s (close %u)", peer_.c_str(), reason.c_str(), code);
  sendControl(Opcode::Close, ws::encodeClosePayload(code, reason));
  finish(code, reason);
}

void WsConnection::finish(uint16_t code, const std::string& reason) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  keepaliveTimer_.cancel();
  if (code == cc::Abnormal) {
    bev_.reset();
  } else {
    loop_.closeAfterFlush(std::move(bev_));
  }
  if (callbacks_) callbacks_->onWsClosed(code, reason);
}

}  // namespace ds
