// The control API's handlers: status, streams, devices (asked of the hub) and forwards.
#include "daemon/control_handlers.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/json_fields.h"
#include "common/log.h"
#include "common/net.h"
#include "common/time_text.h"
#include "daemon/daemon.h"
#include "hubclient/rest_client.h"
#include "hubclient/stream_opener.h"

#ifndef DS_VERSION
#define DS_VERSION "0.0.0"
#endif

namespace ds::daemon {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::seconds kHubQueryTimeout{10};

const std::string* stringAt(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() ? nullptr : it->get_ptr<const std::string*>();
}

}  // namespace

std::variant<config::Forward, ApiResponse> parseForwardBody(std::string_view text) {
  json body = json::parse(text, nullptr, false);
  const char* shape =
      R"(body must be {"listen": "host:port", "device": str, "port": 1..65535, "host": str})"
      R"( or {"listen": "host:port", "device": str, "unix": "/path"})";
  if (!body.is_object()) return apiError(400, "bad_request", shape);
  const std::string* listenText = stringAt(body, "listen");
  const std::string* device = stringAt(body, "device");
  auto portAt = body.find("port");
  const uint64_t* port = portAt == body.end() ? nullptr : portAt->get_ptr<const uint64_t*>();
  const std::string* host = stringAt(body, "host");
  const std::string* socketPath = stringAt(body, "unix");
  if ((body.contains("host") && !host) || (body.contains("unix") && !socketPath)) {
    return apiError(400, "bad_request", shape);
  }
  // A Unix socket goes without port and host; host:port needs the port.
  bool shapeOk = socketPath ? !body.contains("port") && !host : port != nullptr;
  if (!listenText || !device || !shapeOk) return apiError(400, "bad_request", shape);
  config::Forward f;
  auto listen = net::parseEndpoint(*listenText);
  if (!listen) {
    return apiError(400, "bad_listen", "listen must be a numeric host:port, e.g. 127.0.0.1:2222");
  }
  f.listen = *listen;
  f.device = *device;
  if (!config::isValidDeviceId(f.device)) {
    return apiError(400, "bad_device_id", "invalid device id '" + f.device + "'");
  }
  if (socketPath) {
    if (!config::isValidSocketPath(*socketPath)) {
      return apiError(400, "bad_unix", "unix must be an absolute socket path of at most 107 bytes");
    }
    f.socketPath = *socketPath;
  } else {
    if (*port == 0 || *port > 65535) return apiError(400, "bad_port", "port must be 1..65535");
    f.port = static_cast<uint16_t>(*port);
  }
  if (host) {
    if (!config::isValidTargetHost(*host)) {
      return apiError(400, "bad_host",
                      "invalid host '" + *host + "' (a name, IPv4 or IPv6 address)");
    }
    f.host = *host;
  }
  // Forwarded connections are not authenticated: runtime forwards stay on this machine.
  if (!net::isLoopbackHost(f.listen.host)) {
    return apiError(400, "not_loopback",
                    "forwards listen on loopback addresses only (no authentication)");
  }
  return f;
}

json Daemon::statusJson() const {
  double uptime = std::chrono::duration<double>(Clock::now() - started_).count();
  size_t open = 0, streaming = 0;
  for (const auto& [raw, c] : conns_) {
    open += c->open();
    streaming += c->streaming();
  }
  return json{
      {"version", DS_VERSION},
      {"pid", static_cast<int64_t>(::getpid())},
      {"uptime_seconds", static_cast<double>(static_cast<int64_t>(uptime * 10)) / 10},
      {"hub",
       {{"url", cfg_.hubUrl},
        // Streams work while the hub answers, with or without the service channel.
        {"connected", opener_ && opener_->reachable()},
        {"service_channel", opener_ && opener_->connected()},
        {"multiplexed", opener_ && opener_->multiplexed()},
        {"since", opener_ ? isoUtc(std::chrono::system_clock::to_time_t(opener_->since())) : ""},
        {"last_error", opener_ ? opener_->lastError() : "shutting down"}}},
      {"listen", net::Endpoint{cfg_.socksListen.host, socksPort_}.toString()},
      {"auth", !cfg_.users.empty()},
      {"suffix", cfg_.suffix},
      {"direct", cfg_.direct},
      {"streams", open},
      {"opening", streaming - open},
      {"forwards", forwards_.size()},
      {"streams_total", streamsTotal_},
      {"failures_total", failuresTotal_}};
}

json Daemon::streamsJson() const {
  std::vector<const Connection*> listed;
  for (const auto& [raw, c] : conns_) {
    if (c->streaming()) listed.push_back(c.get());
  }
  std::sort(listed.begin(), listed.end(),
            [](const Connection* a, const Connection* b) { return a->id() < b->id(); });
  json list = json::array();
  for (const Connection* c : listed) list.push_back(c->toJson());
  return json{{"streams", list}};
}

void Daemon::fetchDevices(const ControlApi::Respond& respond) {
  hubclient::RestRequest req;
  req.method = "GET";
  req.target = "/api/v1/devices";
  req.authorization = hubclient::serviceToken(hub_, cfg_.policy, cfg_.key);
  req.userAgent = "devstreamsd/" DS_VERSION;
  uint64_t qid = nextQuery_++;
  auto ex = hubclient::callHub(
      loop_, hub_, req, kHubQueryTimeout, [this, qid, respond](hubclient::RestResult&& r) {
        if (auto it = queries_.find(qid); it != queries_.end()) {
          loop_.deferDelete(std::move(it->second));
          queries_.erase(it);
        }
        if (!r.ok()) return respond(apiError(502, "hub_error", "hub unreachable: " + r.error));
        json body = json::parse(r.body, nullptr, false);
        if (r.status != 200 || !body.is_object() || !body.contains("devices")) {
          std::string msg = stringField(body, "message");
          return respond(apiError(
              502, "hub_error",
              "hub answered " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg)));
        }
        json out = json::array();
        for (const auto& d : body["devices"]) {
          if (!d.is_object()) continue;
          out.push_back(json{{"id", stringField(d, "id")},
                             {"online", boolField(d, "online", false)},
                             {"enabled", boolField(d, "enabled", true)},
                             {"last_seen", d.contains("last_seen") ? d["last_seen"] : json()}});
        }
        respond(ApiResponse{200, json{{"devices", out}}});
      });
  if (!ex) return respond(apiError(502, "hub_error", "cannot create a TLS connection"));
  queries_.emplace(qid, std::move(ex));
}

void Daemon::handleApi(const ApiRequest& req, const ControlApi::Respond& respond) {
  const std::string& p = req.path;
  auto only = [&](const char* method) {
    if (req.method == method) return true;
    respond(apiError(405, "method_not_allowed", std::string("use ") + method));
    return false;
  };
  if (p == "/v1/status") {
    if (only("GET")) respond(ApiResponse{200, statusJson()});
    return;
  }
  if (p == "/v1/streams") {
    if (only("GET")) respond(ApiResponse{200, streamsJson()});
    return;
  }
  if (p == "/v1/devices") {
    if (only("GET")) fetchDevices(respond);
    return;
  }
  if (p == "/v1/forwards") return handleForwards(req, respond);
  if (p.starts_with("/v1/forwards/")) {
    if (!only("DELETE")) return;
    auto listen = net::parseEndpoint(p.substr(13));
    auto it = std::find_if(forwards_.begin(), forwards_.end(),
                           [&](const auto& f) { return listen && f->fwd.listen == *listen; });
    if (it == forwards_.end()) {
      return respond(apiError(404, "forward_unknown", "no forward listens on " + p.substr(13)));
    }
    LOG_INFO("forward %s removed (open connections go on)", (*it)->fwd.listen.toString().c_str());
    forwards_.erase(it);
    return respond(ApiResponse{204, nullptr});
  }
  respond(apiError(404, "not_found", "no such resource"));
}

void Daemon::handleForwards(const ApiRequest& req, const ControlApi::Respond& respond) {
  if (req.method == "GET") {
    json list = json::array();
    for (const auto& f : forwards_) list.push_back(forwardJson(*f));
    return respond(ApiResponse{200, json{{"forwards", list}}});
  }
  if (req.method != "POST") return respond(apiError(405, "method_not_allowed", "use GET or POST"));
  auto parsed = parseForwardBody(req.body);
  if (auto* error = std::get_if<ApiResponse>(&parsed)) return respond(std::move(*error));
  int status = 0;
  std::string err;
  json out;
  if (!addForward(std::get<config::Forward>(parsed), false, status, err, &out)) {
    const char* code = status == 409   ? "listen_in_use"
                       : status == 403 ? "too_many_forwards"
                                       : "bad_listen";
    return respond(apiError(status, code, err));
  }
  respond(ApiResponse{201, out});
}

}  // namespace ds::daemon
