// What both front ends (tray_gtk.cc, tray_win.cc) do besides showing: the control-API exchanges
// of a refresh and of a menu action, through the CLI's controlRequest (a Unix socket on Linux,
// the daemon's pipe on Windows), and the variables of the command templates. Blocking: the
// front ends call these on a worker thread.
#pragma once

#include <deque>
#include <map>
#include <nlohmann/json.hpp>
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

// What a front end does for the menu's actions (tray_gtk.cc, tray_win.cc; a mock in tests).
// act() decides which of these an action takes, so both front ends behave alike.
class Desktop {
 public:
  virtual ~Desktop() = default;
  // Expands `tmpl` with `vars` (inside the terminal template when `inTerminal`) and starts it;
  // failures are shown.
  virtual void spawn(const std::string& what, const std::string& tmpl,
                     const std::map<std::string, std::string>& vars, bool inTerminal) = 0;
  // The platform's own way of Browse (text: the URL), StartDaemon and OpenLog, for an empty
  // template (Windows: the default browser, the service, its log file).
  virtual void builtIn(ActionKind kind, const std::string& text) = 0;
  virtual void copy(const std::string& text) = 0;
  virtual void askForward(const std::string& device) = 0;
  // One control-API request that changes something, off the GUI thread; errors are shown.
  virtual void call(const std::string& what, const std::string& method, const std::string& target,
                    const std::string& body) = 0;
  virtual void refresh() = 0;
  virtual void show() = 0;  // the menu again, after `watched` changed
  virtual void quit() = 0;
};

// Carries out `a`, chosen in the menu of `state`; ToggleWatch changes `watched`.
void act(const Action& a, const Settings& settings, const State& state,
         std::set<std::string>& watched, Desktop& desktop);

// What a refresh from `before` to `after` tells the user: the notices (none after the first
// refresh, `first`) and the log lines (control-API errors not seen before, a new reason why the
// daemon cannot be reached).
struct Told {
  std::vector<Notice> notices;
  std::vector<std::string> logLines;
};
Told tell(const State& before, const State& after, const std::set<std::string>& watched,
          bool first);

// What the tray told the user and which actions failed (the last 20 of each), and the
// --dump-menu file that shows them with the front end's state (tests, bug reports).
class Said {
 public:
  void notice(const Notice& n);
  void actionError(const std::string& line);
  // Adds "notices" and "action_errors" to `d` and writes it to `path` (UTF-8; through a
  // temporary file and a rename, so a reader never sees half of it) when the text differs from
  // the last one written. False with `err` set when it cannot be written.
  bool dump(nlohmann::json d, const std::string& path, std::string& err);

 private:
  std::deque<Notice> notices_;
  std::deque<std::string> actionErrors_;
  std::string last_;
};

}  // namespace ds::tray
