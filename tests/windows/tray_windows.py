"""devstreams-tray.exe under wine on Xvfb, as a person sees it.

Menu: the Linux hub, the Windows agent and the Windows daemon under wine, and the Windows tray
reading the daemon's control pipe. The tray adds its notification-area icon (wine shows it in
its system-tray window), lists dev01 online in the menu that Win32 holds (read back with
GetMenuItemInfo through --dump-menu), shows its popup menu when started a second time (a
screenshot is kept), copies the PAC URL to the clipboard when that item is clicked with xdotool
(read back with xclip: wine bridges the Windows clipboard to X), runs the ssh template from
dev01's submenu (here a `devstreams.exe forward add` for {device}, whose forward the menu then
lists; a screenshot of the menu and submenu is kept), marks dev01 offline when the agent stops
and tells it in a balloon (--watch dev01; screenshot kept), and ends with exit code 0 on `devstreams-tray.exe --quit`.
Daemon down: the menu says so and offers to start it.
Msi: `wine msiexec /i` adds the tray's HKLM Run entry and Start-menu shortcut, and the Run
entry's command starts the tray.

Environment: as e2e_windows.py; DS_TRAY_ARTIFACTS (screenshots, dumps, logs; default
build/windows/tests/tray-artifacts)."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_windows as ew  # noqa: E402
from e2e_windows import harness  # noqa: E402

TRAY = os.path.join(ew.WIN_BIN, "tray", "devstreams-tray.exe")
ARTIFACTS = os.environ.get("DS_TRAY_ARTIFACTS") or os.path.join(
    os.path.dirname(ew.WIN_BIN), "tests", "tray-artifacts")


class Xvfb:
    def __init__(self, folder):
        for tool in ("Xvfb", "xdotool", "xclip", "import", "convert"):
            if not shutil.which(tool):  # a missing peer is a failure, never a skip
                raise RuntimeError(f"{tool} is missing: run scripts/setup.sh --tests")
        r, w = os.pipe()
        self.log = open(os.path.join(folder, "xvfb.log"), "ab")
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x600x24", "-nolisten", "tcp"],
            pass_fds=(w,), stdout=self.log, stderr=subprocess.STDOUT)
        os.close(w)
        with os.fdopen(r) as f:
            self.name = ":" + f.readline().strip()

    def run(self, *argv):
        return subprocess.run(argv, env=dict(os.environ, DISPLAY=self.name), check=True,
                              capture_output=True, timeout=30)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def items(d):
    return [i for i in d.get("items", []) if not i.get("separator")]


def labels(d):
    return [i["label"] for i in items(d)]


class TrayTest(ew.WineTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(TRAY), f"{TRAY} is missing: build devstreams-tray")
        self.art = os.path.join(ARTIFACTS, self.id().split(".")[-1])
        shutil.rmtree(self.art, ignore_errors=True)
        os.makedirs(self.art)
        self.x = Xvfb(self.tmp)
        self.addCleanup(self.x.close)
        # Every wine program of the test on the display: the first one starts wine's desktop
        # process, without which no window can be made.
        self.prefix.env["DISPLAY"] = self.x.name
        self.env = self.prefix.env
        self.dump_path = os.path.join(self.tmp, "dump.json")

    def start_tray(self, *argv):
        self.tray_log = open(os.path.join(self.art, "tray.log"), "ab")
        self.addCleanup(self.tray_log.close)
        self.tray = subprocess.Popen(
            ["wine", *argv, "--dump-menu", ew.win_path(self.dump_path), "--interval", "1"],
            env=self.env, stdout=self.tray_log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: self.tray.poll() is None and self.tray.kill())

    def dump(self):
        try:
            with open(self.dump_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait(self, pred, what, timeout=60):
        def check():
            if self.tray.poll() is not None:
                raise AssertionError(f"the tray exited with {self.tray.returncode}")
            return pred(self.dump())
        try:
            harness.wait_until(check, timeout, what)
        finally:
            if os.path.exists(self.dump_path):
                shutil.copy(self.dump_path, os.path.join(self.art, "dump.json"))
        return self.dump()

    def wine(self, *argv):
        return subprocess.run(["wine", *argv], env=self.env, capture_output=True, timeout=60)

    def click(self, rect):
        x, y, w, h = rect
        self.x.run("xdotool", "mousemove", "--sync", str(x + w // 2), str(y + h // 2))
        time.sleep(0.3)  # the menu sees the pointer before the click
        self.x.run("xdotool", "click", "1")

    def quit_tray(self):
        q = self.wine(TRAY, "--quit")
        self.assertEqual(q.returncode, 0, q.stderr.decode(errors="replace"))
        self.assertEqual(self.tray.wait(timeout=30), 0)


class Menu(TrayTest):
    def test_menu_follows_the_daemon_and_the_agent_and_acts(self):
        stack = ew.WinStack(self.tmp, self.prefix)
        self.addCleanup(stack.close)
        stack.wait_device_online()
        self.start_tray(TRAY, "--control", ew.PIPE, "--devstreams",
                        ew.win_path(ew.win_program("devstreams")), "--ssh-command",
                        "{devstreams} forward add --control {control} 127.0.0.1:0 {device}:22",
                        "--watch", "dev01")
        d = self.wait(lambda d: d.get("icon", {}).get("added") and "dev01 (online)" in labels(d),
                      "icon added and dev01 online in the Win32 menu")
        self.assertEqual(d["model"]["link"], "connected")
        self.assertIn("devstreams: hub connected", d["model"]["tooltip"])
        dev = next(i for i in items(d) if i["label"] == "dev01 (online)")
        self.assertTrue(any(c.get("label") == "SSH to dev01" and c["enabled"] and c["id"] > 0
                            for c in dev["children"]), dev)

        # A second start shows the running tray's menu; the item is clicked where Win32 says.
        self.assertEqual(self.wine(TRAY).returncode, 0)
        d = self.wait(lambda d: d.get("menu_open") and all("rect" in i for i in items(d)),
                      "the popup menu open, with its items' rectangles")
        pac = next(i for i in items(d) if i["label"].startswith("Copy PAC URL"))
        self.click(pac["rect"])
        want = f"http://127.0.0.1:{stack.socks_port}/proxy.pac"
        harness.wait_until(
            lambda: self.x.run("xclip", "-o", "-selection", "clipboard").stdout.decode() == want,
            30, "the PAC URL on the clipboard")
        self.wait(lambda d: not d.get("menu_open"), "the menu closed")

        # Again, now dev01's submenu: "SSH to dev01" runs the ssh template with {device} (here
        # a command that adds a forward, which the menu then lists) in a console of its own.
        self.assertEqual(self.wine(TRAY).returncode, 0)
        d = self.wait(lambda d: d.get("menu_open") and all("rect" in i for i in items(d)),
                      "the popup menu open again")
        self.click(next(i for i in items(d) if i["label"] == "dev01 (online)")["rect"])

        def ssh_item(d):
            dev = [i for i in items(d) if i["label"] == "dev01 (online)"]
            return next((c for c in dev[0].get("children", []) if
                         c.get("label") == "SSH to dev01" and "rect" in c), None) if dev else None
        d = self.wait(ssh_item, "dev01's submenu open")
        shot = os.path.join(self.art, "menu.png")
        self.x.run("import", "-window", "root", shot)
        rects = [i["rect"] for i in items(d)] + [c["rect"] for i in items(d)
                                                 for c in i.get("children", []) if "rect" in c]
        x0, y0 = min(r[0] for r in rects) - 8, min(r[1] for r in rects) - 8
        x1, y1 = max(r[0] + r[2] for r in rects) + 8, max(r[1] + r[3] for r in rects) + 8
        self.x.run("convert", shot, "-crop", f"{x1 - x0}x{y1 - y0}+{x0}+{y0}", "+repage",
                   os.path.join(self.art, "docs-tray-windows.png"))  # docs/tray-windows.png
        self.click(ssh_item(d)["rect"])
        self.wait(lambda d: "Forwards: 1" in d.get("model", {}).get("tooltip", "") or
                  any(l.startswith("Forwards: 1") for l in labels(d)),
                  "the forward added by the SSH item's command in the menu")

        stack.stop("agent")
        d = self.wait(lambda d: any(l.startswith("dev01 (offline") for l in labels(d)),
                      "dev01 offline in the Win32 menu")
        # The watched device's notice, shown as a balloon (Shell_NotifyIcon with NIF_INFO).
        d = self.wait(lambda d: any(n["title"] == "dev01 went offline" for n in d["notices"]),
                      "the notice that dev01 went offline")
        time.sleep(2)  # wine draws the balloon a moment later; the shot is an artefact only
        self.x.run("import", "-window", "root", os.path.join(self.art, "balloon.png"))
        self.quit_tray()
        with open(os.path.join(self.art, "tray.log"), errors="replace") as f:
            log = f.read()
        self.assertIn("notification-area icon added", log)
        self.assertIn("copied: " + want, log)
        self.assertNotIn("cannot show the balloon", log)

    def test_daemon_down_says_so_and_offers_to_start_it(self):
        self.start_tray(TRAY, "--control", "\\\\.\\pipe\\devstreamsd-absent")
        d = self.wait(lambda d: d.get("polls", 0) >= 1, "a first refresh")
        self.assertEqual(d["model"]["link"], "daemon-down")
        self.assertIn("devstreamsd is not running", labels(d))
        self.assertTrue(any("devstreamsd-absent" in l for l in labels(d)), labels(d))
        start = next(i for i in items(d) if i["label"] == "Start devstreamsd")
        self.assertTrue(start["enabled"] and start["id"] > 0)
        self.quit_tray()


class Msi(TrayTest):
    def test_install_adds_the_run_entry_and_the_start_menu_shortcut(self):
        msi = os.environ.get("DS_MSI")
        self.assertTrue(msi and os.path.exists(msi), "DS_MSI must name the built package")
        self.prefix.run("msiexec", "/i", ew.win_path(msi), "/qn", timeout=300)
        run = self.prefix.run("reg", "query",
                              "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
                              "/v", "devstreams-tray").stdout.decode(errors="replace")
        self.assertIn("devstreams-tray.exe", run)
        line = next(l for l in run.splitlines() if "devstreams-tray" in l and "REG_SZ" in l)
        command = line.split("REG_SZ", 1)[1].strip()
        self.assertEqual(command, '"C:\\Program Files\\devstreams\\devstreams-tray.exe"')
        # ProgramMenuFolder: all users' Start menu on Windows (the package sets ALLUSERS=1);
        # wine 8's msi resolves it to the installing user's Start menu.
        drive = os.path.join(self.prefix.path, "drive_c")
        lnks = [os.path.join(drive, "ProgramData", "Microsoft", "Windows", "Start Menu",
                             "Programs", "devstreams.lnk"),
                os.path.join(drive, "users", os.environ.get("USER", "root"), "AppData", "Roaming",
                             "Microsoft", "Windows", "Start Menu", "Programs", "devstreams.lnk")]
        self.assertTrue(any(os.path.exists(p) for p in lnks), lnks)
        # What login runs: the Run value's command, with the installed service's pipe.
        self.start_tray(command.strip('"'))
        d = self.wait(lambda d: d.get("icon", {}).get("added") and d.get("polls", 0) >= 1,
                      "the installed tray's icon and a first refresh")
        self.assertEqual(d["front_end"], "win32")
        self.quit_tray()


if __name__ == "__main__":
    unittest.main()
