// What the Win32 tray asks of Windows besides its icon and menu (tray_win.cc): starting
// programs and documents, the clipboard, the devstreamsd service, the forward dialog, and the
// popup menu read back for --dump-menu. Each call says what failed in `err`.
#pragma once
#ifdef _WIN32

// clang-format off
#include <windows.h>
// clang-format on

#include <nlohmann/json.hpp>
#include <string>

namespace ds::tray::win {

std::wstring wide(const std::string& s);
std::string narrow(const wchar_t* s);
// FormatMessage's text of a Win32 error code, with the code: "Access is denied (5)".
std::string winError(DWORD code);

// CreateProcessW of `commandLine` (a console of its own when `console`, else no window). The
// process handle goes to `process`.
bool startProcess(const std::string& commandLine, bool console, HANDLE& process, std::string& err);
// ShellExecuteExW of `file` with `verb` ("open"; "runas" asks for elevation). `process` is the
// started process, or nullptr when the shell handed the file to a running one.
bool shellExecute(HWND owner, const wchar_t* verb, const std::string& file,
                  const std::string& params, HANDLE& process, std::string& err);
// Puts `text` on the clipboard as CF_UNICODETEXT.
bool copyToClipboard(HWND owner, const std::string& text, std::string& err);

// StartServiceW of the service `name`. An already running service counts as started; `denied`
// is set when the user may not start it (then `sc start` has to run elevated).
bool startService(const std::string& name, bool& denied, std::string& err);
// %ProgramData%\devstreams\log\devstreamsd.log, and whether the user may read it (`denied`
// when the folder's ACL closes it, as it does by default).
std::string serviceLog();
bool canRead(const std::string& path, bool& denied, std::string& err);

// Whether the pipe `name` exists but its ACL refuses this user (the service's pipe admits only
// SYSTEM and Administrators).
bool pipeRefusesUs(const std::string& name);

// The "Forward a local port" dialog (tray_win.rc) for `device`; false when cancelled. `port`
// and `local` hold the proposals on entry and the answers on return.
bool askForward(HWND owner, const std::string& device, int& port, int& local, std::string& err);

// The items of `menu` as Win32 holds them: label, id, enabled, checked, children, and the
// screen rectangle while the menu is open.
nlohmann::json menuItems(HMENU menu, bool open);

}  // namespace ds::tray::win
#endif
