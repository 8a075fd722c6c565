// The hub protocol as types: every message of the device control channel, the service channel,
// stream control and every body of the HTTP API, with pure parse functions (text in, the typed
// message or a precise error out; they never throw and trust no type or length) and writers that
// never throw either. One enum names every refusal that crosses the wire, with one table giving
// its wire name, its HTTP status and the SOCKS reply a client sees for it (docs/protocol.md).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ds::proto {

// Bounds on what a peer may put in a message; longer values are refused (ids, tokens, hosts)
// or cut (free text such as `reason`).
inline constexpr size_t kMaxId = 128;          // stream ids, tokens, request ids, device ids
inline constexpr size_t kMaxHost = 253;        // a DNS name or an address literal
inline constexpr size_t kMaxUrl = 2048;        // streaming URL
inline constexpr size_t kMaxReason = 256;      // free text from a peer (UTF-8, cut on a boundary)
inline constexpr size_t kMaxCodeName = 64;     // a reject code as sent
inline constexpr size_t kMaxKey = 256;         // base64 shared keys
inline constexpr size_t kMaxName = 64;         // a stream's name (audit only)
inline constexpr size_t kMaxSocketPath = 107;  // a Unix socket path (sun_path less its NUL)

// Every refusal of a stream or a request. `Other` stands for a code a peer sent that this
// version does not know: it is carried as text in messages but never becomes a metric label.
enum class Reject : uint8_t {
  BadRequest,         // 400 malformed request
  BadHost,            // 400 the target host is not a DNS name or an address literal
  Unauthorized,       // 401
  Forbidden,          // 403 the policy lacks a permission
  Disabled,           // 403 the device is disabled
  PortNotAllowed,     // 403 the device's allow-list refused host:port
  DeviceUnknown,      // 404
  NotFound,           // 404 no such resource
  StreamUnknown,      // 404 no such stream (ended or expired)
  Exists,             // 409
  TooManyStreams,     // 429 the hub's stream limit
  DeviceBusy,         // 429 the device's stream limit at the hub
  TooManyPending,     // 429 handshakes in progress at the hub
  RateLimited,        // 429 the policy's new-stream rate
  PolicyQuota,        // 429 the policy's concurrent or pending stream quota
  AgentBusy,          // 429 the agent serves its max_streams ("too-many-streams")
  ConnectionRefused,  // 502 the target refused the connection
  Unreachable,        // 502 the target does not resolve or has no route
  TargetTimeout,      // 502 the target did not answer in time
  HubStreamFailed,    // 502 the agent could not open its side
  Rejected,           // 502 the device refused with a code this version does not know
  DeviceOffline,      // 503
  HandshakeTimeout,   // 504
  Internal,           // 500
  Other,              // a peer's code unknown here (see above)
};

struct RejectInfo {
  std::string_view name;  // on the wire (`error` / `code`) and as the metric label
  int httpStatus;
  uint8_t socksReply;  // RFC 1928 reply code at the daemon
};
namespace detail {
// SOCKS5 reply codes (RFC 1928 section 6).
inline constexpr uint8_t kGeneral = 0x01, kNotAllowed = 0x02, kNetUnreach = 0x03,
                         kHostUnreach = 0x04, kRefused = 0x05, kTtl = 0x06;

inline constexpr std::array<RejectInfo, static_cast<size_t>(Reject::Other) + 1> kRejectTable{{
    {"bad_request", 400, kGeneral},        {"bad-host", 400, kHostUnreach},
    {"unauthorized", 401, kGeneral},       {"forbidden", 403, kNotAllowed},
    {"disabled", 403, kNotAllowed},        {"port-not-allowed", 403, kNotAllowed},
    {"device_unknown", 404, kHostUnreach}, {"not_found", 404, kGeneral},
    {"stream_unknown", 404, kGeneral},     {"exists", 409, kGeneral},
    {"too_many_streams", 429, kGeneral},   {"device_busy", 429, kGeneral},
    {"too_many_pending", 429, kGeneral},   {"rate_limited", 429, kGeneral},
    {"policy_quota", 429, kGeneral},       {"too-many-streams", 429, kGeneral},
    {"connection-refused", 502, kRefused}, {"unreachable", 502, kHostUnreach},
    {"target-timeout", 502, kTtl},         {"hub_stream_failed", 502, kHostUnreach},
    {"rejected", 502, kHostUnreach},       {"device_offline", 503, kNetUnreach},
    {"handshake_timeout", 504, kTtl},      {"internal", 500, kGeneral},
    {"other", 502, kHostUnreach},
}};

}  // namespace detail

constexpr const RejectInfo& info(Reject r) {
  auto i = static_cast<size_t>(r);
  return detail::kRejectTable[i < detail::kRejectTable.size() ? i
                                                              : detail::kRejectTable.size() - 1];
}
constexpr std::string_view name(Reject r) { return info(r).name; }
// The code for a wire name, older spellings included (`not_allowed`, `refused`, `timeout`);
// Other for anything else.
Reject rejectFromName(std::string_view name);

// ---- device control channel -------------------------------------------------------------

// Who asks for a stream, as the hub tells the device: the policy whose key authenticated the
// request (checked by the hub), and the user the daemon's proxy authenticated (asserted by the
// daemon; the hub passes it on unchecked). Empty `user`: none asserted.
struct Caller {
  std::string policy;
  std::string user;
};

// Hub -> device. The target is `host`:`port`, or a Unix socket when `socketPath` is set (then
// `port` is 0). `name` is the caller's name for the stream, for logs and audit only.
struct StreamRequest {
  std::string streamId;
  std::string host;
  uint16_t port = 0;
  std::string url;
  std::string token;
  std::string socketPath{};
  Caller caller{};
  std::string name{};
};
// Device -> hub. A refusal carries a code and a reason; `code` classifies it and `codeText`
// is the code as sent (older spellings stay as they are), cut to kMaxCodeName.
struct StreamResponse {
  std::string streamId;
  bool accept = false;
  Reject code = Reject::Other;
  std::string codeText;
  std::string reason;
};

// ---- service channel ---------------------------------------------------------------------

// The client's request id, echoed as given: a string or an integer.
using RequestId = std::variant<int64_t, std::string>;

// Service -> hub. `user` is the daemon's proxy user (asserted, see Caller); `socketPath` a Unix
// socket target instead of host:port; `name` the stream's name for the audit log.
struct ServiceRequest {
  RequestId id;
  std::string device;
  std::string host;  // default 127.0.0.1
  uint16_t port = 0;
  std::string socketPath{};
  std::string user{};
  std::string name{};
};
// A granted stream: where and with what to open the service side.
struct Grant {
  std::string streamId;
  std::string url;
  std::string token;
};
// The answer to a stream initiation (POST body or service channel message).
struct Answer {
  int status = 0;
  Grant grant;          // status 200
  std::string error;    // otherwise: the reject code's name, as sent
  std::string message;  // and its text
  int retryAfter = 0;   // seconds, for 429
};
struct ServiceResponse {
  RequestId id;
  Answer answer;
};

// ---- streams ----------------------------------------------------------------------------

// Text frames on a stream side: stream control.
enum class StreamControl { Eof };

// ---- HTTP API bodies ---------------------------------------------------------------------

// POST /api/v1/devices/{id}/streams
// The optional fields as in ServiceRequest.
struct InitiateBody {
  uint16_t port = 0;
  std::string host;  // default 127.0.0.1
  std::string socketPath{};
  std::string user{};
  std::string name{};
};
// POST /api/v1/devices (id required) and PUT /api/v1/devices/{id} (id from the path).
struct DeviceBody {
  std::string id;
  std::optional<std::string> primaryKey, secondaryKey;
  std::optional<bool> enabled;
};
// POST /api/v1/devices/{id}/keys/rotate
enum class KeySlot { Primary, Secondary };

// ---- parsing -----------------------------------------------------------------------------

// What kind of input a parse refused: not a JSON object at all, a message of another (maybe a
// newer) type, or the right type with a missing, mistyped or out-of-range field (Host and Port
// name those two, which a receiver answers with their own reject codes).
enum class Fault { None, Syntax, OtherType, Field, Host, Port };

// The outcome of a parse: the message, or why not (a sentence naming the field).
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;
  Fault fault = Fault::None;
  explicit operator bool() const { return value.has_value(); }
  const T& operator*() const { return *value; }
  const T* operator->() const { return &*value; }
};

// Device control channel, both directions. A request refused for its host or port still gives
// its stream id (in `streamId`) so that it can be answered.
Parsed<StreamRequest> parseStreamRequest(std::string_view text, std::string* streamId = nullptr);
Parsed<StreamResponse> parseStreamResponse(std::string_view text);
// Service channel. A request that is malformed but carries a usable id gives the error and the
// id (in `id`) so it can still be answered.
Parsed<ServiceRequest> parseServiceRequest(std::string_view text, std::optional<RequestId>& id);
// A response that is malformed but carries a usable id gives the error and the id (in `id`,
// when given) so the request it answers can still be ended.
Parsed<ServiceResponse> parseServiceResponse(std::string_view text,
                                             std::optional<RequestId>* id = nullptr);
// An HTTP answer to stream initiation: the JSON body of a response with `status`.
Parsed<Answer> parseAnswerBody(int status, std::string_view body);
Parsed<StreamControl> parseStreamControl(std::string_view text);
Parsed<InitiateBody> parseInitiateBody(std::string_view text);
// `idRequired`: POST (id in the body) or PUT (id from the path; an id in the body is refused).
Parsed<DeviceBody> parseDeviceBody(std::string_view text, bool idRequired);
// An empty body means the primary key.
Parsed<KeySlot> parseRotateBody(std::string_view text);

// ---- writing (never throws; invalid UTF-8 in a value is replaced) ------------------------

std::string toText(const StreamRequest& m);
std::string toText(const StreamResponse& m);
std::string toText(const ServiceRequest& m);
std::string toText(const ServiceResponse& m);
std::string toText(StreamControl c);
std::string toText(const InitiateBody& b);
// The JSON body of an initiation answer: the grant for 200, {error, message} otherwise.
std::string answerBody(const Answer& a);
// {"error": code, "message": message}
std::string errorBody(std::string_view code, std::string_view message);

// ---- shared checks ----------------------------------------------------------------------

// `s` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string truncateUtf8(std::string_view s, size_t max);
// True for valid UTF-8.
bool validUtf8(std::string_view s);

}  // namespace ds::proto
