"""End-to-end tests of the device agent: reconnecting after hub loss, keepalive, allow-list
(ranges, SIGHUP reload), reject codes and their SOCKS replies, parallel streams, stream limit
and refused credentials."""

import hashlib
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SinkSource, Stack, StackTest, socks_connect, wait_until  # noqa: E402

MiB = 1 << 20
ONLINE = "online: control channel"
CREDENTIALS = "hub refused the device's credentials: check device_id and device_key"


def agent_yaml(stack):
    return os.path.join(stack.state, "agent.yaml")


def set_agent_config(stack, allow=None, **keys):
    """Rewrites the agent section of the stack's agent.yaml: a new allow-list when given, and
    `keys` (snake_case config keys) replaced or added."""
    with open(agent_yaml(stack)) as f:
        lines = f.read().splitlines()
    out, in_allow = [], False
    for line in lines:
        if line.startswith("  allow:"):
            in_allow = True
            if allow is None:
                out.append(line)
            continue
        if in_allow and (line.startswith("    - ") or not line.strip()):
            if allow is None:
                out.append(line)
            continue
        in_allow = False
        name = line.strip().split(":")[0]
        if line.startswith("  ") and name in keys:
            continue
        out.append(line)
    if allow is not None:
        out.append("  allow:")
        out += [f'    - "{a}"' for a in allow]
    out += [f"  {k}: {v}" for k, v in keys.items()]
    with open(agent_yaml(stack), "w") as f:
        f.write("\n".join(out) + "\n")


def restart_agent(stack):
    """Restarts the agent; returns how many times it had come online, counted once it has
    stopped (a reconnect in its last moments must not pass for the new agent's)."""
    stack.stop("agent")
    before = stack.log("agent").count(ONLINE)
    stack.start_agent()
    return before


def wait_online_count(stack, count, timeout=15):
    wait_until(lambda: stack.log("agent").count(ONLINE) >= count, timeout, f"agent online #{count}")


def expected_digest(sink):
    h = hashlib.sha256()
    for piece in SinkSource.stream(sink.seed, sink.size):
        h.update(piece)
    return h.hexdigest()


def round_trip(socks_port, sink, upload, timeout=60):
    """One stream to `sink`: sends `upload`, half-closes, reads everything. Returns
    (sha256 of the sink's bytes received, the digest the sink reported of our upload)."""
    code, s = socks_connect(socks_port, "dev01.hub", sink.port, timeout=timeout)
    if code != 0:
        raise AssertionError(f"SOCKS reply {code:#04x} for port {sink.port}")
    s.settimeout(timeout)

    def send():
        s.sendall(upload)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    got = bytearray()
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        got += chunk
    t.join(timeout)
    s.close()
    if len(got) != sink.size + 64:
        raise AssertionError(f"received {len(got)} bytes, expected {sink.size + 64}")
    return hashlib.sha256(got[:sink.size]).hexdigest(), got[sink.size:].decode()


def drain_until_closed(s, limit=15.0):
    """Reads until EOF or reset; returns the seconds it took (fails the caller by raising
    socket.timeout if the stream hangs)."""
    start = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(1 << 16):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return time.monotonic() - start


class HubLoss(StackTest):
    """The hub goes away (killed, restarted, frozen); the agent comes back by itself."""

    def setUp(self):
        self.sink = SinkSource(1 << 40)  # sends "forever": a stream is busy when the hub dies
        self.stack = Stack(allow_extra=[self.sink.port], with_sshd=False)
        self.addCleanup(self.sink.close)
        self.addCleanup(self.stack.close)
        # Tight backoff bounds so that "within the bound" is quick to check.
        set_agent_config(self.stack, reconnect_min="200ms", reconnect_max="2s")
        wait_online_count(self.stack, restart_agent(self.stack) + 1)

    def tearDown(self):
        hub = self.stack.procs.get("hub")
        if hub:
            os.kill(hub.pid, signal.SIGCONT)
        self.assertCleanShutdown(self.stack)

    def _restart_hub_and_check(self, online_before):
        self.stack.start_hub()
        started = time.monotonic()
        # Backoff bound: at most reconnect_max (2 s) of waiting, plus the handshake.
        wait_online_count(self.stack, online_before + 1, timeout=6)
        print(f"\nagent online {time.monotonic() - started:.2f} s after the hub restarted",
              file=sys.stderr)
        wait_until(lambda: self._stream_works(), timeout=10, what="a new stream")

    def _stream_works(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        if s:
            s.close()
        return code == 0

    def test_hub_killed_during_transfer(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        s.settimeout(30)
        self.assertTrue(len(s.recv(65536)) > 0)
        online = self.stack.log("agent").count(ONLINE)
        self.stack.stop("hub", signal.SIGKILL)
        # The open stream ends with an error (EOF or reset), never hangs.
        self.assertLess(drain_until_closed(s), 10.0)
        s.close()
        wait_until(lambda: "control channel closed (" in self.stack.log("agent"), 10,
                   "agent noticing the lost channel")
        self._restart_hub_and_check(online)

    def test_hub_killed_while_idle(self):
        online = self.stack.log("agent").count(ONLINE)
        self.stack.stop("hub", signal.SIGKILL)
        wait_until(lambda: "control channel closed (" in self.stack.log("agent"), 10,
                   "agent noticing the lost channel")
        time.sleep(3)  # a few failed attempts: the backoff grows to its cap
        log = self.stack.log("agent")
        self.assertGreaterEqual(log.count("reconnecting in"), 2)
        delays = [int(m) for m in re.findall(r"reconnecting in (\d+) ms", log)]
        self.assertTrue(all(0 <= d <= 2000 for d in delays), delays)
        self._restart_hub_and_check(online)

    def test_frozen_hub_is_detected_by_keepalive(self):
        set_agent_config(self.stack, keepalive="1s", keepalive_timeout="3s")
        wait_online_count(self.stack, restart_agent(self.stack) + 1)
        online = self.stack.log("agent").count(ONLINE)
        hub = self.stack.procs["hub"].pid
        os.kill(hub, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_until(lambda: "keepalive timeout" in self.stack.log("agent"), 8,
                       "agent dropping the silent channel")
            took = time.monotonic() - stopped
        finally:
            os.kill(hub, signal.SIGCONT)
        print(f"\nsilent channel dropped after {took:.2f} s (timeout 3 s)", file=sys.stderr)
        self.assertLess(took, 4.5)
        self.assertGreater(took, 1.5)
        wait_online_count(self.stack, online + 1, timeout=20)


class Credentials(StackTest):
    def setUp(self):
        self.stack = Stack(with_sshd=False)
        self.addCleanup(self.stack.close)

    def tearDown(self):
        self.assertCleanShutdown(self.stack)

    def test_wrong_device_key_is_logged_once_and_retried_slowly(self):
        # A well-formed key that is not the device's.
        set_agent_config(self.stack, device_key=f'"{self.stack.registry["service_key"]}"',
                         reconnect_min="100ms", reconnect_max="2s")
        self.stack.stop("agent")
        start = len(self.stack.log("agent"))
        self.stack.start_agent()
        wait_until(lambda: CREDENTIALS in self.stack.log("agent")[start:], 10,
                   "the credentials message")
        time.sleep(5)
        log = self.stack.log("agent")[start:]
        attempts = log.count("connecting to ")
        self.assertEqual(log.count(CREDENTIALS), 1, log)
        # Still trying, but at the cap (2 s), not at reconnect_min (100 ms).
        self.assertGreaterEqual(attempts, 3, log)
        self.assertLessEqual(attempts, 5, log)
        self.assertIn("reconnecting in 2000 ms", log)
        self.assertEqual(self.stack.procs["agent"].poll(), None)
        self.assertNotIn(ONLINE, log)


class Streams(StackTest):
    """One stack: three byte sinks (one allowed through a port range) and the SOCKS reply of
    each way a request can fail."""

    @classmethod
    def setUpClass(cls):
        cls.sinks = [SinkSource(2 * MiB, seed=s) for s in (11, 22, 33)]
        p = cls.sinks[2].port
        cls.range_lo, cls.range_hi = p - 1, min(p + 1, 65535)
        cls.outside = cls.range_hi + 1 if cls.range_hi < 65535 else cls.range_lo - 1
        ports = [cls.sinks[0].port, cls.sinks[1].port, f"{cls.range_lo}-{cls.range_hi}"]
        cls.stack = Stack(allow_extra=ports, with_sshd=False)
        cls.digests = {s.port: expected_digest(s) for s in cls.sinks}

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, *cls.sinks)

    def test_half_close_round_trip(self):
        sink = self.sinks[0]
        upload = os.urandom(MiB + 123)
        got, reported = round_trip(self.stack.socks_port, sink, upload)
        self.assertEqual(got, self.digests[sink.port])
        self.assertEqual(reported, hashlib.sha256(upload).hexdigest())

    def test_50_parallel_streams_to_3_ports_with_sha256(self):
        results, errors = {}, []

        def one(i):
            sink = self.sinks[i % 3]
            upload = os.urandom(64 * 1024 + i)
            try:
                got, reported = round_trip(self.stack.socks_port, sink, upload, timeout=120)
                results[i] = (got == self.digests[sink.port],
                              reported == hashlib.sha256(upload).hexdigest())
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(f"stream {i}: {e!r}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 50)
        self.assertTrue(all(a and b for a, b in results.values()), results)

    def test_port_range_allows_inside_and_refuses_outside_with_0x02(self):
        sink = self.sinks[2]
        got, _ = round_trip(self.stack.socks_port, sink, b"x")
        self.assertEqual(got, self.digests[sink.port])
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.outside)
        self.assertEqual(code, 0x02)
        self.assertIn("rejected (port-not-allowed)", self.stack.log("agent"))

    def test_closed_target_port_gives_0x05_quickly(self):
        start = time.monotonic()
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.closed_port)
        took = time.monotonic() - start
        self.assertEqual(code, 0x05)
        self.assertLess(took, 2.0)
        self.assertIn("rejected (connection-refused)", self.stack.log("agent"))


class Limits(StackTest):
    """Stacks with a changed agent configuration: stream limit, slow targets, reload."""

    def setUp(self):
        self.sink = SinkSource(1 << 40)
        self.other = SinkSource(MiB, seed=5)
        # A target whose connects hang: a listener that never accepts, with its queue full.
        self.black = socket.socket()
        self.black.bind(("127.0.0.1", 0))
        self.black.listen(0)
        self.black_port = self.black.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.black_port))
            except (BlockingIOError, OSError):
                pass
            self.fillers.append(c)
        self.stack = Stack(allow_extra=[self.sink.port, self.black_port], with_sshd=False)
        for c in [self.sink, self.other, self.black] + self.fillers:
            self.addCleanup(c.close)
        self.addCleanup(self.stack.close)

    def tearDown(self):
        self.assertCleanShutdown(self.stack)

    def _reconfigure(self, allow=None, **keys):
        set_agent_config(self.stack, allow=allow, **keys)
        wait_online_count(self.stack, restart_agent(self.stack) + 1)

    def test_max_streams_reached_gives_0x01_and_is_logged(self):
        self._reconfigure(allow=[f"127.0.0.1:{self.other.port}",
                                 f"127.0.0.1:{self.stack.http_port}"], max_streams=2)
        open_ = []
        for _ in range(2):
            code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.other.port)
            self.assertEqual(code, 0)
            open_.append(s)
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0x01)
        self.assertIn("rejected (too-many-streams)", self.stack.log("agent"))
        # A stream that ends (both directions finished) makes room again.
        s = open_.pop()
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        received = 0
        while chunk := s.recv(1 << 16):
            received += len(chunk)
        s.close()
        self.assertEqual(received, self.other.size + 64)
        wait_until(lambda: self._http_works(), 10, "a stream after one ended")
        for s in open_:
            s.close()

    def _http_works(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        if s:
            s.close()
        return code == 0

    def test_hanging_target_times_out_with_0x06_without_blocking_others(self):
        self._reconfigure(connect_timeout="2s")
        result = {}

        def slow():
            start = time.monotonic()
            result["code"], _ = socks_connect(self.stack.socks_port, "dev01.hub", self.black_port)
            result["took"] = time.monotonic() - start

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        # Meanwhile other streams are set up at once.
        start = time.monotonic()
        self.assertTrue(self._http_works())
        self.assertLess(time.monotonic() - start, 1.5)
        t.join(30)
        self.assertEqual(result.get("code"), 0x06, result)
        self.assertGreater(result["took"], 1.5)
        self.assertIn("rejected (target-timeout)", self.stack.log("agent"))

    def test_sighup_adds_a_port_without_dropping_an_open_stream(self):
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.sink.port)
        self.assertEqual(code, 0)
        s.settimeout(30)
        self.assertTrue(len(s.recv(65536)) > 0)
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.other.port)
        self.assertEqual(code, 0x02)

        # A broken file keeps the old list and names the position of the mistake.
        with open(agent_yaml(self.stack)) as f:
            good = f.read()
        with open(agent_yaml(self.stack), "a") as f:
            f.write("  allow_typo: 1\n")
        self.stack.procs["agent"].send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in self.stack.log("agent"), 10, "reload error")
        self.assertRegex(self.stack.log("agent"), r"agent\.yaml:\d+:\d+: unknown key 'allow_typo'")
        self.assertTrue(self._http_works())
        with open(agent_yaml(self.stack), "w") as f:
            f.write(good)

        allow = [f"127.0.0.1:{self.sink.port}", f"127.0.0.1:{self.other.port}",
                 f"127.0.0.1:{self.stack.http_port}"]
        set_agent_config(self.stack, allow=allow)
        self.stack.procs["agent"].send_signal(signal.SIGHUP)
        wait_until(lambda: "allow-list reloaded" in self.stack.log("agent"), 10, "reload")
        got, _ = round_trip(self.stack.socks_port, self.other, b"hello")
        self.assertEqual(got, expected_digest(self.other))
        # The stream opened before the reload still flows.
        total = 0
        while total < 4 * MiB:
            chunk = s.recv(1 << 16)
            self.assertTrue(chunk, "the open stream was dropped by the reload")
            total += len(chunk)
        s.close()
        self.assertEqual(self.stack.procs["agent"].poll(), None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
