// What both front ends (tray_gtk.cc, tray_win.cc) do besides showing: the control-API exchanges
// of a refresh and of a menu action, through the CLI's controlRequest (a Unix socket on Linux,
// the daemon's pipe on Windows), and the variables of the command templates. Blocking: the
// front ends call these on a worker thread.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tray/model.h"
#include "tray/settings.h"

namespace ds::tray {

// One request to the daemon at `control`, bounded by 12 s (the daemon asks the hub for 10 s).
Answer request(const std::string& control, const std::string& method, const std::string& target,
               const std::string& body = "");

// One refresh: status, then (when the daemon answered) devices, streams and forwards.
Poll pollDaemon(const std::string& control);

// The listen address of the forward that POST /v1/forwards answered, "" when it has none.
std::string addedForward(const Answer& a);

// {device}, {host}, {proxy}, {devstreams} and {control} of the command templates for `device`.
std::map<std::string, std::string> commandVars(const State& state, const Settings& settings,
                                               const std::string& device);

// What a refresh from `before` to `after` tells the user: the notices (none after the first
// refresh, `first`) and the log lines (control-API errors not seen before, a new reason why the
// daemon cannot be reached).
struct Told {
  std::vector<Notice> notices;
  std::vector<std::string> logLines;
};
Told tell(const State& before, const State& after, const std::set<std::string>& watched,
          bool first);

// Writes `text` to `path` (UTF-8) through a temporary file and a rename, so that a reader never
// sees half of it. False with `err` set.
bool replaceFile(const std::string& path, const std::string& text, std::string& err);

}  // namespace ds::tray
