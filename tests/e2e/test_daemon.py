"""End-to-end tests of devstreamsd with clients nobody here wrote: OpenSSH (ProxyCommand with
`devstreams connect` and with OpenBSD `nc -X 5`, scp, an ssh_config snippet), curl (SOCKS5 with
and without users, HTTP CONNECT and plain http:// proxying, the PAC file, the control API over
the Unix socket), proxychains4 and headless Chromium (SOCKS5 and PAC); aliases, direct mode,
forwards, the `devstreams` CLI, and the SOCKS protocol's edge cases byte for byte.

Each test ends by checking that the daemon still serves a new stream (DaemonTest.tearDown)."""

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DeviceWeb, Stack, StackTest, TcpServer, closed_within, free_port,  # noqa: E402
                     port_open, program, recv_all, recv_exact, run_chromium, socks4_connect,
                     socks5_connect, socks5_greet, socks5_reply, wait_until)

MiB = 1 << 20
CURL_PROXY_ERROR = 97  # CURLE_PROXY: every SOCKS failure since curl 7.73


# Clients see only the proxies a test gives them, whatever the machine's environment says.
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def curl(*args, timeout=40):
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True,
                          text=True, timeout=timeout, env=NO_PROXY_ENV)


class Echo(TcpServer):
    """A device-side TCP echo server."""

    def handle(self, conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


class StubbornHttp(TcpServer):
    """A device-side HTTP server that ignores "Connection: close": it answers every request on
    a connection and keeps it open, as some embedded servers do. Records the request lines."""

    def __init__(self):
        self.lines = []
        super().__init__()

    def handle(self, conn):
        buf = b""
        with conn:
            try:
                while data := conn.recv(4096):
                    buf += data
                    while b"\r\n\r\n" in buf:
                        head, _, buf = buf.partition(b"\r\n\r\n")
                        line = head.split(b"\r\n")[0].decode(errors="replace")
                        self.lines.append(line)
                        body = f"stubborn server answers {line}".encode()
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) +
                                     body)
            except OSError:
                pass


def read_http_response(s):
    """One response with a Content-Length body; returns (head, body)."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += recv_exact(s, 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    return head, recv_exact(s, length)


def echo_round_trip(s, data):
    s.sendall(data)
    return recv_exact(s, len(data)) == data


class DaemonTest(StackTest):
    """Every test leaves the daemon up: a new stream must work after it."""

    def tearDown(self):
        self.stack.assert_serves()


class OpenSSH(DaemonTest):
    """OpenSSH through the daemon: nc -X 5, an ssh_config snippet, scp, a config forward."""

    @classmethod
    def setUpClass(cls):
        cls.fwd_port = free_port()
        cls.stack = s = Stack(forwards=[(f"127.0.0.1:{cls.fwd_port}", "dev01", "ssh")])
        # The snippet docs/daemon.md gives users, plus what a test needs (key, no known_hosts).
        cls.ssh_config = os.path.join(s.dir, "ssh_config")
        with open(cls.ssh_config, "w") as f:
            f.write(f"""Host *.hub
    ProxyCommand devstreams connect %h %p
    User {s.ssh_user}
    IdentityFile {s.dir}/client_key
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
""")
        # `devstreams` found on PATH as users have it; the SOCKS port from the environment.
        cls.env = dict(os.environ, DEVSTREAMS_SOCKS=f"127.0.0.1:{s.socks_port}",
                       PATH=os.path.dirname(program("devstreams")) + ":" + os.environ["PATH"])

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack)

    def _opts(self):
        s = self.stack
        return ["-F", "/dev/null", "-i", f"{s.dir}/client_key", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]

    def test_ssh_proxycommand_nc_x5(self):
        s = self.stack
        r = subprocess.run(
            ["ssh", *self._opts(), "-o", f"ProxyCommand=nc -X 5 -x 127.0.0.1:{s.socks_port} %h %p",
             "-p", str(s.ssh_port), f"{s.ssh_user}@dev01.hub", "echo nc-$((6*7))"],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode().split(), ["nc-42"])

    def test_ssh_config_host_star_hub_snippet(self):
        s = self.stack
        r = subprocess.run(["ssh", "-F", self.ssh_config, "-p", str(s.ssh_port), "dev01.hub",
                            "echo cfg-$((6*7))"], capture_output=True, timeout=60, env=self.env,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode().split(), ["cfg-42"])
        # Any *.hub name goes through `devstreams connect`, which reports the daemon's refusal.
        r = subprocess.run(["ssh", "-F", self.ssh_config, "-p", "22", "nosuchdevice.hub", "true"],
                           capture_output=True, timeout=60, env=self.env, stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("SOCKS reply 4", r.stderr.decode())

    def test_scp_32mib_both_ways_with_sha256(self):
        s = self.stack
        up_local, down_remote = os.path.join(s.dir, "up.src"), os.path.join(s.dir, "down.src")
        for path in (up_local, down_remote):
            with open(path, "wb") as f:
                f.write(os.urandom(32 * MiB))
        up_remote, down_local = os.path.join(s.dir, "up.dst"), os.path.join(s.dir, "down.dst")
        scp = ["scp", "-q", "-F", self.ssh_config, "-P", str(s.ssh_port)]
        r = subprocess.run(scp + [up_local, f"dev01.hub:{up_remote}"], capture_output=True,
                           timeout=60, env=self.env, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        r = subprocess.run(scp + [f"dev01.hub:{down_remote}", down_local], capture_output=True,
                           timeout=60, env=self.env, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

        def sha(path):
            with open(path, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()

        self.assertEqual(sha(up_remote), sha(up_local), "upload differs")
        self.assertEqual(sha(down_local), sha(down_remote), "download differs")

    def test_config_forward_with_ssh_dash_p(self):
        s = self.stack
        r = subprocess.run(["ssh", *self._opts(), "-p", str(self.fwd_port),
                            f"{s.ssh_user}@127.0.0.1", "echo fwd-$((6*7))"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode().split(), ["fwd-42"])


class Web(DaemonTest):
    """HTTP clients on one port: curl as HTTP proxy client, the PAC file, proxychains4,
    Chromium; aliases; non-device destinations refused (direct: false)."""

    @classmethod
    def setUpClass(cls):
        cls.web = DeviceWeb(delay=0.1)
        cls.stubborn = StubbornHttp()
        cls.stack = Stack(with_sshd=False, allow_extra=[cls.web.port, cls.stubborn.port],
                          aliases={"web.lab": ("dev01", cls.web.port),
                                   "plain.lab": ("dev01", None)})
        cls.proxy = f"127.0.0.1:{cls.stack.socks_port}"
        cls.url = f"http://dev01.hub:{cls.web.port}"

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.web, cls.stubborn)

    def echo(self, out):
        """The request as the device's server saw it (its /echo answer)."""
        return json.loads(out)

    def test_http_connect_with_curl_p(self):
        r = curl("-p", "--proxy", f"http://{self.proxy}", f"{self.url}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = self.echo(r.stdout)
        self.assertEqual(seen["line"], "GET /echo HTTP/1.1")  # curl's own request, tunnelled

    def test_http_absolute_form_get_is_forwarded_as_origin_form(self):
        r = curl("--proxy", f"http://{self.proxy}", "-H", "X-Test: kept", f"{self.url}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = self.echo(r.stdout)
        self.assertEqual(seen["line"], "GET /echo HTTP/1.1")
        headers = {k.lower(): v for k, v in seen["headers"].items()}
        self.assertEqual(headers.get("connection", "").lower(), "close")
        self.assertEqual(headers.get("x-test"), "kept")
        self.assertFalse([k for k in headers if k.startswith("proxy-")], headers)
        self.assertEqual(headers.get("host"), f"dev01.hub:{self.web.port}")

    def test_http_post_body_and_query_are_forwarded(self):
        r = curl("--proxy", f"http://{self.proxy}", "--data-binary", "a=1&b=2",
                 f"{self.url}/echo?q=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = self.echo(r.stdout)
        self.assertEqual((seen["line"], seen["body"]), ("POST /echo?q=1 HTTP/1.1", "a=1&b=2"))

    def test_http_second_request_on_a_connection_never_reaches_the_first_target(self):
        # An HTTP/1.1 client may send its next absolute-form request on the same proxy
        # connection. It must go to its own target (or the daemon must close the connection
        # after the first answer), never down the first request's stream.
        s = self.stack
        first = f"http://dev01.hub:{self.stubborn.port}/first"
        second = f"http://dev01.hub:{s.http_port}/second"
        with socket.create_connection(("127.0.0.1", s.socks_port), timeout=10) as c:
            c.sendall(f"GET {first} HTTP/1.1\r\nHost: dev01.hub\r\n\r\n".encode())
            _, body = read_http_response(c)
            self.assertIn(b"GET /first", body)
            rest = b""  # the second answer, or nothing when the daemon closed
            try:
                c.sendall(f"GET {second} HTTP/1.1\r\nHost: dev01.hub\r\n\r\n".encode())
                c.settimeout(5)
                while chunk := c.recv(4096):
                    rest += chunk
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
        self.assertNotIn(b"stubborn server", rest)
        self.assertFalse([line for line in self.stubborn.lines if "second" in line],
                         self.stubborn.lines)

    def test_http_proxy_errors_are_statuses(self):
        s = self.stack
        cases = [(f"http://nosuchdevice.hub:{self.web.port}/", 404),    # unknown device
                 ("http://dev01.hub:23/", 403),                          # port not allowed
                 (f"http://dev01.hub:{s.closed_port}/", 502),            # refused
                 (f"http://127.0.0.1:{self.web.port}/", 403)]            # not a device
        for url, status in cases:
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy", f"http://{self.proxy}",
                     url)
            self.assertEqual((url, r.stdout), (url, str(status)), r.stderr)
            r = curl("-p", "-o", "/dev/null", "-w", "%{http_connect}", "--proxy",
                     f"http://{self.proxy}", url)
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual((url, r.stdout), (url, str(status)), r.stderr)
        # Malformed requests: 400, and origin-form paths other than the PAC: 404 (or 405).
        for raw, statuses in [(b"CONNECT no-port HTTP/1.1\r\n\r\n", ("400",)),
                              (b"GET http://dev01.hub:99999/ HTTP/1.1\r\n\r\n", ("400",)),
                              (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", ("404", "405"))]:
            with socket.create_connection(("127.0.0.1", s.socks_port), timeout=10) as c:
                c.sendall(raw)
                answer = recv_all(c)
            self.assertIn(answer.split(b" ")[1].decode(), statuses, (raw, answer[:200]))

    def test_pac_names_suffix_and_aliases(self):
        r = curl("-D", "-", f"http://{self.proxy}/proxy.pac")
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition("\n\n")  # text mode: CRLF arrives as \n
        self.assertRegex(head, r"^HTTP/1\.[01] 200")
        self.assertRegex(head.lower(), r"content-type: application/x-ns-proxy-autoconfig")
        self.assertIn("FindProxyForURL", body)
        for name in (".hub", "web.lab", "plain.lab"):
            self.assertIn(name, body)
        self.assertIn(f"SOCKS5 {self.proxy}", body)
        self.assertIn(f"PROXY {self.proxy}", body)
        self.assertIn("DIRECT", body)  # everything else, since direct is off
        # The proxy address is the one the client used (its Host header).
        r = curl("-H", f"Host: localhost:{self.stack.socks_port}", f"http://{self.proxy}/proxy.pac")
        self.assertIn(f"SOCKS5 localhost:{self.stack.socks_port}", r.stdout)

    def test_proxychains_runs_unmodified_curl(self):
        conf = os.path.join(self.stack.dir, "proxychains.conf")
        with open(conf, "w") as f:
            f.write(f"strict_chain\nproxy_dns\nremote_dns_subnet 224\ntcp_read_time_out 15000\n"
                    f"tcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 "
                    f"{self.stack.socks_port}\n")
        # curl without any proxy option: proxychains maps dev01.hub to a 224.x address and
        # sends the name in the SOCKS5 request.
        env = NO_PROXY_ENV
        r = subprocess.run(["proxychains4", "-q", "-f", conf, "curl", "-sS", "--max-time", "20",
                            f"{self.url}/echo"], capture_output=True, text=True, timeout=40,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.echo(r.stdout)["line"], "GET /echo HTTP/1.1")
        # And a program that is not curl: Python's socket module.
        code = (f"import socket; s = socket.create_connection(('dev01.hub', {self.web.port}));"
                "s.sendall(b'GET /x HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100).decode())")
        r = subprocess.run(["proxychains4", "-q", "-f", conf, sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=40, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("200", r.stdout)

    def _chromium_20(self, *flags):
        before = self.web.count("/r/")
        self.web.max_active = 0
        r = run_chromium(f"{self.url}/page.html", *flags)
        self.assertIsNotNone(r, "chromium is not installed (scripts/setup.sh --tests installs it)")
        self.assertIn(b"loaded 20/20", r.stdout, r.stderr[-3000:])
        self.assertEqual(self.web.count("/r/") - before, 20)
        self.assertGreaterEqual(self.web.max_active, 2, "the 20 requests did not overlap")

    def test_chromium_20_parallel_resources_through_socks5(self):
        self._chromium_20(f"--proxy-server=socks5://{self.proxy}")

    def test_chromium_20_parallel_resources_through_pac(self):
        self._chromium_20(f"--proxy-pac-url=http://{self.proxy}/proxy.pac")

    def test_alias_with_port_overrides_client_port(self):
        r = curl("--socks5-hostname", self.proxy, "http://web.lab:80/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.echo(r.stdout)["headers"].get("Host"), "web.lab")
        r = curl("--proxy", f"http://{self.proxy}", "http://WEB.lab/echo")  # HTTP too, any case
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_alias_without_port_uses_client_port(self):
        r = curl("--socks5-hostname", self.proxy, f"http://plain.lab:{self.web.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.echo(r.stdout)["line"], "GET /echo HTTP/1.1")
        code, _ = socks5_connect(self.stack.socks_port, "plain.lab", 23)
        self.assertEqual(code, 0x02)  # dev01's port 23: not on the allow-list

    def test_without_direct_local_address_is_refused_0x02(self):
        r = curl("--socks5-hostname", self.proxy, f"http://127.0.0.1:{self.web.port}/")
        self.assertEqual(r.returncode, CURL_PROXY_ERROR, r.stderr)
        code, _ = socks5_connect(self.stack.socks_port, "127.0.0.1", self.web.port)
        self.assertEqual(code, 0x02)


class Auth(DaemonTest):
    """A daemon with users: SOCKS5 username/password and HTTP Basic proxy auth."""

    @classmethod
    def setUpClass(cls):
        cls.web = DeviceWeb(delay=0)
        cls.stack = Stack(with_sshd=False, allow_extra=[cls.web.port],
                          users=[("alice", "s3cret"), ("bob", "p@ss:word")])
        cls.proxy = f"127.0.0.1:{cls.stack.socks_port}"
        cls.url = f"http://dev01.hub:{cls.stack.http_port}/"

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.web)

    def test_proxy_credentials_never_reach_the_device(self):
        r = curl("--proxy", f"http://{self.proxy}", "--proxy-user", "alice:s3cret",
                 f"http://dev01.hub:{self.web.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("s3cret", r.stdout)
        self.assertNotIn(base64.b64encode(b"alice:s3cret").decode(), r.stdout)
        self.assertNotIn("proxy-authorization", r.stdout.lower())

    def test_pipelined_greeting_auth_request_and_data(self):
        name = b"dev01.hub"
        with socket.create_connection(("127.0.0.1", self.stack.socks_port), timeout=20) as c:
            c.sendall(b"\x05\x01\x02" + b"\x01\x05alice\x06s3cret" + b"\x05\x01\x00\x03" +
                      bytes([len(name)]) + name + self.web.port.to_bytes(2, "big") +
                      b"GET /echo HTTP/1.0\r\n\r\n")
            self.assertEqual(recv_exact(c, 4), b"\x05\x02\x01\x00")
            self.assertEqual(socks5_reply(c)[0], 0)
            self.assertIn(b"GET /echo HTTP/1.0", recv_all(c))

    def test_socks5h_with_user_and_password(self):
        r = curl("--proxy", f"socks5h://alice:s3cret@{self.proxy}", self.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from dev01", r.stdout)

    def test_wrong_password_fails_and_daemon_stays_up(self):
        for creds in ("alice:wrong", "mallory:s3cret", "alice:"):
            r = curl("--proxy", f"socks5h://{creds}@{self.proxy}", self.url)
            self.assertEqual(r.returncode, CURL_PROXY_ERROR, (creds, r.stderr))
        with self.assertRaises(PermissionError):
            socks5_greet(self.stack.socks_port, b"\x02", "alice", "wrong")

    def test_no_auth_offer_is_refused_with_ff(self):
        s, method = socks5_greet(self.stack.socks_port, b"\x00")
        with s:
            self.assertEqual(method, 0xFF)
            self.assertTrue(closed_within(s, 10))
        s, method = socks5_greet(self.stack.socks_port, b"\x00\x02")  # both offered: 0x02
        s.close()
        self.assertEqual(method, 0x02)
        r = curl("--socks5-hostname", self.proxy, self.url)
        self.assertEqual(r.returncode, CURL_PROXY_ERROR, r.stderr)

    def test_http_proxy_407_without_credentials_and_200_with(self):
        r = curl("-D", "-", "-o", "/dev/null", "--proxy", f"http://{self.proxy}", self.url)
        self.assertRegex(r.stdout, r"^HTTP/1\.[01] 407")
        self.assertIn('proxy-authenticate: basic realm="devstreams"', r.stdout.lower())
        for creds, status in [("alice:wrong", "407"), ("alice:s3cret", "200"),
                              ("bob:p@ss:word", "200")]:
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy", f"http://{self.proxy}",
                     "--proxy-user", creds, self.url)
            self.assertEqual((creds, r.stdout), (creds, status), r.stderr)

    def test_http_connect_407_without_credentials(self):
        r = curl("-p", "-o", "/dev/null", "-w", "%{http_connect}", "--proxy",
                 f"http://{self.proxy}", self.url)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "407")
        r = curl("-p", "--proxy", f"http://{self.proxy}", "--proxy-user", "alice:s3cret", self.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from dev01", r.stdout)

    def test_socks4_refused_when_auth_is_required(self):
        code, _ = socks4_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port,
                                 userid=b"alice")
        self.assertEqual(code, 0x5B)


class Direct(DaemonTest):
    """direct: true turns non-device destinations into plain outbound connections."""

    @classmethod
    def setUpClass(cls):
        cls.web = DeviceWeb(delay=0)  # not on the agent's allow-list: reached directly only
        cls.stack = Stack(with_sshd=False, direct=True)
        cls.proxy = f"127.0.0.1:{cls.stack.socks_port}"

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.web)

    def test_direct_plain_connection_to_local_server(self):
        r = curl("--socks5-hostname", self.proxy, f"http://127.0.0.1:{self.web.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["line"], "GET /echo HTTP/1.1")
        r = curl("--proxy", f"http://{self.proxy}", f"http://localhost:{self.web.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Devices still go through the hub, and their failures keep their codes.
        code, _ = socks5_connect(self.stack.socks_port, "nosuchdevice.hub", 22)
        self.assertEqual(code, 0x04)

    def test_ipv6_literal_goes_direct(self):
        try:
            echo = Echo("::1")
        except OSError as e:
            self.fail(f"no IPv6 loopback (::1): {e}")
        self.addCleanup(echo.close)
        code, s = socks5_connect(self.stack.socks_port, "::1", echo.port)
        self.assertEqual(code, 0x00)
        with s:
            self.assertTrue(echo_round_trip(s, b"over ipv6"))

    def test_direct_refused_port_gives_0x05(self):
        code, _ = socks5_connect(self.stack.socks_port, "127.0.0.1", free_port())
        self.assertEqual(code, 0x05)

    def test_pac_sends_everything_through_the_proxy(self):
        r = curl(f"http://{self.proxy}/proxy.pac")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"SOCKS5 {self.proxy}", r.stdout)
        self.assertNotIn("DIRECT", r.stdout)


class Forwards(DaemonTest):
    """Config forwards and runtime ones through `devstreams forward add|list|rm`."""

    @classmethod
    def setUpClass(cls):
        cls.web = DeviceWeb(delay=0)
        cls.cfg_port = free_port()
        cls.stack = Stack(with_sshd=False, allow_extra=[cls.web.port],
                          forwards=[(f"127.0.0.1:{cls.cfg_port}", "dev01", "http")])

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.web)

    def ok(self, *args):
        r = self.stack.cli(*args)
        self.assertEqual(r.returncode, 0, f"devstreams {' '.join(args)}: {r.stderr}")
        return r

    def add(self, port):
        self.ok("forward", "add", f"127.0.0.1:{port}", f"dev01:{self.web.port}")
        self.addCleanup(self.stack.cli, "forward", "rm", f"127.0.0.1:{port}")

    def test_runtime_forward_add_then_curl(self):
        p2 = free_port()
        self.add(p2)
        r = curl(f"http://127.0.0.1:{p2}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["line"], "GET /echo HTTP/1.1")
        # Port 0 picks a free port; the answer names it.
        r = self.ok("forward", "add", "127.0.0.1:0", f"dev01:{self.web.port}", "--json")
        listen = json.loads(r.stdout)["listen"]
        self.addCleanup(self.stack.cli, "forward", "rm", listen)
        port = int(listen.rsplit(":", 1)[1])
        self.assertNotEqual(port, 0)
        r = curl(f"http://{listen}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from web", r.stdout)

    def test_forward_list_shows_config_and_runtime(self):
        p2 = free_port()
        self.add(p2)
        curl(f"http://127.0.0.1:{self.cfg_port}/")
        doc = json.loads(self.ok("forward", "list", "--json").stdout)
        by_listen = {f["listen"]: f for f in doc["forwards"]}
        cfg = by_listen[f"127.0.0.1:{self.cfg_port}"]
        self.assertEqual((cfg["origin"], cfg["device"], cfg["port"]),
                         ("config", "dev01", self.stack.http_port))
        rt = by_listen[f"127.0.0.1:{p2}"]
        self.assertEqual((rt["origin"], rt["device"], rt["port"]),
                         ("runtime", "dev01", self.web.port))
        human = self.ok("forward", "list").stdout
        self.assertIn(f"127.0.0.1:{p2}", human)
        self.assertIn("dev01", human)

    def test_forward_rm_then_connection_refused(self):
        p2 = free_port()
        self.ok("forward", "add", f"127.0.0.1:{p2}", f"dev01:{self.web.port}")
        wait_until(lambda: port_open(p2), 5, "runtime forward listening")
        # A keep-alive connection with one answer through it before the rm, one after.
        held = socket.create_connection(("127.0.0.1", p2), timeout=10)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"hello from web\n"):
            chunk = held.recv(4096)
            self.assertTrue(chunk, f"closed after {first!r}")
            first += chunk
        self.ok("forward", "rm", f"127.0.0.1:{p2}")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p2), timeout=5).close()
        with held:
            held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertIn(b"hello from web", recv_all(held))
        r = self.stack.cli("forward", "rm", f"127.0.0.1:{p2}")
        self.assertEqual(r.returncode, 1)
        doc = json.loads(self.ok("forward", "list", "--json").stdout)
        self.assertNotIn(f"127.0.0.1:{p2}", [f["listen"] for f in doc["forwards"]])

    def test_forward_add_on_port_in_use_exits_1(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            for port in (busy.getsockname()[1], self.cfg_port):  # the OS's, a forward's
                listen = f"127.0.0.1:{port}"
                r = self.stack.cli("forward", "add", listen, "dev01:22")
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(listen, r.stderr)
                status, doc = self.stack.control("POST", "/v1/forwards",
                                                 {"listen": listen, "device": "dev01", "port": 22})
                self.assertEqual((status, doc["error"]), (409, "listen_in_use"), doc)
        r = self.stack.cli("forward", "add", "127.0.0.1:1234")  # usage error
        self.assertEqual(r.returncode, 2)
        # The config forward still works.
        r = curl(f"http://127.0.0.1:{self.cfg_port}/")
        self.assertIn("hello from dev01", r.stdout)


    def test_forwards_are_bounded_and_a_removed_one_frees_its_place(self):
        added = []
        try:
            while True:
                status, doc = self.stack.control("POST", "/v1/forwards",
                                                 {"listen": "127.0.0.1:0", "device": "dev01",
                                                  "port": self.web.port})
                if status != 201:
                    break
                added.append(doc["listen"])
                self.assertLessEqual(len(added), 1024, "no bound on forwards")
            # the config forward counts too
            self.assertEqual((status, doc["error"], len(added) + 1), (403, "too_many_forwards", 1024),
                             doc)
            r = self.stack.cli("forward", "add", "127.0.0.1:0", f"dev01:{self.web.port}")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("at most 1024 forwards", r.stderr)
            status, _ = self.stack.control("DELETE", "/v1/forwards/" + added.pop())
            self.assertEqual(status, 204)
            status, doc = self.stack.control("POST", "/v1/forwards",
                                             {"listen": "127.0.0.1:0", "device": "dev01",
                                              "port": self.web.port})
            self.assertEqual(status, 201, doc)
            added.append(doc["listen"])
            r = curl(f"http://{doc['listen']}/")
            self.assertIn("hello from web", r.stdout)
        finally:
            for listen in added:
                self.stack.control("DELETE", "/v1/forwards/" + listen)


class Control(DaemonTest):
    """The control API over the Unix socket and the CLI commands on top of it."""

    @classmethod
    def setUpClass(cls):
        cls.echo = Echo()
        cls.stack = Stack(with_sshd=False, allow_extra=[cls.echo.port])

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.echo)

    def json_of(self, *args):
        r = self.stack.cli(*args, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_status_json_shows_hub_connected(self):
        self.stack.assert_serves()  # one stream went through the hub
        wait_until(lambda: self.json_of("status")["hub"]["connected"] is True, 10,
                   "hub connected in status")
        doc = self.json_of("status")
        s = self.stack
        self.assertEqual(doc["hub"]["url"], f"https://127.0.0.1:{s.hub_port}")
        self.assertEqual(doc["listen"], f"127.0.0.1:{s.socks_port}")
        self.assertEqual(doc["pid"], s.procs["daemon"].pid)
        self.assertEqual((doc["auth"], doc["suffix"], doc["direct"]), (False, ".hub", False))
        self.assertGreaterEqual(doc["streams_total"], 1)
        human = self.stack.cli("status")
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertIn(f"127.0.0.1:{s.hub_port}", human.stdout)
        self.assertIn("connected", human.stdout)

    def test_streams_json_shows_open_stream_with_growing_bytes(self):
        code, sock = socks5_connect(self.stack.socks_port, "dev01.hub", self.echo.port)
        self.assertEqual(code, 0)
        with sock:
            self.assertTrue(echo_round_trip(sock, b"x" * 1000))
            client = "127.0.0.1:%d" % sock.getsockname()[1]

            def mine():
                for st in self.json_of("streams")["streams"]:
                    if st["client"] == client:
                        return st
                return None

            wait_until(lambda: (m := mine()) and m["bytes_to_device"] >= 1000 and
                       m["bytes_from_device"] >= 1000, 10, "the stream's bytes")
            st = mine()
            self.assertEqual((st["device"], st["port"], st["via"], st["target"]),
                             ("dev01", self.echo.port, "socks5", f"dev01.hub:{self.echo.port}"))
            self.assertTrue(st["stream_id"])
            self.assertTrue(echo_round_trip(sock, b"y" * 50000))
            wait_until(lambda: mine()["bytes_to_device"] >= 51000 and
                       mine()["bytes_from_device"] >= 51000, 10, "the byte counts to grow")
            human = self.stack.cli("streams")
            self.assertEqual(human.returncode, 0, human.stderr)
            self.assertIn("dev01", human.stdout)
            self.assertIn(client, human.stdout)
        wait_until(lambda: mine() is None, 10, "the closed stream to leave the list")

    def test_devices_json_lists_dev01_online(self):
        doc = self.json_of("devices")
        dev = {d["id"]: d for d in doc["devices"]}["dev01"]
        self.assertEqual((dev["online"], dev["enabled"]), (True, True))
        human = self.stack.cli("devices")
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertIn("dev01", human.stdout)

    def test_curl_unix_socket_status(self):
        r = curl("--unix-socket", self.stack.control_path, "http://localhost/v1/status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["pid"], self.stack.procs["daemon"].pid)

    def test_api_errors_are_json(self):
        status, doc = self.stack.control("DELETE", "/v1/forwards/127.0.0.1:1")
        self.assertEqual((status, doc["error"]), (404, "forward_unknown"))
        status, doc = self.stack.control("POST", "/v1/forwards", b"{not json")
        self.assertEqual(status, 400)
        self.assertTrue(doc["message"])
        status, doc = self.stack.control("POST", "/v1/forwards",
                                         {"listen": "127.0.0.1:0", "device": "bad id!",
                                          "port": 80})
        self.assertEqual(status, 400)
        status, _ = self.stack.control("GET", "/v1/nothing")
        self.assertEqual(status, 404)
        status, _ = self.stack.control("PUT", "/v1/status")
        self.assertEqual(status, 405)

    def test_control_socket_mode_0600(self):
        st = os.stat(self.stack.control_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_wrong_control_path_exits_1(self):
        missing = os.path.join(self.stack.dir, "nowhere", "daemon.sock")
        for args in (["status", "--control", missing], ["streams", "--control", missing],
                     ["forward", "list", "--control", missing]):
            r = self.stack.cli(*args)
            self.assertEqual(r.returncode, 1, (args, r.stdout))
            self.assertIn("is devstreamsd running", r.stderr)
            self.assertIn(missing, r.stderr)
        r = self.stack.cli("status", control=missing)  # DEVSTREAMS_CONTROL
        self.assertEqual(r.returncode, 1)


class SocksEdges(DaemonTest):
    """The SOCKS front byte for byte: reply codes, broken clients, SOCKS4a, pipelining."""

    @classmethod
    def setUpClass(cls):
        cls.echo = Echo()
        cls.stack = Stack(with_sshd=False, allow_extra=[cls.echo.port], client_timeout="2s")
        cls.port = cls.stack.socks_port

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.echo)

    def open_echo(self):
        code, s = socks5_connect(self.port, "dev01.hub", self.echo.port)
        self.assertEqual(code, 0)
        self.assertTrue(echo_round_trip(s, b"before"))
        return s

    def test_bind_and_udp_associate_give_0x07(self):
        for cmd in (2, 3):
            code, _ = socks5_connect(self.port, "dev01.hub", self.echo.port, cmd=cmd)
            self.assertEqual(code, 0x07, f"command {cmd}")

    def test_unknown_atyp_gives_0x08(self):
        s, method = socks5_greet(self.port)
        with s:
            self.assertEqual(method, 0)
            s.sendall(b"\x05\x01\x00\x09" + b"\x7f\x00\x00\x01\x00\x16")
            code, _ = socks5_reply(s)
            self.assertEqual(code, 0x08)
            self.assertTrue(closed_within(s, 10))

    def test_ipv6_literal_without_direct_gives_0x02(self):
        code, _ = socks5_connect(self.port, "::1", self.echo.port)
        self.assertEqual(code, 0x02)

    def test_truncated_request_then_close_leaves_other_stream(self):
        other = self.open_echo()
        with other:
            for partial in (b"\x05", b"\x05\x02\x00", b"\x05\x01\x00\x05\x01\x00\x03\x09dev0",
                            b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00", b"\x04\x01\x00\x16\x00\x00",
                            b"CONNECT dev01.hub:22 HTT"):
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
                    c.sendall(partial)
            self.assertTrue(echo_round_trip(other, b"after the truncated ones"))

    def test_garbage_closes_the_connection(self):
        other = self.open_echo()
        with other:
            junk = [b"\x00" * 300, bytes(range(0x80, 0x100)) * 2, b"\x05" + b"\xff" * 299,
                    b"\x04\x99" + b"\xee" * 298, b"\x05\x01\x00\x06" + b"\x01" * 296,
                    b"GARBAGE " * 40, b"GET /" + b"a" * (256 * 1024)]
            for data in junk:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
                    try:
                        c.sendall(data)
                    except (BrokenPipeError, ConnectionResetError):
                        continue  # closed while we were still sending: fine
                    self.assertTrue(closed_within(c, 10), data[:20])
            self.assertTrue(echo_round_trip(other, b"after the garbage"))

    def test_gssapi_only_offer_gets_ff(self):
        s, method = socks5_greet(self.port, b"\x01")
        with s:
            self.assertEqual(method, 0xFF)
            self.assertTrue(closed_within(s, 10))

    def test_socks4a_connect_by_name_and_data_flows(self):
        code, s = socks4_connect(self.port, "dev01.hub", self.echo.port, userid=b"someone")
        self.assertEqual(code, 0x5A)
        with s:
            self.assertTrue(echo_round_trip(s, b"socks4a" * 1000))
        for host, port, cmd in [("dev01.hub", 23, 1),              # not allowed
                                ("nosuchdevice.hub", 22, 1),       # unknown device
                                ("127.0.0.1", self.echo.port, 1),  # SOCKS4 IPv4, not a device
                                ("dev01.hub", self.echo.port, 2)]:  # BIND
            code, _ = socks4_connect(self.port, host, port, cmd=cmd)
            self.assertEqual(code, 0x5B, (host, port, cmd))

    def test_pipelined_greeting_request_and_data_in_one_send(self):
        name = b"dev01.hub"
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
                      self.echo.port.to_bytes(2, "big") + b"pipelined bytes")
            self.assertEqual(recv_exact(s, 2), b"\x05\x00")
            code, _ = socks5_reply(s)
            self.assertEqual(code, 0)
            self.assertEqual(recv_exact(s, 15), b"pipelined bytes")
        # SOCKS4a and HTTP CONNECT pipelined the same way.
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(b"\x04\x01" + self.echo.port.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00" +
                      name + b"\x00" + b"four-a")
            self.assertEqual(recv_exact(s, 8)[1], 0x5A)
            self.assertEqual(recv_exact(s, 6), b"four-a")
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            target = f"dev01.hub:{self.echo.port}".encode()
            s.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n" +
                      b"http-bytes")
            head = b""
            while b"\r\n\r\n" not in head:
                head += recv_exact(s, 1)
            self.assertRegex(head, rb"^HTTP/1\.[01] 200")
            self.assertEqual(recv_exact(s, 10), b"http-bytes")

    def test_handshakes_sent_one_byte_at_a_time(self):
        # Each byte in its own TCP segment: no "one recv() is one message" assumption.
        name = b"dev01.hub"
        port = self.echo.port.to_bytes(2, "big")
        target = f"dev01.hub:{self.echo.port}".encode()
        for hello, reply_len, ok in [
                (b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name + port, 12,
                 lambda r: r[:2] == b"\x05\x00" and r[3] == 0),
                (b"\x04\x01" + port + b"\x00\x00\x00\x01id\x00" + name + b"\x00", 8,
                 lambda r: r[1] == 0x5A),
                (b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n", 12,
                 lambda r: r.startswith(b"HTTP/1.1 200"))]:
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(len(hello)):
                    c.sendall(hello[i:i + 1])
                    time.sleep(0.002)  # pacing only; nothing is asserted on time
                reply = recv_exact(c, reply_len)
                self.assertTrue(ok(reply), (hello[:10], reply))
                if hello.startswith(b"CONNECT"):
                    while not reply.endswith(b"\r\n\r\n"):
                        reply += recv_exact(c, 1)
                self.assertTrue(echo_round_trip(c, b"byte by byte"))

    def test_silent_client_is_closed_after_client_timeout(self):
        other = self.open_echo()
        with other:
            start = time.monotonic()
            clients = [socket.create_connection(("127.0.0.1", self.port), timeout=10)
                       for _ in range(3)]
            clients[1].sendall(b"\x05\x01")              # half a greeting
            clients[2].sendall(b"GET /proxy.pac HTTP/1.1\r\n")  # half an HTTP head
            for c in clients:
                with c:
                    self.assertTrue(closed_within(c, 10))
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, 1.5)  # the configured 2 s, not at once
            self.assertTrue(echo_round_trip(other, b"the open stream is not timed out"))


class Outages(DaemonTest):
    """Tests that stop the hub or the agent get a stack of their own."""

    def setUp(self):
        self.stack = Stack(with_sshd=False)
        self.addCleanup(self.stack.close)

    def tearDown(self):
        super().tearDown()
        self.assertCleanShutdown(self.stack)

    def wait_streams_work(self):
        def works():
            code, s = socks5_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
            if s:
                s.close()
            return code == 0
        wait_until(works, 40, "streams to work again")

    def test_hub_unreachable_gives_0x01_and_502(self):
        s = self.stack
        s.stop("hub")
        try:
            code, _ = socks5_connect(s.socks_port, "dev01.hub", s.http_port)
            self.assertEqual(code, 0x01)
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy",
                     f"http://127.0.0.1:{s.socks_port}", f"http://dev01.hub:{s.http_port}/")
            self.assertEqual(r.stdout, "502")
            status = json.loads(s.cli("status", "--json").stdout)
            self.assertFalse(status["hub"]["connected"])
            self.assertTrue(status["hub"]["last_error"])
            r = s.cli("devices")
            self.assertEqual(r.returncode, 1)  # the hub's answer is missing: 502 from the API
        finally:
            s.start_hub()
        self.wait_streams_work()

    def test_offline_device_gives_503_over_http_and_5b_over_socks4(self):
        s = self.stack
        s.stop("agent")
        try:
            wait_until(lambda: socks5_connect(s.socks_port, "dev01.hub", s.http_port)[0] == 0x03,
                       10, "device offline")
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy",
                     f"http://127.0.0.1:{s.socks_port}", f"http://dev01.hub:{s.http_port}/")
            self.assertEqual(r.stdout, "503")
            code, _ = socks4_connect(s.socks_port, "dev01.hub", s.http_port)
            self.assertEqual(code, 0x5B)
            doc = json.loads(s.cli("devices", "--json").stdout)
            self.assertFalse({d["id"]: d for d in doc["devices"]}["dev01"]["online"])
        finally:
            s.start_agent()
        self.wait_streams_work()

    def test_sigterm_with_open_streams_exits_0(self):
        s = self.stack
        code, sock = socks5_connect(s.socks_port, "dev01.hub", s.http_port)
        self.assertEqual(code, 0)
        self.assertTrue(os.path.exists(s.control_path))
        with sock:
            self.assertEqual(s.stop("daemon", signal.SIGTERM), 0)
            self.assertTrue(closed_within(sock, 10))
        s.start_daemon()  # and it starts again on the same socket path

    def test_sigterm_during_negotiation_answers_the_client_and_exits_0(self):
        s = self.stack
        sock, method = socks5_greet(s.socks_port)
        self.assertEqual(method, 0)
        with sock:
            p = s.procs["daemon"]
            p.send_signal(signal.SIGTERM)
            # The request arrives while the daemon shuts down: it is answered (or the connection
            # closed), never crashes the daemon.
            name = b"dev01.hub"
            with contextlib.suppress(OSError):
                sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
                             struct.pack(">H", s.http_port))
            self.assertTrue(closed_within(sock, 10))
        self.assertEqual(s.stop("daemon", signal.SIGTERM), 0)
        s.start_daemon()


class StopAtStart(StackTest):
    """A stop request right after the proxy port opens ends the daemon cleanly (exit 0): the
    signals are held from before it listens until its loop handles them."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(with_sshd=False)
        cls.stack.stop("daemon")

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack)

    def test_sigterm_as_soon_as_the_port_opens_is_a_clean_stop(self):
        s = self.stack
        config = os.path.join(s.state, "daemon.yaml")
        env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(s.dir, "run"))
        codes = []
        for _ in range(20):
            p = subprocess.Popen([program("devstreamsd"), "-c", config], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 15
            while not port_open(s.socks_port) and p.poll() is None and time.monotonic() < deadline:
                pass
            p.send_signal(signal.SIGTERM)
            codes.append(p.wait(15))
        self.assertEqual(codes, [0] * 20, "exit codes (negative: killed by the signal)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
