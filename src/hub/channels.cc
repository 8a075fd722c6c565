// Device and service control channels at the hub (channels.h).
#include "hub/channels.h"

#include "common/log.h"

namespace ds::hub {

namespace cc = ws::close_code;
using proto::Reject;

// ---------------------------------------------------------------------------------------------
// DeviceChannel

DeviceChannel::DeviceChannel(Owner& owner, std::string id, std::unique_ptr<WsConnection> ws,
                             Admission::Ticket ticket)
    : owner_(owner), id_(std::move(id)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
  ws_->setCallbacks(this);
}

DeviceChannel::~DeviceChannel() {
  if (ws_) ws_->setCallbacks(nullptr);
}

void DeviceChannel::start(std::chrono::milliseconds keepalive) {
  ws_->enableKeepalive(keepalive);
  ws_->start();
}

void DeviceChannel::onWsData(evbuffer*) {
  LOG_WARN("device %s: binary data on the control channel", id_.c_str());
  ws_->close(cc::Unsupported, "binary data on control channel");
  owner_.onDeviceGone(*this);
}

void DeviceChannel::onWsText(std::string message) { owner_.onDeviceMessage(*this, message); }

void DeviceChannel::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_INFO("device %s: control channel closed (%u %s)", id_.c_str(), code, reason.c_str());
  owner_.onDeviceGone(*this);
}

// ---------------------------------------------------------------------------------------------
// ServiceChannel: answers come in the order the devices decide, matched by the client's `id`.

ServiceChannel::ServiceChannel(Owner& owner, PolicyRecord policy, std::unique_ptr<WsConnection> ws,
                               Admission::Ticket ticket, size_t highWatermark)
    : owner_(owner), policy_(std::move(policy)), ws_(std::move(ws)), ticket_(std::move(ticket)) {
  ws_->setCallbacks(this);
  ws_->setHighWatermark(highWatermark);
  peer_ = ws_->peer();
}

ServiceChannel::~ServiceChannel() {
  if (ws_) ws_->setCallbacks(nullptr);
}

void ServiceChannel::start(std::chrono::milliseconds keepalive) {
  ws_->enableKeepalive(keepalive);
  ws_->start();
}

void ServiceChannel::close(uint16_t code, std::string_view reason) {
  ws_->close(code, reason);
  cancelWaiting();
}

void ServiceChannel::onWsData(evbuffer*) {
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
  Stream* st = owner_.initiate(policy_, req->device, {req->port, req->host},
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

void ServiceChannel::onWsClosed(uint16_t code, const std::string& reason) {
  LOG_INFO("service channel %s (policy %s): closed (%u %s)", peer_.c_str(), policy_.name.c_str(),
           code, reason.c_str());
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
  cancelWaiting();
  owner_.onServiceGone(*this);
}

}  // namespace ds::hub
