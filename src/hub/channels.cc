// Device and service control channels at the hub (channels.h).
#include "hub/channels.h"

#include "common/log.h"
#include "hub/stream_side.h"

namespace ds::hub {

namespace cc = ws::close_code;
using proto::Reject;

namespace {

// The multiplexed streams of a channel whose client offered them; null otherwise.
std::unique_ptr<mux::MuxChannel> muxFor(Loop& loop, WsConnection& ws, mux::MuxChannel::Owner& owner,
                                        const mux::Limits& limits, size_t highWatermark) {
  if (ws.protocol() != mux::kWsProtocol) return nullptr;
  return std::make_unique<mux::MuxChannel>(loop, mux::Role::Server, limits, ws, owner,
                                           highWatermark);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DeviceChannel

DeviceChannel::DeviceChannel(Loop& loop, Owner& owner, std::string id,
                             std::unique_ptr<WsConnection> ws, Admission::Ticket ticket,
                             size_t highWatermark, const mux::Limits& limits)
    : owner_(owner), id_(std::move(id)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
  ws_->setCallbacks(this);
  mux_ = muxFor(loop, *ws_, *this, limits, highWatermark);
}

DeviceChannel::~DeviceChannel() {
  mux_.reset();
  if (ws_) ws_->setCallbacks(nullptr);
}

void DeviceChannel::start(std::chrono::milliseconds keepalive) {
  ws_->enableKeepalive(keepalive);
  ws_->start();
}

void DeviceChannel::close(uint16_t code, std::string_view reason) { ws_->close(code, reason); }

void DeviceChannel::endStreams(std::string_view reason) {
  if (mux_) mux_->shutdown(cc::GoingAway, reason);
}

void DeviceChannel::onWsData(evbuffer* payload) {
  if (mux_) return mux_->receive(payload);
  LOG_WARN("device %s: binary data on the control channel", id_.c_str());
  ws_->close(cc::Unsupported, "binary data on control channel");
  owner_.onDeviceGone(*this);
}

void DeviceChannel::onWsText(std::string message) { owner_.onDeviceMessage(*this, message); }

void DeviceChannel::onWsDrained() {
  if (mux_) mux_->drained();
}

void DeviceChannel::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_INFO("device %s: control channel closed (%u %s)", id_.c_str(), code, reason.c_str());
  owner_.onDeviceGone(*this);
}

void DeviceChannel::onMuxOpen(uint32_t id, const mux::OpenRequest&) {
  // Streams go from services to devices: a device has nothing to open at the hub.
  mux_->reject(id, Reject::Forbidden, "the hub takes no streams from devices");
}

void DeviceChannel::onMuxFailed(uint16_t code, const std::string& reason) {
  LOG_WARN("device %s: multiplexed channel failed (%u %s)", id_.c_str(), code, reason.c_str());
  owner_.onDeviceGone(*this);
}

// ---------------------------------------------------------------------------------------------
// ServiceChannel: answers come in the order the devices decide, matched by the client's `id`.

ServiceChannel::ServiceChannel(Loop& loop, Owner& owner, PolicyRecord policy,
                               std::unique_ptr<WsConnection> ws, Admission::Ticket ticket,
                               size_t highWatermark, const mux::Limits& limits)
    : owner_(owner), policy_(std::move(policy)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
  ws_->setCallbacks(this);
  ws_->setHighWatermark(highWatermark);
  peer_ = ws_->peer();
  mux_ = muxFor(loop, *ws_, *this, limits, highWatermark);
}

ServiceChannel::~ServiceChannel() {
  mux_.reset();
  if (ws_) ws_->setCallbacks(nullptr);
}

void ServiceChannel::start(std::chrono::milliseconds keepalive) {
  ws_->enableKeepalive(keepalive);
  ws_->start();
}

void ServiceChannel::close(uint16_t code, std::string_view reason) {
  ws_->close(code, reason);
  if (mux_) mux_->shutdown(cc::GoingAway, reason);
  cancelWaiting();
}

void ServiceChannel::onWsData(evbuffer* payload) {
  if (mux_) return mux_->receive(payload);
  LOG_WARN("service channel %s: binary data", peer_.c_str());
  ws_->close(cc::Unsupported, "binary data on the service channel");
  gone();
}

void ServiceChannel::onWsText(std::string message) {
  std::optional<proto::RequestId> id;
  auto req = proto::parseServiceRequest(message, id);
  if (!id) {
    // Without an id there is nothing to answer to: the client is broken.
    LOG_WARN("service channel %s: %s", peer_.c_str(), req.error.c_str());
    ws_->close(cc::InvalidData, "message must be a JSON object with an \"id\"");
    gone();
    return;
  }
  if (!req) {
    send(*id, {400, {}, std::string(proto::name(Reject::BadRequest)), req.error, 0});
    return pauseIfFull();
  }
  proto::RequestId rid = *id;
  Stream* st = owner_.initiate(policy_, req->device,
                               {req->port, req->host, req->socketPath, req->user, req->name},
                               [this, rid](const proto::Answer& a) { send(rid, a); });
  pauseIfFull();
  if (!st) return;
  waiting_.insert(st);
  st->setInitiator({[this, rid, st](const proto::Answer& a) {
                      waiting_.erase(st);
                      send(rid, a);
                    },
                    [this, st] { waiting_.erase(st); }});
}

void ServiceChannel::onWsDrained() {
  ws_->resumeReading();
  if (mux_) mux_->drained();
}

void ServiceChannel::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_INFO("service channel %s (policy %s): closed (%u %s)", peer_.c_str(), policy_.name.c_str(),
           code, reason.c_str());
  gone();
}

// A stream the service opens on the channel: the same initiation as a stream_request, answered
// with Accept (the stream is the service side) or Reject with the answer's code.
void ServiceChannel::onMuxOpen(uint32_t id, const mux::OpenRequest& request) {
  auto body = initiateBody(request);
  if (!body) {
    mux_->reject(id, Reject::BadRequest, body.error);
    return;
  }
  Stream* st = owner_.initiate(policy_, request.device, *body,
                               [this, id](const proto::Answer& a) { answerOpen(id, a); });
  if (!st) return;
  auto pending = std::make_unique<PendingOpen>(this, id, st);
  mux_->setHandler(id, pending.get());
  opens_[id] = std::move(pending);
  st->setInitiator({[this, id](const proto::Answer& a) { answerOpen(id, a); },
                    [this, id] { forgetOpen(id); }, true});
}

void ServiceChannel::PendingOpen::onMuxClosed(uint16_t, std::string_view) {
  // The service cancelled (or the channel ended): as a POST whose client went away. The
  // channel forgot the handler; this object lives until the end of the call.
  auto self = channel->opens_.extract(id);
  stream->initiatorGone();
}

void ServiceChannel::answerOpen(uint32_t id, const proto::Answer& a) {
  forgetOpen(id);
  if (!mux_ || !mux_->up()) return;
  if (a.status == 200) {
    if (owner_.attachChannelSide(a.grant, *mux_, id)) return;
    mux_->reject(id, Reject::StreamUnknown, "the stream ended");
    return;
  }
  // The answer's code as the POST endpoint gives it; a 429's wait goes in the reason.
  std::string reason = a.message;
  if (a.retryAfter > 0) reason += " (retry after " + std::to_string(a.retryAfter) + " s)";
  mux_->reject(id, proto::rejectFromName(a.error), reason, a.error);
}

void ServiceChannel::forgetOpen(uint32_t id) {
  auto it = opens_.find(id);
  if (it == opens_.end()) return;
  if (mux_) mux_->setHandler(id, nullptr);
  opens_.erase(it);
}

void ServiceChannel::onMuxFailed(uint16_t code, const std::string& reason) {
  LOG_WARN("service channel %s: multiplexed channel failed (%u %s)", peer_.c_str(), code,
           reason.c_str());
  gone();
}

void ServiceChannel::send(const proto::RequestId& id, const proto::Answer& a) {
  ws_->sendText(proto::toText(proto::ServiceResponse{id, a}));
}

// A client that sends requests without reading the answers stops being read.
void ServiceChannel::pauseIfFull() {
  if (ws_->overHighWatermark()) ws_->pauseReading();
}

// Streams still waiting for an answer lose their initiator (and end).
void ServiceChannel::cancelWaiting() {
  std::set<Stream*> waiting;
  waiting.swap(waiting_);
  for (Stream* st : waiting) st->initiatorGone();
}

void ServiceChannel::gone() {
  // The channel's streams end (1001); those still waiting for the device are cancelled.
  if (mux_) mux_->shutdown(cc::GoingAway, "service channel closed");
  cancelWaiting();
  owner_.onServiceGone(*this);
}

}  // namespace ds::hub
