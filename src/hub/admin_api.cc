// The hub's administration API (admin_api.h).
#include "hub/admin_api.h"

#include <charconv>

#include "common/config.h"
#include "common/log.h"
#include "common/sas.h"

namespace ds::hub {

using json = nlohmann::json;
using proto::Reject;

namespace {

constexpr size_t kMaxAuditQuery = 1000;

json deviceJson(const DeviceRecord& d, bool online, bool withKeys) {
  json j{{"id", d.id},
         {"enabled", d.enabled},
         {"online", online},
         {"created", d.created},
         {"last_seen", d.lastSeen}};
  if (withKeys) {
    j["primary_key"] = d.primaryKey;
    j["secondary_key"] = d.secondaryKey;
  }
  return j;
}

json auditJson(const AuditRecord& a) {
  return {{"stream_id", a.streamId},
          {"policy", a.policy},
          {"device", a.device},
          {"host", a.host},
          {"port", a.port},
          {"start_ms", a.startMs},
          {"end_ms", a.endMs},
          {"bytes_to_device", a.bytesToDevice},
          {"bytes_from_device", a.bytesFromDevice},
          {"outcome", a.outcome},
          {"reason", a.reason},
          {"user", a.user},
          {"name", a.name}};
}

}  // namespace

void AdminApi::registryError(Session& s) {
  // The database's own words stay in the log.
  LOG_ERROR("registry: %s", registry_.lastError().c_str());
  s.respondError(500, "registry_error", "the registry could not be updated");
}

bool AdminApi::writerFor(Session& s, const std::string& id) {
  auto policy = host_.authService(s, "registry-write");
  if (!policy) return false;
  // Outside its device set a policy sees no device at all, as for one that does not exist.
  if (!policy->reaches(id)) {
    s.respondError(Reject::DeviceUnknown, "no device '" + id + "'");
    return false;
  }
  return true;
}

void AdminApi::devices(Session& s) {
  const http::Request& r = s.request();
  if (s.reads()) {
    auto policy = host_.authService(s, "registry-read");
    if (!policy) return;
    json list = json::array();
    for (const auto& d : registry_.devices()) {
      if (policy->reaches(d.id)) list.push_back(deviceJson(d, host_.online(d.id), false));
    }
    return s.respondJson(200, json{{"devices", list}});
  }
  if (r.method != "POST") return s.methodNotAllowed("GET, HEAD, POST");
  auto writer = host_.authService(s, "registry-write");
  if (!writer) return;
  auto body = proto::parseDeviceBody(s.body(), true);
  if (!body) return s.respondError(Reject::BadRequest, body.error);
  if (!config::isValidDeviceId(body->id)) {
    return s.respondError(400, "bad_device_id", kDeviceIdRule);
  }
  if (!writer->reaches(body->id)) {
    return s.respondError(Reject::Forbidden,
                          "policy '" + writer->name + "' may not add device '" + body->id + "'");
  }
  DeviceRecord d;
  d.id = body->id;
  d.primaryKey = body->primaryKey.value_or(sas::randomKey());
  d.secondaryKey = body->secondaryKey.value_or(sas::randomKey());
  d.enabled = body->enabled.value_or(true);
  switch (registry_.addDevice(d)) {
    case DbResult::Ok:
      break;
    case DbResult::Exists:
      return s.respondError(Reject::Exists, "device '" + d.id + "' already exists");
    case DbResult::Invalid:
      return s.respondError(Reject::BadRequest, "invalid key (base64 of at least 16 bytes)");
    default:
      return registryError(s);
  }
  LOG_INFO("registry: device %s added", d.id.c_str());
  s.respondJson(201, deviceJson(*registry_.device(d.id), false, true));
}

void AdminApi::device(Session& s, const std::string& id) {
  const http::Request& r = s.request();
  if (s.reads()) {
    auto policy = host_.authService(s, "registry-read");
    if (!policy) return;
    auto d = policy->reaches(id) ? registry_.device(id) : std::nullopt;
    if (!d) return s.respondError(Reject::DeviceUnknown, "no device '" + id + "'");
    // Keys only for those who could change them anyway.
    return s.respondJson(200, deviceJson(*d, host_.online(id), policy->allows("registry-write")));
  }
  if (r.method == "DELETE") {
    if (!writerFor(s, id)) return;
    DbResult res = registry_.removeDevice(id);
    if (res == DbResult::NotFound) return s.respondError(Reject::DeviceUnknown, "no device");
    if (res != DbResult::Ok) return registryError(s);
    LOG_INFO("registry: device %s removed", id.c_str());
    host_.disconnectDevice(id, 4001, "device removed");
    return s.respond(204, "");
  }
  if (r.method != "PUT") return s.methodNotAllowed("GET, HEAD, PUT, DELETE");
  if (!writerFor(s, id)) return;
  auto body = proto::parseDeviceBody(s.body(), false);
  if (!body) return s.respondError(Reject::BadRequest, body.error);
  auto existing = registry_.device(id);
  if (!existing) {
    DeviceRecord d{id,
                   body->primaryKey.value_or(sas::randomKey()),
                   body->secondaryKey.value_or(sas::randomKey()),
                   body->enabled.value_or(true),
                   0,
                   0};
    DbResult res = registry_.addDevice(d);
    if (res == DbResult::Invalid) return s.respondError(Reject::BadRequest, "invalid key");
    if (res != DbResult::Ok) return registryError(s);
    LOG_INFO("registry: device %s added", id.c_str());
    return s.respondJson(201, deviceJson(*registry_.device(id), false, true));
  }
  if (body->primaryKey || body->secondaryKey) {
    DbResult res = registry_.setKeys(id, body->primaryKey.value_or(existing->primaryKey),
                                     body->secondaryKey.value_or(existing->secondaryKey));
    if (res == DbResult::Invalid) return s.respondError(Reject::BadRequest, "invalid key");
    if (res != DbResult::Ok) return registryError(s);
  }
  if (body->enabled) {
    if (registry_.setEnabled(id, *body->enabled) != DbResult::Ok) return registryError(s);
    if (!*body->enabled) host_.disconnectDevice(id, 4002, "device disabled");
  }
  LOG_INFO("registry: device %s updated", id.c_str());
  s.respondJson(200, deviceJson(*registry_.device(id), host_.online(id), true));
}

void AdminApi::rotate(Session& s, const std::string& id) {
  if (!writerFor(s, id)) return;
  auto slot = proto::parseRotateBody(s.body());
  if (!slot) return s.respondError(Reject::BadRequest, slot.error);
  auto d = registry_.device(id);
  if (!d) return s.respondError(Reject::DeviceUnknown, "no device '" + id + "'");
  std::string fresh = sas::randomKey();
  bool primary = *slot == proto::KeySlot::Primary;
  DbResult res = primary ? registry_.setKeys(id, fresh, d->secondaryKey)
                         : registry_.setKeys(id, d->primaryKey, fresh);
  if (res != DbResult::Ok) return registryError(s);
  // A connected device keeps its channel: its token was checked when it connected. It needs
  // the new key at its next connection.
  LOG_INFO("registry: device %s: %s key rotated", id.c_str(), primary ? "primary" : "secondary");
  s.respondJson(200, deviceJson(*registry_.device(id), host_.online(id), true));
}

void AdminApi::streams(Session& s, std::string_view query) {
  auto policy = host_.authService(s, "registry-read");
  if (!policy) return;
  size_t limit = 50;
  if (query.starts_with("limit=")) {
    auto v = query.substr(6);
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > kMaxAuditQuery) {
      return s.respondError(Reject::BadRequest,
                            "limit must be 1.." + std::to_string(kMaxAuditQuery));
    }
    limit = n;
  }
  json recent = json::array();
  host_.flushAudit();
  for (const auto& a : registry_.recentAudit(limit)) {
    if (policy->reaches(a.device)) recent.push_back(auditJson(a));
  }
  json active = json::array();
  for (auto& st : host_.activeStreams(kMaxAuditQuery)) {
    const json* d = st.contains("device") ? &st["device"] : nullptr;
    if (d && d->is_string() && policy->reaches(d->get_ref<const std::string&>())) {
      active.push_back(std::move(st));
    }
  }
  s.respondJson(200, json{{"active", active}, {"recent", recent}});
}

}  // namespace ds::hub
