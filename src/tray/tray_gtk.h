// The GTK 3 front end of devstreams-tray: an Ayatana AppIndicator when a StatusNotifier host
// runs, else an XEmbed status icon; a GtkMenu built from the model's menu; libnotify for
// notices. It polls the daemon's control API off the GUI thread and runs the menu's actions.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace ds::tray {

struct Settings {
  std::string control;                       // the daemon's control socket
  std::chrono::milliseconds interval{2000};  // between refreshes
  std::vector<int> webPorts{80, 8080};       // "Open in browser" per device
  std::set<std::string> watched;             // devices that notify when they go offline
  // Command templates (see expandCommand in model.h). {host} dev01.hub, {device} dev01,
  // {proxy} 127.0.0.1:1080, {devstreams} the CLI, {url} a web URL, {command} the command a
  // terminal runs.
  std::string terminal = "x-terminal-emulator -e {command}";
  std::string ssh = "ssh -o \"ProxyCommand={devstreams} --socks {proxy} connect %h %p\" {host}";
  std::string browser = "xdg-open {url}";
  std::string startDaemon = "systemctl start devstreamsd.service";
  std::string log = "journalctl -u devstreamsd.service -n 200 -f";  // run in the terminal
  std::string devstreams = "devstreams";
  std::string dumpMenu;     // when set: this file gets the menu as JSON whenever it changes
  bool statusIcon = false;  // the XEmbed status icon even when a StatusNotifier host runs
};

// Runs the tray until Quit, SIGTERM or SIGINT. gtk_init must have succeeded. Returns the exit
// status.
int runTray(const Settings& settings);

}  // namespace ds::tray
