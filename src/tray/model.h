// The tray's model: what the daemon's control API answered, turned into what the tray shows
// (icon, tooltip, menu) and says (notifications), and the commands its menu items run. Pure: no
// GUI toolkit, no sockets, no clock (times are passed in), so every front end (GTK here, Win32
// later) shares it and tests drive it with JSON text.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ds::tray {

// One control-API exchange as the front end saw it.
struct Answer {
  bool reached = false;  // a complete HTTP answer was read
  int status = 0;
  std::string body;
  std::string error;  // when not reached: why (names the socket, asks if devstreamsd runs)
};

// The answers of one refresh. When `status` was not reached the others are not asked.
struct Poll {
  Answer status;    // GET /v1/status
  Answer devices;   // GET /v1/devices
  Answer streams;   // GET /v1/streams
  Answer forwards;  // GET /v1/forwards
};

// What the icon says, worst first.
enum class Link {
  DaemonDown,  // the control socket cannot be reached
  ApiError,    // the daemon answered, but not a status we understand
  HubDown,     // the daemon runs, its link to the hub is down
  Connected,   // the daemon runs and holds its link to the hub
};

struct Device {
  std::string id;
  bool online = false;
  bool enabled = true;
  int64_t lastSeen = 0;  // Unix seconds; 0: never
};

struct Stream {
  std::string device;  // empty for a direct connection
  int port = 0;
  std::string target;  // "host:port" as the client asked
  std::string via;     // socks5, socks4, http-connect, http, forward, direct
  uint64_t toDevice = 0;
  uint64_t fromDevice = 0;
  double ageSeconds = 0;
  std::string host{};      // as the device sees it; empty or 127.0.0.1: its loopback
  std::string unixPath{};  // a Unix socket on the device instead
};

struct Forward {
  std::string listen;  // "127.0.0.1:2222"
  std::string device;
  int port = 0;
  std::string origin;  // config or runtime
  int64_t connections = 0;
  std::string host{};  // as in Stream
  std::string unixPath{};
};

// The daemon as the last refresh saw it.
struct State {
  Link link = Link::DaemonDown;
  std::string daemonError;  // DaemonDown: why the socket cannot be reached
  std::string hubUrl;
  std::string hubError;  // the daemon's last error on its hub link
  std::string listen;    // the proxy endpoint, "127.0.0.1:1080"
  std::string suffix = ".hub";
  bool devicesKnown = false;    // the devices answer was read (else `devices` is empty)
  std::vector<Device> devices;  // sorted by id
  std::vector<Stream> streams;
  std::vector<Forward> forwards;
  // Control-API errors of this refresh, one line each ("devices: hub unreachable: ...
  // (hub_error)"); shown in the menu, never dropped.
  std::vector<std::string> errors;
};

// Parses the answers of one refresh. Never throws: unreadable answers become errors.
State readPoll(const Poll& poll);

// "<message> (<error>)" of an error answer, or whichever of the two it has, else "HTTP <n>";
// the transport error when not reached.
std::string describeError(const Answer& a);

// What a menu item does when chosen. The front end runs it; the model says what.
enum class ActionKind {
  None,
  Ssh,            // device: open a terminal with ssh to the device through the daemon
  Browse,         // device, port, text = the URL: open it in the browser
  Forward,        // device: ask for a device port and a local port, then add a forward
  RemoveForward,  // text = listen address of a runtime forward
  CopyText,       // text: put on the clipboard (SSH config snippet, PAC URL)
  ToggleWatch,    // device: notify when it goes offline, or stop doing so
  StartDaemon,
  OpenLog,
  Refresh,
  Quit,
};

struct Action {
  ActionKind kind = ActionKind::None;
  std::string device;
  int port = 0;
  std::string text;
  bool operator==(const Action&) const = default;
};

struct MenuItem {
  std::string label;  // empty with `separator`
  Action action;      // None: a line of information, shown insensitive unless it has children
  bool separator = false;
  std::optional<bool> checked;  // set: a check item
  std::vector<MenuItem> children;
  bool operator==(const MenuItem&) const = default;
};

struct Menu {
  Link link = Link::DaemonDown;
  std::string iconName;  // a freedesktop icon name for the state
  std::string title;     // one line: the state ("devstreams: hub connected")
  std::string tooltip;   // the title, then details
  std::vector<MenuItem> items;
  bool operator==(const Menu&) const = default;
};

struct MenuOptions {
  std::vector<int> webPorts{80, 8080};  // "Open in browser" entries per device
  std::set<std::string> watched;        // devices that notify when they go offline
  int64_t now = 0;                      // Unix seconds, for "last seen 5 min ago"
  size_t maxDevices = 50;               // further devices are summed up in one line
  size_t maxLabel = 90;                 // longer labels are cut with "..."
};

Menu buildMenu(const State& state, const MenuOptions& options);

// The menu as JSON ({link, icon, title, tooltip, items: [{label, action?, checked?, children?}]})
// for --dump-menu and tests.
nlohmann::json menuJson(const Menu& menu);

// A notification to show.
struct Notice {
  std::string title;
  std::string body;
  bool operator==(const Notice&) const = default;
};

// What changed from one refresh to the next that the user is told about: the hub link dropping
// and returning, the daemon stopping and coming back, watched devices going offline and coming
// back. Nothing is said of a device whose state was not known in both refreshes.
std::vector<Notice> changes(const State& before, const State& after,
                            const std::set<std::string>& watched);

// Strings of the actions.
std::string deviceHost(const State& state, const std::string& device);  // "dev01.hub"
std::string proxyAddress(const State& state);  // "127.0.0.1:1080" (a wildcard listen: loopback)
std::string pacUrl(const State& state);        // "http://127.0.0.1:1080/proxy.pac"
std::string webUrl(const State& state, const std::string& device, int port);
// A ~/.ssh/config block that reaches `device`, and the hosts on its network by their scheme
// names (HOST.via.DEVICE<suffix>), through the daemon with `devstreams connect`.
std::string sshConfigSnippet(const State& state, const std::string& device);
// The body of POST /v1/forwards for a loopback forward from `localPort` (0: any free port).
std::string forwardBody(const std::string& device, int port, int localPort);

// `argv` as one line for a POSIX shell: words with other than [A-Za-z0-9_./:@%+=,-] are quoted.
std::string shellQuote(const std::vector<std::string>& argv);
// How {command_line} quotes the command: shellQuote, or win::commandLine on Windows.
using QuoteFn = std::string (*)(const std::vector<std::string>& argv);

// Splits a command template into words (blanks separate; '...' and "..." quote; \ escapes the
// next character outside '...') and replaces {name} inside words by vars[name]. A word that is
// exactly "{command}" becomes the words of `command` (so "x-terminal-emulator -e {command}" gets
// the ssh command as separate arguments), and {command_line} is `command` quoted for a shell
// (for terminals that take one string; `quote` quotes it). False with `err` set on an unterminated
// quote, an unknown {name}, {command} without a command, or no words at all.
bool expandCommand(std::string_view tmpl, const std::map<std::string, std::string>& vars,
                   const std::vector<std::string>& command, std::vector<std::string>& argv,
                   std::string& err, QuoteFn quote = shellQuote);

// Comma-separated ports ("80,8080") into `out`; false with `err` naming the bad item.
bool parsePorts(std::string_view text, std::vector<int>& out, std::string& err);

}  // namespace ds::tray
