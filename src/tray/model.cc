// The tray's model: control-API answers in, menu description, notices and commands out.
#include "tray/model.h"

#include <algorithm>
#include <cstdio>

namespace ds::tray {

using json = nlohmann::json;

namespace {

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool flag(const json& j, const char* key, bool dflt) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

double number(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

// The array `key` of a 200 answer, or nullptr with `err` set.
const json* listOf(const Answer& a, const json& doc, const char* key, std::string& err) {
  if (!a.reached || a.status != 200) {
    err = describeError(a);
    return nullptr;
  }
  if (!doc.is_object() || !doc.contains(key) || !doc[key].is_array()) {
    err = std::string("the answer has no '") + key + "' list";
    return nullptr;
  }
  return &doc[key];
}

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string duration(int64_t s) {
  if (s < 0) s = 0;
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min";
  if (s < 86400) return std::to_string(s / 3600) + " h";
  return std::to_string(s / 86400) + " d";
}

std::string lastSeen(int64_t when, int64_t now) {
  if (when <= 0) return "never seen";
  if (now - when < 5) return "last seen just now";
  return "last seen " + duration(now - when) + " ago";
}

std::string cut(std::string s, size_t max) {
  if (max < 4 || s.size() <= max) return s;
  size_t n = max - 3;
  // Do not cut a UTF-8 sequence in two.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s + "...";
}

MenuItem info(std::string label) { return MenuItem{std::move(label), {}, false, {}, {}}; }

MenuItem item(std::string label, Action action) {
  return MenuItem{std::move(label), std::move(action), false, {}, {}};
}

MenuItem separator() { return MenuItem{"", {}, true, {}, {}}; }

const char* iconFor(Link l) {
  switch (l) {
    case Link::Connected:
      return "network-transmit-receive";
    case Link::HubDown:
      return "network-error";
    case Link::ApiError:
      return "dialog-warning";
    case Link::DaemonDown:
      break;
  }
  return "network-offline";
}

std::string titleFor(const State& s) {
  switch (s.link) {
    case Link::Connected:
      return "devstreams: hub connected";
    case Link::HubDown:
      return "devstreams: hub unreachable";
    case Link::ApiError:
      return "devstreams: control API error";
    case Link::DaemonDown:
      break;
  }
  return "devstreams: devstreamsd is not running";
}

const char* actionName(ActionKind k) {
  switch (k) {
    case ActionKind::None:
      return "none";
    case ActionKind::Ssh:
      return "ssh";
    case ActionKind::Browse:
      return "browse";
    case ActionKind::Forward:
      return "forward";
    case ActionKind::RemoveForward:
      return "remove-forward";
    case ActionKind::CopyText:
      return "copy";
    case ActionKind::ToggleWatch:
      return "watch";
    case ActionKind::StartDaemon:
      return "start-daemon";
    case ActionKind::OpenLog:
      return "open-log";
    case ActionKind::Refresh:
      return "refresh";
    case ActionKind::Quit:
      return "quit";
  }
  return "?";
}

json itemJson(const MenuItem& it) {
  if (it.separator) return json{{"separator", true}};
  json j{{"label", it.label}};
  if (it.action.kind != ActionKind::None) {
    json a{{"kind", actionName(it.action.kind)}};
    if (!it.action.device.empty()) a["device"] = it.action.device;
    if (it.action.port != 0) a["port"] = it.action.port;
    if (!it.action.text.empty()) a["text"] = it.action.text;
    j["action"] = a;
  }
  if (it.checked) j["checked"] = *it.checked;
  if (!it.children.empty()) {
    json c = json::array();
    for (const auto& ch : it.children) c.push_back(itemJson(ch));
    j["children"] = c;
  }
  return j;
}

bool safeShellWord(const std::string& w) {
  if (w.empty()) return false;
  return std::all_of(w.begin(), w.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_./:@%+=,-").find(c) != std::string_view::npos;
  });
}

// Words of `tmpl` (quotes and escapes removed), with a mark on each word that was exactly
// "{command}" unquoted.
bool splitWords(std::string_view tmpl, std::vector<std::string>& words, std::string& err) {
  std::string cur;
  bool inWord = false;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (inWord) words.push_back(std::move(cur));
      cur.clear();
      inWord = false;
    } else if (c == '\'') {
      size_t end = tmpl.find('\'', i + 1);
      if (end == std::string_view::npos) {
        err = "unterminated ' in '" + std::string(tmpl) + "'";
        return false;
      }
      cur.append(tmpl.substr(i + 1, end - i - 1));
      i = end;
      inWord = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < tmpl.size() && tmpl[j] != '"'; ++j) {
        if (tmpl[j] == '\\' && j + 1 < tmpl.size()) ++j;
        cur += tmpl[j];
      }
      if (j >= tmpl.size()) {
        err = "unterminated \" in '" + std::string(tmpl) + "'";
        return false;
      }
      i = j;
      inWord = true;
    } else if (c == '\\' && i + 1 < tmpl.size()) {
      cur += tmpl[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push_back(std::move(cur));
  return true;
}

}  // namespace

std::string describeError(const Answer& a) {
  if (!a.reached) return a.error.empty() ? "no answer" : a.error;
  json doc = json::parse(a.body, nullptr, false);
  std::string code = str(doc, "error");
  std::string message = str(doc, "message");
  if (!message.empty() && !code.empty()) return message + " (" + code + ")";
  if (!message.empty()) return message;
  if (!code.empty()) return code;
  return "HTTP " + std::to_string(a.status);
}

State readPoll(const Poll& poll) {
  State s;
  if (!poll.status.reached) {
    s.link = Link::DaemonDown;
    s.daemonError = poll.status.error.empty() ? "no answer" : poll.status.error;
    return s;
  }
  json status = json::parse(poll.status.body, nullptr, false);
  if (poll.status.status != 200 || !status.is_object() || !status.contains("hub") ||
      !status["hub"].is_object()) {
    s.link = Link::ApiError;
    s.errors.push_back("status: " + (poll.status.status == 200
                                         ? std::string("the answer is not a status")
                                         : describeError(poll.status)));
  } else {
    const json& hub = status["hub"];
    s.link = flag(hub, "connected", false) ? Link::Connected : Link::HubDown;
    s.hubUrl = str(hub, "url");
    s.hubError = str(hub, "last_error");
    s.listen = str(status, "listen");
    std::string suffix = str(status, "suffix");
    if (!suffix.empty()) s.suffix = suffix;
  }

  std::string err;
  json doc = json::parse(poll.devices.body, nullptr, false);
  if (const json* list = listOf(poll.devices, doc, "devices", err)) {
    s.devicesKnown = true;
    for (const auto& d : *list) {
      std::string id = str(d, "id");
      if (id.empty()) continue;
      Device dev{id, flag(d, "online", false), flag(d, "enabled", true), 0};
      if (d.contains("last_seen") && d["last_seen"].is_number()) {
        dev.lastSeen = static_cast<int64_t>(d["last_seen"].get<double>());
      }
      s.devices.push_back(std::move(dev));
    }
    std::sort(s.devices.begin(), s.devices.end(),
              [](const Device& a, const Device& b) { return a.id < b.id; });
  } else {
    s.errors.push_back("devices: " + err);
  }

  doc = json::parse(poll.streams.body, nullptr, false);
  if (const json* list = listOf(poll.streams, doc, "streams", err)) {
    for (const auto& j : *list) {
      s.streams.push_back(Stream{str(j, "device"), static_cast<int>(number(j, "port")),
                                 str(j, "target"), str(j, "via"),
                                 static_cast<uint64_t>(number(j, "bytes_to_device")),
                                 static_cast<uint64_t>(number(j, "bytes_from_device")),
                                 number(j, "age_seconds"), str(j, "host"), str(j, "unix")});
    }
  } else {
    s.errors.push_back("streams: " + err);
  }

  doc = json::parse(poll.forwards.body, nullptr, false);
  if (const json* list = listOf(poll.forwards, doc, "forwards", err)) {
    for (const auto& j : *list) {
      s.forwards.push_back(Forward{
          str(j, "listen"), str(j, "device"), static_cast<int>(number(j, "port")), str(j, "origin"),
          static_cast<int64_t>(number(j, "connections")), str(j, "host"), str(j, "unix")});
    }
  } else {
    s.errors.push_back("forwards: " + err);
  }
  return s;
}

namespace {

// Where a stream or forward leads: "dev01:22", "192.168.1.10:80 on dev01", "dev01:unix:/path".
std::string targetOn(const std::string& device, const std::string& host, int port,
                     const std::string& unixPath) {
  if (!unixPath.empty()) return device + ":unix:" + unixPath;
  if (host.empty() || host == "127.0.0.1") return device + ":" + std::to_string(port);
  std::string h = host.find(':') == std::string::npos ? host : "[" + host + "]";
  return h + ":" + std::to_string(port) + " on " + device;
}

}  // namespace

std::string deviceHost(const State& state, const std::string& device) {
  return device + state.suffix;
}

std::string proxyAddress(const State& state) {
  std::string listen = state.listen.empty() ? "127.0.0.1:1080" : state.listen;
  if (listen.starts_with("0.0.0.0:")) return "127.0.0.1" + listen.substr(7);
  if (listen.starts_with("[::]:")) return "[::1]" + listen.substr(4);
  return listen;
}

std::string pacUrl(const State& state) { return "http://" + proxyAddress(state) + "/proxy.pac"; }

std::string webUrl(const State& state, const std::string& device, int port) {
  std::string host = deviceHost(state, device);
  if (port == 443) return "https://" + host + "/";
  if (port == 80) return "http://" + host + "/";
  return "http://" + host + ":" + std::to_string(port) + "/";
}

std::string sshConfigSnippet(const State& state, const std::string& device) {
  std::string host = deviceHost(state, device);
  return "Host " + host + " *.via." + host + "\n    ProxyCommand devstreams --socks " +
         proxyAddress(state) + " connect %h %p\n";
}

std::string forwardBody(const std::string& device, int port, int localPort) {
  return json{
      {"listen", "127.0.0.1:" + std::to_string(localPort)}, {"device", device}, {"port", port}}
      .dump();
}

Menu buildMenu(const State& s, const MenuOptions& o) {
  Menu m;
  m.link = s.link;
  m.iconName = iconFor(s.link);
  m.title = titleFor(s);
  auto add = [&](MenuItem it) {
    it.label = cut(std::move(it.label), o.maxLabel);
    m.items.push_back(std::move(it));
  };
  std::string details;

  if (s.link == Link::DaemonDown) {
    details = s.daemonError;
    add(info("devstreamsd is not running"));
    add(info(s.daemonError));
    add(separator());
    add(item("Start devstreamsd", {ActionKind::StartDaemon, "", 0, ""}));
    add(item("Open the daemon log", {ActionKind::OpenLog, "", 0, ""}));
  } else {
    if (s.link == Link::Connected) {
      add(info("Hub connected: " + s.hubUrl));
    } else if (s.link == Link::HubDown) {
      add(info("Hub unreachable: " + s.hubUrl));
      if (!s.hubError.empty()) add(info("  " + s.hubError));
      details = s.hubError;
      add(item("Open the daemon log", {ActionKind::OpenLog, "", 0, ""}));
    } else {
      add(item("Open the daemon log", {ActionKind::OpenLog, "", 0, ""}));
    }
    for (const auto& e : s.errors) add(info("Error: " + e));
    add(separator());

    if (s.devicesKnown) {
      int64_t online = std::count_if(s.devices.begin(), s.devices.end(),
                                     [](const Device& d) { return d.online; });
      add(info("Devices: " + std::to_string(online) + " of " + std::to_string(s.devices.size()) +
               " online"));
      size_t shown = 0;
      for (const auto& d : s.devices) {
        if (shown++ == o.maxDevices) {
          add(info("  ... and " + std::to_string(s.devices.size() - o.maxDevices) + " more"));
          break;
        }
        std::string state = d.online    ? "online"
                            : d.enabled ? "offline, " + lastSeen(d.lastSeen, o.now)
                                        : "disabled";
        MenuItem dev = info(d.id + " (" + state + ")");
        dev.children.push_back(item("SSH to " + d.id, {ActionKind::Ssh, d.id, 0, ""}));
        for (int port : o.webPorts) {
          std::string url = webUrl(s, d.id, port);
          dev.children.push_back(item("Open " + url, {ActionKind::Browse, d.id, port, url}));
        }
        dev.children.push_back(item("Forward a local port...", {ActionKind::Forward, d.id, 0, ""}));
        dev.children.push_back(item("Copy SSH config snippet",
                                    {ActionKind::CopyText, d.id, 0, sshConfigSnippet(s, d.id)}));
        dev.children.push_back(separator());
        MenuItem watch = item("Notify when offline", {ActionKind::ToggleWatch, d.id, 0, ""});
        watch.checked = o.watched.count(d.id) > 0;
        dev.children.push_back(std::move(watch));
        dev.children.push_back(info(d.online ? "online" : lastSeen(d.lastSeen, o.now)));
        add(std::move(dev));
      }
    } else {
      add(info("Devices: unknown (see the error above)"));
    }
    add(separator());

    MenuItem streams = info("Streams: " + std::to_string(s.streams.size()) + " open");
    for (const auto& st : s.streams) {
      std::string where = st.device.empty() ? st.target + " (direct)"
                                            : targetOn(st.device, st.host, st.port, st.unixPath);
      streams.children.push_back(info(where + " via " + st.via + ", " + bytes(st.toDevice) +
                                      " out, " + bytes(st.fromDevice) + " in, " +
                                      duration(static_cast<int64_t>(st.ageSeconds))));
    }
    add(std::move(streams));
    MenuItem forwards = info("Forwards: " + std::to_string(s.forwards.size()));
    for (const auto& f : s.forwards) {
      MenuItem fw =
          info(f.listen + " -> " + targetOn(f.device, f.host, f.port, f.unixPath) + " (" +
               f.origin + ", " + plural(f.connections, "connection", "connections") + ")");
      if (f.origin == "runtime") {
        fw.children.push_back(
            item("Remove this forward", {ActionKind::RemoveForward, "", 0, f.listen}));
      }
      forwards.children.push_back(std::move(fw));
    }
    add(std::move(forwards));
    add(separator());
    add(item("Copy PAC URL (" + pacUrl(s) + ")", {ActionKind::CopyText, "", 0, pacUrl(s)}));
  }
  add(item("Refresh", {ActionKind::Refresh, "", 0, ""}));
  add(item("Quit", {ActionKind::Quit, "", 0, ""}));

  // The tooltip: the state, what is wrong, then the counts.
  m.tooltip = m.title;
  if (!details.empty()) m.tooltip += "\n" + cut(details, 200);
  if (s.link != Link::DaemonDown) {
    if (s.devicesKnown) {
      int64_t online = std::count_if(s.devices.begin(), s.devices.end(),
                                     [](const Device& d) { return d.online; });
      m.tooltip += "\n" + std::to_string(online) + " of " + std::to_string(s.devices.size()) +
                   " devices online";
    }
    m.tooltip += "\n" + plural(static_cast<int64_t>(s.streams.size()), "stream", "streams") + ", " +
                 plural(static_cast<int64_t>(s.forwards.size()), "forward", "forwards");
    if (!s.errors.empty()) m.tooltip += "\n" + cut("Error: " + s.errors.front(), 200);
  }
  return m;
}

json menuJson(const Menu& m) {
  static const char* links[] = {"daemon-down", "api-error", "hub-down", "connected"};
  json items = json::array();
  for (const auto& it : m.items) items.push_back(itemJson(it));
  return json{{"link", links[static_cast<int>(m.link)]},
              {"icon", m.iconName},
              {"title", m.title},
              {"tooltip", m.tooltip},
              {"items", items}};
}

std::vector<Notice> changes(const State& before, const State& after,
                            const std::set<std::string>& watched) {
  std::vector<Notice> out;
  bool wasUp = before.link != Link::DaemonDown;
  bool isUp = after.link != Link::DaemonDown;
  if (wasUp && !isUp) {
    out.push_back({"devstreamsd stopped", after.daemonError});
  } else if (!wasUp && isUp) {
    out.push_back({"devstreamsd is running", after.link == Link::Connected
                                                 ? "hub connected: " + after.hubUrl
                                                 : "hub unreachable: " + after.hubError});
  } else if (before.link == Link::Connected && after.link == Link::HubDown) {
    out.push_back({"Hub link lost", after.hubUrl + ": " + after.hubError});
  } else if (before.link == Link::HubDown && after.link == Link::Connected) {
    out.push_back({"Hub link back", after.hubUrl});
  }
  if (before.devicesKnown && after.devicesKnown) {
    for (const auto& d : after.devices) {
      if (!watched.count(d.id)) continue;
      auto it = std::find_if(before.devices.begin(), before.devices.end(),
                             [&](const Device& b) { return b.id == d.id; });
      if (it == before.devices.end() || it->online == d.online) continue;
      out.push_back(d.online ? Notice{d.id + " is online", "watched device came back"}
                             : Notice{d.id + " went offline", "watched device"});
    }
  }
  return out;
}

std::string shellQuote(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& w : argv) {
    if (!out.empty()) out += ' ';
    if (safeShellWord(w)) {
      out += w;
      continue;
    }
    out += '\'';
    for (char c : w) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

bool expandCommand(std::string_view tmpl, const std::map<std::string, std::string>& vars,
                   const std::vector<std::string>& command, std::vector<std::string>& argv,
                   std::string& err, QuoteFn quote) {
  std::vector<std::string> words;
  if (!splitWords(tmpl, words, err)) return false;
  argv.clear();
  for (const auto& w : words) {
    if (w == "{command}") {
      if (command.empty()) {
        err = "{command} has no command here";
        return false;
      }
      argv.insert(argv.end(), command.begin(), command.end());
      continue;
    }
    std::string out;
    for (size_t i = 0; i < w.size(); ++i) {
      size_t close = w[i] == '{' ? w.find('}', i) : std::string::npos;
      if (close == std::string::npos) {
        out += w[i];
        continue;
      }
      std::string name = w.substr(i + 1, close - i - 1);
      if (name == "command_line" && !command.empty()) {
        out += quote(command);
      } else if (auto it = vars.find(name); it != vars.end()) {
        out += it->second;
      } else {
        err = "unknown {" + name + "} in '" + std::string(tmpl) + "'";
        return false;
      }
      i = close;
    }
    argv.push_back(std::move(out));
  }
  if (argv.empty()) {
    err = "empty command";
    return false;
  }
  return true;
}

bool parsePorts(std::string_view text, std::vector<int>& out, std::string& err) {
  out.clear();
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view part =
        text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) {
      int v = 0;
      bool ok = part.size() <= 5;
      for (char c : part) {
        if (c < '0' || c > '9') ok = false;
        if (ok) v = v * 10 + (c - '0');
      }
      if (!ok || v < 1 || v > 65535) {
        err = "'" + std::string(part) + "' is not a port (1..65535)";
        return false;
      }
      out.push_back(v);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return true;
}

}  // namespace ds::tray
