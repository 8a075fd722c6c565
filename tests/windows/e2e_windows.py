"""The Windows programs under wine with the Linux hub.

Agent: the Windows devstreams-agent.exe connects to the Linux hub and serves a Linux HTTP port.
Daemon: curl --socks5-hostname on Linux goes through the Windows devstreamsd.exe to that port;
the bytes are checked by SHA-256 in both directions. Cli: `devstreams.exe connect` carries a
binary exchange on its stdio. Msi: `wine msiexec /i` in a fresh wine prefix installs the
package, the devstreamsd service starts and serves a stream, the SCM stops it cleanly, and
`wine msiexec /x` removes it with no service left.

Environment: DS_BIN_DIR (Linux build, for the hub), DS_WIN_BIN_DIR (Windows build), DS_MSI (the
package, for Msi), DS_WINE_TEMPLATE (an initialised wine prefix that is copied, never changed).
A missing program or tool is a failure, never a skip."""

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "e2e"))
import harness  # noqa: E402

WIN_BIN = os.environ.get("DS_WIN_BIN_DIR", os.path.join(harness.ROOT, "build", "windows", "src"))
BLOB = os.urandom(8 << 20)
PIPE = "\\\\.\\pipe\\devstreamsd-e2e"


def win_program(name):
    sub = {"devstreams-agent": "agent", "devstreamsd": "daemon", "devstreams": "cli"}[name]
    return os.path.join(WIN_BIN, sub, name + ".exe")


def win_path(path):
    """The Windows name of a Linux path in a wine prefix (drive Z: is /)."""
    return "Z:" + os.path.abspath(path).replace("/", "\\")


class Target(http.server.ThreadingHTTPServer):
    """Linux HTTP target: GET /blob sends BLOB, POST /sha256 answers the body's SHA-256."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(BLOB)))
                self.end_headers()
                self.wfile.write(BLOB)

            def do_POST(self):
                n = int(self.headers["Content-Length"])
                h = hashlib.sha256()
                while n > 0:
                    chunk = self.rfile.read(min(n, 1 << 16))
                    if not chunk:
                        break
                    h.update(chunk)
                    n -= len(chunk)
                body = h.hexdigest().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class WinePrefix:
    """A private wine prefix: a copy of DS_WINE_TEMPLATE, so every test starts from the same
    fresh Windows and leaves nothing behind."""

    def __init__(self, parent):
        template = os.environ.get("DS_WINE_TEMPLATE")
        if not template or not os.path.isdir(template):
            raise RuntimeError("DS_WINE_TEMPLATE must name an initialised wine prefix")
        self.path = os.path.join(parent, "wine")
        shutil.copytree(template, self.path, symlinks=True)
        self.env = dict(os.environ, WINEPREFIX=self.path, WINEDEBUG="-all",
                        WINEDLLOVERRIDES="mscoree,mshtml=")

    def run(self, *argv, timeout=120, check=True):
        """Runs a Windows program to its end. Its output goes to a file, not a pipe: programs it
        starts (a service, wineserver) may keep a pipe open long after it exits."""
        with tempfile.TemporaryFile() as out:
            p = subprocess.run(["wine", *argv], env=self.env, stdout=out, stderr=out,
                               stdin=subprocess.DEVNULL, timeout=timeout)
            out.seek(0)
            p.stdout = out.read()
        if check and p.returncode != 0:
            raise AssertionError(f"wine {' '.join(argv)}: exit {p.returncode}\n"
                                 + p.stdout.decode(errors="replace")[-3000:])
        return p

    def close(self):
        subprocess.run(["wineserver", "-k"], env=self.env, check=False, timeout=60)
        subprocess.run(["wineserver", "-w"], env=self.env, check=False, timeout=60)


class WinStack(harness.Stack):
    """The harness's Linux hub with the Windows agent and daemon under wine."""

    def __init__(self, tmp, prefix, daemon=True):
        self.prefix = prefix
        self.with_daemon = daemon
        self.target = Target()
        self.tmp = tmp
        super().__init__(allow_extra=(self.target.port,), with_sshd=False,
                         control_socket=PIPE)

    def start_agent(self):
        return self.start("agent", ["wine", win_program("devstreams-agent"), "-c",
                                    win_path(os.path.join(self.state, "agent.yaml"))],
                          env=self.prefix.env)

    def start_daemon(self):
        if not self.with_daemon:
            return
        self.start("daemon", ["wine", win_program("devstreamsd"), "-c",
                              win_path(os.path.join(self.state, "daemon.yaml"))],
                   env=self.prefix.env)
        harness.wait_until(lambda: harness.port_open(self.socks_port) or
                           self.procs["daemon"].poll() is not None, timeout=60,
                           what="daemon SOCKS port")
        if self.procs["daemon"].poll() is not None:
            raise RuntimeError("devstreamsd.exe exited at start:\n" + self.log("daemon")[-3000:])

    def wait_device_online(self, timeout=60):
        super().wait_device_online(timeout)

    def close(self):
        super().close()
        self.target.shutdown()
        self.target.server_close()


def curl(socks_port, *args):
    return subprocess.run(["curl", "-sS", "--fail", "--max-time", "120", "--socks5-hostname",
                           f"127.0.0.1:{socks_port}", *args], capture_output=True, timeout=150)


def assert_stream_both_ways(test, socks_port, target_port):
    url = f"http://dev01.hub:{target_port}"
    got = curl(socks_port, url + "/blob")
    test.assertEqual(got.returncode, 0, got.stderr.decode(errors="replace"))
    test.assertEqual(hashlib.sha256(got.stdout).hexdigest(), hashlib.sha256(BLOB).hexdigest())
    up = os.urandom(4 << 20)
    with tempfile.NamedTemporaryFile() as f:
        f.write(up)
        f.flush()
        got = curl(socks_port, "--data-binary", "@" + f.name, url + "/sha256")
    test.assertEqual(got.returncode, 0, got.stderr.decode(errors="replace"))
    test.assertEqual(got.stdout.decode(), hashlib.sha256(up).hexdigest())


class WineTest(unittest.TestCase):
    def setUp(self):
        for p in [win_program(n) for n in ("devstreams-agent", "devstreamsd", "devstreams")] + [
                harness.program("devstreams-hub")]:
            self.assertTrue(os.path.exists(p), f"{p} is missing: build it first")
        for tool in ("wine", "wineserver", "curl"):
            self.assertIsNotNone(shutil.which(tool), f"{tool} is not installed")
        self.tmp = tempfile.mkdtemp(prefix="devstreams-wine-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.prefix = WinePrefix(self.tmp)
        self.addCleanup(self.prefix.close)


class Daemon(WineTest):
    def test_curl_through_windows_daemon_and_agent(self):
        stack = WinStack(self.tmp, self.prefix)
        self.addCleanup(stack.close)
        try:
            assert_stream_both_ways(self, stack.socks_port, stack.target.port)
        except AssertionError:
            stack.dump_logs()
            raise
        # The stream went through the Windows programs: both logged it.
        self.assertIn("dev01", stack.log("daemon"))
        self.assertIn(str(stack.target.port), stack.log("agent"))

    def test_cli_status_over_the_control_pipe(self):
        stack = WinStack(self.tmp, self.prefix)
        self.addCleanup(stack.close)
        assert_stream_both_ways(self, stack.socks_port, stack.target.port)

        def status():
            got = subprocess.run(["wine", win_program("devstreams"), "status", "--json",
                                  "--control", PIPE], capture_output=True, env=self.prefix.env,
                                 timeout=120)
            self.assertEqual(got.returncode, 0, got.stderr.decode(errors="replace"))
            return json.loads(got.stdout)

        harness.wait_until(lambda: status()["hub"]["connected"] is True, 30, "hub connected")
        doc = status()
        self.assertEqual(doc["listen"], f"127.0.0.1:{stack.socks_port}")
        self.assertGreaterEqual(doc["streams_total"], 2)
        # A pipe nobody serves is a clear error, exit 1.
        got = subprocess.run(["wine", win_program("devstreams"), "status", "--control",
                              "\\\\.\\pipe\\nobody-here"], capture_output=True,
                             env=self.prefix.env, timeout=120)
        self.assertEqual(got.returncode, 1)
        self.assertIn(b"is devstreamsd running?", got.stderr)

    def test_cli_connect_carries_binary_stdio(self):
        stack = WinStack(self.tmp, self.prefix)
        self.addCleanup(stack.close)
        # Every byte value, CR, LF and ^Z included, in an HTTP request body through
        # `devstreams connect`: the answer is the SHA-256 the target saw.
        body = bytes(range(256)) * 1024 + b"\r\n\x1a\r\n"
        request = (f"POST /sha256 HTTP/1.1\r\nHost: dev01\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n\r\n").encode() + body
        got = subprocess.run(["wine", win_program("devstreams"), "--socks",
                              f"127.0.0.1:{stack.socks_port}", "connect", "dev01.hub",
                              str(stack.target.port)], input=request, capture_output=True,
                             env=self.prefix.env, timeout=120)
        self.assertEqual(got.returncode, 0, got.stderr.decode(errors="replace"))
        self.assertTrue(got.stdout.endswith(hashlib.sha256(body).hexdigest().encode()),
                        got.stdout[-200:])


class Msi(WineTest):
    def test_install_serve_stop_and_remove(self):
        msi = os.environ.get("DS_MSI", "")
        self.assertTrue(os.path.isfile(msi), f"DS_MSI={msi!r}: no package")
        # The Linux hub and the Windows agent as in Daemon; the daemon comes from the package.
        stack = WinStack(self.tmp, self.prefix, daemon=False)
        self.addCleanup(stack.close)
        # The configuration is in place before the installation, as an upgrade would find it:
        # the package never overwrites it, and the service it starts uses it.
        config_dir = os.path.join(self.prefix.path, "drive_c", "ProgramData", "devstreams")
        os.makedirs(config_dir, exist_ok=True)
        with open(os.path.join(stack.state, "daemon.yaml")) as f:
            text = "".join(line for line in f if not line.startswith("  control_socket:"))
        text = text.replace("ca: ", "ca: " + win_path(stack.state) + "\\", 1)
        with open(os.path.join(config_dir, "devstreams.yaml"), "w") as f:
            f.write(text)

        self.prefix.run("msiexec", "/i", msi, "/qn", timeout=300)
        exe = os.path.join(self.prefix.path, "drive_c", "Program Files", "devstreams",
                           "devstreamsd.exe")
        self.assertTrue(os.path.isfile(exe))
        with open(os.path.join(config_dir, "devstreams.yaml")) as f:
            self.assertEqual(f.read(), text, "the package overwrote the configuration")
        try:
            harness.wait_until(lambda: harness.port_open(stack.socks_port), timeout=90,
                               what="the devstreamsd service's SOCKS port")
            assert_stream_both_ways(self, stack.socks_port, stack.target.port)
        finally:
            log_path = os.path.join(config_dir, "log", "devstreamsd.log")
            if os.path.exists(log_path):
                with open(log_path, errors="replace") as f:
                    print("----- devstreamsd.log -----\n" + f.read()[-4000:])

        # The Service Control Manager's stop is the SIGTERM path: a clean exit 0.
        self.prefix.run("net", "stop", "devstreamsd", timeout=120)
        harness.wait_until(lambda: not harness.port_open(stack.socks_port), timeout=30,
                           what="the SOCKS port to close")
        # The port closes when the loop stops; the service's last line follows once the
        # connections it was flushing are done (up to 2 s), so it is waited for.
        def stopped_cleanly():
            with open(os.path.join(config_dir, "log", "devstreamsd.log"), errors="replace") as f:
                return "service devstreamsd stopped (exit code 0)" in f.read()
        harness.wait_until(stopped_cleanly, timeout=30, what="the service's clean exit in its log")

        self.prefix.run("msiexec", "/x", msi, "/qn", timeout=300)
        self.assertFalse(os.path.exists(exe))
        for name in ("devstreamsd", "devstreams-agent"):
            q = self.prefix.run("sc", "query", name, check=False)
            self.assertNotEqual(q.returncode, 0, f"service {name} is still installed")
        # The configuration stays.
        self.assertTrue(os.path.isfile(os.path.join(config_dir, "devstreams.yaml")))


if __name__ == "__main__":
    unittest.main()
