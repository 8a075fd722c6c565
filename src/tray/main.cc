// devstreams-tray: the command line and its settings file, then the GTK front end.
#include <gtk/gtk.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/control_api.h"
#include "tray/model.h"
#include "tray/tray_gtk.h"

int main(int argc, char** argv) {
  ds::tray::Settings s;
  const char* env = std::getenv("DEVSTREAMS_CONTROL");
  s.control = env && *env ? env : ds::daemon::defaultControlSocket();
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::string config = xdg && *xdg ? std::string(xdg) + "/devstreams/tray.ini"
                       : home      ? std::string(home) + "/.config/devstreams/tray.ini"
                                   : "";

  CLI::App app{"devstreams-tray: hub link, devices, streams and forwards of devstreamsd"};
  app.set_config("--config", config,
                 "settings file (INI: key = value, keys as the long options below)");
  app.add_option("--control", s.control, "control socket of devstreamsd (env DEVSTREAMS_CONTROL)")
      ->capture_default_str();
  int interval = 2;
  app.add_option("--interval", interval, "seconds between refreshes")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  std::string webPorts = "80,8080";
  app.add_option("--web-ports", webPorts, "device ports with an \"Open in browser\" entry")
      ->capture_default_str();
  std::vector<std::string> watch;
  app.add_option("--watch", watch, "notify when this device goes offline (repeatable)");
  app.add_option("--terminal", s.terminal,
                 "terminal command; {command} is the command it runs as separate words, "
                 "{command_line} the same as one string")
      ->capture_default_str();
  app.add_option("--ssh-command", s.ssh, "ssh command ({host}, {device}, {proxy}, {devstreams})")
      ->capture_default_str();
  app.add_option("--browser", s.browser, "browser command ({url})")->capture_default_str();
  app.add_option("--start-daemon", s.startDaemon, "command that starts devstreamsd")
      ->capture_default_str();
  app.add_option("--log-command", s.log, "command that shows the daemon's log (in the terminal)")
      ->capture_default_str();
  app.add_option("--devstreams", s.devstreams, "the devstreams command, for {devstreams}")
      ->capture_default_str();
  app.add_flag("--status-icon", s.statusIcon,
               "use an XEmbed tray icon even when a StatusNotifier host runs");
  app.add_option("--dump-menu", s.dumpMenu,
                 "write the state and the menu as JSON to this file whenever they change");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string err;
  if (!ds::tray::parsePorts(webPorts, s.webPorts, err)) {
    std::fprintf(stderr, "devstreams-tray: --web-ports: %s\n", err.c_str());
    return 2;
  }
  s.interval = std::chrono::seconds(interval);
  s.watched.insert(watch.begin(), watch.end());
  // Template errors are found now rather than at the first click.
  std::map<std::string, std::string> vars{{"device", "d"},     {"host", "d"},    {"proxy", "p"},
                                          {"devstreams", "c"}, {"control", "s"}, {"url", "u"}};
  std::vector<std::string> words;
  for (const auto& [name, tmpl] : {std::pair{"--terminal", s.terminal},
                                   {"--ssh-command", s.ssh},
                                   {"--browser", s.browser},
                                   {"--start-daemon", s.startDaemon},
                                   {"--log-command", s.log}}) {
    if (!ds::tray::expandCommand(tmpl, vars, {"x"}, words, err)) {
      std::fprintf(stderr, "devstreams-tray: %s: %s\n", name, err.c_str());
      return 2;
    }
  }

  if (!gtk_init_check(nullptr, nullptr)) {
    std::fprintf(stderr, "devstreams-tray: cannot open the display (is DISPLAY set?)\n");
    return 1;
  }
  return ds::tray::runTray(s);
}
