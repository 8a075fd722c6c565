// The Win32 front end of devstreams-tray: a notification-area icon (Shell_NotifyIconW) owned by
// a hidden window, a popup menu (TrackPopupMenuEx) built from the model's menu, balloon
// notices (NIF_INFO) and the menu's actions (a console with ssh, the default browser, the
// clipboard, the devstreamsd service, its log). It polls the daemon's control pipe off the GUI
// thread with the CLI's controlRequest.
#pragma once
#ifdef _WIN32

#include "tray/settings.h"  // Settings, runTray

namespace ds::tray {

// When a tray already runs in this session, runTray() asks it to show its menu and returns 0.

// Asks the tray that runs in this session to quit (WM_CLOSE to its window) and waits up to 10 s
// for it to end. 0 when it ended, 1 when none runs or it did not end.
int closeRunningTray();

}  // namespace ds::tray
#endif
