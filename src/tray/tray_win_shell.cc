// Windows calls of the Win32 tray (tray_win_shell.h).
#ifdef _WIN32
#include "tray/tray_win_shell.h"

// clang-format off
#include <shellapi.h>
// clang-format on

#include <cstring>

#include "common/platform.h"
#include "tray/tray_win_model.h"

namespace ds::tray::win {

namespace {

// The forward dialog and its controls (tray_win.rc).
constexpr int kForwardDialog = 200, kForwardLabel = 201, kForwardPort = 202, kForwardLocal = 203;

struct ForwardAsk {
  std::string device;
  int port = 22;
  int local = 0;
};

INT_PTR CALLBACK forwardProc(HWND dlg, UINT msg, WPARAM wp, LPARAM lp) {
  if (msg == WM_INITDIALOG) {
    SetWindowLongPtrW(dlg, DWLP_USER, lp);
    auto* ask = reinterpret_cast<ForwardAsk*>(lp);
    SetWindowTextW(dlg, wide("Forward a local port to " + ask->device).c_str());
    SetDlgItemTextW(dlg, kForwardLabel, wide("Port on " + ask->device).c_str());
    SetDlgItemInt(dlg, kForwardPort, static_cast<UINT>(ask->port), FALSE);
    SetDlgItemInt(dlg, kForwardLocal, static_cast<UINT>(ask->local), FALSE);
    SetForegroundWindow(dlg);
    return TRUE;
  }
  if (msg != WM_COMMAND) return FALSE;
  auto* ask = reinterpret_cast<ForwardAsk*>(GetWindowLongPtrW(dlg, DWLP_USER));
  if (LOWORD(wp) == IDOK) {
    BOOL okPort = FALSE, okLocal = FALSE;
    UINT port = GetDlgItemInt(dlg, kForwardPort, &okPort, FALSE);
    UINT local = GetDlgItemInt(dlg, kForwardLocal, &okLocal, FALSE);
    if (!okPort || !okLocal || port < 1 || port > 65535 || local > 65535) {
      MessageBeep(MB_ICONWARNING);  // the device port is 1-65535, the local one may be 0
      return TRUE;
    }
    ask->port = static_cast<int>(port);
    ask->local = static_cast<int>(local);
    EndDialog(dlg, IDOK);
    return TRUE;
  }
  if (LOWORD(wp) == IDCANCEL) {
    EndDialog(dlg, IDCANCEL);
    return TRUE;
  }
  return FALSE;
}

}  // namespace

std::wstring wide(const std::string& s) {
  std::u16string w = toUtf16(s);
  return {w.begin(), w.end()};
}

std::string narrow(const wchar_t* s) { return toUtf8(reinterpret_cast<const char16_t*>(s)); }

std::string winError(DWORD code) {
  wchar_t buf[512];
  DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                           code, 0, buf, 512, nullptr);
  while (n > 0 && (buf[n - 1] == L'\n' || buf[n - 1] == L'\r' || buf[n - 1] == L'.')) --n;
  buf[n] = 0;
  return n ? narrow(buf) + " (" + std::to_string(code) + ")" : "error " + std::to_string(code);
}

bool startProcess(const std::string& commandLine, bool console, HANDLE& process, std::string& err) {
  std::wstring line = wide(commandLine);
  STARTUPINFOW si{};
  si.cb = sizeof si;
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(nullptr, line.data(), nullptr, nullptr, FALSE,
                      console ? CREATE_NEW_CONSOLE : CREATE_NO_WINDOW, nullptr, nullptr, &si,
                      &pi)) {
    err = winError(GetLastError());
    return false;
  }
  CloseHandle(pi.hThread);
  process = pi.hProcess;
  return true;
}

bool shellExecute(HWND owner, const wchar_t* verb, const std::string& file,
                  const std::string& params, HANDLE& process, std::string& err) {
  std::wstring wfile = wide(file), wparams = wide(params);
  SHELLEXECUTEINFOW sei{};
  sei.cbSize = sizeof sei;
  sei.fMask = SEE_MASK_NOCLOSEPROCESS | SEE_MASK_FLAG_NO_UI;
  sei.hwnd = owner;
  sei.lpVerb = verb;
  sei.lpFile = wfile.c_str();
  sei.lpParameters = params.empty() ? nullptr : wparams.c_str();
  sei.nShow = SW_SHOWNORMAL;
  if (!ShellExecuteExW(&sei)) {
    err = winError(GetLastError());
    return false;
  }
  process = sei.hProcess;
  return true;
}

bool copyToClipboard(HWND owner, const std::string& text, std::string& err) {
  std::u16string w = toUtf16(text);
  size_t bytes = (w.size() + 1) * sizeof(char16_t);
  HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, bytes);
  void* p = h ? GlobalLock(h) : nullptr;
  if (!p) {
    if (h) GlobalFree(h);
    err = "out of memory";
    return false;
  }
  std::memcpy(p, w.c_str(), bytes);
  GlobalUnlock(h);
  if (!OpenClipboard(owner)) {
    err = "cannot open the clipboard: " + winError(GetLastError());
  } else {
    EmptyClipboard();
    if (!SetClipboardData(CF_UNICODETEXT, h)) err = "SetClipboardData: " + winError(GetLastError());
    CloseClipboard();
  }
  if (err.empty()) return true;
  GlobalFree(h);  // the clipboard owns it only once SetClipboardData succeeded
  return false;
}

bool startService(const std::string& name, bool& denied, std::string& err) {
  DWORD e = ERROR_SUCCESS;
  SC_HANDLE scm = OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT);
  SC_HANDLE svc = scm ? OpenServiceW(scm, wide(name).c_str(), SERVICE_START) : nullptr;
  if (!svc || !StartServiceW(svc, 0, nullptr)) e = GetLastError();
  if (svc) CloseServiceHandle(svc);
  if (scm) CloseServiceHandle(scm);
  denied = e == ERROR_ACCESS_DENIED;
  if (e == ERROR_SUCCESS || e == ERROR_SERVICE_ALREADY_RUNNING) return true;
  err = "the " + name + " service: " + winError(e);
  return false;
}

std::string serviceLog() {
  return platform::joinPath(platform::joinPath(platform::systemConfigDir(), "log"),
                            "devstreamsd.log");
}

bool canRead(const std::string& path, bool& denied, std::string& err) {
  HANDLE h = CreateFileW(wide(path).c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                         nullptr, OPEN_EXISTING, 0, nullptr);
  if (h != INVALID_HANDLE_VALUE) {
    CloseHandle(h);
    return true;
  }
  DWORD e = GetLastError();
  denied = e == ERROR_ACCESS_DENIED;
  err = path + ": " + winError(e);
  return false;
}

bool pipeRefusesUs(const std::string& name) {
  HANDLE h = CreateFileW(wide(name).c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr,
                         OPEN_EXISTING, 0, nullptr);
  if (h != INVALID_HANDLE_VALUE) {
    CloseHandle(h);  // the daemon sees a client that goes away at once
    return false;
  }
  return GetLastError() == ERROR_ACCESS_DENIED;
}

bool askForward(HWND owner, const std::string& device, int& port, int& local, std::string& err) {
  ForwardAsk ask{device, port, local};
  INT_PTR r = DialogBoxParamW(GetModuleHandleW(nullptr), MAKEINTRESOURCEW(kForwardDialog), owner,
                              forwardProc, reinterpret_cast<LPARAM>(&ask));
  if (r == -1) err = winError(GetLastError());
  if (r != IDOK) return false;
  port = ask.port;
  local = ask.local;
  return true;
}

nlohmann::json menuItems(HMENU menu, bool open) {
  nlohmann::json out = nlohmann::json::array();
  int n = GetMenuItemCount(menu);
  for (int i = 0; i < n; ++i) {
    wchar_t text[512] = {0};
    MENUITEMINFOW mi{};
    mi.cbSize = sizeof mi;
    mi.fMask = MIIM_FTYPE | MIIM_STATE | MIIM_STRING | MIIM_SUBMENU | MIIM_ID;
    mi.dwTypeData = text;
    mi.cch = 511;
    if (!GetMenuItemInfoW(menu, static_cast<UINT>(i), TRUE, &mi)) continue;
    if (mi.fType & MFT_SEPARATOR) {
      out.push_back({{"separator", true}});
      continue;
    }
    nlohmann::json j{{"label", narrow(text)},
                     {"id", mi.wID},
                     {"enabled", !(mi.fState & MFS_GRAYED)},
                     {"checked", static_cast<bool>(mi.fState & MFS_CHECKED)}};
    RECT r;
    // No window: Windows finds the popup menu's own window (the owner would shift the rectangle).
    if (open && GetMenuItemRect(nullptr, menu, static_cast<UINT>(i), &r)) {
      j["rect"] = {r.left, r.top, r.right - r.left, r.bottom - r.top};
    }
    if (mi.hSubMenu) j["children"] = menuItems(mi.hSubMenu, open);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace ds::tray::win
#endif
