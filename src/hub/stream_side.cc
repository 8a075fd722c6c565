// The two kinds of stream side at the hub (stream_side.h).
#include "hub/stream_side.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "common/log.h"

namespace ds::hub {

// ---------------------------------------------------------------------------------------------
// WsSide

WsSide::WsSide(std::unique_ptr<WsConnection> ws, Admission::Ticket ticket, size_t highWatermark)
    : ws_(std::move(ws)), ticket_(std::move(ticket)) {
  ws_->setCallbacks(this);
  ws_->setHighWatermark(highWatermark);
}

WsSide::~WsSide() { ws_->setCallbacks(nullptr); }

void WsSide::start(std::chrono::milliseconds keepalive) {
  // Pings: a peer that vanished without a FIN frees its slot within the keepalive bound
  // instead of holding the stream forever.
  ws_->enableKeepalive(keepalive);
  ws_->start();
}

void WsSide::sendEof() { ws_->sendText(proto::toText(proto::StreamControl::Eof)); }

void WsSide::close(uint16_t code, std::string_view reason) {
  if (ws_->open()) ws_->close(code, reason);
}

void WsSide::onWsData(evbuffer* payload) { events_->onSideData(side_, payload); }

void WsSide::onWsText(std::string message) { events_->onSideText(side_, message); }

void WsSide::onWsDrained() { events_->onSideDrained(side_); }

void WsSide::onWsClosed(uint16_t code, const std::string& reason) {
  events_->onSideClosed(side_, code, reason);
}

// ---------------------------------------------------------------------------------------------
// MuxSide

MuxSide::MuxSide(Loop& loop, mux::MuxChannel& channel, size_t highWatermark, uint32_t id)
    : channel_(channel),
      high_(highWatermark),
      id_(id),
      queue_(evbuffer_new()),
      scratch_(evbuffer_new()),
      notify_(loop, [this] { onNotify(); }) {}

MuxSide::~MuxSide() {
  // A side freed with its stream still on the channel ends it there; after the channel ended
  // the stream (closed_), the channel may be gone and is not touched.
  if (!closed_ && id_ != 0) channel_.close(id_, mux::close_code::GoingAway, "stream freed");
}

bool MuxSide::openStream(const mux::OpenRequest& request) {
  id_ = channel_.open(request, this);
  return id_ != 0;
}

void MuxSide::send(evbuffer* data) {
  if (closed_) {
    evbuffer_drain(data, evbuffer_get_length(data));
    return;
  }
  evbuffer_add_buffer(queue_.get(), data);
  if (full()) wasFull_ = true;
  channel_.wantWrite(id_);
}

void MuxSide::sendText(std::string_view message) {
  // The only stream control there is: a WebSocket peer's half-close.
  if (proto::parseStreamControl(message)) return sendEof();
  LOG_DEBUG("stream %u on a channel: a text message of %zu bytes not passed on", id_,
            message.size());
}

void MuxSide::sendEof() {
  // Eof goes out after the bytes still queued (the channel pulls them first).
  if (closed_ || eofWanted_) return;
  eofWanted_ = true;
  channel_.eof(id_);
}

bool MuxSide::drainThenNotify() {
  // A pending Eof needs no wait: the channel sends it ahead of the Close.
  if (closed_ || evbuffer_get_length(queue_.get()) == 0) return false;
  draining_ = true;
  channel_.wantWrite(id_);
  return true;
}

void MuxSide::onNotify() {
  if (closed_) return;
  bool drained = std::exchange(drainedDue_, false);
  bool flushed = std::exchange(flushedDue_, false);
  if (drained) events_->onSideDrained(side_);
  if (flushed && !closed_) events_->onSideFlushed(side_);
}

void MuxSide::close(uint16_t code, std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  notify_.cancel();
  channel_.close(id_, code, reason);
}

bool MuxSide::full() const { return evbuffer_get_length(queue_.get()) > high_; }

void MuxSide::resume() {
  paused_ = false;
  if (unconsumed_ == 0 || closed_) return;
  size_t n = unconsumed_;
  unconsumed_ = 0;
  channel_.consumed(id_, n);
}

void MuxSide::onMuxAccepted() {
  proto::StreamResponse yes;
  yes.accept = true;
  events_->onSideAnswer(side_, yes);
}

void MuxSide::onMuxRejected(proto::Reject code, std::string_view codeText,
                            std::string_view reason) {
  closed_ = true;  // final: the channel forgot the stream
  notify_.cancel();
  proto::StreamResponse no{{}, false, code, std::string(codeText), std::string(reason)};
  events_->onSideAnswer(side_, no);
}

void MuxSide::onMuxData(const uint8_t* data, size_t len) {
  bytesIn_ += len;
  unconsumed_ += len;
  evbuffer_add(scratch_.get(), data, len);
  events_->onSideData(side_, scratch_.get());
  evbuffer_drain(scratch_.get(), evbuffer_get_length(scratch_.get()));
  // The credit goes back once the other side took the bytes without filling up; while it is
  // full (pause()) the peer's window is all this stream can have in flight.
  if (!paused_ && !closed_ && unconsumed_ > 0) {
    size_t n = unconsumed_;
    unconsumed_ = 0;
    channel_.consumed(id_, n);
  }
}

void MuxSide::onMuxEof() { events_->onSideEof(side_); }

void MuxSide::onMuxClosed(uint16_t code, std::string_view reason) {
  closed_ = true;
  notify_.cancel();
  events_->onSideClosed(side_, code, reason);
}

size_t MuxSide::onMuxPull(uint8_t* buf, size_t max) {
  int got = evbuffer_remove(queue_.get(), buf, max);
  size_t n = got > 0 ? static_cast<size_t>(got) : 0;
  size_t left = evbuffer_get_length(queue_.get());
  // The other side hears of it outside the channel's flush (a WebSocket that resumes reads
  // at once would send into this queue from inside the pull).
  if (wasFull_ && left <= high_ / 2) {
    wasFull_ = false;
    drainedDue_ = true;
  }
  if (draining_ && left == 0) {
    draining_ = false;
    flushedDue_ = true;
  }
  if ((drainedDue_ || flushedDue_) && !notify_.armed()) notify_.arm(std::chrono::milliseconds(0));
  return n;
}

// ---------------------------------------------------------------------------------------------

proto::Parsed<proto::InitiateBody> initiateBody(const mux::OpenRequest& r) {
  // The fields as the JSON request names them, so that one parser judges both.
  nlohmann::json j = nlohmann::json::object();
  if (!r.socketPath.empty()) j["unix"] = r.socketPath;
  if (!r.host.empty()) j["host"] = r.host;
  if (r.port != 0 || r.socketPath.empty()) j["port"] = r.port;
  if (!r.user.empty()) j["user"] = r.user;
  if (!r.name.empty()) j["name"] = r.name;
  return proto::parseInitiateBody(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace ds::hub
