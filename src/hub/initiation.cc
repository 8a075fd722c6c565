// Stream initiation at the hub (one code path for the POST endpoint and the service channel)
// and the one way a side joins a stream, by its single-use token: on the streaming endpoint or
// as a stream the service opened on its channel (hub.h).
#include "common/log.h"
#include "hub/hub.h"

namespace ds::hub {

namespace cc = ws::close_code;
using proto::Reject;

Stream* Hub::claimSide(const std::string& streamId, std::string_view token, Stream::Side& side) {
  auto it = streams_.find(streamId);
  if (it == streams_.end()) return nullptr;
  auto claimed = it->second->claim(token);
  if (!claimed) return nullptr;
  side = *claimed;
  return it->second.get();
}

void Hub::handleStreamSide(Session& s, const std::string& streamId) {
  if (!s.checkUpgrade()) return;
  const std::string* auth = s.request().headers.find("Authorization");
  if (!auth || !auth->starts_with("Bearer ")) {
    return s.respondError(401, "unauthorized", "Bearer stream token required", {kBearerChallenge});
  }
  if (!streams_.count(streamId)) {
    return s.respondError(Reject::StreamUnknown, "no such stream (ended or expired)");
  }
  Stream::Side side;
  Stream* st = claimSide(streamId, std::string_view(*auth).substr(7), side);
  if (!st) {
    LOG_WARN("%s: wrong or reused token for stream %s", s.peer().c_str(), streamId.c_str());
    return s.respondError(Reject::Forbidden, "token not valid for this stream");
  }
  Admission::Ticket ticket;
  auto ws = s.upgrade(wsLimits_, ticket);
  st->attach(side, std::move(ws), std::move(ticket));
}

bool Hub::attachChannelSide(const proto::Grant& grant, mux::MuxChannel& channel, uint32_t id) {
  auto it = streams_.find(grant.streamId);
  if (it == streams_.end() || !it->second->spend(Stream::Side::Service)) return false;
  Stream* st = it->second.get();
  auto ms = std::make_unique<MuxSide>(loop_, channel, cfg_.highWatermark, id);
  if (!channel.accept(id, ms.get())) {
    st->end(Stream::Outcome::Cancelled, "client went away");
    return false;
  }
  st->attach(Stream::Side::Service, std::move(ms));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Initiation

void Hub::handleInitiate(Session& s, const std::string& deviceId) {
  std::optional<PolicyRecord> policy = authService(s, "connect");
  if (!policy) return;
  auto body = proto::parseInitiateBody(s.body());
  if (!body) {
    countReject(Reject::BadRequest);
    return s.respondError(Reject::BadRequest, body.error);
  }
  Session* session = &s;
  Answer answer = [session](const proto::Answer& a) {
    std::vector<http::Header> extra;
    if (a.retryAfter > 0) extra.push_back({"Retry-After", std::to_string(a.retryAfter)});
    session->respond(a.status, proto::answerBody(a), extra);
  };
  Stream* st = initiate(*policy, deviceId, *body, answer);
  if (!st) return;
  // Keep watching the connection: a client that goes away cancels the wait.
  s.waitForAnswer([st] { st->initiatorGone(); });
  st->setInitiator({answer, [session] { session->waitForAnswer(nullptr); }});
}

Stream* Hub::initiate(const PolicyRecord& policy, const std::string& asked,
                      const proto::InitiateBody& body, const Answer& answer) {
  if (!config::isValidDeviceId(asked)) {
    reject(answer, Reject::BadRequest, kDeviceIdRule);
    return nullptr;
  }
  // Host names are case-insensitive (RFC 4343) and browsers lower-case them: a name that is no
  // connected device's id as written stands for the one device whose id it matches ignoring
  // case (`cama.hub` reaches CamA).
  const std::string deviceId =
      devices_.count(asked) != 0 ? asked : registry_->deviceIdIgnoringCase(asked).value_or(asked);
  // Before the device is looked up: a policy learns nothing of devices outside its set.
  if (!policy.reaches(deviceId)) {
    std::string why = "policy '" + policy.name + "' may not reach device '" + deviceId + "'";
    recordStream(Stream::refusedAudit(policy.name, deviceId, body, why));
    reject(answer, Reject::Forbidden, why);
    return nullptr;
  }
  // A connected device exists and is enabled: removing or disabling one disconnects it
  // (admin_api.cc). Only a device without a channel is looked up, to tell the three apart.
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) {
    std::optional<DeviceRecord> dev = registry_->device(deviceId);
    if (!dev) {
      reject(answer, Reject::DeviceUnknown, "no device '" + deviceId + "'");
    } else if (!dev->enabled) {
      reject(answer, Reject::Disabled, "device is disabled");
    } else {
      reject(answer, Reject::DeviceOffline, "device '" + deviceId + "' is not connected");
    }
    return nullptr;
  }
  // Limits: each answer is 429 with Retry-After, so well-behaved clients back off.
  StreamCount ofPolicy;
  if (auto p = livePerPolicy_.find(policy.name); p != livePerPolicy_.end()) ofPolicy = p->second;
  const auto d = livePerDevice_.find(deviceId);
  const size_t ofDevice = d == livePerDevice_.end() ? 0 : d->second;
  if (live_.pending >= cfg_.maxPendingHandshakes) {
    reject(answer, Reject::TooManyPending, "too many stream handshakes in progress", 1);
    return nullptr;
  }
  if (live_.streams >= cfg_.maxStreams) {
    reject(answer, Reject::TooManyStreams, "the hub's stream limit is reached", 1);
    return nullptr;
  }
  if (ofDevice >= cfg_.maxStreamsPerDevice) {
    reject(answer, Reject::DeviceBusy, "the device's stream limit is reached", 1);
    return nullptr;
  }
  if (ofPolicy.streams >= cfg_.maxStreamsPerPolicy ||
      ofPolicy.pending >= cfg_.maxPendingPerPolicy) {
    reject(answer, Reject::PolicyQuota,
           "policy '" + policy.name + "' holds its quota of " +
               (ofPolicy.streams >= cfg_.maxStreamsPerPolicy
                    ? std::to_string(cfg_.maxStreamsPerPolicy) + " streams"
                    : std::to_string(cfg_.maxPendingPerPolicy) + " pending streams"),
           1);
    return nullptr;
  }
  auto rate = rates_.try_emplace(policy.name, static_cast<double>(cfg_.newStreamsPerSecond),
                                 static_cast<double>(cfg_.newStreamsPerSecond), Clock::now());
  std::chrono::seconds retry{0};
  if (!rate.first->second.take(Clock::now(), retry)) {
    reject(answer, Reject::RateLimited,
           "policy '" + policy.name + "' opens streams faster than " +
               std::to_string(cfg_.newStreamsPerSecond) + "/s",
           static_cast<int>(retry.count()));
    return nullptr;
  }
  // A device with multiplexed streams gets the request as a stream opened on its channel; the
  // channel's own limits refuse it as a busy device would.
  // The stream's id goes along so that the device's log names the stream of the audit record.
  std::string sid = newStreamId();
  std::unique_ptr<MuxSide> deviceSide;
  if (mux::MuxChannel* ch = it->second->mux()) {
    deviceSide = std::make_unique<MuxSide>(loop_, *ch, cfg_.highWatermark);
    if (!deviceSide->openStream(
            {"", body.host, body.port, body.socketPath, policy.name, body.user, body.name, sid})) {
      reject(answer, Reject::DeviceBusy, "the device's channel holds its limit of streams", 1);
      return nullptr;
    }
  }
  auto st = std::make_unique<Stream>(
      loop_, static_cast<StreamOwner&>(*this), streamSettings_, relayMetrics_, sid,
      cfg_.publicUrl + std::string(kStreamsPrefix) + sid, deviceId, policy.name, body);
  Stream* raw = st.get();
  streams_.emplace(sid, std::move(st));
  countStream(*raw);
  std::string caller = policy.name + (body.user.empty() ? "" : " (user " + body.user + ")");
  LOG_DEBUG("stream %s: %s asks %s for %s%s%s", sid.c_str(), caller.c_str(), deviceId.c_str(),
            raw->targetText().c_str(), body.name.empty() ? "" : ", stream ", body.name.c_str());
  if (deviceSide) {
    raw->expect(Stream::Side::Device, std::move(deviceSide));
    return raw;
  }
  proto::StreamRequest request{sid, body.host, body.port, raw->url(),
                               raw->token(Stream::Side::Device)};
  request.socketPath = body.socketPath;
  request.caller = {policy.name, body.user};
  request.name = body.name;
  it->second->send(request);
  return raw;
}

void Hub::onDeviceMessage(DeviceChannel& d, const std::string& message) {
  auto msg = proto::parseStreamResponse(message);
  if (!msg && msg.fault == proto::Fault::OtherType) {
    // A message of a newer protocol: not ours to judge.
    LOG_DEBUG("device %s: control message ignored: %s", d.id().c_str(), msg.error.c_str());
    return;
  }
  if (!msg) {
    // The device is authenticated but speaks nonsense: end its channel rather than log forever.
    LOG_WARN("device %s: malformed control message: %s", d.id().c_str(), msg.error.c_str());
    d.close(cc::InvalidData, "malformed control message");
    onDeviceGone(d);
    return;
  }
  auto it = streams_.find(msg->streamId);
  // A device may answer only for its own streams.
  if (it == streams_.end() || it->second->device() != d.id()) {
    LOG_WARN("device %s: answer for unknown stream '%s'", d.id().c_str(), msg->streamId.c_str());
    return;
  }
  it->second->onDeviceAnswer(*msg);
}

}  // namespace ds::hub
