// devstreams-tray: the command line and its settings file, then the front end: GTK on Linux,
// Win32 on Windows.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "daemon/control_api.h"
#include "tray/model.h"
#ifdef _WIN32
// clang-format off
#include <windows.h>
#include <shellapi.h>
// clang-format on

#include "common/platform.h"
#include "tray/tray_win.h"
#include "tray/tray_win_model.h"
#else
#include <gtk/gtk.h>

#include "tray/tray_gtk.h"
#endif

namespace {

#ifdef _WIN32
// The arguments as UTF-8 (argv holds them in the ANSI code page).
std::vector<std::string> utf8Args() {
  int n = 0;
  std::vector<std::string> out;
  if (LPWSTR* w = CommandLineToArgvW(GetCommandLineW(), &n)) {
    for (int i = 0; i < n; ++i)
      out.push_back(ds::tray::win::toUtf8(reinterpret_cast<char16_t*>(w[i])));
    LocalFree(w);
  }
  return out;
}

// A GUI program started from Explorer has no stderr: its lines then go to tray.log in the
// user's devstreams folder (started afresh beyond 1 MiB).
void logToFileWithoutConsole() {
  HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
  if (h && h != INVALID_HANDLE_VALUE && GetFileType(h) != FILE_TYPE_UNKNOWN) return;
  std::string dir = ds::platform::userConfigDir(), err;
  if (!ds::platform::makePrivateDir(dir, err)) return;
  std::u16string path = ds::tray::win::toUtf16(ds::platform::joinPath(dir, "tray.log"));
  std::wstring wpath(path.begin(), path.end());
  WIN32_FILE_ATTRIBUTE_DATA a{};
  bool big = GetFileAttributesExW(wpath.c_str(), GetFileExInfoStandard, &a) &&
             (a.nFileSizeHigh > 0 || a.nFileSizeLow > (1u << 20));
  if (!_wfreopen(wpath.c_str(), big ? L"w" : L"a", stderr)) return;
  std::setvbuf(stderr, nullptr, _IOLBF, 4096);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  ds::tray::Settings s;
  const char* env = std::getenv("DEVSTREAMS_CONTROL");
  s.control = env && *env ? env : ds::daemon::defaultControlSocket();
#ifdef _WIN32
  ds::platform::initProcess();  // Winsock: the pipe is bridged to a socket pair
  logToFileWithoutConsole();
  std::vector<std::string> args = utf8Args();
  std::vector<const char*> cargs;
  for (const auto& a : args) cargs.push_back(a.c_str());
  if (!cargs.empty()) {
    argc = static_cast<int>(cargs.size());
    argv = const_cast<char**>(cargs.data());
  }
  std::string config = ds::platform::joinPath(ds::platform::userConfigDir(), "tray.ini");
#else
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::string config = xdg && *xdg ? std::string(xdg) + "/devstreams/tray.ini"
                       : home      ? std::string(home) + "/.config/devstreams/tray.ini"
                                   : "";
#endif

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
#ifdef _WIN32
  const char* builtIn = " (empty: ";
#else
  const char* builtIn = nullptr;
#endif
  auto orBuiltIn = [&](const std::string& help, const char* what) -> std::string {
    return builtIn ? help + builtIn + what + ")" : help;
  };
  app.add_option("--browser", s.browser,
                 orBuiltIn("browser command ({url})", "the default browser"))
      ->capture_default_str();
  app.add_option("--start-daemon", s.startDaemon,
                 orBuiltIn("command that starts devstreamsd", "the service, elevated if need be"))
      ->capture_default_str();
  app.add_option("--log-command", s.log,
                 orBuiltIn("command that shows the daemon's log (in the terminal)",
                           "the service's log file"))
      ->capture_default_str();
  app.add_option("--devstreams", s.devstreams, "the devstreams command, for {devstreams}")
      ->capture_default_str();
#ifdef _WIN32
  bool quit = false;
  app.add_flag("--quit", quit, "ask the tray that runs in this session to quit, then exit");
#else
  app.add_flag("--status-icon", s.statusIcon,
               "use an XEmbed tray icon even when a StatusNotifier host runs");
#endif
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
  struct Template {
    const char* name;
    const std::string& text;
    bool hasBuiltIn;  // empty means the built-in way (Windows)
  };
  for (const auto& [name, tmpl, hasBuiltIn] : {Template{"--terminal", s.terminal, false},
                                               {"--ssh-command", s.ssh, false},
                                               {"--browser", s.browser, true},
                                               {"--start-daemon", s.startDaemon, true},
                                               {"--log-command", s.log, true}}) {
    if (builtIn && hasBuiltIn && tmpl.empty()) continue;
    if (!ds::tray::expandCommand(tmpl, vars, {"x"}, words, err)) {
      std::fprintf(stderr, "devstreams-tray: %s: %s\n", name, err.c_str());
      return 2;
    }
  }

#ifdef _WIN32
  if (quit) return ds::tray::closeRunningTray();
#else
  if (!gtk_init_check(nullptr, nullptr)) {
    std::fprintf(stderr, "devstreams-tray: cannot open the display (is DISPLAY set?)\n");
    return 1;
  }
#endif
  return ds::tray::runTray(s);
}
