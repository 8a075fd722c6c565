// The Win32 front end: icon, popup menu, balloons and actions around the model (model.h), in
// the Win32 shapes of tray_win_model.h.
#ifdef _WIN32
#include "tray/tray_win.h"

// clang-format off
#include <windows.h>
#include <shellapi.h>
// clang-format on

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cli/daemon_ctl.h"
#include "tray/control.h"
#include "tray/model.h"
#include "tray/tray_win_model.h"
#include "tray/tray_win_shell.h"

namespace ds::tray {

namespace {

using json = nlohmann::json;
using win::narrow;
using win::wide;
using win::winError;

constexpr wchar_t kClass[] = L"devstreams-tray";
constexpr UINT kTrayMessage = WM_APP + 1;  // the icon's mouse events
constexpr UINT kPolled = WM_APP + 2;       // lParam: a PollJob that a worker finished
constexpr UINT kCalled = WM_APP + 3;       // lParam: an ActionJob that a worker finished
constexpr UINT kChildExit = WM_APP + 4;    // lParam: a ChildJob whose process ended
constexpr UINT kShowMenu = WM_APP + 5;     // a second start of the tray asks for the menu
constexpr UINT_PTR kPollTimer = 1, kDumpTimer = 2;

constexpr int kMaxErrorBoxes = 3;  // error boxes open at once; further errors are only logged

void logLine(const std::string& s) {
  std::fprintf(stderr, "devstreams-tray: %s\n", s.c_str());
  std::fflush(stderr);
}

// Copies `s` into a fixed WCHAR buffer of NOTIFYICONDATAW, cut to fit.
template <size_t N>
void setText(wchar_t (&buf)[N], const std::string& s) {
  std::u16string w = win::fitBuffer(win::toUtf16(s), N);
  std::copy(w.begin(), w.end(), buf);
  buf[w.size()] = 0;
}

struct PollJob {
  std::string pipe;
  Poll poll;
};
struct ActionJob {
  std::string pipe, method, target, body;
  std::string what;  // for messages: "Forward 127.0.0.1:0 to dev01:22"
  Answer answer;
};
struct ChildJob {
  std::string what;  // "SSH to dev01 (ssh -o ...)"
  DWORD exitCode = 0;
};

// Runs `work` on a thread of its own, then hands `job` to `hwnd` as `message`. A job that cannot
// be posted (the window is gone) is freed.
template <typename Job, typename Work>
void inBackground(HWND hwnd, UINT message, std::unique_ptr<Job> job, Work work) {
  std::thread([hwnd, message, job = job.release(), work]() mutable {
    work(*job);
    if (!PostMessageW(hwnd, message, 0, reinterpret_cast<LPARAM>(job))) delete job;
  }).detach();
}

std::atomic<int> errorBoxes{0};

class Tray : public Desktop {
 public:
  explicit Tray(const Settings& s) : settings_(s) {}
  ~Tray() {
    if (menu_) DestroyMenu(menu_);
  }
  Tray(const Tray&) = delete;
  Tray& operator=(const Tray&) = delete;

  int run() {
    HINSTANCE inst = GetModuleHandleW(nullptr);
    WNDCLASSEXW wc{};
    wc.cbSize = sizeof wc;
    wc.lpfnWndProc = proc;
    wc.hInstance = inst;
    wc.lpszClassName = kClass;
    wc.hIcon = LoadIconW(inst, MAKEINTRESOURCEW(win::kIconConnected));
    if (!RegisterClassExW(&wc)) return startFailed("RegisterClassEx");
    taskbarCreated_ = RegisterWindowMessageW(L"TaskbarCreated");
    // A top-level window that is never shown (not a message-only one): it receives the
    // TaskbarCreated broadcast, and a second start finds it by its class.
    if (!CreateWindowExW(0, kClass, L"devstreams-tray", WS_OVERLAPPED, 0, 0, 0, 0, nullptr, nullptr,
                         inst, this)) {
      return startFailed("CreateWindowEx");
    }
    int small = GetSystemMetrics(SM_CXSMICON);
    for (Link l : {Link::DaemonDown, Link::ApiError, Link::HubDown, Link::Connected}) {
      icons_[static_cast<int>(l)] = static_cast<HICON>(LoadImageW(
          inst, MAKEINTRESOURCEW(win::iconResource(l)), IMAGE_ICON, small, small, LR_SHARED));
      if (!icons_[static_cast<int>(l)])
        icons_[static_cast<int>(l)] = LoadIconW(nullptr, reinterpret_cast<LPCWSTR>(IDI_ERROR));
    }
    state_.daemonError = "not asked yet";
    model_ = buildMenu(state_, options());
    addIcon();
    update(true);
    logLine("control pipe " + settings_.control);
    refresh();
    SetTimer(hwnd_, kPollTimer, static_cast<UINT>(settings_.interval.count()), nullptr);
    if (!settings_.dumpMenu.empty()) SetTimer(hwnd_, kDumpTimer, 250, nullptr);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      TranslateMessage(&msg);
      DispatchMessageW(&msg);
    }
    return 0;
  }

 private:
  int startFailed(const char* what) {
    logLine(std::string(what) + ": " + winError(GetLastError()));
    return 1;
  }

  MenuOptions options() const {
    MenuOptions o;
    o.webPorts = settings_.webPorts;
    o.watched = watched_;
    o.now = static_cast<int64_t>(std::time(nullptr));
    return o;
  }

  static LRESULT CALLBACK proc(HWND hwnd, UINT msg, WPARAM wp, LPARAM lp) {
    if (msg == WM_NCCREATE) {
      auto* t = static_cast<Tray*>(reinterpret_cast<CREATESTRUCTW*>(lp)->lpCreateParams);
      t->hwnd_ = hwnd;
      SetWindowLongPtrW(hwnd, GWLP_USERDATA, reinterpret_cast<LONG_PTR>(t));
    }
    auto* t = reinterpret_cast<Tray*>(GetWindowLongPtrW(hwnd, GWLP_USERDATA));
    if (!t) return DefWindowProcW(hwnd, msg, wp, lp);
    try {  // nothing escapes into the window procedure's caller
      return t->handle(msg, wp, lp);
    } catch (const std::exception& e) {
      logLine(std::string("internal error: ") + e.what());
    }
    return 0;
  }

  LRESULT handle(UINT msg, WPARAM wp, LPARAM lp) {
    switch (msg) {
      case kTrayMessage:
        if (lp == WM_LBUTTONUP || lp == WM_RBUTTONUP || lp == WM_CONTEXTMENU) popup();
        return 0;
      case kShowMenu:
        popup();
        return 0;
      case WM_TIMER:
        if (wp == kPollTimer) refresh();
        if (wp == kDumpTimer) dump();
        return 0;
      case kPolled:
        onPolled(std::unique_ptr<PollJob>(reinterpret_cast<PollJob*>(lp)));
        return 0;
      case kCalled:
        onCalled(std::unique_ptr<ActionJob>(reinterpret_cast<ActionJob*>(lp)));
        return 0;
      case kChildExit: {
        std::unique_ptr<ChildJob> job(reinterpret_cast<ChildJob*>(lp));
        if (job->exitCode != 0) fail(job->what, "exit code " + std::to_string(job->exitCode));
        return 0;
      }
      case WM_CLOSE:
        DestroyWindow(hwnd_);
        return 0;
      case WM_DESTROY:
        if (iconAdded_) Shell_NotifyIconW(NIM_DELETE, &nid_);
        iconAdded_ = false;
        PostQuitMessage(0);
        return 0;
      default:
        if (msg == taskbarCreated_) {  // Explorer restarted: the icon is to be added again
          iconAdded_ = false;
          addIcon();
          return 0;
        }
        return DefWindowProcW(hwnd_, msg, wp, lp);
    }
  }

  // ---- refresh ------------------------------------------------------------------------------

  void refresh() override {
    if (polling_) return;  // one poll at a time; the next tick asks again
    polling_ = true;
    inBackground(hwnd_, kPolled, std::make_unique<PollJob>(PollJob{settings_.control, {}}),
                 [](PollJob& job) {
                   job.poll = pollDaemon(job.pipe);
                   if (!job.poll.status.reached && win::pipeRefusesUs(job.pipe)) {
                     job.poll.status.error = "devstreamsd runs, but its pipe " + job.pipe +
                                             " refuses this user: add the user to its "
                                             "control_group (docs/tray.md, Windows)";
                   }
                 });
  }

  void onPolled(std::unique_ptr<PollJob> job) {
    polling_ = false;
    State next = readPoll(job->poll);
    Told told = tell(state_, next, watched_, polls_ == 0);
    for (const auto& n : told.notices) notice(n);
    for (const auto& l : told.logLines) logLine(l);
    state_ = std::move(next);
    ++polls_;
    update(false);
  }

  // ---- showing ------------------------------------------------------------------------------

  void addIcon() {
    nid_ = {};
    nid_.cbSize = sizeof nid_;
    nid_.hWnd = hwnd_;
    nid_.uID = 1;
    nid_.uFlags = NIF_MESSAGE | NIF_ICON | NIF_TIP;
    nid_.uCallbackMessage = kTrayMessage;
    nid_.hIcon = icons_[static_cast<int>(model_.link)];
    setText(nid_.szTip, model_.tooltip);
    iconAdded_ = Shell_NotifyIconW(NIM_ADD, &nid_);
    // Without a taskbar (yet) the icon comes with its TaskbarCreated broadcast.
    iconError_ = iconAdded_ ? "" : "Shell_NotifyIcon(NIM_ADD) failed";
    logLine(iconAdded_ ? "notification-area icon added" : iconError_ + "; waiting for a taskbar");
  }

  void update(bool force) {
    Menu next = buildMenu(state_, options());
    bool changed = force || !(next == model_);
    model_ = std::move(next);
    if (iconAdded_) {
      nid_.uFlags = NIF_ICON | NIF_TIP;
      nid_.hIcon = icons_[static_cast<int>(model_.link)];
      setText(nid_.szTip, model_.tooltip);
      Shell_NotifyIconW(NIM_MODIFY, &nid_);
    }
    if (!changed) return;
    // An open menu is tracked by TrackPopupMenuEx and is not to be destroyed under it: it is
    // rebuilt when it closes.
    if (tracking_) {
      stale_ = true;
      return;
    }
    rebuild();
  }

  void rebuild() {
    stale_ = false;
    commands_ = win::commandMenu(model_.items);
    if (menu_) DestroyMenu(menu_);
    menu_ = CreatePopupMenu();
    fill(menu_, commands_.entries);
  }

  static void fill(HMENU menu, const std::vector<win::Entry>& entries) {
    for (const auto& e : entries) {
      std::wstring label = wide(e.label);
      if (e.separator) {
        AppendMenuW(menu, MF_SEPARATOR, 0, nullptr);
      } else if (!e.children.empty()) {
        HMENU sub = CreatePopupMenu();
        fill(sub, e.children);
        AppendMenuW(menu, MF_POPUP | MF_STRING, reinterpret_cast<UINT_PTR>(sub), label.c_str());
      } else {
        UINT flags = MF_STRING | (e.enabled ? 0 : MF_GRAYED) |
                     (e.checked.value_or(false) ? MF_CHECKED : MF_UNCHECKED);
        AppendMenuW(menu, flags, e.id, label.c_str());
      }
    }
  }

  void popup() {
    if (tracking_) return;
    refresh();  // what it shows next is at most one poll old
    if (stale_ || !menu_) rebuild();
    POINT pt{};
    GetCursorPos(&pt);
    // The documented dance: the owner in the foreground, so that a click elsewhere closes the
    // menu, and a message after it, so that a second click opens it again.
    SetForegroundWindow(hwnd_);
    tracking_ = true;
    const win::CommandMenu shown = commands_;
    UINT id = static_cast<UINT>(
        TrackPopupMenuEx(menu_, TPM_RETURNCMD | TPM_NONOTIFY | TPM_RIGHTBUTTON | TPM_BOTTOMALIGN,
                         pt.x, pt.y, hwnd_, nullptr));
    PostMessageW(hwnd_, WM_NULL, 0, 0);
    tracking_ = false;
    if (stale_) rebuild();
    if (const Action* a = shown.find(id)) act(*a, settings_, state_, watched_, *this);
  }

  void notice(const Notice& n) {
    logLine(n.title + (n.body.empty() ? "" : ": " + n.body));
    said_.notice(n);
    if (!iconAdded_) return;
    nid_.uFlags = NIF_INFO;
    setText(nid_.szInfoTitle, n.title);
    setText(nid_.szInfo, n.body.empty() ? n.title : n.body);
    nid_.dwInfoFlags = NIIF_USER;  // the state's icon
    nid_.hBalloonIcon = icons_[static_cast<int>(model_.link)];
    if (!Shell_NotifyIconW(NIM_MODIFY, &nid_)) logLine("cannot show the balloon");
  }

  // A failed action: an error box (on a thread of its own, so the tray goes on) and the log.
  void fail(const std::string& what, const std::string& why) {
    logLine(what + ": " + why);
    said_.actionError(what + ": " + why);
    if (errorBoxes.fetch_add(1) >= kMaxErrorBoxes) {
      --errorBoxes;
      return;
    }
    std::thread([title = wide(what), text = wide(why)] {
      MessageBoxW(nullptr, text.c_str(), title.c_str(), MB_OK | MB_ICONERROR | MB_SETFOREGROUND);
      --errorBoxes;
    }).detach();
  }

  // ---- actions ------------------------------------------------------------------------------

  // Reports the end of `process` (then closes it) as kChildExit.
  void watch(HANDLE process, std::string what) {
    auto job = std::make_unique<ChildJob>(ChildJob{std::move(what), 0});
    inBackground(hwnd_, kChildExit, std::move(job), [process](ChildJob& j) {
      WaitForSingleObject(process, INFINITE);
      GetExitCodeProcess(process, &j.exitCode);
      CloseHandle(process);
    });
  }

  // Expands `tmpl` (inside the terminal template when `inTerminal`) and starts it: a console of
  // its own for the terminal, no window for the others.
  void spawn(const std::string& what, const std::string& tmpl,
             const std::map<std::string, std::string>& v, bool inTerminal) override {
    std::vector<std::string> argv;
    std::string err;
    if (!expandCommand(tmpl, v, {}, argv, err, win::commandLine)) return fail(what, err);
    if (inTerminal) {
      std::vector<std::string> command = std::move(argv);
      if (!expandCommand(settings_.terminal, v, command, argv, err, win::commandLine)) {
        return fail(what, err);
      }
    }
    std::string line = win::commandLine(argv);
    HANDLE process = nullptr;
    if (!win::startProcess(line, inTerminal, process, err)) {
      return fail(what, err + " (" + line + ")");
    }
    logLine(what + ": " + line);
    watch(process, what + " (" + line + ")");
  }

  // ShellExecuteEx of `file` with `verb` ("open", or "runas" for a UAC prompt).
  void shellExecute(const std::string& what, const wchar_t* verb, const std::string& file,
                    const std::string& params = "") {
    std::string shown = file + (params.empty() ? "" : " " + params), err;
    HANDLE process = nullptr;
    if (!win::shellExecute(hwnd_, verb, file, params, process, err)) {
      return fail(what, err + " (" + shown + ")");
    }
    logLine(what + ": " + shown);
    if (process) watch(process, what + " (" + shown + ")");
  }

  bool copyText(const std::string& text) {
    std::string err;
    if (!win::copyToClipboard(hwnd_, text, err)) {
      fail("Copy", err);
      return false;
    }
    logLine("copied: " + text);
    return true;
  }

  // The service through the Service Control Manager; users may usually not start services, so
  // then `sc start` runs elevated (a UAC prompt).
  void startService() {
    bool denied = false;
    std::string err;
    if (win::startService("devstreamsd", denied, err)) {
      logLine("Start devstreamsd: the service is starting");
    } else if (denied) {
      shellExecute("Start devstreamsd (elevated)", L"runas", "sc.exe", "start devstreamsd");
    } else {
      fail("Start devstreamsd", err);
    }
  }

  // The service's log in the program associated with it; elevated when the log folder is
  // closed to the user, as it is by default.
  void openServiceLog() {
    std::string path = win::serviceLog(), err;
    bool denied = false;
    if (win::canRead(path, denied, err)) {
      shellExecute("Open the daemon log", L"open", path);
    } else if (denied) {
      shellExecute("Open the daemon log (elevated)", L"runas", "notepad.exe",
                   win::commandLine({path}));
    } else {
      fail("Open the daemon log", err);
    }
  }

  void builtIn(ActionKind kind, const std::string& text) override {
    if (kind == ActionKind::Browse) shellExecute("Open " + text, L"open", text);
    if (kind == ActionKind::StartDaemon) startService();
    if (kind == ActionKind::OpenLog) openServiceLog();
  }

  void copy(const std::string& text) override { copyText(text); }
  void show() override { update(false); }
  void quit() override { DestroyWindow(hwnd_); }

  void askForward(const std::string& device) override {
    int port = 22, local = 0;
    std::string err;
    if (!win::askForward(hwnd_, device, port, local, err)) {
      if (!err.empty()) fail("Forward a local port", err);
      return;
    }
    call(
        "Forward 127.0.0.1:" + std::to_string(local) + " to " + device + ":" + std::to_string(port),
        "POST", "/v1/forwards", forwardBody(device, port, local));
  }

  // One control-API request that changes something, off the GUI thread; errors are shown.
  void call(const std::string& what, const std::string& method, const std::string& target,
            const std::string& body) override {
    auto job =
        std::make_unique<ActionJob>(ActionJob{settings_.control, method, target, body, what, {}});
    inBackground(hwnd_, kCalled, std::move(job),
                 [](ActionJob& j) { j.answer = request(j.pipe, j.method, j.target, j.body); });
  }

  void onCalled(std::unique_ptr<ActionJob> job) {
    const Answer& a = job->answer;
    if (!a.reached || a.status >= 300) {
      fail(job->what, describeError(a));
    } else {
      std::string listen = addedForward(a);
      if (!listen.empty()) {
        // The new forward's address is what the user wants next: on the clipboard.
        if (copyText(listen)) notice({"Forward added", listen + " (copied)"});
      } else {
        logLine(job->what + ": done");
      }
    }
    refresh();
  }

  // ---- the dump (tests, bug reports) --------------------------------------------------------

  void dump() {
    json d{{"front_end", "win32"},
           {"polls", polls_},
           {"model", menuJson(model_)},
           {"menu_open", tracking_},
           {"items", menu_ ? win::menuItems(menu_, tracking_) : json::array()},
           {"icon", {{"added", iconAdded_}, {"error", iconError_}}}};
    std::string err;
    if (!said_.dump(std::move(d), settings_.dumpMenu, err)) logLine(err);
  }

  Settings settings_;
  std::set<std::string> watched_ = settings_.watched;
  State state_;
  Menu model_;
  win::CommandMenu commands_;  // what menu_ holds
  HWND hwnd_ = nullptr;
  HMENU menu_ = nullptr;
  HICON icons_[4] = {};  // by Link
  NOTIFYICONDATAW nid_{};
  bool iconAdded_ = false;
  std::string iconError_;
  UINT taskbarCreated_ = 0;
  bool polling_ = false;
  bool tracking_ = false;  // TrackPopupMenuEx runs
  bool stale_ = false;     // the model changed while the menu was open
  int64_t polls_ = 0;
  Said said_;
};

}  // namespace

int runTray(const Settings& settings) {
  if (HWND other = FindWindowW(kClass, nullptr)) {
    // One tray per session: a second start (the Start menu, while the login one runs) opens the
    // first one's menu.
    DWORD pid = 0;
    GetWindowThreadProcessId(other, &pid);
    AllowSetForegroundWindow(pid);
    PostMessageW(other, kShowMenu, 0, 0);
    logLine("already running; showing its menu");
    return 0;
  }
  Tray tray(settings);
  return tray.run();
}

int closeRunningTray() {
  HWND other = FindWindowW(kClass, nullptr);
  if (!other) {
    logLine("no devstreams-tray runs in this session");
    return 1;
  }
  DWORD pid = 0;
  GetWindowThreadProcessId(other, &pid);
  HANDLE process = OpenProcess(SYNCHRONIZE, FALSE, pid);
  PostMessageW(other, WM_CLOSE, 0, 0);
  DWORD r = process ? WaitForSingleObject(process, 10000) : WAIT_FAILED;
  if (process) CloseHandle(process);
  if (r != WAIT_OBJECT_0) logLine("the running devstreams-tray did not end within 10 s");
  return r == WAIT_OBJECT_0 ? 0 : 1;
}

}  // namespace ds::tray
#endif
