"""End-to-end tests of devstreams-tray as a person sees it: Xvfb, an XEmbed tray host (trayer),
a real stack (hub, agent dev01, daemon) and the tray. The tests click the tray icon and menu
items with xdotool where the tray says they are (its --dump-menu file gives the widgets' screen
rectangles), take screenshots, read them back with OCR (tesseract), and compare the menu's own
widget texts with the devices the hub lists. Screenshots, menu dumps and logs are kept under
$DS_TRAY_ARTIFACTS/<test>/."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Stack, StackTest, free_port, program, unix_http, wait_until  # noqa: E402

TRAY = os.path.join(BIN, "tray", "devstreams-tray")
ARTIFACTS = os.environ.get("DS_TRAY_ARTIFACTS") or os.path.join(
    os.path.dirname(BIN), "tests", "tray", "artifacts")
TOOLS = ("Xvfb", "trayer", "xdotool", "import", "convert", "tesseract", "dbus-daemon",
         "dbus-send", "dunst", "xclip")


class Display:
    """Xvfb on a free display number, and trayer docked at its top edge."""

    def __init__(self, folder):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:  # a missing peer is a failure, never a skip
            raise RuntimeError(f"missing {missing}: run scripts/setup.sh --tests")
        self.folder = folder
        self.procs = []
        r, w = os.pipe()
        self.log = open(os.path.join(folder, "xvfb.log"), "ab")
        self.procs.append(subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x600x24", "-nolisten", "tcp"],
            pass_fds=(w,), stdout=self.log, stderr=subprocess.STDOUT))
        os.close(w)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start")
        self.name = ":" + number
        self.env = dict(os.environ, DISPLAY=self.name, GDK_BACKEND="x11", NO_AT_BRIDGE="1",
                        # No session bus: no StatusNotifier host, so the XEmbed icon is used,
                        # and GLib cannot autolaunch a bus on the display.
                        DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus")
        self.procs.append(subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
             "--height", "32", "--SetDockType", "true", "--expand", "true"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT))

    def run(self, *argv, check=True):
        return subprocess.run(argv, env=self.env, check=check, capture_output=True, timeout=30)

    def click(self, x, y, button=1):
        self.run("xdotool", "mousemove", "--sync", str(x), str(y))
        time.sleep(0.3)  # let GTK see the pointer before the press
        self.run("xdotool", "click", str(button))

    def hover(self, x, y):
        self.run("xdotool", "mousemove", "--sync", str(x), str(y))

    def screenshot(self, path):
        self.run("import", "-window", "root", path)
        return path

    def ocr(self, shot, rect, path):
        """Text of the rectangle [x, y, w, h] of a screenshot, enlarged for tesseract."""
        x, y, w, h = rect
        self.run("convert", shot, "-crop", f"{w}x{h}+{x}+{y}", "+repage", "-resize", "300%",
                 "-colorspace", "Gray", path)
        return self.run("tesseract", path, "-", "--psm", "6").stdout.decode(errors="replace")

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.log.close()


# Characters OCR confuses in this font (1 and l, 0 and O): compared as one.
SAME = str.maketrans("lI|Oo", "11100")


def seen(needle, text):
    return needle.translate(SAME) in text.translate(SAME)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def union(rects):
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return [x0, y0, x1 - x0, y1 - y0]


def center(rect):
    return rect[0] + rect[2] // 2, rect[1] + rect[3] // 2


class Tray:
    """devstreams-tray on a Display, with its menu dump file."""

    def __init__(self, display, folder, control, *args):
        self.display = display
        self.dump_path = os.path.join(folder, "menu.json")
        self.log_path = os.path.join(folder, "tray.log")
        self.log = open(self.log_path, "ab")
        env = dict(display.env, XDG_CONFIG_HOME=os.path.join(folder, "config"))
        self.proc = subprocess.Popen(
            [TRAY, "--control", control, "--dump-menu", self.dump_path, "--interval", "1",
             "--devstreams", program("devstreams"), *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def dump(self):
        try:
            with open(self.dump_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait(self, pred, what, timeout=30):
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"devstreams-tray exited ({self.proc.returncode}):\n"
                                     + self.text_log())
            d = self.dump()
            return d is not None and pred(d)
        wait_until(check, timeout, what)
        return self.dump()

    def text_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def open_menu(self):
        """Clicks the icon in the tray host; returns the dump once the menu is on screen."""
        d = self.wait(lambda d: d.get("icon", {}).get("rect"), "tray icon embedded in trayer")
        self.display.click(*center(d["icon"]["rect"]))
        d = self.wait(lambda d: d["menu_mapped"] and all(
            "rect" in w for w in d["widgets"] if not w.get("separator")), "menu on screen")
        # Off the icon (its tooltip would cover the menu), onto the menu's first line.
        self.display.hover(*center(d["widgets"][0]["rect"]))
        return d

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        else:
            code = self.proc.returncode
        self.log.close()
        return code


def labels(widgets):
    return [w["label"] for w in widgets if not w.get("separator")]


def widget(widgets, prefix):
    for w in widgets:
        if w.get("label", "").startswith(prefix):
            return w
    raise AssertionError(f"no menu item starting with {prefix!r} in {labels(widgets)}")


class TrayScreenshot(StackTest):

    def setUp(self):
        name = self.id().rsplit(".", 1)[-1]
        self.folder = os.path.join(ARTIFACTS, name)
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self.folder)
        self.display = Display(self.folder)
        self.addCleanup(self.display.close)
        self.tray = None

    def tearDown(self):
        if self.tray:
            code = self.tray.stop()
            log = self.tray.text_log()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                           "-CRITICAL **", "-WARNING **"):  # sanitizers, GLib and GTK
                self.assertNotIn(marker, log)
            self.assertEqual(code, 0, log[-3000:])
        stack = getattr(self, "stack", None)
        if stack:
            for name in ("hub", "agent", "daemon"):
                with open(os.path.join(self.folder, name + ".log"), "w") as f:
                    f.write(stack.log(name))
            self.assertCleanShutdown(stack)
            stack.close()

    def session_bus(self):
        """Starts a private session bus; the tray and the desktop programs use it."""
        bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: (bus.terminate(), bus.wait(), bus.stdout.close()))
        address = bus.stdout.readline().strip()
        self.assertTrue(address, "dbus-daemon printed no address")
        self.display.env["DBUS_SESSION_BUS_ADDRESS"] = address

    def hub_devices(self):
        """{id: online} as the hub lists them (its REST API, not through the daemon)."""
        r = subprocess.run([program("devstreams"), "hub", "-c",
                            os.path.join(self.stack.state, "daemon.yaml"), "device", "list",
                            "--json"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return {d["id"]: d["online"] for d in json.loads(r.stdout)["devices"]}

    def shot(self, name, d, ocr_rect):
        path = self.display.screenshot(os.path.join(self.folder, name + ".png"))
        with open(os.path.join(self.folder, name + ".json"), "w") as f:
            json.dump(d, f, indent=2)
        return self.display.ocr(path, ocr_rect, os.path.join(self.folder, name + "-menu.png"))

    def test_menu_shows_the_hubs_devices_and_follows_the_agent(self):
        self.stack = Stack(with_sshd=False)
        self.tray = Tray(self.display, self.folder, self.stack.control_path, "--watch", "dev01")
        d = self.tray.wait(lambda d: d["model"]["link"] == "connected" and any(
            w["label"] == "dev01 (online)" for w in d["widgets"] if "label" in w),
            "tray shows dev01 online")
        self.assertEqual(d["front_end"], "status-icon")
        self.assertEqual(d["model"]["icon"], "network-transmit-receive")
        self.assertTrue(d["model"]["tooltip"].startswith("devstreams: hub connected"))

        d = self.tray.open_menu()
        # The menu's widgets list every device of the hub with its state, and nothing else.
        hub = self.hub_devices()
        self.assertEqual(hub, {"dev01": True})
        menu = labels(d["widgets"])
        self.assertIn(f"Hub connected: https://127.0.0.1:{self.stack.hub_port}", menu)
        self.assertIn("Devices: 1 of 1 online", menu)
        shown = {lb.split(" ")[0] for lb in menu if lb.endswith("(online)") or "(offline" in lb}
        self.assertEqual(shown, set(hub))
        self.assertIn("dev01 (online)", menu)
        self.assertIn(f"Copy PAC URL (http://127.0.0.1:{self.stack.socks_port}/proxy.pac)", menu)
        dev01 = widget(d["widgets"], "dev01")
        self.assertEqual(labels(dev01["children"])[:2],
                         ["SSH to dev01", "Open http://dev01.hub/"])
        # The screen shows it: the menu's rectangle read back by OCR.
        rect = union([w["rect"] for w in d["widgets"] if "rect" in w])
        text = self.shot("online", d, rect)
        self.assertTrue(seen("dev01", text), f"OCR of the open menu:\n{text}")
        self.assertTrue(seen("online", text), f"OCR of the open menu:\n{text}")
        self.assertTrue(seen("Hub connected", text), f"OCR of the open menu:\n{text}")

        # The device goes away: the open menu follows, and the watched device is announced.
        self.stack.stop("agent")
        d = self.tray.wait(lambda d: widget(d["widgets"], "dev01")["label"].startswith(
            "dev01 (offline") and d["menu_mapped"], "dev01 offline in the open menu")
        self.assertFalse(self.hub_devices()["dev01"])
        self.assertIn("Devices: 0 of 1 online", labels(d["widgets"]))
        self.assertIn({"title": "dev01 went offline", "body": "watched device"}, d["notices"])
        rect = union([w["rect"] for w in d["widgets"] if "rect" in w])
        text = self.shot("offline", d, rect)
        self.assertTrue(seen("dev01 (offline", text), f"OCR of the open menu:\n{text}")

        # And comes back.
        self.stack.start_agent()
        d = self.tray.wait(lambda d: widget(d["widgets"], "dev01")["label"] == "dev01 (online)",
                           "dev01 online again")
        self.assertIn({"title": "dev01 is online", "body": "watched device came back"},
                      d["notices"])

    def test_daemon_down_says_so_and_offers_to_start_it(self):
        self.stack = Stack(with_sshd=False)
        self.stack.stop("daemon")
        config = os.path.join(self.stack.state, "daemon.yaml")
        start = f"{program('devstreamsd')} -c {config}"
        self.tray = Tray(self.display, self.folder, self.stack.control_path,
                         "--start-daemon", start)
        d = self.tray.wait(lambda d: d["model"]["link"] == "daemon-down" and d["polls"] > 0,
                           "tray shows the daemon down")
        self.assertEqual(d["model"]["icon"], "network-offline")
        self.assertIn("is devstreamsd running?", d["model"]["tooltip"])
        d = self.tray.open_menu()
        menu = labels(d["widgets"])
        self.assertEqual(menu[0], "devstreamsd is not running")
        self.assertIn(self.stack.control_path, menu[1])
        self.assertEqual(menu[2:], ["Start devstreamsd", "Open the daemon log", "Refresh",
                                    "Quit"])
        rect = union([w["rect"] for w in d["widgets"] if "rect" in w])
        text = self.shot("daemon-down", d, rect)
        self.assertTrue(seen("not running", text), f"OCR of the open menu:\n{text}")
        self.assertTrue(seen("Start devstreamsd", text), f"OCR of the open menu:\n{text}")

        # "Start devstreamsd" runs the configured command; the tray then finds the daemon.
        self.display.click(*center(widget(d["widgets"], "Start devstreamsd")["rect"]))
        try:
            d = self.tray.wait(lambda d: d["model"]["link"] == "connected",
                               "tray shows the started daemon connected")
            # A "Hub link back" may follow it when the daemon polled before its link was up.
            self.assertIn("devstreamsd is running", [n["title"] for n in d["notices"]])
        finally:
            with_pid = None
            try:
                status, _, body = unix_http(self.stack.control_path, "GET", "/v1/status")
                with_pid = json.loads(body)["pid"] if status == 200 else None
            except OSError:
                pass
            if with_pid:
                os.kill(with_pid, signal.SIGTERM)
                wait_until(lambda: "State:\tZ" in read_text(f"/proc/{with_pid}/status") or
                           not os.path.exists(f"/proc/{with_pid}"),
                           10, "started daemon gone")
        self.assertEqual(d["action_errors"], [])

    def test_device_actions_ssh_browser_and_clipboard(self):
        self.stack = Stack()
        out = os.path.join(self.folder, "ssh.out")
        st = self.stack
        ssh = (f"ssh -F /dev/null -i {st.dir}/client_key -o IdentitiesOnly=yes "
               "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
               f"-o LogLevel=ERROR -p {st.ssh_port} "
               "-o \"ProxyCommand={devstreams} --socks {proxy} connect %h %p\" "
               f"{st.ssh_user}@{{host}} echo tray-ssh-ok")
        # The "terminal" runs the command with its output in a file; the "browser" is curl
        # through the daemon's proxy.
        terminal = f"sh -c '\"$@\" > {out} 2>&1' sh {{command}}"
        page = os.path.join(self.folder, "page.html")
        browser = f"curl -sS --max-time 20 --socks5-hostname {{proxy}} -o {page} {{url}}"
        self.tray = Tray(self.display, self.folder, st.control_path, "--ssh-command", ssh,
                         "--terminal", terminal, "--browser", browser,
                         "--web-ports", f"443,{st.http_port}")
        self.tray.wait(lambda d: d["model"]["link"] == "connected" and any(
            w.get("label") == "dev01 (online)" for w in d["widgets"]), "dev01 online")
        d = self.tray.open_menu()
        self.display.hover(*center(widget(d["widgets"], "dev01")["rect"]))
        d = self.tray.wait(lambda d: "rect" in widget(widget(d["widgets"], "dev01")["children"],
                                                      "SSH to dev01"), "dev01 submenu open")
        sub = widget(d["widgets"], "dev01")["children"]
        rect = union([w["rect"] for w in sub if "rect" in w])
        text = self.shot("device-submenu", d, rect)
        self.assertTrue(seen("SSH to dev01", text), f"OCR of the submenu:\n{text}")
        self.display.click(*center(widget(sub, "SSH to dev01")["rect"]))
        wait_until(lambda: "tray-ssh-ok" in read_text(out), 30,
                   "ssh through the daemon ran")
        self.assertIn("SSH to dev01: sh -c", self.tray.text_log())

        # Open http://dev01.hub:<port>/ in the "browser".
        url = f"http://dev01.hub:{st.http_port}/"
        self.click_device_item("Open " + url)
        wait_until(lambda: "hello from dev01" in read_text(page), 30, "page fetched")
        self.assertEqual(widget(self.tray.dump()["widgets"], "dev01")["children"][1]["label"],
                         "Open https://dev01.hub/")

        # The clipboard gets the SSH config snippet, then the PAC URL.
        self.click_device_item("Copy SSH config snippet")
        snippet = (f"Host dev01.hub *.via.dev01.hub\n    ProxyCommand devstreams --socks "
                   f"127.0.0.1:{st.socks_port} connect %h %p\n")
        wait_until(lambda: self.clipboard() == snippet, 10, "snippet on the clipboard")
        d = self.tray.open_menu()
        self.display.click(*center(widget(d["widgets"], "Copy PAC URL")["rect"]))
        pac = f"http://127.0.0.1:{st.socks_port}/proxy.pac"
        wait_until(lambda: self.clipboard() == pac, 10, "PAC URL on the clipboard")
        self.assertEqual(self.tray.dump()["action_errors"], [])

        # Quit ends the tray with status 0.
        d = self.tray.open_menu()
        self.display.click(*center(widget(d["widgets"], "Quit")["rect"]))
        self.assertEqual(self.tray.proc.wait(timeout=10), 0)

    def click_device_item(self, label):
        """Opens the menu, then dev01's submenu, and clicks its item starting with `label`."""
        d = self.tray.open_menu()
        self.display.hover(*center(widget(d["widgets"], "dev01")["rect"]))
        last = [time.monotonic()]

        def shown(d):
            device = widget(d["widgets"], "dev01")
            if "rect" in widget(device["children"], label):
                return True
            # A hover that came while the menu was still settling opens nothing: hover again.
            if "rect" in device and time.monotonic() - last[0] > 2:
                last[0] = time.monotonic()
                self.display.hover(*center(device["rect"]))
            return False

        d = self.tray.wait(shown, f"{label} on screen")
        self.display.click(*center(widget(widget(d["widgets"], "dev01")["children"],
                                          label)["rect"]))

    def clipboard(self):
        r = self.display.run("xclip", "-o", "-selection", "clipboard", check=False)
        return r.stdout.decode(errors="replace") if r.returncode == 0 else None

    def test_forward_dialog_adds_a_forward_that_the_menu_lists_and_removes(self):
        config_port = free_port()
        self.stack = Stack(with_sshd=False, forwards=[(f"127.0.0.1:{config_port}", "dev01",
                                                        "http")])
        st = self.stack
        # An open stream, so that the menu lists one.
        code, held = st.connect("dev01.hub", st.http_port)
        self.assertEqual(code, 0)
        self.addCleanup(held.close)
        self.tray = Tray(self.display, self.folder, st.control_path, "--watch", "dev01")
        self.tray.wait(lambda d: "Streams: 1 open" in labels(d["widgets"]) and
                       "Forwards: 1" in labels(d["widgets"]), "stream and forward listed")
        d = self.tray.open_menu()
        self.display.hover(*center(widget(d["widgets"], "dev01")["rect"]))
        d = self.tray.wait(lambda d: "rect" in widget(widget(d["widgets"], "dev01")["children"],
                                                      "Forward a local port"), "dev01 submenu")
        # The picture of docs/tray.md: the whole menu with the device's submenu.
        sub = widget(d["widgets"], "dev01")["children"]
        rect = union([w["rect"] for w in d["widgets"] + sub if "rect" in w])
        text = self.shot("menu", d, rect)
        self.assertTrue(seen("Forward a local port", text), f"OCR of the menu:\n{text}")
        self.assertTrue(seen("Streams: 1 open", text), f"OCR of the menu:\n{text}")
        x0, y0, w, h = rect
        icon = d["icon"]["rect"]
        x1, y1 = max(x0 + w, icon[0] + icon[2]), max(y0 + h, icon[1] + icon[3])
        self.display.run("convert", os.path.join(self.folder, "menu.png"), "-crop",
                         f"{x1 - x0 + 16}x{y1 + 8}+{x0 - 8}+0", "+repage",
                         os.path.join(self.folder, "docs-tray.png"))

        self.display.click(*center(widget(sub, "Forward a local port")["rect"]))
        title = "Forward a local port to dev01"
        wait_until(lambda: self.display.run("xdotool", "search", "--name", title,
                                            check=False).returncode == 0, 20, "forward dialog")
        win = self.display.run("xdotool", "search", "--name", title).stdout.split()[0]
        self.display.run("xdotool", "windowfocus", "--sync", win)
        self.display.run("xdotool", "key", "ctrl+a")
        self.display.run("xdotool", "type", str(st.http_port))
        self.display.run("xdotool", "key", "Return")

        def runtime():
            status, doc = st.control("GET", "/v1/forwards")
            return [f for f in doc["forwards"] if f["origin"] == "runtime"] if status == 200 \
                else []
        wait_until(lambda: runtime(), 20, "runtime forward added")
        fwd = runtime()[0]
        self.assertEqual((fwd["device"], fwd["port"]), ("dev01", st.http_port))
        self.assertTrue(fwd["listen"].startswith("127.0.0.1:"))
        r = subprocess.run(["curl", "-sS", "--max-time", "20", f"http://{fwd['listen']}/"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("hello from dev01", r.stdout, r.stderr)
        d = self.tray.wait(lambda d: "Forwards: 2" in labels(d["widgets"]), "forward listed")
        self.assertIn({"title": "Forward added", "body": fwd["listen"] + " (copied)"},
                      d["notices"])

        # Remove it from the menu: Forwards > the forward > Remove this forward.
        d = self.tray.open_menu()
        self.display.hover(*center(widget(d["widgets"], "Forwards")["rect"]))
        d = self.tray.wait(lambda d: "rect" in widget(widget(d["widgets"], "Forwards")[
            "children"], fwd["listen"]), "forwards submenu")
        item = widget(widget(d["widgets"], "Forwards")["children"], fwd["listen"])
        self.display.hover(*center(item["rect"]))
        d = self.tray.wait(lambda d: "rect" in widget(widget(widget(d["widgets"], "Forwards")[
            "children"], fwd["listen"])["children"], "Remove"), "remove entry")
        item = widget(widget(d["widgets"], "Forwards")["children"], fwd["listen"])
        self.display.click(*center(widget(item["children"], "Remove")["rect"]))
        wait_until(lambda: not runtime(), 20, "runtime forward removed")
        self.tray.wait(lambda d: "Forwards: 1" in labels(d["widgets"]), "forward gone")
        self.assertEqual(self.tray.dump()["action_errors"], [])

    def test_notifications_reach_the_desktop_when_the_hub_link_drops_and_returns(self):
        # A session bus with a real notification daemon (dunst), which records what it gets.
        self.session_bus()
        record = os.path.join(self.folder, "notices.txt")
        script = os.path.join(self.folder, "record.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nprintf '%s: %s\\n' \"$2\" \"$3\" >> {record}\n")
        os.chmod(script, 0o755)
        dunstrc = os.path.join(self.folder, "dunstrc")
        with open(dunstrc, "w") as f:
            f.write(f'[global]\n    font = Sans 9\n[record]\n    summary = "*"\n'
                    f'    script = {script}\n')
        self.display.procs.append(subprocess.Popen(
            ["dunst", "-config", dunstrc], env=self.display.env, stdout=self.display.log,
            stderr=subprocess.STDOUT))
        wait_until(lambda: b"true" in self.display.run(
            "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/",
            "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.Notifications",
            check=False).stdout, 10, "dunst on the bus")

        self.stack = Stack(with_sshd=False)
        self.tray = Tray(self.display, self.folder, self.stack.control_path, "--watch", "dev01")
        d = self.tray.wait(lambda d: d["model"]["link"] == "connected" and any(
            w.get("label") == "dev01 (online)" for w in d["widgets"]), "tray connected")
        # A bus, but no StatusNotifier host on it: still the XEmbed icon.
        self.assertEqual(d["front_end"], "status-icon")

        self.stack.stop("hub")
        d = self.tray.wait(lambda d: d["model"]["link"] == "hub-down", "hub down in the tray",
                           timeout=60)
        self.assertEqual(d["model"]["icon"], "network-error")
        wait_until(lambda: "Hub link lost: https://127.0.0.1" in read_text(record), 20,
                   "notification of the lost hub link")
        self.display.screenshot(os.path.join(self.folder, "hub-lost.png"))
        d = self.tray.open_menu()
        menu = labels(d["widgets"])
        self.assertTrue(menu[0].startswith("Hub unreachable: https://127.0.0.1"), menu)
        self.assertTrue(any(m.startswith("Error: devices: ") for m in menu), menu)
        self.shot("hub-down", d, union([w["rect"] for w in d["widgets"] if "rect" in w]))
        self.display.run("xdotool", "key", "Escape")

        self.stack.start_hub()
        self.tray.wait(lambda d: d["model"]["link"] == "connected", "hub back", timeout=60)
        wait_until(lambda: "Hub link back: https://127.0.0.1" in read_text(record), 20,
                   "notification of the hub link back")
        self.tray.wait(lambda d: any(w.get("label") == "dev01 (online)" for w in d["widgets"]),
                       "dev01 online again", timeout=60)
        self.stack.stop("agent")
        wait_until(lambda: "dev01 went offline: watched device" in read_text(record), 30,
                   "notification of the watched device")
        self.assertNotIn("cannot show notifications", self.tray.text_log())

    def test_appindicator_menu_on_a_statusnotifier_host_follows_the_agent(self):
        # A panel's view: a StatusNotifier host on the bus reads the item and its dbusmenu.
        self.session_bus()
        seen_path = os.path.join(self.folder, "sni.json")
        host = os.environ.get("DS_SNI_HOST") or os.path.join(
            os.path.dirname(BIN), "tests", "tray", "tray_sni_host")
        log = open(os.path.join(self.folder, "sni_host.log"), "ab")
        self.addCleanup(log.close)
        proc = subprocess.Popen([host, seen_path], env=self.display.env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.display.procs.append(proc)
        wait_until(lambda: "ready" in read_text(os.path.join(self.folder, "sni_host.log")) or
                   proc.poll() is not None, 10, "StatusNotifier host")
        self.assertIsNone(proc.poll(), read_text(os.path.join(self.folder, "sni_host.log")))

        def panel():
            try:
                with open(seen_path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                return None, []
            top = doc.get("menu", {}).get("children", [])
            return doc, [c.get("label", "") for c in top]

        def shows(label_prefix):
            return any(lb.startswith(label_prefix) for lb in panel()[1])

        self.stack = Stack(with_sshd=False)
        self.tray = Tray(self.display, self.folder, self.stack.control_path)
        d = self.tray.wait(lambda d: d["model"]["link"] == "connected", "tray connected")
        self.assertEqual(d["front_end"], "appindicator")
        wait_until(lambda: shows("dev01 (online)"), 30, "dev01 online in the panel's menu")
        doc, menu = panel()
        self.assertEqual(doc["item"]["IconName"], "network-transmit-receive")
        self.assertEqual(doc["item"]["Status"], "Active")
        self.assertIn(f"Hub connected: https://127.0.0.1:{self.stack.hub_port}", menu)
        self.assertIn("Quit", menu)
        dev01 = [c for c in doc["menu"]["children"] if c.get("label") == "dev01 (online)"][0]
        self.assertEqual([c.get("label") for c in dev01["children"]][:1], ["SSH to dev01"])

        self.stack.stop("agent")
        wait_until(lambda: shows("dev01 (offline"), 30, "dev01 offline in the panel's menu")
        self.stack.stop("daemon")
        wait_until(lambda: shows("devstreamsd is not running"), 30, "daemon down in the panel")
        self.assertEqual(panel()[0]["item"]["IconName"], "network-offline")


if __name__ == "__main__":
    unittest.main()
