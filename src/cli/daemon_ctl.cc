// The daemon's control API from the command line: one blocking exchange over the control
// socket per command (hubclient/rest_client.h), then the answer printed as a table, as lines, or as
// the JSON received.
#include "cli/daemon_ctl.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>

#include "cli/format.h"
#include "common/config.h"
#include "common/net.h"
#include "common/time_text.h"
#include "hubclient/rest_client.h"

namespace ds::cli {

using json = nlohmann::json;

namespace {

int fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "devstreams: %s\n", msg.c_str());
  return code;
}

std::string dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string yesNo(bool b) { return b ? "yes" : "no"; }

// A time field given either as text (ISO 8601) or as Unix seconds; "never" when absent.
std::string when(const json& j, const char* key) {
  if (!j.is_object()) return "never";
  auto it = j.find(key);
  if (it == j.end()) return "never";
  if (it->is_number()) return num(j, key) > 0 ? isoUtc(num(j, key)) : "never";
  std::string s = str(j, key);
  return s.empty() ? "never" : s;
}

std::string count(const json& j, const char* key) { return std::to_string(num(j, key)); }

// The rows of a list answer; empty when the field is not an array.
const json& items(const json& answer, const char* key) {
  static const json kEmpty = json::array();
  if (!answer.is_object()) return kEmpty;
  auto it = answer.find(key);
  return it != answer.end() && it->is_array() ? *it : kEmpty;
}

bool hasArray(const json& doc, const char* key) {
  return doc.is_object() && doc.contains(key) && doc[key].is_array();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The exchange.

bool controlRequest(const std::string& socketPath, const std::string& method,
                    const std::string& target, const std::string& body, ControlAnswer& out,
                    std::string& err, std::chrono::milliseconds timeout) {
  hubclient::RestResult result;
  if (!hubclient::callLocal(socketPath, {method, target, body, "", "", false}, result, err,
                            timeout)) {
    return false;
  }
  out.status = result.status;
  out.body = std::move(result.body);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Arguments.

bool parseDeviceTarget(std::string_view s, std::string& device, uint16_t& port) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view id = s.substr(0, colon);
  std::string_view digits = s.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || !config::isValidDeviceId(id)) return false;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value < 1 || value > 65535) return false;
  device = std::string(id);
  port = static_cast<uint16_t>(value);
  return true;
}

std::string encodePathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
    if (keep) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string errorText(const ControlAnswer& a) {
  json doc = json::parse(a.body, nullptr, false);
  std::string message = str(doc, "message");
  std::string code = str(doc, "error");
  if (!message.empty()) return code.empty() ? message : message + " (" + code + ")";
  if (!code.empty()) return code;
  return "devstreamsd answered HTTP " + std::to_string(a.status);
}

// ---------------------------------------------------------------------------------------------
// Formatting.

std::string formatStatus(const json& s) {
  const json& hub = s.is_object() && s.contains("hub") ? s["hub"] : json::object();
  std::string hubLine = dash(str(hub, "url"));
  if (flag(hub, "connected")) {
    hubLine += " connected";
    if (std::string since = str(hub, "since"); !since.empty()) hubLine += " since " + since;
  } else {
    hubLine += " disconnected";
    if (std::string e = str(hub, "last_error"); !e.empty()) hubLine += " (last error: " + e + ")";
  }
  std::string daemon = "devstreamsd " + dash(str(s, "version")) + ", pid " + count(s, "pid") +
                       ", up " + humanAge(real(s, "uptime_seconds"));
  std::string listen = dash(str(s, "listen")) + " (auth " + (flag(s, "auth") ? "on" : "off") +
                       ", suffix " + dash(str(s, "suffix")) + ", direct " +
                       (flag(s, "direct") ? "on" : "off") + ")";
  std::string streams = count(s, "streams") + " active, " + count(s, "streams_total") + " total, " +
                        count(s, "failures_total") + " failed";
  std::string out;
  auto line = [&](const char* key, const std::string& value) {
    std::string k = std::string(key) + ":";
    out += k + std::string(k.size() < 10 ? 10 - k.size() : 1, ' ') + value + "\n";
  };
  line("daemon", daemon);
  line("hub", hubLine);
  line("listen", listen);
  line("streams", streams);
  line("forwards", count(s, "forwards"));
  return out;
}

std::string formatStreams(const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const json& st : items(answer, "streams")) {
    rows.push_back(
        {count(st, "id"), dash(str(st, "device")), count(st, "port"), dash(str(st, "via")),
         dash(str(st, "client")),
         humanBytes(static_cast<uint64_t>(std::max<int64_t>(0, num(st, "bytes_to_device")))),
         humanBytes(static_cast<uint64_t>(std::max<int64_t>(0, num(st, "bytes_from_device")))),
         humanAge(real(st, "age_seconds"))});
  }
  return formatTable({"ID", "DEVICE", "PORT", "VIA", "CLIENT", "TO-DEVICE", "FROM-DEVICE", "AGE"},
                     rows);
}

std::string formatDevices(const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const json& d : items(answer, "devices")) {
    rows.push_back({dash(str(d, "id")), yesNo(flag(d, "online")), yesNo(flag(d, "enabled")),
                    when(d, "last_seen")});
  }
  return formatTable({"DEVICE", "ONLINE", "ENABLED", "LAST-SEEN"}, rows);
}

namespace {

// A forward's host on the device's network ("127.0.0.1" when the answer names none) or its
// Unix socket as "unix:PATH".
std::string forwardHost(const json& f) {
  if (std::string path = str(f, "unix"); !path.empty()) return "unix:" + path;
  std::string host = str(f, "host");
  return host.empty() ? "127.0.0.1" : host;
}

}  // namespace

std::string formatForwards(const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const json& f : items(answer, "forwards")) {
    bool socket = !str(f, "unix").empty();
    rows.push_back({dash(str(f, "listen")), dash(str(f, "device")), forwardHost(f),
                    socket ? "-" : count(f, "port"), dash(str(f, "origin")),
                    count(f, "connections")});
  }
  return formatTable({"LISTEN", "DEVICE", "HOST", "PORT", "ORIGIN", "CONNECTIONS"}, rows);
}

std::string formatForward(const json& f) {
  std::string to = dash(str(f, "device")) + ":" + count(f, "port");
  std::string host = forwardHost(f);
  if (host.starts_with("unix:")) {
    to = dash(str(f, "device")) + ":" + host;
  } else if (host != "127.0.0.1") {
    to = net::formatHostPort(host, static_cast<uint16_t>(num(f, "port"))) + " via " +
         dash(str(f, "device"));
  }
  return "forward " + dash(str(f, "listen")) + " -> " + to + "\n";
}

// ---------------------------------------------------------------------------------------------
// The commands.

DaemonCtl::DaemonCtl(CLI::App& app) {
  const char* env = std::getenv("DEVSTREAMS_CONTROL");
  control_ = env && *env ? env : hubclient::defaultControlSocket();
  auto set = [this](Command c) { return [this, c] { command_ = c; }; };
  auto common = [this](CLI::App* sub) {
    sub->add_flag("--json", json_, "print the daemon's answer as JSON");
    sub->add_option("--control", control_, "the daemon's control socket (env DEVSTREAMS_CONTROL)")
        ->type_name("PATH")
        ->capture_default_str();
  };

  auto* status = app.add_subcommand("status", "show the local daemon's state and hub connection");
  common(status);
  status->callback(set(Command::Status));

  auto* streams = app.add_subcommand("streams", "list the daemon's open streams");
  common(streams);
  streams->callback(set(Command::Streams));

  auto* devices = app.add_subcommand("devices", "list the hub's devices, as the daemon sees them");
  common(devices);
  devices->callback(set(Command::Devices));

  auto* forward = app.add_subcommand("forward", "list, add and remove the daemon's port forwards");
  forward->require_subcommand(1);

  auto* list = forward->add_subcommand("list", "list the forwards");
  common(list);
  list->callback(set(Command::ForwardList));

  auto* add = forward->add_subcommand(
      "add", "forward a local address to a device port, e.g. 'add 127.0.0.1:2222 dev01:22'");
  add->add_option("listen", listen_, "local address; port 0 picks a free port")
      ->type_name("HOST:PORT")
      ->required();
  add->add_option("target", target_, "device and port (DEVICE alone with --unix)")
      ->type_name("DEVICE:PORT")
      ->required();
  auto* host = add->add_option("--host", host_,
                               "a host on the device's network instead of its loopback, e.g. "
                               "192.168.1.10");
  add->add_option("--unix", unix_, "a Unix socket on the device instead of a port")
      ->type_name("PATH")
      ->excludes(host);
  common(add);
  add->callback(set(Command::ForwardAdd));

  auto* rm = forward->add_subcommand("rm", "remove a forward; its open connections go on");
  rm->alias("remove");
  rm->add_option("listen", listen_, "the forward's local address")
      ->type_name("HOST:PORT")
      ->required();
  common(rm);
  rm->callback(set(Command::ForwardRemove));
}

bool DaemonCtl::chosen() const { return command_ != Command::None; }

int DaemonCtl::run() {
  std::string method = "GET", target, body, what, arrayKey;
  switch (command_) {
    case Command::None:
      return fail("no command", 2);
    case Command::Status:
      target = "/v1/status";
      what = "status";
      break;
    case Command::Streams:
      target = "/v1/streams";
      what = "streams";
      arrayKey = "streams";
      break;
    case Command::Devices:
      target = "/v1/devices";
      what = "devices";
      arrayKey = "devices";
      break;
    case Command::ForwardList:
      target = "/v1/forwards";
      what = "forward list";
      arrayKey = "forwards";
      break;
    case Command::ForwardAdd: {
      auto listen = net::parseEndpoint(listen_);
      if (!listen) {
        return fail("forward add: expected LISTEN as HOST:PORT (e.g. 127.0.0.1:2222), got '" +
                        listen_ + "'",
                    2);
      }
      json request{{"listen", listen_}};
      if (!unix_.empty()) {
        if (!config::isValidDeviceId(target_)) {
          return fail(
              "forward add: with --unix, expected DEVICE (e.g. dev01), got '" + target_ + "'", 2);
        }
        request["device"] = target_;
        request["unix"] = unix_;
      } else {
        std::string device;
        uint16_t port = 0;
        if (!parseDeviceTarget(target_, device, port)) {
          return fail("forward add: expected DEVICE:PORT (e.g. dev01:22), got '" + target_ + "'",
                      2);
        }
        request["device"] = device;
        request["port"] = port;
        if (!host_.empty()) request["host"] = host_;
      }
      method = "POST";
      target = "/v1/forwards";
      body = request.dump(-1, ' ', false, json::error_handler_t::replace);
      what = "forward add";
      break;
    }
    case Command::ForwardRemove:
      if (!net::parseEndpoint(listen_)) {
        return fail(
            "forward rm: expected LISTEN as HOST:PORT (e.g. 127.0.0.1:2222), got '" + listen_ + "'",
            2);
      }
      method = "DELETE";
      target = "/v1/forwards/" + encodePathSegment(listen_);
      what = "forward rm";
      break;
  }

  ControlAnswer answer;
  std::string err;
  if (!controlRequest(control_, method, target, body, answer, err)) return fail(err);
  bool ok = answer.status >= 200 && answer.status <= 299;
  if (json_ && !answer.body.empty()) {
    std::fputs(answer.body.c_str(), stdout);
    if (answer.body.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (!ok) return fail(what + ": " + errorText(answer));
  if (json_) return 0;

  json doc = json::parse(answer.body, nullptr, false);
  bool expected = command_ == Command::ForwardRemove ||
                  (arrayKey.empty() ? doc.is_object() : hasArray(doc, arrayKey.c_str()));
  if (!expected) return fail(what + ": unexpected answer from devstreamsd");
  std::string text;
  switch (command_) {
    case Command::Status:
      text = formatStatus(doc);
      break;
    case Command::Streams:
      text = formatStreams(doc);
      break;
    case Command::Devices:
      text = formatDevices(doc);
      break;
    case Command::ForwardList:
      text = formatForwards(doc);
      break;
    case Command::ForwardAdd:
      text = formatForward(doc);
      break;
    case Command::ForwardRemove:
      text = "forward " + listen_ + " removed\n";
      break;
    case Command::None:
      break;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace ds::cli
