// The front ends' control-API exchanges and template variables (control.h).
#include "tray/control.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/daemon_ctl.h"
#include "tray/tray_win_model.h"

namespace ds::tray {

namespace {

constexpr size_t kKept = 20;  // notices and action errors kept for the dump

bool replaceFile(const std::string& path, const std::string& text, std::string& err) {
#ifdef _WIN32
  std::u16string w = win::toUtf16(path);
  std::filesystem::path target(std::wstring(w.begin(), w.end()));
#else
  std::filesystem::path target(path);
#endif
  std::filesystem::path tmp = target;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc | std::ios::binary);
    f << text;
    if (!f) {
      err = "cannot write " + path + ".tmp";
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec) err = "cannot write " + path + ": " + ec.message();
  return !ec;
}

}  // namespace

Answer request(const std::string& control, const std::string& method, const std::string& target,
               const std::string& body) {
  Answer a;
  cli::ControlAnswer out;
  std::string err;
  if (cli::controlRequest(control, method, target, body, out, err, std::chrono::seconds(12))) {
    a.reached = true;
    a.status = out.status;
    a.body = std::move(out.body);
  } else {
    a.error = std::move(err);
  }
  return a;
}

Poll pollDaemon(const std::string& control) {
  Poll p;
  p.status = request(control, "GET", "/v1/status");
  if (!p.status.reached) return p;
  p.devices = request(control, "GET", "/v1/devices");
  p.streams = request(control, "GET", "/v1/streams");
  p.forwards = request(control, "GET", "/v1/forwards");
  return p;
}

std::string addedForward(const Answer& a) {
  auto doc = nlohmann::json::parse(a.body, nullptr, false);
  return doc.is_object() && doc.contains("listen") && doc["listen"].is_string()
             ? doc["listen"].get<std::string>()
             : "";
}

std::map<std::string, std::string> commandVars(const State& state, const Settings& settings,
                                               const std::string& device) {
  return {{"device", device},
          {"host", deviceHost(state, device)},
          {"proxy", proxyAddress(state)},
          {"devstreams", settings.devstreams},
          {"control", settings.control}};
}

void act(const Action& a, const Settings& settings, const State& state,
         std::set<std::string>& watched, Desktop& desktop) {
  auto run = [&](const std::string& what, const std::string& tmpl, const std::string& device,
                 bool inTerminal, const std::string& url = "") {
    auto vars = commandVars(state, settings, device);
    if (!url.empty()) vars["url"] = url;
    desktop.spawn(what, tmpl, vars, inTerminal);
  };
  switch (a.kind) {
    case ActionKind::Ssh:
      return run("SSH to " + a.device, settings.ssh, a.device, true);
    case ActionKind::Browse:
      if (settings.browser.empty()) return desktop.builtIn(a.kind, a.text);
      return run("Open " + a.text, settings.browser, a.device, false, a.text);
    case ActionKind::Forward:
      return desktop.askForward(a.device);
    case ActionKind::RemoveForward:
      return desktop.call("Remove forward " + a.text, "DELETE",
                          "/v1/forwards/" + cli::encodePathSegment(a.text), "");
    case ActionKind::CopyText:
      return desktop.copy(a.text);
    case ActionKind::ToggleWatch:
      if (!watched.erase(a.device)) watched.insert(a.device);
      return desktop.show();
    case ActionKind::StartDaemon:
      if (settings.startDaemon.empty()) {
        desktop.builtIn(a.kind, "");
      } else {
        run("Start devstreamsd", settings.startDaemon, "", false);
      }
      return desktop.refresh();
    case ActionKind::OpenLog:
      if (settings.log.empty()) return desktop.builtIn(a.kind, "");
      return run("Open the daemon log", settings.log, "", true);
    case ActionKind::Refresh:
      return desktop.refresh();
    case ActionKind::Quit:
      return desktop.quit();
    case ActionKind::None:
      return;
  }
}

Told tell(const State& before, const State& after, const std::set<std::string>& watched,
          bool first) {
  Told t;
  if (!first) t.notices = changes(before, after, watched);
  for (const auto& e : after.errors) {
    if (std::find(before.errors.begin(), before.errors.end(), e) == before.errors.end()) {
      t.logLines.push_back("control API: " + e);
    }
  }
  if (after.link == Link::DaemonDown && before.daemonError != after.daemonError) {
    t.logLines.push_back(after.daemonError);
  }
  return t;
}

void Said::notice(const Notice& n) {
  notices_.push_back(n);
  if (notices_.size() > kKept) notices_.pop_front();
}

void Said::actionError(const std::string& line) {
  actionErrors_.push_back(line);
  if (actionErrors_.size() > kKept) actionErrors_.pop_front();
}

bool Said::dump(nlohmann::json d, const std::string& path, std::string& err) {
  d["notices"] = nlohmann::json::array();
  for (const auto& n : notices_) d["notices"].push_back({{"title", n.title}, {"body", n.body}});
  d["action_errors"] = actionErrors_;
  std::string text = d.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (text == last_) return true;
  if (!replaceFile(path, text, err)) return false;
  last_ = std::move(text);
  return true;
}

}  // namespace ds::tray
