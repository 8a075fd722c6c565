"""End-to-end tests over loopback with real peers: OpenSSH through `devstreams connect` as
ProxyCommand, curl through the SOCKS5 endpoint, bulk transfers with SHA-256 checks, and the
SOCKS reply code of each failure."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SinkSource, Stack, StackTest, WsClient, program, sas_token,  # noqa: E402
                     socks_connect)

MiB = 1 << 20


class Traffic(StackTest):
    """One stack for the tests that leave it as they found it."""

    @classmethod
    def setUpClass(cls):
        cls.sink = SinkSource(64 * MiB)
        cls.stack = Stack(allow_extra=[cls.sink.port])

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.sink)

    def test_ssh_proxycommand_runs_remote_command(self):
        r = self.stack.ssh("echo hello-$((6*7)); uname -s")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode().split(), ["hello-42", "Linux"])

    def test_ssh_carries_bulk_data_both_ways(self):
        data = os.urandom(8 * MiB)
        r = subprocess.run(
            ["bash", "-c", "exec \"$@\"", "ssh"] + self._ssh_argv("sha256sum; head -c 4194304 /dev/zero"),
            input=data, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = r.stdout
        self.assertEqual(out[:64].decode(), hashlib.sha256(data).hexdigest())
        self.assertEqual(out[out.index(b"\n") + 1:], b"\0" * (4 * MiB))

    def _ssh_argv(self, command):
        s = self.stack
        proxy = f"{program('devstreams')} --socks 127.0.0.1:{s.socks_port} connect %h %p"
        return ["ssh", "-F", "/dev/null", "-i", f"{s.dir}/client_key", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ProxyCommand={proxy}",
                "-p", str(s.ssh_port), f"{s.ssh_user}@dev01.hub", command]

    def test_curl_socks5_hostname_fetches_page(self):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--socks5-hostname",
                            f"127.0.0.1:{self.stack.socks_port}",
                            f"http://dev01.hub:{self.stack.http_port}/"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"hello from dev01", r.stdout)

    def test_chromium_through_socks_proxy(self):
        browser = shutil.which("chromium")
        self.assertIsNotNone(browser,
                             "chromium is not installed (scripts/setup.sh --tests installs it)")
        profile = tempfile.mkdtemp(prefix="devstreams-chromium-")
        try:
            r = subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}",
                 f"--proxy-server=socks5://127.0.0.1:{self.stack.socks_port}",
                 "--dump-dom", f"http://dev01.hub:{self.stack.http_port}/"],
                capture_output=True, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        self.assertIn(b'<h1 id="greeting">hello from dev01</h1>', r.stdout, r.stderr[-2000:])

    def test_64mib_both_ways_with_sha256(self):
        size = 64 * MiB
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        s.settimeout(120)
        up = hashlib.sha256()

        def sender():
            for piece in SinkSource.stream(11, size):
                up.update(piece)
                s.sendall(piece)
            s.shutdown(socket.SHUT_WR)

        start = time.monotonic()
        t = threading.Thread(target=sender)
        t.start()
        down = hashlib.sha256()
        expected = hashlib.sha256()
        for piece in SinkSource.stream(7, size):
            expected.update(piece)
        got = 0
        tail = b""
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            if got < size:
                take = min(len(data), size - got)
                down.update(data[:take])
                tail += data[take:]
                got += take
            else:
                tail += data
        elapsed = time.monotonic() - start
        t.join()
        s.close()
        self.assertEqual(got, size)
        self.assertEqual(down.hexdigest(), expected.hexdigest(), "device -> client bytes differ")
        self.assertEqual(tail.decode(), up.hexdigest(), "client -> device bytes differ")
        print(f"\n64 MiB each way through the stream in {elapsed:.2f} s: "
              f"{2 * size / MiB / elapsed:.1f} MiB/s total", file=sys.stderr)

    def test_port_not_on_allow_list_gives_0x02(self):
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", 23)
        self.assertEqual(code, 0x02)

    def test_unknown_device_gives_0x04(self):
        code, _ = socks_connect(self.stack.socks_port, "nosuchdevice.hub", 22)
        self.assertEqual(code, 0x04)

    def test_refused_target_gives_0x05(self):
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.closed_port)
        self.assertEqual(code, 0x05)

    def test_address_outside_the_suffix_gives_0x02(self):
        code, _ = socks_connect(self.stack.socks_port, "example.org", 80)
        self.assertEqual(code, 0x02)

    def test_cli_reports_refusal(self):
        r = subprocess.run([program("devstreams"), "--socks", f"127.0.0.1:{self.stack.socks_port}",
                            "connect", "dev01.hub", "23"], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"not allowed", r.stderr)

    def test_failures_leave_other_streams_running(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0)
        for host, port in [("dev01.hub", 23), ("nosuchdevice.hub", 1), ("x.org", 1)]:
            socks_connect(self.stack.socks_port, host, port)
        # Garbage at the proxy port (a non-proxy HTTP request, bytes of no protocol) and at the
        # hub's TLS port.
        with socket.create_connection(("127.0.0.1", self.stack.socks_port)) as g:
            g.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            g.settimeout(10)
            self.assertEqual(g.recv(12), b"HTTP/1.1 404")
        with socket.create_connection(("127.0.0.1", self.stack.socks_port)) as g:
            g.sendall(b"\xff" * 300)
            g.settimeout(10)
            self.assertEqual(g.recv(10), b"")
        with socket.create_connection(("127.0.0.1", self.stack.hub_port)) as g:
            g.sendall(b"\x00" * 1000)
            g.settimeout(10)
            with self.assertRaises((ConnectionResetError, socket.timeout, OSError)):
                while g.recv(100):
                    pass
                raise OSError("closed")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(20)
        body = b""
        while chunk := s.recv(4096):
            body += chunk
        self.assertIn(b"hello from dev01", body)


class DeviceLoss(StackTest):
    """Tests that stop or replace the agent get a stack of their own."""

    def setUp(self):
        self.sink = SinkSource(1 << 40)  # sends "forever": the stream is busy when the agent dies
        self.stack = Stack(allow_extra=[self.sink.port], handshake="2s", with_sshd=False)
        self.addCleanup(self.sink.close)
        self.addCleanup(self.stack.close)

    def tearDown(self):
        self.assertCleanShutdown(self.stack)

    def test_killing_agent_mid_stream_closes_client_promptly(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        s.settimeout(30)
        self.assertTrue(len(s.recv(65536)) > 0)
        self.stack.stop("agent", signal.SIGKILL)
        killed = time.monotonic()
        try:
            while s.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        closed_after = time.monotonic() - killed
        s.close()
        # "Promptly": the hub notices the dead TCP connection and closes the other side; without
        # that the client would wait for TCP keepalive (hours). 10 s is a generous bound.
        self.assertLess(closed_after, 10.0)
        print(f"\nclient closed {closed_after * 1000:.0f} ms after the agent was killed",
              file=sys.stderr)

    def test_offline_device_gives_0x03_and_comes_back(self):
        self.stack.stop("agent")
        time.sleep(0.5)
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0x03)
        self.stack.start_agent()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
            if code == 0:
                s.close()
                break
            time.sleep(0.2)
        self.assertEqual(code, 0)

    def test_silent_device_gives_handshake_timeout_0x06(self):
        # A device that connects but never answers stream requests.
        self.stack.stop("agent")
        exp = int(time.time()) + 3600
        tok = sas_token("localhost/devices/dev01", self.stack.registry["device_key"], exp)
        dev = WsClient(self.stack.hub_port, "/api/v1/devices/dev01/control",
                       {"Authorization": tok}, os.path.join(self.stack.state, "ca.crt"))
        self.assertEqual(dev.status, 101)
        start = time.monotonic()
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0x06)
        self.assertGreaterEqual(time.monotonic() - start, 1.5)  # the configured 2 s bound held
        dev.close()

    def test_device_with_wrong_key_is_refused(self):
        exp = int(time.time()) + 3600
        tok = sas_token("localhost/devices/dev01", self.stack.registry["service_key"], exp)
        dev = WsClient(self.stack.hub_port, "/api/v1/devices/dev01/control",
                       {"Authorization": tok}, os.path.join(self.stack.state, "ca.crt"))
        self.assertEqual(dev.status, 401)
        dev.close()
        self.assertNotIn(self.stack.registry["service_key"], self.stack.log("hub"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
