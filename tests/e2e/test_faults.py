"""Faults, not only attacks: the real programs with a fault-injecting relay (fault_relay.py) as
the HTTP proxy of the agent and of the daemon, so that every hub connection of each can be cut,
delayed or stalled on its own. What a client sees when a stream ends abnormally (a reset, never
a clean close, and a byte-exact prefix of what was sent), how fast the agent and the daemon come
back after a hub outage, what `devstreams status` says meanwhile, a frozen agent, a 64 MiB
transfer over 40 ms of added round trip on both legs, and `devstreams connect` with every kind
of stdin and stdout."""

import contextlib
import fcntl
import hashlib
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_relay import FaultRelay  # noqa: E402
from harness import (SinkSource, Stack, StackTest, TcpServer, program, recv_all,  # noqa: E402
                     socks_connect, wait_until)
from test_hub import https, parse_metrics  # noqa: E402

ONLINE = "online: control channel"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy",
              "ALL_PROXY", "all_proxy")
SEED = 11


@contextlib.contextmanager
def proxy_environment(url):
    """os.environ with HTTPS_PROXY=url and no other proxy variable, for programs started inside."""
    saved = {k: os.environ.pop(k) for k in PROXY_VARS if k in os.environ}
    os.environ["HTTPS_PROXY"] = url
    try:
        yield
    finally:
        os.environ.pop("HTTPS_PROXY", None)
        os.environ.update(saved)


class FaultStack(Stack):
    """A Stack whose agent and daemon reach the hub through relays of their own. `hub_keepalive`
    sets the hub's keepalive interval (a device silent for three of them is offline)."""

    def __init__(self, hub_keepalive=None, **kw):
        self.hub_keepalive = hub_keepalive
        self.agent_relay = FaultRelay(connect_proxy=True).start()
        self.daemon_relay = FaultRelay(connect_proxy=True).start()
        try:
            super().__init__(with_sshd=False, **kw)
        except BaseException:
            self.agent_relay.close()
            self.daemon_relay.close()
            raise

    def start_hub(self):
        if self.hub_keepalive:
            path = os.path.join(self.state, "hub.yaml")
            with open(path) as f:
                text = f.read()
            if "  keepalive:" not in text:
                with open(path, "a") as f:
                    f.write(f"  keepalive: {self.hub_keepalive}\n")
        super().start_hub()

    def start_agent(self):
        with proxy_environment(self.agent_relay.url):
            return super().start_agent()

    def start_daemon(self):
        with proxy_environment(self.daemon_relay.url):
            super().start_daemon()

    def close(self):
        super().close()
        self.agent_relay.close()
        self.daemon_relay.close()

    def online_count(self):
        return self.log("agent").count(ONLINE)

    def status(self):
        code, body = self.control("GET", "/v1/status")
        if code != 200:
            raise AssertionError(f"status answered {code}: {body}")
        return body["hub"]

    def open_streams(self):
        return self.control("GET", "/v1/streams")[1]["streams"]

    def hub_metrics(self):
        r = https(self, "GET", "/metrics", timeout=5)
        if r.status != 200:
            raise AssertionError(f"/metrics answered {r.status}")
        return parse_metrics(r.body.decode())

    def device_online(self):
        code, body = self.control("GET", "/v1/devices")
        return code == 200 and any(d["id"] == "dev01" and d["online"] for d in body["devices"])

    def try_stream(self, timeout=5):
        """One new stream to the device's web page; True when it served the page."""
        try:
            code, s = socks_connect(self.socks_port, "dev01.hub", self.http_port, timeout=timeout)
            if code != 0:
                return False
            with s:
                s.settimeout(timeout)
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b"hello from dev01" in recv_all(s)
        except (OSError, AssertionError, EOFError):
            return False


def pattern_digest(n):
    """SHA-256 of the first `n` bytes of the test pattern."""
    h = hashlib.sha256()
    left = n
    for piece in SinkSource.stream(SEED, n):
        h.update(piece)
        left -= len(piece)
    assert left == 0
    return h.hexdigest()


class HashSink(TcpServer):
    """A device-side target that hashes what it receives and records how each connection ended:
    "eof" (a clean close) or "reset"."""

    def __init__(self):
        self.lock = threading.Lock()
        self.conns = []  # dicts: received, sha (hashlib object), end
        super().__init__()

    def handle(self, conn):
        rec = {"received": 0, "sha": hashlib.sha256(), "end": None}
        with self.lock:
            self.conns.append(rec)
        with conn:
            try:
                while data := conn.recv(1 << 16):
                    rec["sha"].update(data)
                    rec["received"] += len(data)
                rec["end"] = "eof"
            except ConnectionResetError:
                rec["end"] = "reset"

    def last(self):
        with self.lock:
            return self.conns[-1] if self.conns else None


class PatternSource(TcpServer):
    """A device-side target that sends the test pattern until the connection fails."""

    def handle(self, conn):
        with conn, contextlib.suppress(OSError):
            for piece in SinkSource.stream(SEED, 1 << 40):
                conn.sendall(piece)


class Uploader(threading.Thread):
    """Sends the test pattern on `sock` as fast as it goes, watching the socket for the end: a
    clean close (EOF) or an error (reset, broken pipe). Single-threaded on the socket, so whichever
    the kernel reports first is what it records."""

    def __init__(self, sock, size=1 << 40):
        super().__init__(daemon=True)
        self.sock = sock
        self.size = size
        self.sent = 0
        self.end = None  # "eof" or "reset"
        self.ended_at = None

    def run(self):
        self.sock.setblocking(False)
        pending = b""
        gen = SinkSource.stream(SEED, self.size)
        try:
            while True:
                r, w, _ = select.select([self.sock], [self.sock], [], 30)
                if not r and not w:
                    self.end = "timeout"
                    return
                if r:
                    if not self.sock.recv(1 << 16):
                        self.end = "eof"
                        return
                if w:
                    if not pending:
                        pending = next(gen, b"")
                        if not pending:
                            self.sock.shutdown(socket.SHUT_WR)
                            self.end = "sent"
                            return
                    n = self.sock.send(pending)
                    self.sent += n
                    pending = pending[n:]
        except (ConnectionResetError, BrokenPipeError):
            self.end = "reset"
        except OSError as e:
            self.end = f"error {e}"
        finally:
            self.ended_at = time.monotonic()


def download_until_end(sock, stop_after=None, on_progress=None, timeout=30):
    """Reads `sock` until it ends; returns (bytes received, "eof" or "reset", monotonic end)."""
    sock.settimeout(timeout)
    h = hashlib.sha256()
    got = 0
    try:
        while data := sock.recv(1 << 16):
            h.update(data)
            got += len(data)
            if on_progress:
                on_progress(got)
        end = "eof"
    except ConnectionResetError:
        end = "reset"
    return got, h.hexdigest(), end, time.monotonic()


class Cuts(StackTest):
    """The agent's link to the hub is cut (every connection reset) in the middle of a transfer."""

    @classmethod
    def setUpClass(cls):
        cls.source = PatternSource()
        cls.sink = HashSink()
        cls.stack = FaultStack(allow_extra=[cls.source.port, cls.sink.port])

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.source, cls.sink)

    def tearDown(self):
        # Each test checks how soon the agent is back; the next one needs it back at all.
        wait_until(self.stack.device_online, 30, "device online")
        self.stack.assert_serves()

    def mark(self):
        """Where the agent's log and its online count stand before a cut."""
        return len(self.stack.log("agent")), self.stack.online_count()

    def wait_agent_back(self, mark, cut):
        """The agent is online again within the wait it chose after the cut (its log says
        "reconnecting in N ms"), plus the time to connect."""
        start, online = mark
        wait_until(lambda: "reconnecting in " in self.stack.log("agent")[start:], 5,
                   "the agent to schedule its reconnect")
        chosen = int(re.search(r"reconnecting in (\d+) ms", self.stack.log("agent")[start:])[1])
        wait_until(lambda: self.stack.online_count() > online,
                   max(0.0, cut + chosen / 1000 + 2.0 - time.monotonic()),
                   f"agent back within its backoff ({chosen} ms) and 2 s")
        print(f"\nagent back {(time.monotonic() - cut) * 1000:.0f} ms after the cut "
              f"(backoff {chosen} ms)", file=sys.stderr)

    def test_cut_during_download_resets_client_with_exact_prefix(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.source.port)
        self.assertEqual(code, 0)
        mark = self.mark()
        cut = []

        def progress(n):
            if n >= (4 << 20) and not cut:
                self.stack.agent_relay.cut()
                cut.append(time.monotonic())

        with s:
            got, digest, end, ended = download_until_end(s, on_progress=progress)
        self.assertTrue(cut, f"the stream ended after {got} bytes, before the cut")
        self.assertEqual(end, "reset", "a cut download must not look complete (clean EOF)")
        self.assertLess(ended - cut[0], 5.0, "the client must learn of the cut promptly")
        self.assertEqual(digest, pattern_digest(got), "received bytes are not a prefix")
        print(f"\nclient reset {(ended - cut[0]) * 1000:.0f} ms after the cut, {got} bytes intact",
              file=sys.stderr)
        self.wait_agent_back(mark, cut[0])

    def test_cut_during_upload_resets_client_and_target_with_exact_prefix(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        mark = self.mark()
        with s:
            up = Uploader(s)
            up.start()
            wait_until(lambda: (self.sink.last() or {}).get("received", 0) >= 4 << 20, 30,
                       "4 MiB at the target")
            self.stack.agent_relay.cut()
            cut = time.monotonic()
            up.join(10)
        self.assertEqual(up.end, "reset", "the uploader must get an error, not a clean close")
        self.assertLess(up.ended_at - cut, 5.0)
        print(f"\nuploader reset {(up.ended_at - cut) * 1000:.0f} ms after the cut",
              file=sys.stderr)
        rec = self.sink.last()
        wait_until(lambda: rec["end"] is not None, 10, "the target's connection to end")
        self.assertEqual(rec["end"], "reset", "the target must see the cut as a reset")
        self.assertLessEqual(rec["received"], up.sent)
        self.assertEqual(rec["sha"].hexdigest(), pattern_digest(rec["received"]),
                         "bytes at the target are not a prefix of what was sent")
        self.wait_agent_back(mark, cut)


    def test_cut_ends_devstreams_connect_with_an_error(self):
        mark = self.mark()
        p = subprocess.Popen([program("devstreams"), "--socks", f"127.0.0.1:{self.stack.socks_port}",
                              "connect", "dev01.hub", str(self.source.port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = {"n": 0, "sha": hashlib.sha256(), "err": b""}

        def read_out():
            while data := p.stdout.read1(1 << 16):
                got["sha"].update(data)
                got["n"] += len(data)

        def read_err():
            got["err"] = p.stderr.read()

        readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
        for t in readers:
            t.start()
        try:
            wait_until(lambda: got["n"] >= 1 << 20, 30, "1 MiB through")
            self.stack.agent_relay.cut()
            cut = time.monotonic()
            p.wait(10)
            for t in readers:
                t.join(10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
        self.assertEqual(p.returncode, 1, "a cut stream must not end devstreams connect with 0")
        self.assertIn(b"reset", got["err"])
        self.assertEqual(got["sha"].hexdigest(), pattern_digest(got["n"]))
        self.wait_agent_back(mark, cut)


class Stdio(StackTest):
    """`devstreams connect` with every kind of stdin and stdout: it works and it exits."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(with_sshd=False)

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack)

    def connect(self, stdin, stdout):
        argv = [program("devstreams"), "--socks", f"127.0.0.1:{self.stack.socks_port}", "connect",
                "dev01.hub", str(self.stack.http_port)]
        return subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                              timeout=15)

    def request_file(self):
        f = tempfile.TemporaryFile()
        f.write(b"GET / HTTP/1.0\r\n\r\n")
        f.seek(0)
        return f

    def test_dev_null_stdin(self):
        with open(os.devnull, "rb") as null:
            r = self.connect(null, subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_regular_files_on_both_sides(self):
        with self.request_file() as req, tempfile.TemporaryFile() as out:
            r = self.connect(req, out)
            out.seek(0)
            body = out.read()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hello from dev01", body)

    def test_regular_file_stdin_dev_null_stdout(self):
        with self.request_file() as req, open(os.devnull, "wb") as null:
            r = self.connect(req, null)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_sockets_on_both_sides(self):
        mine, theirs = socket.socketpair()
        with mine, theirs:
            mine.sendall(b"GET / HTTP/1.0\r\n\r\n")
            mine.shutdown(socket.SHUT_WR)
            r = self.connect(theirs, theirs)
            theirs.close()
            body = recv_all(mine)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hello from dev01", body)

    def test_tty_on_both_sides_and_its_flags_restored(self):
        master, slave = pty.openpty()
        try:
            os.write(master, b"GET / HTTP/1.0\n\n\x04")  # ^D at a line start: end of input
            r = self.connect(slave, slave)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(fcntl.fcntl(slave, fcntl.F_GETFL) & os.O_NONBLOCK,
                             "the tty was left non-blocking")
            body = b""
            while select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                body += chunk
            self.assertIn(b"hello from dev01", body)
        finally:
            os.close(master)
            os.close(slave)


class HubOutage(StackTest):
    """kill -9 of the hub during an upload, and a restart 10 s later."""

    def setUp(self):
        self.sink = HashSink()
        self.stack = FaultStack(allow_extra=[self.sink.port])

    def tearDown(self):
        try:
            self.stack.assert_serves()
        finally:
            self.closeClassStack(self.stack, self.sink)

    def test_hub_killed_mid_upload_and_back_after_10s(self):
        s = self.stack
        # The links are healthy (up for a while) before the outage.
        time.sleep(5.5)
        agent_online = s.online_count()
        code, sock = socks_connect(s.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        with sock:
            up = Uploader(sock)
            up.start()
            wait_until(lambda: (self.sink.last() or {}).get("received", 0) >= 8 << 20, 30,
                       "8 MiB at the target")
            s.stop("hub", signal.SIGKILL)
            killed = time.monotonic()
            up.join(10)
        self.assertEqual(up.end, "reset", "the uploader must get an error, not a clean close")
        self.assertLess(up.ended_at - killed, 5.0)
        rec = self.sink.last()
        wait_until(lambda: rec["end"] is not None, 10, "the target's connection to end")
        self.assertEqual(rec["end"], "reset")
        self.assertEqual(rec["sha"].hexdigest(), pattern_digest(rec["received"]))

        # Status tells the truth during the outage.
        wait_until(lambda: not s.status()["connected"], 3, "status saying disconnected")
        while time.monotonic() < killed + 10:
            st = s.status()
            self.assertFalse(st["connected"], f"status says connected with the hub down: {st}")
            self.assertNotEqual(st["last_error"], "")
            time.sleep(0.5)

        s.start_hub()
        back = time.monotonic()
        while not s.try_stream(timeout=3):
            self.assertLess(time.monotonic() - back, 20, "no stream within 20 s of the hub")
            time.sleep(0.05)
        first = time.monotonic() - back
        st = s.status()
        print(f"\nfirst stream {first * 1000:.0f} ms after the hub was back; status {st}",
              file=sys.stderr)
        self.assertTrue(st["connected"], f"streams work but status says {st}")
        self.assertLess(first, 2.0, "the first new stream must succeed within 2 s")

        # Both reconnect by themselves, and nothing stays behind.
        wait_until(lambda: s.online_count() > agent_online, 5, "agent online again")
        wait_until(lambda: s.status()["service_channel"], 5, "daemon service channel open")
        wait_until(lambda: s.open_streams() == [], 5, "no stream left at the daemon")

        def hub_idle():
            m = s.hub_metrics()
            return all(sum(v for _, _, v in m[name]["samples"]) == 0
                       for name in ("devstreams_streams_active", "devstreams_streams_pending"))

        wait_until(hub_idle, 5, "no stream left at the hub")


class FrozenAgent(StackTest):
    """SIGSTOP of the agent: the hub's keepalive (1 s here: offline after three silent
    intervals) marks it offline and new streams get a SOCKS reply at once; SIGCONT recovers."""

    @classmethod
    def setUpClass(cls):
        cls.stack = FaultStack(hub_keepalive="1s")

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack)

    def test_sigstop_agent_offline_within_keepalive_then_sigcont_recovers(self):
        s = self.stack
        wait_until(s.device_online, 10, "device online")
        online = s.online_count()
        agent = s.procs["agent"].pid
        os.kill(agent, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_until(lambda: not s.device_online(), 8, "hub marking the device offline")
            took = time.monotonic() - stopped
            print(f"\noffline {took * 1000:.0f} ms after SIGSTOP (keepalive 1 s)", file=sys.stderr)
            self.assertLess(took, 3 * 1.0 + 1.5)
            t = time.monotonic()
            code, sock = socks_connect(s.socks_port, "dev01.hub", s.http_port, timeout=10)
            if sock:
                sock.close()
            self.assertEqual(code, 0x03, "a frozen device's streams get 'network unreachable'")
            self.assertLess(time.monotonic() - t, 2.0)
        finally:
            os.kill(agent, signal.SIGCONT)
        wait_until(lambda: s.online_count() > online, 10, "agent online after SIGCONT")
        wait_until(s.device_online, 10, "device online after SIGCONT")
        wait_until(s.try_stream, 10, "a stream after SIGCONT")


class WideArea(StackTest):
    """40 ms of added round trip on both legs (20 ms each way on each relay)."""

    @classmethod
    def setUpClass(cls):
        cls.sink = SinkSource(64 << 20, seed=SEED)
        cls.stack = FaultStack(allow_extra=[cls.sink.port])
        for r in (cls.stack.agent_relay, cls.stack.daemon_relay):
            r.set_delay(0.020)

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.sink)

    def test_64mib_both_ways_intact_with_40ms_rtt(self):
        s = self.stack
        t = time.monotonic()
        code, sock = socks_connect(s.socks_port, "dev01.hub", self.sink.port, timeout=30)
        setup = time.monotonic() - t
        self.assertEqual(code, 0)
        with sock:
            sock.settimeout(120)

            def send():
                for piece in SinkSource.stream(SEED, 64 << 20):
                    sock.sendall(piece)
                sock.shutdown(socket.SHUT_WR)

            th = threading.Thread(target=send, daemon=True)
            th.start()
            got = bytearray()
            while chunk := sock.recv(1 << 20):
                got += chunk
            th.join(60)
        took = time.monotonic() - t
        self.assertEqual(len(got), (64 << 20) + 64)
        self.assertEqual(hashlib.sha256(got[:64 << 20]).hexdigest(), pattern_digest(64 << 20))
        self.assertEqual(got[64 << 20:].decode(), pattern_digest(64 << 20),
                         "the device side received something else")
        print(f"\nsetup {setup * 1000:.0f} ms, 64 MiB each way in {took:.1f} s "
              f"({128 / took:.1f} MiB/s total) with 40 ms added RTT", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
