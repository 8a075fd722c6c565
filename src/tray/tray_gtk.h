// The GTK 3 front end of devstreams-tray: an Ayatana AppIndicator when a StatusNotifier host
// runs, else an XEmbed status icon; a GtkMenu built from the model's menu; libnotify for
// notices. It polls the daemon's control API off the GUI thread and runs the menu's actions.
#pragma once

#include "tray/settings.h"  // Settings, runTray (gtk_init must have succeeded)
