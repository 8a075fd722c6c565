// The typed hub protocol: reject table, total parsers and non-throwing writers.
#include "common/protocol.h"

#include <array>
#include <nlohmann/json.hpp>

namespace ds::proto {

using json = nlohmann::json;

namespace {

// A JSON document from a peer, or an error. nlohmann's parse without exceptions also checks
// UTF-8; depth is bounded by the message size limit of the transport.
bool parseObject(std::string_view text, json& out, std::string& err) {
  out = json::parse(text, nullptr, false);
  if (out.is_discarded()) {
    err = "not valid JSON";
    return false;
  }
  if (!out.is_object()) {
    err = "not a JSON object";
    return false;
  }
  return true;
}

const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// A required or optional string field within `max` bytes. Missing: nullopt with `err` empty
// when optional; wrong type or too long: nullopt with `err` set.
std::optional<std::string> str(const json& j, const char* key, size_t max, bool required,
                               std::string& err) {
  const json* v = field(j, key);
  if (!v) {
    if (required) err = std::string("\"") + key + "\" is missing";
    return std::nullopt;
  }
  if (!v->is_string()) {
    err = std::string("\"") + key + "\" must be a string";
    return std::nullopt;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max) {
    err = std::string("\"") + key + "\" is longer than " + std::to_string(max) + " bytes";
    return std::nullopt;
  }
  return s;
}

std::optional<uint16_t> port(const json& j, std::string& err) {
  const json* v = field(j, "port");
  if (!v || !v->is_number_unsigned() || v->get<uint64_t>() == 0 || v->get<uint64_t>() > 65535) {
    err = "\"port\" must be an integer 1..65535";
    return std::nullopt;
  }
  return static_cast<uint16_t>(v->get<uint64_t>());
}

// A target host as the hub forwards it: the agent decides what it means, this only keeps out
// what can never be a DNS name or an address literal (spaces, controls, '%', '/', '@', ...).
bool plausibleHost(std::string_view h) {
  if (h.empty() || h.size() > kMaxHost) return false;
  for (unsigned char c : h) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> host(const json& j, std::string& err) {
  const json* v = field(j, "host");
  if (!v) return std::string("127.0.0.1");
  if (!v->is_string() || !plausibleHost(v->get_ref<const std::string&>())) {
    err = "\"host\" must be a DNS name or an IP address";
    return std::nullopt;
  }
  return v->get<std::string>();
}

// Free text a caller chose (a user or stream name): no control characters, valid UTF-8.
bool plainText(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return validUtf8(s);
}

// An optional text field: absent gives "", anything but plain text within `max` is refused.
bool optionalText(const json& j, const char* key, size_t max, std::string& out, std::string& err) {
  auto v = str(j, key, max, false, err);
  if (!err.empty()) return false;
  if (v && !plainText(*v)) {
    err = std::string("\"") + key + "\" must be text without control characters";
    return false;
  }
  out = v ? std::move(*v) : std::string();
  return true;
}

// A Unix socket target: an absolute path that fits sun_path, without control characters.
std::optional<std::string> socketPath(const json& j, std::string& err) {
  auto v = str(j, "unix", kMaxSocketPath, false, err);
  if (!err.empty()) return std::nullopt;
  if (!v) return std::string();
  if (v->empty() || v->front() != '/' || !plainText(*v)) {
    err = "\"unix\" must be an absolute socket path";
    return std::nullopt;
  }
  return v;
}

// What a caller asks for, in the service request and the initiation body alike: `unix` or
// `port` (and `host`), then `user` and `name`.
template <class M>
bool targetFields(const json& j, M& m, std::string& err) {
  auto path = socketPath(j, err);
  if (!path) return false;
  m.socketPath = std::move(*path);
  if (m.socketPath.empty()) {
    auto p = port(j, err);
    if (!p) return false;
    auto h = host(j, err);
    if (!h) return false;
    m.port = *p;
    m.host = std::move(*h);
  } else if (field(j, "port") || field(j, "host")) {
    err = "\"unix\" goes without \"host\" and \"port\"";
    return false;
  }
  return optionalText(j, "user", kMaxId, m.user, err) &&
         optionalText(j, "name", kMaxName, m.name, err);
}

// The target fields as written: `unix`, or `host` and `port`; `user` and `name` when set.
template <class M>
void putTarget(json& j, const M& m) {
  if (!m.socketPath.empty()) {
    j["unix"] = m.socketPath;
  } else {
    j["host"] = m.host;
    j["port"] = m.port;
  }
  if (!m.name.empty()) j["name"] = m.name;
}

std::optional<RequestId> requestId(const json& j) {
  const json* v = field(j, "id");
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return RequestId(v->get<int64_t>());
  if (v->is_string() && v->get_ref<const std::string&>().size() <= kMaxId) {
    return RequestId(v->get<std::string>());
  }
  return std::nullopt;
}

json idJson(const RequestId& id) {
  return std::visit([](const auto& v) { return json(v); }, id);
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool typeIs(const json& j, std::string_view want, std::string& err) {
  const json* t = field(j, "type");
  if (!t || !t->is_string() || t->get_ref<const std::string&>() != want) {
    err = "\"type\" must be \"" + std::string(want) + "\"";
    return false;
  }
  return true;
}

template <class T>
Parsed<T> fail(std::string err, Fault fault = Fault::Field) {
  return Parsed<T>{std::nullopt, std::move(err), fault};
}

// The fault of a refused envelope: bad JSON, or another message type.
Fault envelopeFault(const json& j) { return j.is_object() ? Fault::OtherType : Fault::Syntax; }

// Reads `text` into `j` as a JSON object of message type `type`; otherwise the refusal to return.
template <class T>
std::optional<Parsed<T>> envelope(std::string_view text, const char* type, json& j) {
  std::string err;
  if (parseObject(text, j, err) && typeIs(j, type, err)) return std::nullopt;
  return fail<T>(err, envelopeFault(j));
}

}  // namespace

Reject rejectFromName(std::string_view n) {
  if (n == "not_allowed") return Reject::PortNotAllowed;
  if (n == "refused") return Reject::ConnectionRefused;
  if (n == "timeout") return Reject::TargetTimeout;
  for (size_t i = 0; i + 1 < detail::kRejectTable.size(); ++i) {
    if (detail::kRejectTable[i].name == n) return static_cast<Reject>(i);
  }
  return Reject::Other;
}

bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += n;
  }
  return true;
}

std::string truncateUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t end = max;
  // Back up over continuation bytes so no sequence is split.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xc0) == 0x80) --end;
  return std::string(s.substr(0, end));
}

Parsed<StreamRequest> parseStreamRequest(std::string_view text, std::string* streamId) {
  json j;
  if (auto refused = envelope<StreamRequest>(text, "stream_request", j)) return *refused;
  std::string err;
  StreamRequest m;
  auto sid = str(j, "stream_id", kMaxId, true, err);
  if (!sid || sid->empty()) return fail<StreamRequest>(err.empty() ? "empty \"stream_id\"" : err);
  auto url = str(j, "url", kMaxUrl, true, err);
  if (!url) return fail<StreamRequest>(err);
  auto token = str(j, "token", kMaxId, true, err);
  if (!token) return fail<StreamRequest>(err);
  if (streamId) *streamId = *sid;
  auto path = socketPath(j, err);
  if (!path) return fail<StreamRequest>(err, Fault::Host);
  m.socketPath = std::move(*path);
  if (m.socketPath.empty()) {
    auto p = port(j, err);
    if (!p) return fail<StreamRequest>(err, Fault::Port);
    // The host is checked precisely by the agent (it must refuse with a code, not drop it).
    const json* h = field(j, "host");
    if (h && (!h->is_string() || h->get_ref<const std::string&>().size() > 1024)) {
      return fail<StreamRequest>("\"host\" must be a string", Fault::Host);
    }
    m.host = h ? h->get<std::string>() : "127.0.0.1";
    m.port = *p;
  }
  // The caller, as the hub vouches for it; an older hub sends none.
  if (const json* c = field(j, "caller")) {
    if (!c->is_object() || !optionalText(*c, "policy", kMaxId, m.caller.policy, err) ||
        !optionalText(*c, "asserted_user", kMaxId, m.caller.user, err)) {
      return fail<StreamRequest>(err.empty() ? "\"caller\" must be an object" : "caller: " + err);
    }
  }
  if (!optionalText(j, "name", kMaxName, m.name, err)) return fail<StreamRequest>(err);
  m.streamId = std::move(*sid);
  m.url = std::move(*url);
  m.token = std::move(*token);
  return {std::move(m), {}};
}

Parsed<StreamResponse> parseStreamResponse(std::string_view text) {
  json j;
  if (auto refused = envelope<StreamResponse>(text, "stream_response", j)) return *refused;
  std::string err;
  StreamResponse m;
  auto sid = str(j, "stream_id", kMaxId, true, err);
  if (!sid) return fail<StreamResponse>(err);
  m.streamId = std::move(*sid);
  const json* accept = field(j, "accept");
  if (!accept || !accept->is_boolean()) {
    return fail<StreamResponse>("\"accept\" must be true or false");
  }
  m.accept = accept->get<bool>();
  if (m.accept) return {std::move(m), {}};
  // A refusal: code and reason are the device's words, kept within bounds; a missing or odd
  // one still refuses the stream.
  const json* code = field(j, "code");
  if (code && code->is_string() && !code->get_ref<const std::string&>().empty()) {
    const auto& c = code->get_ref<const std::string&>();
    m.code = rejectFromName(c);
    m.codeText = truncateUtf8(c, kMaxCodeName);
  } else {
    m.code = Reject::Rejected;
    m.codeText = std::string(name(Reject::Rejected));
  }
  const json* reason = field(j, "reason");
  m.reason = reason && reason->is_string()
                 ? truncateUtf8(reason->get_ref<const std::string&>(), kMaxReason)
                 : "rejected by the device";
  return {std::move(m), {}};
}

Parsed<ServiceRequest> parseServiceRequest(std::string_view text, std::optional<RequestId>& id) {
  id.reset();
  json j;
  std::string err;
  if (!parseObject(text, j, err)) return fail<ServiceRequest>(err, Fault::Syntax);
  id = requestId(j);
  if (!id) return fail<ServiceRequest>("\"id\" must be a string or an integer");
  if (!typeIs(j, "stream_request", err)) return fail<ServiceRequest>(err, Fault::OtherType);
  ServiceRequest m;
  m.id = *id;
  auto device = str(j, "device", kMaxId, true, err);
  if (!device || device->empty()) return fail<ServiceRequest>("\"device\" must be a device id");
  if (!targetFields(j, m, err)) return fail<ServiceRequest>(err);
  m.device = std::move(*device);
  return {std::move(m), {}};
}

namespace {

Parsed<Answer> answerFrom(int status, const json& j) {
  Answer a;
  a.status = status;
  std::string err;
  if (status == 200) {
    auto sid = str(j, "stream_id", kMaxId, true, err);
    auto url = str(j, "url", kMaxUrl, true, err);
    auto token = str(j, "token", kMaxId, true, err);
    if (!sid || !url || !token || sid->empty() || url->empty() || token->empty()) {
      return fail<Answer>("200 without stream_id, url and token");
    }
    a.grant = {std::move(*sid), std::move(*url), std::move(*token)};
    return {std::move(a), {}};
  }
  if (status < 100 || status > 599) return fail<Answer>("status out of range");
  const json* e = field(j, "error");
  const json* m = field(j, "message");
  a.error = e && e->is_string() ? truncateUtf8(e->get_ref<const std::string&>(), kMaxCodeName)
                                : "http_" + std::to_string(status);
  a.message = m && m->is_string() ? truncateUtf8(m->get_ref<const std::string&>(), kMaxReason)
                                  : std::string();
  const json* r = field(j, "retry_after");
  if (r && r->is_number_unsigned() && r->get<uint64_t>() <= 3600) {
    a.retryAfter = static_cast<int>(r->get<uint64_t>());
  }
  return {std::move(a), {}};
}

}  // namespace

Parsed<ServiceResponse> parseServiceResponse(std::string_view text,
                                             std::optional<RequestId>* idOut) {
  json j;
  if (auto refused = envelope<ServiceResponse>(text, "stream_response", j)) return *refused;
  auto id = requestId(j);
  if (!id) return fail<ServiceResponse>("\"id\" must be a string or an integer");
  if (idOut) *idOut = id;
  const json* s = field(j, "status");
  if (!s || !s->is_number_integer()) return fail<ServiceResponse>("\"status\" must be an integer");
  auto a = answerFrom(static_cast<int>(s->get<int64_t>()), j);
  if (!a) return fail<ServiceResponse>(a.error);
  return {ServiceResponse{std::move(*id), std::move(*a.value)}, {}};
}

Parsed<Answer> parseAnswerBody(int status, std::string_view body) {
  json j;
  std::string err;
  if (!parseObject(body, j, err)) {
    if (status == 200) return fail<Answer>("200 with a body that is " + err);
    j = json::object();  // an error status without a JSON body is still an answer
  }
  return answerFrom(status, j);
}

Parsed<StreamControl> parseStreamControl(std::string_view text) {
  json j;
  std::string err;
  if (!parseObject(text, j, err)) return fail<StreamControl>(err);
  const json* t = field(j, "type");
  if (t && t->is_string() && t->get_ref<const std::string&>() == "eof") {
    return {StreamControl::Eof, {}};
  }
  return fail<StreamControl>("unknown stream control message");
}

Parsed<InitiateBody> parseInitiateBody(std::string_view text) {
  json j;
  std::string err;
  if (!parseObject(text, j, err)) {
    return fail<InitiateBody>("body must be {\"port\": 1..65535, \"host\"?: str}: " + err);
  }
  InitiateBody b;
  if (!targetFields(j, b, err)) return fail<InitiateBody>(err);
  return {std::move(b), {}};
}

Parsed<DeviceBody> parseDeviceBody(std::string_view text, bool idRequired) {
  json j;
  std::string err;
  if (text.empty() && !idRequired) return {DeviceBody{}, {}};
  if (!parseObject(text, j, err)) return fail<DeviceBody>("body: " + err);
  DeviceBody b;
  auto id = str(j, "id", kMaxId, idRequired, err);
  if (!err.empty()) return fail<DeviceBody>(err);
  if (id && !idRequired) return fail<DeviceBody>("the device id is taken from the path");
  if (id) b.id = std::move(*id);
  b.primaryKey = str(j, "primary_key", kMaxKey, false, err);
  if (!err.empty()) return fail<DeviceBody>(err);
  b.secondaryKey = str(j, "secondary_key", kMaxKey, false, err);
  if (!err.empty()) return fail<DeviceBody>(err);
  if (const json* e = field(j, "enabled")) {
    if (!e->is_boolean()) return fail<DeviceBody>("\"enabled\" must be true or false");
    b.enabled = e->get<bool>();
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "id" && k != "primary_key" && k != "secondary_key" && k != "enabled") {
      return fail<DeviceBody>("unknown field \"" + truncateUtf8(k, kMaxCodeName) + "\"");
    }
  }
  return {std::move(b), {}};
}

Parsed<KeySlot> parseRotateBody(std::string_view text) {
  if (text.empty()) return {KeySlot::Primary, {}};
  json j;
  std::string err;
  if (!parseObject(text, j, err)) return fail<KeySlot>("body: " + err);
  const json* k = field(j, "key");
  if (!k) return {KeySlot::Primary, {}};
  if (k->is_string() && k->get_ref<const std::string&>() == "primary") {
    return {KeySlot::Primary, {}};
  }
  if (k->is_string() && k->get_ref<const std::string&>() == "secondary") {
    return {KeySlot::Secondary, {}};
  }
  return fail<KeySlot>("\"key\" must be \"primary\" or \"secondary\"");
}

std::string toText(const StreamRequest& m) {
  json j{{"type", "stream_request"}, {"stream_id", m.streamId}};
  putTarget(j, m);
  j["url"] = m.url;
  j["token"] = m.token;
  if (!m.caller.policy.empty() || !m.caller.user.empty()) {
    json c{{"policy", m.caller.policy}};
    if (!m.caller.user.empty()) c["asserted_user"] = m.caller.user;
    j["caller"] = std::move(c);
  }
  return dump(j);
}

std::string toText(const StreamResponse& m) {
  json j{{"type", "stream_response"}, {"stream_id", m.streamId}, {"accept", m.accept}};
  if (!m.accept) {
    j["code"] = m.codeText.empty() ? std::string(name(m.code)) : m.codeText;
    j["reason"] = m.reason;
  }
  return dump(j);
}

std::string toText(const ServiceRequest& m) {
  json j{{"type", "stream_request"}, {"id", idJson(m.id)}, {"device", m.device}};
  putTarget(j, m);
  if (!m.user.empty()) j["user"] = m.user;
  return dump(j);
}

namespace {

json answerJson(const Answer& a) {
  if (a.status == 200) {
    return json{{"stream_id", a.grant.streamId}, {"url", a.grant.url}, {"token", a.grant.token}};
  }
  return json{{"error", a.error}, {"message", a.message}};
}

}  // namespace

std::string toText(const ServiceResponse& m) {
  json j{{"type", "stream_response"}, {"id", idJson(m.id)}, {"status", m.answer.status}};
  json body = answerJson(m.answer);
  for (auto& [k, v] : body.items()) j[k] = v;
  if (m.answer.retryAfter > 0) j["retry_after"] = m.answer.retryAfter;
  return dump(j);
}

std::string toText(StreamControl) { return R"({"type":"eof"})"; }

std::string toText(const InitiateBody& b) {
  json j = json::object();
  putTarget(j, b);
  if (!b.user.empty()) j["user"] = b.user;
  return dump(j);
}

std::string answerBody(const Answer& a) { return dump(answerJson(a)); }

std::string errorBody(std::string_view code, std::string_view message) {
  return dump(json{{"error", code}, {"message", message}});
}

}  // namespace ds::proto
