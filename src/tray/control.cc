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

}  // namespace ds::tray
