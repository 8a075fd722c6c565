// devstreams-tray's settings (the command line and tray.ini, main.cc) and the entry point that
// each front end implements: tray_gtk.cc on Linux, tray_win.cc on Windows.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace ds::tray {

struct Settings {
  std::string control;                       // the daemon's control socket (Windows: its pipe)
  std::chrono::milliseconds interval{2000};  // between refreshes
  std::vector<int> webPorts{80, 8080};       // "Open in browser" per device
  std::set<std::string> watched;             // devices that notify when they go offline
  // Command templates (see expandCommand in model.h). {host} dev01.hub, {device} dev01,
  // {proxy} 127.0.0.1:1080, {devstreams} the CLI, {url} a web URL, {command} the command a
  // terminal runs.
  std::string ssh = "ssh -o \"ProxyCommand={devstreams} --socks {proxy} connect %h %p\" {host}";
  std::string devstreams = "devstreams";
#ifdef _WIN32
  // A console window of its own runs the command.
  std::string terminal = "{command}";
  // Empty: the built-in way. The default browser (ShellExecute), the devstreamsd service
  // through the Service Control Manager (elevated when the user may not start it), and the
  // service's log file opened with the program Windows associates with it.
  std::string browser;
  std::string startDaemon;
  std::string log;
#else
  std::string terminal = "x-terminal-emulator -e {command}";
  std::string browser = "xdg-open {url}";
  std::string startDaemon = "systemctl start devstreamsd.service";
  std::string log = "journalctl -u devstreamsd.service -n 200 -f";  // run in the terminal
#endif
  std::string dumpMenu;     // when set: this file gets the menu as JSON whenever it changes
  bool statusIcon = false;  // Linux: the XEmbed status icon even when a StatusNotifier host runs
};

// Runs the tray until Quit (or SIGTERM/SIGINT on Linux, WM_CLOSE on Windows). Returns the exit
// status.
int runTray(const Settings& settings);

}  // namespace ds::tray
