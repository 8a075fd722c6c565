// Hub administration over the REST API: one HTTPS exchange per request on a private loop.
#include "cli/hub_admin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "agent/settings.h"
#include "cli/format.h"
#include "common/event.h"
#include "common/http_exchange.h"
#include "common/log.h"
#include "common/net.h"
#include "common/platform.h"
#include "common/sas.h"
#include "common/time_text.h"
#include "common/tls.h"
#include "daemon/settings.h"
#include "hubclient/hub_client.h"
#include "hubclient/rest_client.h"

namespace ds::cli {

using json = nlohmann::json;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr const char* kDeviceIdRule =
    "1..128 characters of A-Z a-z 0-9 - . % _ * ? ! ( ) , : = @ $ '";

int fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "devstreams: %s\n", msg.c_str());
  return code;
}

std::string inQuotes(const std::string& s) { return "'" + s + "'"; }

// ---------------------------------------------------------------------------------------------
// Talking to the hub.

struct Reply {
  int status = 0;
  std::string body;
  json doc;  // the parsed body; discarded when the body is not JSON
};

// The hub's REST API through the one REST client (hubclient/rest_client.h), which also honours
// HTTPS_PROXY and NO_PROXY.
class HubApi {
 public:
  explicit HubApi(const config::DaemonConfig& cfg) : cfg_(cfg), client_(cfg.policy, cfg.key) {}

  bool init(std::string& err) {
    return client_.init({cfg_.hubUrl, cfg_.serverName, cfg_.hubHostname, cfg_.ca, ""}, err);
  }

  const hubclient::HubTarget& target() const { return client_.target(); }

  // One request; false with `err` set when no HTTP response was read or it was not a 2xx.
  bool call(const std::string& method, const std::string& path, const json* body, Reply& out,
            std::string& err) {
    hubclient::RestResult result;
    if (!client_.call({method, path, body ? body->dump() : "", "", "", false}, result, err,
                      kRequestTimeout)) {
      return false;
    }
    out.status = result.status;
    out.body = std::move(result.body);
    out.doc = json::parse(out.body, nullptr, false);
    if (out.doc.is_discarded()) out.doc = json();
    if (out.status < 200 || out.status > 299) {
      err = hubMessage(out) + " (HTTP " + std::to_string(out.status) + ")";
      return false;
    }
    return true;
  }

 private:
  static std::string hubMessage(const Reply& r) {
    if (r.doc.is_object()) {
      auto text = [&](const char* k) {
        auto it = r.doc.find(k);
        return it != r.doc.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      if (std::string m = text("message"); !m.empty()) return m;
      if (std::string c = text("error"); !c.empty()) return c;
    }
    return "unexpected answer from the hub";
  }

  const config::DaemonConfig& cfg_;
  hubclient::HubRestClient client_;
};

// ---------------------------------------------------------------------------------------------
// Formatting.

std::string whenSeen(int64_t unixSeconds) {
  return unixSeconds > 0 ? isoUtc(unixSeconds) : "never";
}

std::string yesNo(bool b) { return b ? "yes" : "no"; }

std::string humanDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  char buf[32];
  if (ms < 10000) {
    std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(ms) / 1000);
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  } else if (ms < 3600000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3600000),
                  static_cast<long long>(ms / 60000 % 60));
  }
  return buf;
}

void printTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::fputs(formatTable(header, rows).c_str(), stdout);
}

void printJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// YAML double-quoted scalar.
std::string yamlQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The hub URL in the form agents use: wss://host[:port].
std::string agentHubUrl(const hubclient::HubTarget& t) {
  bool v6 = t.host.find(':') != std::string::npos;
  std::string url = "wss://" + (v6 ? "[" + t.host + "]" : t.host);
  if (t.port != 443) url += ":" + std::to_string(t.port);
  return url;
}

std::string agentConfigText(const hubclient::HubTarget& t, const std::string& ca,
                            const std::string& deviceId, const std::string& deviceKey,
                            const std::vector<net::Endpoint>& allow) {
  std::string y = "# Agent configuration of device " + deviceId +
                  ", written by `devstreams hub device add`.\n"
                  "# It holds the device key: keep it private.\n"
                  "agent:\n";
  y += "  hub_url: " + yamlQuote(agentHubUrl(t)) + "\n";
  y += "  ca: " + yamlQuote(ca) + "\n";
  if (t.serverName != t.host) y += "  server_name: " + yamlQuote(t.serverName) + "\n";
  y += "  hub_hostname: " + yamlQuote(t.resourceHost) + "\n";
  y += "  device_id: " + yamlQuote(deviceId) + "\n";
  y += "  device_key: " + yamlQuote(deviceKey) + "\n";
  y += "  allow:\n";
  for (const auto& e : allow) y += "    - " + yamlQuote(e.toString()) + "\n";
  return y;
}

// Creates `path` with mode 0600; never replaces an existing file.
bool writeNewFile(const std::string& path, const std::string& text, std::string& err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    err = std::strerror(errno);
    return false;
  }
  bool ok = ::fchmod(fd, 0600) == 0;
  const char* p = text.data();
  size_t left = text.size();
  while (ok && left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (!ok) err = std::strerror(errno);
  if (::close(fd) != 0 && ok) {
    err = std::strerror(errno);
    ok = false;
  }
  if (!ok) ::unlink(path.c_str());
  return ok;
}

std::string devicePath(const std::string& id) { return "/api/v1/devices/" + sas::urlEncode(id); }

}  // namespace

// ---------------------------------------------------------------------------------------------

HubAdmin::HubAdmin(CLI::App& app) {
  const char* env = std::getenv("DEVSTREAMS_CONFIG");
  configPath_ = env && *env ? env : platform::cliConfigFile("devstreams.yaml");

  hub_ = app.add_subcommand("hub", "administer the hub: devices, keys, streams");
  hub_->require_subcommand(1);
  hub_->fallthrough();
  hub_->add_option("-c,--config", configPath_,
                   "configuration file whose 'daemon' section holds the hub URL, CA and service "
                   "policy (env DEVSTREAMS_CONFIG)")
      ->type_name("FILE")
      ->capture_default_str();

  auto set = [this](Command c) { return [this, c] { command_ = c; }; };
  auto idArg = [this](CLI::App* sub) { sub->add_option("id", deviceId_, "device id")->required(); };

  auto* device = hub_->add_subcommand("device", "manage the devices in the hub's registry");
  device->require_subcommand(1);
  device->fallthrough();

  auto* add = device->add_subcommand("add", "register a device and print its connection settings");
  idArg(add);
  add->add_option("--agent-config", agentConfig_,
                  "also write a complete agent configuration to FILE (mode 0600; never replaced)")
      ->type_name("FILE");
  add->add_option("--allow", allow_,
                  "target the agent may connect to (repeatable; default 127.0.0.1:22)")
      ->type_name("HOST:PORT")
      ->allow_extra_args(false)
      ->delimiter(',')
      ->check([](const std::string& s) -> std::string {
        auto e = net::parseEndpoint(s);
        return e && e->port != 0 ? "" : "expected HOST:PORT, got '" + s + "'";
      });
  add->add_flag("--json", json_, "print the hub's answer as JSON");
  add->callback(set(Command::Add));

  auto* list = device->add_subcommand("list", "list the devices");
  list->add_flag("--json", json_, "print the hub's answer as JSON");
  list->callback(set(Command::List));

  auto* show = device->add_subcommand("show", "show one device (with keys when allowed)");
  idArg(show);
  show->add_flag("--json", json_, "print the hub's answer as JSON");
  show->callback(set(Command::Show));

  auto* remove = device->add_subcommand("remove", "delete a device; it is disconnected");
  idArg(remove);
  remove->callback(set(Command::Remove));

  auto* rotate = device->add_subcommand("rotate-key", "replace a device key with a fresh one");
  idArg(rotate);
  rotate->add_flag("--secondary", secondary_, "rotate the secondary key (default: primary)");
  rotate->callback(set(Command::Rotate));

  auto* disable = device->add_subcommand("disable", "refuse the device's connections");
  idArg(disable);
  disable->callback(set(Command::Disable));

  auto* enable = device->add_subcommand("enable", "accept the device's connections again");
  idArg(enable);
  enable->callback(set(Command::Enable));

  auto* streams = hub_->add_subcommand("streams", "show active and recent streams");
  streams->add_option("--limit", limit_, "recent streams to show")
      ->type_name("N")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  streams->add_flag("--json", json_, "print the hub's answer as JSON");
  streams->callback(set(Command::Streams));
}

bool HubAdmin::chosen() const { return command_ != Command::None; }

int HubAdmin::run() {
  setLogProgram("devstreams");
  setLogLevel(Level::Error);
#ifdef SIGPIPE  // Winsock has none
  std::signal(SIGPIPE, SIG_IGN);
#endif

  bool needsId = command_ != Command::List && command_ != Command::Streams;
  if (needsId && !config::isValidDeviceId(deviceId_)) {
    return fail("invalid device id " + inQuotes(deviceId_) + " (" + kDeviceIdRule + ")", 2);
  }
  std::vector<net::Endpoint> allow;
  for (const auto& a : allow_) allow.push_back(*net::parseEndpoint(a));
  if (allow.empty()) allow.push_back({"127.0.0.1", 22});
  if (command_ == Command::Add && !agentConfig_.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(agentConfig_, ec))) {
      return fail(agentConfig_ + " already exists; not replacing it");
    }
  }

  config::DaemonConfig cfg;
  try {
    cfg = config::loadDaemon(configPath_);
  } catch (const config::Error& e) {
    return fail(e.what(), 2);
  }
  HubApi api(cfg);
  std::string err;
  if (!api.init(err)) return fail(err);

  const std::string& id = deviceId_;
  Reply r;
  switch (command_) {
    case Command::None:
      return fail("no command", 2);

    case Command::Add: {
      json body{{"id", id}};
      if (!api.call("POST", "/api/v1/devices", &body, r, err)) {
        return fail("add device " + inQuotes(id) + ": " + err);
      }
      if (!r.doc.is_object() || str(r.doc, "primary_key").empty()) {
        return fail("add device " + inQuotes(id) + ": unexpected answer from the hub");
      }
      std::string key = str(r.doc, "primary_key");
      if (json_) {
        printJson(r.doc);
      } else {
        std::printf("device_id: %s\nprimary_key: %s\nsecondary_key: %s\nhub_url: %s\n",
                    str(r.doc, "id").c_str(), key.c_str(), str(r.doc, "secondary_key").c_str(),
                    agentHubUrl(api.target()).c_str());
        if (api.target().serverName != api.target().host) {
          std::printf("server_name: %s\n", api.target().serverName.c_str());
        }
        std::printf("hub_hostname: %s\n", api.target().resourceHost.c_str());
      }
      std::fflush(stdout);
      if (agentConfig_.empty()) return 0;
      std::error_code ec;
      std::string ca = std::filesystem::absolute(cfg.ca, ec).lexically_normal().string();
      if (ec) ca = cfg.ca;
      std::string text = agentConfigText(api.target(), ca, id, key, allow);
      try {
        config::parseAgent(text, agentConfig_);
      } catch (const config::Error& e) {
        return fail(std::string("agent configuration not written: ") + e.what());
      }
      if (!writeNewFile(agentConfig_, text, err)) {
        return fail("cannot write the agent configuration " + agentConfig_ + ": " + err);
      }
      std::fprintf(stderr, "devstreams: agent configuration written to %s\n", agentConfig_.c_str());
      return 0;
    }

    case Command::List: {
      if (!api.call("GET", "/api/v1/devices", nullptr, r, err)) {
        return fail("list devices: " + err);
      }
      if (!r.doc.is_object() || !r.doc.contains("devices") || !r.doc["devices"].is_array()) {
        return fail("list devices: unexpected answer from the hub");
      }
      if (json_) {
        printJson(r.doc);
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& d : r.doc["devices"]) {
        rows.push_back({str(d, "id"), yesNo(flag(d, "enabled")), yesNo(flag(d, "online")),
                        whenSeen(num(d, "last_seen"))});
      }
      printTable({"ID", "ENABLED", "ONLINE", "LAST SEEN"}, rows);
      return 0;
    }

    case Command::Show: {
      if (!api.call("GET", devicePath(id), nullptr, r, err)) {
        return fail("show device " + inQuotes(id) + ": " + err);
      }
      if (!r.doc.is_object()) return fail("show device " + inQuotes(id) + ": unexpected answer");
      if (json_) {
        printJson(r.doc);
        return 0;
      }
      std::printf("id: %s\nenabled: %s\nonline: %s\ncreated: %s\nlast_seen: %s\n",
                  str(r.doc, "id").c_str(), yesNo(flag(r.doc, "enabled")).c_str(),
                  yesNo(flag(r.doc, "online")).c_str(),
                  num(r.doc, "created") > 0 ? isoUtc(num(r.doc, "created")).c_str() : "unknown",
                  whenSeen(num(r.doc, "last_seen")).c_str());
      if (r.doc.contains("primary_key")) {
        std::printf("primary_key: %s\n", str(r.doc, "primary_key").c_str());
        std::printf("secondary_key: %s\n", str(r.doc, "secondary_key").c_str());
      }
      return 0;
    }

    case Command::Remove:
      if (!api.call("DELETE", devicePath(id), nullptr, r, err)) {
        return fail("remove device " + inQuotes(id) + ": " + err);
      }
      std::printf("device %s removed\n", id.c_str());
      return 0;

    case Command::Rotate: {
      const char* which = secondary_ ? "secondary" : "primary";
      json body{{"key", which}};
      if (!api.call("POST", devicePath(id) + "/keys/rotate", &body, r, err)) {
        return fail(std::string("rotate the ") + which + " key of " + inQuotes(id) + ": " + err);
      }
      std::string field = std::string(which) + "_key";
      std::string key = str(r.doc, field.c_str());
      if (key.empty()) return fail("rotate key of " + inQuotes(id) + ": unexpected answer");
      std::printf("%s: %s\n", field.c_str(), key.c_str());
      if (flag(r.doc, "online")) {
        std::fprintf(stderr,
                     "devstreams: the device stays connected; it needs the new key when it next "
                     "connects\n");
      }
      return 0;
    }

    case Command::Disable:
    case Command::Enable: {
      bool enable = command_ == Command::Enable;
      std::string what = std::string(enable ? "enable" : "disable") + " device " + inQuotes(id);
      // PUT creates missing devices; look first so a typo does not register a new one.
      if (!api.call("GET", devicePath(id), nullptr, r, err)) return fail(what + ": " + err);
      json body{{"enabled", enable}};
      if (!api.call("PUT", devicePath(id), &body, r, err)) return fail(what + ": " + err);
      std::printf("device %s %s\n", id.c_str(), enable ? "enabled" : "disabled");
      return 0;
    }

    case Command::Streams: {
      if (!api.call("GET", "/api/v1/streams?limit=" + std::to_string(limit_), nullptr, r, err)) {
        if (err.find("too large") != std::string::npos) err += "; try a smaller --limit";
        return fail("list streams: " + err);
      }
      if (!r.doc.is_object() || !r.doc.contains("active") || !r.doc["active"].is_array() ||
          !r.doc.contains("recent") || !r.doc["recent"].is_array()) {
        return fail("list streams: unexpected answer from the hub");
      }
      if (json_) {
        printJson(r.doc);
        return 0;
      }
      auto target = [](const json& s) {
        return net::formatHostPort(str(s, "host"), static_cast<uint16_t>(num(s, "port")));
      };
      auto bytes = [](const json& s) {
        return humanBytes(static_cast<uint64_t>(num(s, "bytes_to_device"))) + "/" +
               humanBytes(static_cast<uint64_t>(num(s, "bytes_from_device")));
      };
      int64_t nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      const json& active = r.doc["active"];
      const json& recent = r.doc["recent"];
      std::printf("ACTIVE (%zu)\n", active.size());
      if (!active.empty()) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& s : active) {
          rows.push_back({str(s, "stream_id").substr(0, 8), str(s, "device"), target(s),
                          str(s, "state"), bytes(s), humanDuration(nowMs - num(s, "start_ms")),
                          isoUtc(num(s, "start_ms") / 1000)});
        }
        printTable({"ID", "DEVICE", "TARGET", "STATE", "BYTES UP/DOWN", "DURATION", "STARTED"},
                   rows);
      }
      std::printf("\nRECENT (%zu)\n", recent.size());
      if (!recent.empty()) {
        std::vector<std::vector<std::string>> rows;
        for (const auto& s : recent) {
          rows.push_back({str(s, "stream_id").substr(0, 8), str(s, "device"), target(s),
                          str(s, "outcome"), bytes(s),
                          humanDuration(num(s, "end_ms") - num(s, "start_ms")),
                          isoUtc(num(s, "start_ms") / 1000), str(s, "reason")});
        }
        printTable(
            {"ID", "DEVICE", "TARGET", "OUTCOME", "BYTES UP/DOWN", "DURATION", "STARTED", "REASON"},
            rows);
      }
      return 0;
    }
  }
  return fail("unknown command", 2);
}

}  // namespace ds::cli
