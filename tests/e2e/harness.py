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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def send_text(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        hdr = bytes([0x81])
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


class SinkSource:
    """A TCP target on the device side: sends `size` bytes from a seeded generator while hashing
    all it receives; after the client's half-close it sends the 64 hex digits of that hash."""

    def __init__(self, size, seed=7):
        self.size = size
        self.seed = seed
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

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

    def _serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
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

    def close(self):
        self.srv.close()


class Stack:
    """hub + agent + daemon from a fresh state folder, plus an HTTP server and sshd targets."""

    def __init__(self, allow_extra=(), handshake="60s", with_sshd=True):
        self.dir = tempfile.mkdtemp(prefix="devstreams-e2e-")
        self.procs = {}
        self.logs = {}
        self.exit_codes = {}
        self.hub_port = free_port()
        self.socks_port = free_port()
        self.http_port = free_port()
        self.ssh_port = free_port() if with_sshd else None
        self.closed_port = free_port()  # allowed, but nothing listens there
        allow = [f"127.0.0.1:{self.http_port}", f"127.0.0.1:{self.closed_port}"]
        if self.ssh_port:
            allow.append(f"127.0.0.1:{self.ssh_port}")
        allow += [f"127.0.0.1:{p}" for p in allow_extra]
        env = dict(os.environ, DS_HUB_PORT=str(self.hub_port), DS_SOCKS_PORT=str(self.socks_port),
                   DS_ALLOW=",".join(allow), DS_HANDSHAKE_TIMEOUT=handshake, DS_LOG_LEVEL="debug")
        self.state = os.path.join(self.dir, "state")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "init-state.sh"), self.state],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        self.registry = self._registry()
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
        self.start("daemon", [program("devstreamsd"), "-c", os.path.join(self.state, "daemon.yaml")])
        wait_until(lambda: port_open(self.socks_port), what="daemon SOCKS port")
        wait_until(lambda: port_open(self.http_port), what="HTTP server")
        self.wait_device_online()

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

    def start(self, name, argv):
        if name in self.logs:
            self.logs[name].close()
        self.logs[name] = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=self.logs[name], stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
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
        with open(f"{d}/sshd_config", "w") as f:
            f.write(f"""Port {self.ssh_port}
ListenAddress 127.0.0.1
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers {user}
""")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)
        self.start("sshd", [sshd, "-D", "-e", "-f", f"{d}/sshd_config"])
        wait_until(lambda: port_open(self.ssh_port), what="sshd")

    def ssh(self, command, timeout=60):
        proxy = f"{program('devstreams')} --socks 127.0.0.1:{self.socks_port} connect %h %p"
        argv = ["ssh", "-F", "/dev/null", "-i", f"{self.dir}/client_key", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ProxyCommand={proxy}",
                "-p", str(self.ssh_port), f"{self.ssh_user}@dev01.hub", command]
        return subprocess.run(argv, capture_output=True, timeout=timeout)

    def problems(self):
        """Stops everything; returns what went wrong in our programs: a non-zero exit after
        SIGTERM, or a sanitizer report in a log."""
        for name in list(self.procs):
            self.stop(name)
        found = []
        for name in ("hub", "agent", "daemon"):
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
        for name in ("hub", "agent", "daemon"):
            print(f"----- {name}.log -----")
            print(self.log(name)[-6000:])


class StackTest(unittest.TestCase):
    """Base of the e2e test classes: prints the programs' logs when a test fails, and checks
    that a stack shut down cleanly (exit 0 on SIGTERM, no sanitizer report)."""

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        res = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            self.stack.dump_logs()
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
