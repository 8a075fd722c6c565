"""End-to-end harness: a private devstreams stack on loopback (hub, agent, daemon), real target
services (sshd, an HTTP server, a byte sink/source) and small raw clients (SOCKS5, WebSocket)
used to check replies byte for byte. Every port is picked free on 127.0.0.1; every process is
stopped when the stack is."""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DS_BIN_DIR", os.path.join(ROOT, "build", "default", "src"))


def program(name):
    sub = {"devstreams-hub": "hub", "devstreams-agent": "agent", "devstreamsd": "daemon",
           "devstreams": "cli"}[name]
    return os.path.join(BIN, sub, name)


def _listen_range():
    """Ports for the tests' listeners: below the kernel's ephemeral range, so that no outbound
    connection of a test running in parallel can be holding one, in a block of this process's."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low, 12000)
    blocks = (top - 10000) // 100
    block = os.getpid() % blocks
    return 10000 + block * 100, 10000 + (block + 1) * 100


_PORTS = {"range": None, "next": 0, "given": set()}


def free_port():
    """A TCP port on loopback that nothing listens on and that this process never handed out
    before: two calls never return the same port (bind(0) twice can)."""
    if _PORTS["range"] is None:
        _PORTS["range"] = _listen_range()
        _PORTS["next"] = random.randrange(100)
    low, high = _PORTS["range"]
    for _ in range(high - low):
        port = low + _PORTS["next"] % (high - low)
        _PORTS["next"] += 1
        if port in _PORTS["given"]:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS["given"].add(port)
        return port
    while True:  # the block is spent: fall back to the kernel's choice, still never twice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS["given"]:
            _PORTS["given"].add(port)
            return port


def wait_until(pred, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def port_open(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def socks_connect(socks_port, host, port, timeout=30):
    """SOCKS5 CONNECT to host:port by name. Returns (reply_code, socket or None)."""
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=timeout)
    name = host.encode()
    s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
              struct.pack(">H", port))
    head = recv_exact(s, 2)
    assert head == b"\x05\x00", head
    reply = recv_exact(s, 10)
    assert reply[0] == 5 and reply[2] == 0 and reply[3] == 1, reply
    if reply[1] != 0:
        s.close()
        return reply[1], None
    return 0, s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_all(s):
    """Everything until the peer closes (a reset counts as the end)."""
    buf = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(1 << 16):
            buf += chunk
    return buf


def closed_within(s, timeout):
    """Whether the peer closes `s` (EOF or reset) within `timeout` seconds; data is discarded."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            if not s.recv(4096):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def socks5_greet(socks_port, methods=b"\x00", user=None, password=None, timeout=30):
    """Connects and negotiates the method. Returns (socket, chosen method); with user and
    password offered and 0x02 chosen, runs RFC 1929 and raises PermissionError on failure."""
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=timeout)
    s.sendall(b"\x05" + bytes([len(methods)]) + methods)
    head = recv_exact(s, 2)
    if head[0] != 5:
        raise AssertionError(f"bad method reply {head!r}")
    if head[1] == 2 and user is not None:
        u, p = user.encode(), password.encode()
        s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        status = recv_exact(s, 2)
        if status != b"\x01\x00":
            s.close()
            raise PermissionError(f"RFC 1929 status {status!r}")
    return s, head[1]


def socks5_address(host):
    """ATYP and address bytes of a host: IPv4 and IPv6 literals as such, names as domain."""
    for family, atyp in ((socket.AF_INET, 1), (socket.AF_INET6, 4)):
        with contextlib.suppress(OSError):
            return bytes([atyp]) + socket.inet_pton(family, host)
    return b"\x03" + bytes([len(host.encode())]) + host.encode()


def socks5_reply(s):
    """Reads a SOCKS5 reply (any ATYP); returns (reply code, bound address bytes)."""
    head = recv_exact(s, 4)
    if head[0] != 5:
        raise AssertionError(f"bad reply {head!r}")
    n = {1: 4, 4: 16}.get(head[3])
    if n is None:
        n = recv_exact(s, 1)[0] if head[3] == 3 else 0
    return head[1], recv_exact(s, n + 2)


def socks5_connect(socks_port, host, port, user=None, password=None, timeout=30, cmd=1):
    """SOCKS5 command (CONNECT by default) with optional RFC 1929. Returns (reply, socket or
    None)."""
    methods = b"\x02" if user is not None else b"\x00"
    s, method = socks5_greet(socks_port, methods, user, password, timeout)
    if method == 0xFF:
        s.close()
        return 0xFF, None
    s.sendall(bytes([5, cmd, 0]) + socks5_address(host) + struct.pack(">H", port))
    code, _ = socks5_reply(s)
    if code != 0:
        s.close()
        return code, None
    return 0, s


def socks4_connect(socks_port, host, port, userid=b"", cmd=1, timeout=30):
    """SOCKS4 (IPv4 literal) or SOCKS4a (name) request. Returns (reply byte, socket or None)."""
    try:
        ip, name = socket.inet_aton(host), b""
    except OSError:
        ip, name = b"\x00\x00\x00\x01", host.encode() + b"\x00"
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=timeout)
    s.sendall(bytes([4, cmd]) + struct.pack(">H", port) + ip + userid + b"\x00" + name)
    reply = recv_exact(s, 8)
    if reply[0] != 0:
        raise AssertionError(f"bad SOCKS4 reply {reply!r}")
    if reply[1] != 0x5A:
        s.close()
        return reply[1], None
    return 0x5A, s


def unix_http(path, method, target, body=None, timeout=10):
    """One HTTP/1.1 request over a Unix socket. Returns (status, headers dict, body bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    with s:
        s.connect(path)
        data = b"" if body is None else (body if isinstance(body, bytes) else
                                         json.dumps(body).encode())
        head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        s.sendall(head.encode() + b"\r\n" + data)
        raw = recv_all(s)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        rest = rest[:int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, rest


def run_chromium(url, *flags, timeout=90):
    """Headless Chromium with a throw-away profile; returns the CompletedProcess of
    --dump-dom, or None when chromium is not installed outside CI (the caller skips)."""
    browser = shutil.which("chromium")
    if not browser:
        if not os.environ.get("CI"):
            return None
        raise AssertionError("chromium missing on a CI machine")
    profile = tempfile.mkdtemp(prefix="devstreams-chromium-")
    try:
        return subprocess.run(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}", *flags,
             "--dump-dom", url], capture_output=True, timeout=timeout,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class DeviceWeb:
    """A threaded HTTP server on the device side (on `address`, 127.0.0.1 by default), in this
    process, recording what it sees.
      /page.html  20 <img> of /r/0.gif../r/19.gif and a script writing "loaded N/20"
      /r/N.gif    a 1x1 GIF, answered after `delay` seconds (so that the 20 overlap)
      /echo       the request line, headers and body as JSON
      anything else: "hello from web" """

    GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
    # Images in the markup delay the load event, and --dump-dom waits for that event.
    PAGE = ("<!doctype html><html><body><div id=\"status\">loading</div>\n" +
            "".join(f"<img src=\"/r/{i}.gif\">" for i in range(20)) + """
<script>
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.getElementById("status").textContent = "loaded " + ok + "/20";
});
</script></body></html>
""")

    def __init__(self, delay=0.1, address="127.0.0.1"):
        import http.server

        web = self
        self.delay = delay
        self.lock = threading.Lock()
        self.requests = []  # (request line, headers dict)
        self.active = 0
        self.max_active = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with web.lock:
                    web.requests.append((self.requestline, dict(self.headers.items())))
                    web.active += 1
                    web.max_active = max(web.max_active, web.active)
                try:
                    self._answer()
                finally:
                    with web.lock:
                        web.active -= 1

            do_POST = do_GET

            def _answer(self):
                path = urllib.parse.urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                posted = self.rfile.read(length) if length else b""
                if path == "/page.html":
                    body, ctype = web.PAGE.encode(), "text/html"
                elif path.startswith("/r/"):
                    time.sleep(web.delay)
                    body, ctype = web.GIF, "image/gif"
                elif path == "/echo":
                    body = json.dumps({"line": self.requestline,
                                       "headers": dict(self.headers.items()),
                                       "body": posted.decode(errors="replace")}).encode()
                    ctype = "application/json"
                else:
                    body, ctype = b"hello from web\n", "text/plain"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            daemon_threads = True

        self.server = Server((address, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, prefix):
        with self.lock:
            return sum(1 for line, _ in self.requests if line.split()[1].startswith(prefix))

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.max_active = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def sas_token(resource, key_b64, expiry, policy=None):
    sr = urllib.parse.quote_plus(resource, safe="")
    to_sign = (sr + "\n" + str(expiry)).encode()
    sig = base64.b64encode(hmac.new(base64.b64decode(key_b64), to_sign, hashlib.sha256).digest())
    tok = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote_plus(sig.decode(), safe='')}&se={expiry}"
    return tok + (f"&skn={policy}" if policy else "")


class WsClient:
    """A minimal WebSocket client over TLS for tests that play a misbehaving device."""

    def __init__(self, port, path, headers, ca):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        for k, v in headers.items():
            req += f"{k}: {v}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise EOFError("closed during handshake")
            head += chunk
        self.status = int(head.split(b" ")[1])
        self.headers = {}  # lower-case names
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()

    def send_text(self, text):
        self.send_frame(0x1, text.encode())

    def send_frame(self, opcode, payload):
        """One masked frame with the FIN bit."""
        mask = os.urandom(4)
        hdr = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def recv_frame(self):
        b0, b1 = recv_exact(self.sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(self.sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(self.sock, 8))[0]
        return b0 & 0x0F, recv_exact(self.sock, n)

    def recv_text(self):
        while True:
            op, data = self.recv_frame()
            if op == 1:
                return data.decode()
            if op == 8:
                raise EOFError("closed")

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class TcpServer:
    """A threaded TCP server on loopback for device-side targets: `handle(conn)` runs in a
    thread of its own for each connection. Subclasses set their state before calling
    `__init__`, which starts accepting."""

    def __init__(self, host="127.0.0.1", backlog=64, port=0):
        self.srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((host, port))
        self.srv.listen(backlog)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.srv.close()


class SinkSource(TcpServer):
    """A TCP target on the device side: sends `size` bytes from a seeded generator while hashing
    all it receives; after the client's half-close it sends the 64 hex digits of that hash."""

    def __init__(self, size, seed=7):
        self.size = size
        self.seed = seed
        super().__init__()

    @staticmethod
    def stream(seed, size, chunk=1 << 16):
        """Deterministic pseudo-random bytes (SHA-256 in counter mode): both ends can make them."""
        sent = 0
        counter = 0
        block = b""
        while sent < size:
            while len(block) < chunk:
                block += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
                counter += 1
            n = min(chunk, size - sent)
            yield block[:n]
            block = block[n:]
            sent += n

    def handle(self, conn):
        h = hashlib.sha256()

        def reader():
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return
                h.update(data)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            for piece in self.stream(self.seed, self.size):
                conn.sendall(piece)
            t.join()
            conn.sendall(h.hexdigest().encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            t.join(timeout=5)
            conn.close()


class Daemon:
    """A further devstreamsd of a stack, under a service policy of its own (Stack.add_daemon)."""

    def __init__(self, name, socks_port, control_path, users):
        self.name = name  # its log is `name`.log in the stack's folder
        self.socks_port = socks_port
        self.control_path = control_path
        self.users = list(users)

    def connect(self, host, port, user=None, password=None, timeout=30):
        """SOCKS5 CONNECT, as `user` (RFC 1929) or without auth: (reply, socket or None)."""
        return socks5_connect(self.socks_port, host, port, user, password, timeout=timeout)


class Stack:
    """hub + agent + daemon from a fresh state folder, plus an HTTP server and sshd targets.

    Daemon options (written into the daemon section of daemon.yaml): `users` [(name, password)],
    `aliases` {name: (device, port or None) or a mapping of the alias's keys (device, port,
    host, unix)}, `direct` bool, `control_socket` (default: a file
    in the stack's folder, see `control_path`), `forwards` [(listen, device, port)] (port
    "http" or "ssh": the stack's own targets), `client_timeout` ("10s"). The daemon is started
    with XDG_RUNTIME_DIR in the stack's folder too, so nothing of it lands in the real runtime
    folder. A stack that fails to start stops what it started and raises.

    The agent's allow-list holds the stack's own targets and `allow_extra`: a port or port
    range ("8000-8100", on 127.0.0.1), a rule string ("127.0.0.2/32:80", "unix:/path"; "{ssh}" and "{http}" stand for
    the stack's own ports) or a mapping ({"to": rule,
    "from": [callers]}). `policies` adds service policies to the registry seed, each a mapping
    with `name`, `permissions` and optionally `devices` (keys are made: `policy_keys[name]`);
    `service_devices` holds the stack's own policy "service" to a device set. `ssh_listen`: the
    addresses the private sshd listens on. Further daemons under other policies: add_daemon()."""

    def __init__(self, allow_extra=(), handshake="60s", with_sshd=True, users=(), aliases=None,
                 direct=None, control_socket=None, forwards=(), client_timeout=None, policies=(),
                 service_devices=(), ssh_listen=("127.0.0.1",)):
        self.dir = tempfile.mkdtemp(prefix="devstreams-e2e-")
        self.procs = {}
        self.logs = {}
        self.exit_codes = {}
        self.daemons = []  # the names of further daemons (add_daemon)
        self.ssh_listen = list(ssh_listen)
        try:
            self._up(allow_extra, handshake, with_sshd, users, aliases, direct, control_socket,
                     forwards, client_timeout, policies, service_devices)
        except BaseException:
            self.dump_logs()  # the reason is often in a log
            self.close()  # no programs left behind
            raise

    def _up(self, allow_extra, handshake, with_sshd, users, aliases, direct, control_socket,
            forwards, client_timeout, policies, service_devices):
        self.users = list(users)
        self.forwards = list(forwards)
        self.state = os.path.join(self.dir, "state")
        self.control_path = control_socket or os.path.join(self.state, "daemon.sock")
        self.hub_port = free_port()
        self.socks_port = free_port()
        self.http_port = free_port()
        self.ssh_port = free_port() if with_sshd else None
        self.closed_port = free_port()  # allowed, but nothing listens there
        allow = [f"127.0.0.1:{self.http_port}", f"127.0.0.1:{self.closed_port}"]
        if self.ssh_port:
            allow.append(f"127.0.0.1:{self.ssh_port}")
        named = {"http": self.http_port, "ssh": self.ssh_port}  # "{ssh}" in a rule: the port
        allow += [p.format(**named) if isinstance(p, str) and ":" in p else f"127.0.0.1:{p}"
                  for p in allow_extra if not isinstance(p, dict)]
        env = dict(os.environ, DS_HUB_PORT=str(self.hub_port), DS_SOCKS_PORT=str(self.socks_port),
                   DS_ALLOW=",".join(allow), DS_HANDSHAKE_TIMEOUT=handshake, DS_LOG_LEVEL="debug",
                   DS_POLICY_DEVICES=",".join(service_devices),
                   # The data plane under test: multiplexed (default) or one WebSocket per stream.
                   DS_MULTIPLEX=os.environ.get("DS_E2E_MULTIPLEX", ""))
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "init-state.sh"), self.state],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        # Mapping rules ({to, from}) hold commas: appended to the allow-list, the agent
        # section's last key, as JSON (a valid YAML flow mapping).
        with open(os.path.join(self.state, "agent.yaml"), "a") as f:
            f.writelines(f"    - {json.dumps(p)}\n" for p in allow_extra if isinstance(p, dict))
        self.policy_keys = {}
        with open(os.path.join(self.state, "bootstrap.yaml"), "a") as f:  # `policies:` is last
            for pol in policies:
                key = base64.b64encode(os.urandom(32)).decode()
                self.policy_keys[pol["name"]] = key
                f.write(f"  - {json.dumps(dict(pol, key=key))}\n")
        self.registry = self._registry()
        self.policy_keys["service"] = self.registry["service_key"]
        self._daemon_options(aliases, direct, client_timeout)
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<html><body><h1 id='greeting'>hello from dev01</h1></body></html>\n")
        self.start("http", ["python3", "-m", "http.server", str(self.http_port), "--bind",
                            "127.0.0.1", "--directory", www])
        if self.ssh_port:
            self._start_sshd()
        self.start_hub()
        self.start_agent()
        self.start_daemon()
        wait_until(lambda: port_open(self.http_port), what="HTTP server")
        self.wait_device_online()

    def _daemon_options(self, aliases, direct, client_timeout):
        """Appends the daemon options to daemon.yaml (its daemon section is the last block)."""
        q = json.dumps  # a JSON string is a valid YAML scalar
        lines = [f"  control_socket: {q(self.control_path)}"]
        if self.users:
            lines.append("  users:")
            lines += [f"    - {{name: {q(n)}, password: {q(p)}}}" for n, p in self.users]
        if aliases:
            lines.append("  aliases:")
            for name, alias in aliases.items():
                if isinstance(alias, dict):
                    lines.append(f"    {q(name)}: {q(alias)}")
                    continue
                device, port = alias
                extra = f", port: {port}" if port else ""
                lines.append(f"    {q(name)}: {{device: {q(device)}{extra}}}")
        if direct is not None:
            lines.append(f"  direct: {'true' if direct else 'false'}")
        if client_timeout:
            lines.append(f"  client_timeout: {client_timeout}")
        if self.forwards:
            lines.append("  forwards:")
            named = {"http": self.http_port, "ssh": self.ssh_port}  # ports picked above
            for listen, dev, port in self.forwards:
                port = named.get(port, port)
                lines.append(f"    - {{listen: {q(listen)}, device: {q(dev)}, port: {port}}}")
        path = os.path.join(self.state, "daemon.yaml")
        with open(path) as f:  # init-state.sh may write its own control_socket: ours wins
            text = "".join(line for line in f if not line.startswith("  control_socket:"))
        with open(path, "w") as f:
            f.write(text + "\n".join(lines) + "\n")

    def start_daemon(self):
        run = os.path.join(self.dir, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        env = dict(os.environ, XDG_RUNTIME_DIR=run)
        config = os.path.join(self.state, "daemon.yaml")
        self.start("daemon", [program("devstreamsd"), "-c", config], env=env)
        wait_until(lambda: port_open(self.socks_port) or self.procs["daemon"].poll() is not None,
                   what="daemon SOCKS port")
        if self.procs["daemon"].poll() is not None:
            raise RuntimeError("devstreamsd exited at start:\n" + self.log("daemon")[-3000:])
        for listen, _, _ in self.forwards:
            port = int(listen.rsplit(":", 1)[1])
            wait_until(lambda: port_open(port), what=f"forward {listen}")

    def add_daemon(self, name, policy, users=(), aliases=None):
        """Starts a further devstreamsd (log `name`.log) under service policy `policy`, with
        proxy `users` [(name, password)] and `aliases` {name: mapping of the alias's keys}, on a
        SOCKS port and control socket of its own. Returns a Daemon."""
        q = json.dumps
        socks_port = free_port()
        control = os.path.join(self.state, f"{name}.sock")
        lines = ["log_level: debug", "daemon:",
                 f"  hub_url: https://127.0.0.1:{self.hub_port}", "  ca: ca.crt",
                 "  hub_hostname: localhost", f"  policy: {q(policy)}",
                 f"  key: {q(self.policy_keys[policy])}", f"  socks_listen: 127.0.0.1:{socks_port}",
                 "  suffix: .hub", f"  control_socket: {q(control)}"]
        if users:
            lines.append("  users:")
            lines += [f"    - {{name: {q(n)}, password: {q(p)}}}" for n, p in users]
        if aliases:
            lines.append("  aliases:")
            lines += [f"    {q(n)}: {q(a)}" for n, a in aliases.items()]
        config = os.path.join(self.state, f"{name}.yaml")
        with open(config, "w") as f:
            f.write("\n".join(lines) + "\n")
        run = os.path.join(self.dir, f"run-{name}")
        os.makedirs(run, mode=0o700, exist_ok=True)
        p = self.start(name, [program("devstreamsd"), "-c", config],
                       env=dict(os.environ, XDG_RUNTIME_DIR=run))
        self.daemons.append(name)
        wait_until(lambda: port_open(socks_port) or p.poll() is not None, what=f"{name} SOCKS port")
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited at start:\n" + self.log(name)[-3000:])
        return Daemon(name, socks_port, control, users)

    def _registry(self):
        with open(os.path.join(self.state, "bootstrap.yaml")) as f:
            text = f.read()
        keys = [line.split('"')[1] for line in text.splitlines() if 'key:' in line]
        return {"device_key": keys[0], "service_key": keys[1]}

    def log(self, name):
        path = os.path.join(self.dir, name + ".log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def start(self, name, argv, env=None):
        if name in self.logs:
            self.logs[name].close()
        self.logs[name] = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=self.logs[name], stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env)
        return self.procs[name]

    def start_hub(self):
        self.start("hub", [program("devstreams-hub"), "-c", os.path.join(self.state, "hub.yaml")])
        wait_until(lambda: port_open(self.hub_port), what="hub port")

    def start_agent(self):
        return self.start("agent", [program("devstreams-agent"), "-c",
                                    os.path.join(self.state, "agent.yaml")])

    def wait_device_online(self, timeout=15):
        wait_until(lambda: "online: control channel" in self.log("agent"), timeout,
                   "agent online")

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if not p:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            code = p.wait()
        if sig == signal.SIGTERM:
            self.exit_codes[name] = code
        return code

    def _start_sshd(self):
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        d = self.dir
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        f"{d}/ssh_host_ed25519_key"], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/client_key"],
                       check=True)
        shutil.copy(f"{d}/client_key.pub", f"{d}/authorized_keys")
        user = os.environ.get("USER") or subprocess.check_output(["id", "-un"], text=True).strip()
        self.ssh_user = user
        listen = "".join(f"ListenAddress {a}\n" for a in self.ssh_listen)
        with open(f"{d}/sshd_config", "w") as f:
            f.write(f"""Port {self.ssh_port}
{listen}HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers {user}
Subsystem sftp internal-sftp
""")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        self.start("sshd", [sshd, "-D", "-e", "-f", f"{d}/sshd_config"])
        wait_until(lambda: port_open(self.ssh_port), what="sshd")

    def ssh(self, command, timeout=60, host="dev01.hub"):
        proxy = f"{program('devstreams')} --socks 127.0.0.1:{self.socks_port} connect %h %p"
        argv = ["ssh", "-F", "/dev/null", "-i", f"{self.dir}/client_key", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ProxyCommand={proxy}",
                "-p", str(self.ssh_port), f"{self.ssh_user}@{host}", command]
        return subprocess.run(argv, capture_output=True, timeout=timeout)

    def cli(self, *args, timeout=30, control=None):
        """Runs `devstreams ARGS` against this stack's daemon (its control socket and SOCKS
        port through the environment)."""
        env = dict(os.environ, DEVSTREAMS_CONTROL=control or self.control_path,
                   DEVSTREAMS_SOCKS=f"127.0.0.1:{self.socks_port}")
        return subprocess.run([program("devstreams"), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)

    def control(self, method, target, body=None):
        """One request to the control API; returns (status, parsed JSON body or None)."""
        status, _, data = unix_http(self.control_path, method, target, body)
        return status, (json.loads(data) if data.strip() else None)

    def connect(self, host, port, timeout=30):
        """SOCKS5 CONNECT as this stack's first user (or without auth): (reply, socket)."""
        user = self.users[0] if self.users else (None, None)
        return socks5_connect(self.socks_port, host, port, *user, timeout=timeout)

    def assert_serves(self):
        """The daemon still runs and a new stream to the device's web page works."""
        p = self.procs.get("daemon")
        if p is None or p.poll() is not None:
            raise AssertionError(f"devstreamsd is not running (exit {p and p.returncode})")
        code, s = self.connect("dev01.hub", self.http_port)
        if code != 0:
            raise AssertionError(f"a new stream after the test got SOCKS reply {code:#04x}")
        with s:
            s.settimeout(20)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            body = recv_all(s)
        if b"hello from dev01" not in body:
            raise AssertionError(f"a new stream after the test got {body[:200]!r}")

    def problems(self):
        """Stops everything; returns what went wrong in our programs: a non-zero exit after
        SIGTERM, or a sanitizer report in a log."""
        for name in list(self.procs):
            self.stop(name)
        found = []
        for name in ("hub", "agent", "daemon", *self.daemons):
            code = self.exit_codes.get(name)
            if code not in (None, 0):
                found.append(f"{name} exited with {code} after SIGTERM")
            text = self.log(name)
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in text:
                    found.append(f"{name}: {marker}\n" + text[text.index(marker) - 200:][:3000])
        return found

    def close(self):
        for name in list(self.procs):
            self.stop(name)
        for f in self.logs.values():
            f.close()
        if os.environ.get("DS_KEEP_E2E"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        for name in ("hub", "agent", "daemon", *self.daemons):
            print(f"----- {name}.log -----")
            print(self.log(name)[-6000:])


class StackTest(unittest.TestCase):
    """Base of the e2e test classes: prints the programs' logs when a test fails, and checks
    that a stack shut down cleanly (exit 0 on SIGTERM, no sanitizer report)."""

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        res = super().run(result)
        stack = getattr(self, "stack", None)  # missing when the stack failed to start
        if stack and result is not None and len(result.failures) + len(result.errors) > before:
            stack.dump_logs()
        return res

    def assertCleanShutdown(self, stack):
        problems = stack.problems()
        if problems:
            stack.dump_logs()
        self.assertEqual(problems, [])

    @staticmethod
    def closeClassStack(stack, *others):
        """For tearDownClass: stops `stack` (and closes `others`), then raises on problems."""
        problems = stack.problems()
        if problems:
            stack.dump_logs()
        stack.close()
        for o in others:
            o.close()
        if problems:
            raise AssertionError("\n".join(problems))
