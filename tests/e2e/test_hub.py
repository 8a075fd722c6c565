"""Integration tests of the hub as a service, over loopback with the real programs: the registry
surviving a restart, every limit answering with its status, stream tokens and SAS checks,
the metrics exposition, the stream audit, health and routing answers, idle streams, the
replacement of a device's control channel and what peers see when the hub or agent stops."""

import contextlib
import http.client
import json
import math
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, StackTest, TcpServer, WsClient, sas_token, socks_connect,  # noqa: E402
                     wait_until)

HOUR = 3600


# ---------------------------------------------------------------------------------------------
# Small clients and helpers.

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def https(stack, method, path, body=None, token=None, headers=None, timeout=30, source=None):
    """One HTTPS request to the hub, verified against the hub's own CA (its certificate names
    127.0.0.1 too, so hostname checking stays on); `source`: another loopback address to
    connect from."""
    ctx = ssl.create_default_context(cafile=os.path.join(stack.state, "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", stack.hub_port, context=ctx, timeout=timeout,
                                       source_address=(source, 0) if source else None)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = token
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        conn.close()


def service_token(stack, expiry=None, key=None, policy="service"):
    exp = int(time.time()) + HOUR if expiry is None else expiry
    return sas_token("localhost", key or stack.registry["service_key"], exp, policy)


def device_token(stack, device="dev01", key=None, expiry=None):
    exp = int(time.time()) + HOUR if expiry is None else expiry
    return sas_token(f"localhost/devices/{device}", key or stack.registry["device_key"], exp)


def api(stack, method, path, body=None, **kw):
    return https(stack, method, path, body=body, token=service_token(stack), **kw)


def initiate(stack, device, port, timeout=90):
    return api(stack, "POST", f"/api/v1/devices/{device}/streams", {"port": port}, timeout=timeout)


def device_online(stack, device="dev01"):
    try:
        r = api(stack, "GET", "/api/v1/devices", timeout=5)
    except (OSError, http.client.HTTPException):
        return False
    return r.status == 200 and any(d["id"] == device and d["online"] for d in r.json["devices"])


def wait_online(stack, device="dev01", timeout=60):
    # The agent reconnects with a backoff of 1 s doubling up to 30 s.
    wait_until(lambda: device_online(stack, device), timeout, f"{device} online at the hub")


def ws_control(stack, device="dev01", key=None):
    return WsClient(stack.hub_port, f"/api/v1/devices/{device}/control",
                    {"Authorization": device_token(stack, device, key)}, ca_file(stack))


def log_lines(stack, name, needle, since=0):
    """The lines of a program's log (from offset `since`) that contain `needle`."""
    return [line for line in stack.log(name)[since:].splitlines() if needle in line]


def ca_file(stack):
    return os.path.join(stack.state, "ca.crt")


def stream_path(url):
    m = re.fullmatch(r"wss://[^/]+(/api/v1/streams/[0-9a-f]+)", url)
    assert m, url
    return m.group(1)


def read_close(ws, timeout=20):
    """Reads frames until a close frame; returns its code (None for an empty close)."""
    ws.sock.settimeout(timeout)
    while True:
        op, data = ws.recv_frame()
        if op == 8:
            return struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None


def restart_hub(stack):
    stack.stop("hub")
    stack.start_hub()
    wait_online(stack)


def configure_hub(stack, base, **keys):
    """Writes hub.yaml as `base` with the given `hub:` keys replaced or added."""
    lines = [line for line in base.rstrip("\n").split("\n")
             if line.strip().split(":")[0] not in keys]
    lines += [f"  {k}: {v}" for k, v in keys.items()]  # hub: is the file's last section
    with open(os.path.join(stack.state, "hub.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def curl_via_socks(stack, port):
    return subprocess.run(["curl", "-sS", "--max-time", "20", "--socks5-hostname",
                           f"127.0.0.1:{stack.socks_port}", f"http://dev01.hub:{port}/"],
                          capture_output=True, timeout=30)


class Holder(TcpServer):
    """A device-side TCP target that accepts connections and keeps them open without a word
    until the client closes: a stream to it stays up for as long as the test wants."""

    def handle(self, conn):
        with conn:
            try:
                while conn.recv(1 << 16):
                    pass
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# A strict reader of the Prometheus text exposition (version 0.0.4).

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        raise ValueError(f"bad sample value {text!r}")
    return float(text)


def _labels(text):
    out = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError(f"bad labels {text!r}")
        name = m.group(1)
        if name in out:
            raise ValueError(f"label {name} repeated in {text!r}")
        out[name] = (m.group(2).replace("\\n", "\n").replace('\\"', '"')
                     .replace("\\\\", "\\"))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"bad labels {text!r}")
            pos += 1
    return out


def parse_metrics(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises
    ValueError on anything the format does not allow."""
    if not text.endswith("\n"):
        raise ValueError("exposition does not end with a newline")
    families = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 and line.startswith("# TYPE "):
                raise ValueError(f"bad line {line!r}")
            name = parts[2]
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            if fam["samples"]:
                raise ValueError(f"{line!r} after samples of {name}")
            key = "help" if parts[1] == "HELP" else "type"
            if fam[key] is not None:
                raise ValueError(f"second {parts[1]} for {name}")
            fam[key] = parts[3] if len(parts) > 3 else ""
            if key == "type" and fam["type"] not in ("counter", "gauge", "histogram",
                                                     "summary", "untyped"):
                raise ValueError(f"bad type in {line!r}")
            current = name
            continue
        if line.startswith("#") or not line:
            raise ValueError(f"unexpected line {line!r}")
        m = _SAMPLE.fullmatch(line)
        if not m:
            raise ValueError(f"bad sample line {line!r}")
        name, labels, value = m.group(1), _labels(m.group(2) or ""), _value(m.group(3))
        base = name
        fam = families.get(current)
        if fam and fam["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    base = current
        if base != current or fam is None or fam["type"] is None:
            raise ValueError(f"sample {name} outside its family (current {current})")
        if fam["type"] == "histogram" and base == name:
            raise ValueError(f"histogram sample without suffix: {line!r}")
        if fam["type"] == "counter" and (value < 0 or math.isnan(value)):
            raise ValueError(f"counter {line!r} is negative")
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        if fam["type"] is None:
            raise ValueError(f"{name} has no TYPE")
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise ValueError(f"{sname} without le")
            s["buckets"].append((_value(labels["le"]), value))
        elif sname == name + "_sum":
            s["sum"] = value
        else:
            s["count"] = value
    for key, s in series.items():
        b = s["buckets"]
        if not b or s["count"] is None or s["sum"] is None:
            raise ValueError(f"{name}{key}: buckets, _sum and _count are all required")
        bounds = [le for le, _ in b]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}{key}: bucket bounds not increasing: {bounds}")
        if bounds[-1] != math.inf:
            raise ValueError(f"{name}{key}: last bucket is not +Inf")
        counts = [c for _, c in b]
        if any(a > c for a, c in zip(counts, counts[1:])):
            raise ValueError(f"{name}{key}: buckets not cumulative: {counts}")
        if counts[-1] != s["count"]:
            raise ValueError(f"{name}{key}: +Inf bucket {counts[-1]} != _count {s['count']}")


def sample(families, name, **labels):
    """The value of the sample `name` with exactly these labels (0 when absent: counters with
    labels appear at their first increment)."""
    for fam in families.values():
        for sname, slabels, value in fam["samples"]:
            if sname == name and slabels == labels:
                return value
    return 0.0


class ParserSelfTest(unittest.TestCase):
    """The reader above rejects what it should, so the checks built on it mean something."""

    def test_strict_parser(self):
        good = ("# HELP h Latency\n# TYPE h histogram\n"
                'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.7\nh_count 2\n'
                '# HELP c Things\n# TYPE c counter\nc{a="x\\"y"} 3\n')
        fams = parse_metrics(good)
        self.assertEqual(sample(fams, "c", a='x"y'), 3)
        self.assertEqual(sample(fams, "h_count"), 2)
        bad = [
            good[:-1],                                              # no final newline
            good.replace('h_count 2', 'h_count 3'),                 # +Inf != _count
            good.replace('le="0.5"} 1', 'le="0.5"} 5'),             # not cumulative
            good.replace('le="+Inf"', 'le="9"'),                    # no +Inf bucket
            good.replace("# TYPE c counter\n", ""),                 # no TYPE
            good.replace('c{a="x\\"y"} 3', 'c{a=x} 3'),             # bad labels
            good.replace('c{a="x\\"y"} 3', 'c{a="x\\"y"} three'),   # bad value
            good + "d 1\n",                                         # sample outside a family
        ]
        for text in bad:
            with self.assertRaises(ValueError, msg=text):
                parse_metrics(text)


# ---------------------------------------------------------------------------------------------

class HubTest(StackTest):
    """One stack per class; prints the programs' logs when a test fails and checks that they
    shut down cleanly at the end."""

    stack_args = {}

    @classmethod
    def setUpClass(cls):
        cls.holder = Holder()
        cls.stack = Stack(allow_extra=[cls.holder.port], with_sshd=False, **cls.stack_args)
        with open(os.path.join(cls.stack.state, "hub.yaml")) as f:
            cls.base_hub_yaml = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.holder)

    def assertLogHas(self, name, needle, since=0, within=10):
        # Programs log an event right after acting on it, so the line may trail what the test saw.
        try:
            wait_until(lambda: needle in self.stack.log(name)[since:], within, repr(needle))
        except TimeoutError:
            self.fail(f"{name}.log lacks {needle!r}")

    def assertLogLacks(self, name, needle, what=None):
        lines = log_lines(self.stack, name, needle)
        if lines:
            self.fail(f"{name}.log holds {what or repr(needle)} in {len(lines)} lines" +
                      ("" if what else ":\n" + "\n".join(lines[:5])))

    def ensure_agent(self):
        """Brings the real agent back after a test that played dev01 itself."""
        if "agent" not in self.stack.procs:
            self.stack.start_agent()
        wait_online(self.stack)

    def hold_streams(self, n):
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(n):
            code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.holder.port)
            self.assertEqual(code, 0)
            socks.append(s)
        return socks


class Registry(HubTest):
    def test_device_added_over_the_api_survives_a_restart(self):
        s = self.stack
        r = api(s, "POST", "/api/v1/devices", {"id": "dev-restart"})
        self.assertEqual(r.status, 201, r)
        added = r.json
        self.assertEqual(added["id"], "dev-restart")
        self.assertTrue(added["enabled"])
        self.assertFalse(added["online"])
        self.assertTrue(added["primary_key"] and added["secondary_key"])
        self.assertEqual(api(s, "POST", "/api/v1/devices", {"id": "dev-restart"}).status, 409)
        with open(ca_file(s), "rb") as f:
            ca_before = f.read()

        restart_hub(s)

        with open(ca_file(s), "rb") as f:
            self.assertEqual(f.read(), ca_before, "the hub made a new CA at restart")
        r = api(s, "GET", "/api/v1/devices/dev-restart")
        self.assertEqual(r.status, 200, r)
        for k in ("id", "enabled", "primary_key", "secondary_key", "created"):
            self.assertEqual(r.json[k], added[k], k)
        ids = {d["id"] for d in api(s, "GET", "/api/v1/devices").json["devices"]}
        self.assertEqual(ids, {"dev01", "dev-restart"})
        # The policy still authenticates (above) and the new device's keys still open its
        # control channel, with either key.
        for key in (added["primary_key"], added["secondary_key"]):
            ws = ws_control(s, "dev-restart", key)
            self.assertEqual(ws.status, 101)
            ws.close()
        # And a service still reaches dev01 after the agent reconnected to the new hub.
        r = curl_via_socks(s, s.http_port)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"hello from dev01", r.stdout)
        self.assertLogLacks("hub", added["primary_key"], "the primary key")
        self.assertLogLacks("hub", added["secondary_key"], "the secondary key")


class Limits(HubTest):
    """Each test restarts the hub with the limit it checks."""

    def reconfigure(self, **keys):
        configure_hub(self.stack, self.base_hub_yaml, **keys)
        restart_hub(self.stack)

    def assertRejected(self, r, status, code):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"], code, r)
        self.assertIn("retry-after", r.headers, r)
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)

    def test_per_device_stream_limit_gives_429_device_busy(self):
        self.reconfigure(max_streams_per_device=2)
        self.hold_streams(2)
        code, _ = socks_connect(self.stack.socks_port, "dev01.hub", self.holder.port)
        self.assertEqual(code, 0x01)  # 429 is a general failure for SOCKS
        self.assertRejected(initiate(self.stack, "dev01", self.holder.port), 429, "device_busy")

    def test_hub_stream_limit_gives_429_too_many_streams(self):
        self.reconfigure(max_streams=2)
        self.hold_streams(2)
        self.assertRejected(initiate(self.stack, "dev01", self.holder.port), 429,
                            "too_many_streams")

    def test_stream_limit_frees_up_when_streams_end(self):
        self.reconfigure(max_streams_per_device=1)
        held = self.hold_streams(1)
        self.assertRejected(initiate(self.stack, "dev01", self.holder.port), 429, "device_busy")
        held[0].close()
        # The hub counts the stream until both sides are gone: poll.
        deadline = time.monotonic() + 20
        while True:
            code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.holder.port)
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(code, 0)
        s.close()

    def test_rate_limit_gives_429_rate_limited_with_retry_after(self):
        self.reconfigure(new_streams_per_second=3)
        results = []
        lock = threading.Lock()

        def post():
            r = initiate(self.stack, "dev01", 23)  # not on the allow-list: answered at once
            with lock:
                results.append(r)

        threads = [threading.Thread(target=post) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(r.status for r in results)
        self.assertEqual(len(results), 10)
        self.assertTrue(set(statuses) <= {403, 429}, statuses)
        limited = [r for r in results if r.status == 429]
        self.assertGreaterEqual(len(limited), 1, statuses)
        self.assertGreaterEqual(statuses.count(403), 1, statuses)
        for r in limited:
            self.assertRejected(r, 429, "rate_limited")
        # The bucket refills: after a pause the policy may open streams again.
        time.sleep(1.5)
        r = initiate(self.stack, "dev01", 23)
        self.assertEqual((r.status, r.json["error"]), (403, "port-not-allowed"), r)

    def test_pending_handshake_limit_gives_429_too_many_pending(self):
        self.reconfigure(max_pending_handshakes=1)
        self.addCleanup(self.ensure_agent)
        self.stack.stop("agent")
        dev = ws_control(self.stack)  # a dev01 that never answers
        self.addCleanup(dev.close)
        self.assertEqual(dev.status, 101)
        first = []
        t = threading.Thread(target=lambda: first.append(initiate(self.stack, "dev01", 22)))
        t.start()
        request = json.loads(dev.recv_text())  # the first stream is now pending
        self.assertEqual(request["type"], "stream_request")
        self.assertRejected(initiate(self.stack, "dev01", 22), 429, "too_many_pending")
        dev.close()  # the silent device goes away: the first POST learns it
        t.join(30)
        self.assertEqual(len(first), 1)
        self.assertEqual((first[0].status, first[0].json["error"]), (503, "device_offline"),
                         first[0])

    def test_oversized_request_head_gives_431(self):
        self.reconfigure(max_header_bytes="4KiB")
        ok = https(self.stack, "GET", "/healthz", headers={"X-Padding": "a" * 3000})
        self.assertEqual(ok.status, 200, ok)
        big = https(self.stack, "GET", "/healthz", headers={"X-Padding": "a" * 5000})
        self.assertEqual(big.status, 431, big)
        self.assertEqual(big.json["error"], "bad_request", big)

    def test_frame_over_max_frame_closes_with_1009(self):
        self.reconfigure(max_frame="64KiB", max_message="48KiB")
        self.addCleanup(self.ensure_agent)
        self.stack.stop("agent")
        dev = ws_control(self.stack)
        self.addCleanup(dev.close)
        self.assertEqual(dev.status, 101)
        # A message within both limits is read (a message of another type is ignored)...
        dev.send_text(json.dumps({"type": "future", "pad": "x" * (40 * 1024)}))
        wait_until(lambda: "device dev01: control message ignored" in self.stack.log("hub"),
                   10, "the hub to read the message")
        # ...one within max_frame but over max_message closes the channel with 1009...
        dev.send_text("x" * (56 * 1024))
        self.assertEqual(read_close(dev), 1009)
        dev.close()
        # ...and so does a frame over max_frame.
        dev = ws_control(self.stack)
        self.addCleanup(dev.close)
        self.assertEqual(dev.status, 101)
        dev.send_text("x" * (64 * 1024 + 1))
        self.assertEqual(read_close(dev), 1009)
        wait_until(lambda: not device_online(self.stack), 10, "dev01 offline")

    def test_slow_request_head_gives_408(self):
        self.reconfigure(request_timeout="1s")
        ctx = ssl.create_default_context(cafile=ca_file(self.stack))
        raw = socket.create_connection(("127.0.0.1", self.stack.hub_port), timeout=20)
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # never finished
            start = time.monotonic()
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        self.assertLess(time.monotonic() - start, 15)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
        self.assertIn(b'"error":"timeout"', answer)

    def idle_stream_closes(self):
        """Opens a silent stream; returns the seconds until the client saw it closed."""
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.holder.port)
        self.assertEqual(code, 0)
        start = time.monotonic()
        s.settimeout(30)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - start
        s.close()
        self.assertEqual(data, b"")
        return elapsed

    def test_idle_stream_is_closed_by_the_hub(self):
        self.reconfigure(idle_timeout="1s")
        elapsed = self.idle_stream_closes()
        self.assertGreaterEqual(elapsed, 0.5)
        self.assertLess(elapsed, 15)
        self.assertLogHas("daemon", "idle timeout")
        # A stream with traffic more often than the bound stays open.
        code, s = socks_connect(self.stack.socks_port, "dev01.hub", self.holder.port)
        self.assertEqual(code, 0)
        s.settimeout(0.4)
        for _ in range(8):
            s.sendall(b"ping")
            with self.assertRaises(socket.timeout):
                s.recv(100)  # no EOF: still open
        s.close()

    def test_idle_stream_has_an_audit_record(self):
        self.reconfigure(idle_timeout="1s")
        self.idle_stream_closes()
        wait_until(lambda: "outcome=idle" in self.stack.log("hub"), 10, "the audit log line")

        def idle_records():
            return [a for a in api(self.stack, "GET", "/api/v1/streams").json["recent"]
                    if a["outcome"] == "idle"]

        with contextlib.suppress(TimeoutError):
            wait_until(lambda: idle_records(), 5, "an audit record with outcome idle")
        self.assertLogLacks("hub", "not stored")
        records = idle_records()
        self.assertEqual(len(records), 1, api(self.stack, "GET", "/api/v1/streams").json)
        self.assertEqual(records[0]["reason"], "idle timeout")
        self.assertEqual(records[0]["port"], self.holder.port)


class Tokens(HubTest):
    stack_args = {"handshake": "2s"}

    def open_side(self, path, token):
        ws = WsClient(self.stack.hub_port, path, {"Authorization": f"Bearer {token}"},
                      ca_file(self.stack))
        self.addCleanup(ws.close)
        return ws

    def test_stream_tokens_are_single_use_and_bound_to_their_stream(self):
        s = self.stack
        r1 = initiate(s, "dev01", self.holder.port)
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(set(r1.json), {"stream_id", "url", "token"})
        path1 = stream_path(r1.json["url"])
        self.assertEqual(path1, "/api/v1/streams/" + r1.json["stream_id"])
        r2 = initiate(s, "dev01", self.holder.port)
        self.assertEqual(r2.status, 200, r2)
        path2 = stream_path(r2.json["url"])
        self.assertNotEqual(r1.json["stream_id"], r2.json["stream_id"])
        self.assertNotEqual(r1.json["token"], r2.json["token"])

        self.assertEqual(self.open_side(path1, r1.json["token"]).status, 101)
        self.assertEqual(self.open_side(path1, r1.json["token"]).status, 403)  # replay
        self.assertEqual(self.open_side(path1, r2.json["token"]).status, 403)  # other stream's
        self.assertEqual(self.open_side(path2, "x" * 32).status, 403)          # made up
        # A refused attempt does not use up the right token.
        self.assertEqual(self.open_side(path2, r2.json["token"]).status, 101)
        self.assertEqual(self.open_side("/api/v1/streams/" + "0" * 32, r2.json["token"]).status,
                         404)
        no_bearer = WsClient(s.hub_port, path2, {}, ca_file(s))
        self.addCleanup(no_bearer.close)
        self.assertEqual(no_bearer.status, 401)
        for tok in (r1.json["token"], r2.json["token"]):
            self.assertLogLacks("hub", tok, "a stream token")

    def test_unpaired_stream_side_is_closed_after_the_handshake_bound(self):
        r = initiate(self.stack, "dev01", self.holder.port)
        self.assertEqual(r.status, 200, r)
        # Nobody opens the service side: the device's side is closed with 1013 and the token
        # dies with the stream.
        time.sleep(3.5)
        late = self.open_side(stream_path(r.json["url"]), r.json["token"])
        self.assertEqual(late.status, 404)
        sid = r.json["stream_id"]
        wait_until(lambda: f"stream {sid}: handshake not complete" in self.stack.log("hub"), 10,
                   "the handshake timeout in the hub's log")

    def test_bad_service_sas_gives_401_and_leaks_nothing(self):
        s = self.stack
        wrong_key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
        bad = service_token(s, key=wrong_key)
        r = https(s, "POST", "/api/v1/devices/dev01/streams", {"port": 22}, token=bad)
        self.assertEqual((r.status, r.json["error"]), (401, "unauthorized"), r)
        r = https(s, "GET", "/api/v1/devices", token=bad)
        self.assertEqual(r.status, 401, r)
        expired = service_token(s, expiry=int(time.time()) - 60)
        r = https(s, "GET", "/api/v1/devices", token=expired)
        self.assertEqual((r.status, r.json["error"]), (401, "unauthorized"), r)
        r = https(s, "GET", "/api/v1/devices", token=service_token(s, policy="nosuchpolicy"))
        self.assertEqual(r.status, 401, r)
        r = https(s, "GET", "/api/v1/devices", token="SharedAccessSignature garbage")
        self.assertEqual(r.status, 401, r)
        r = https(s, "GET", "/api/v1/devices")
        self.assertEqual(r.status, 401, r)
        # A device token is not a service token.
        r = https(s, "GET", "/api/v1/devices", token=device_token(s))
        self.assertEqual(r.status, 401, r)
        # An expired device token does not open a control channel.
        ws = WsClient(s.hub_port, "/api/v1/devices/dev01/control",
                      {"Authorization": device_token(s, expiry=int(time.time()) - 60)},
                      ca_file(s))
        ws.close()
        self.assertEqual(ws.status, 401)
        self.assertTrue(device_online(s))  # and did not disturb the agent's channel
        self.assertLogHas("hub", "service token for policy 'service' refused")
        sig = re.search(r"sig=([^&]+)", bad).group(1)
        good_sig = re.search(r"sig=([^&]+)", service_token(s)).group(1)
        for secret in (s.registry["service_key"], s.registry["device_key"], wrong_key, sig,
                       good_sig):
            self.assertLogLacks("hub", secret, "a key or signature")
        self.assertLogLacks("hub", "SharedAccessSignature", "a token")

    def test_device_cannot_answer_another_devices_stream(self):
        s = self.stack
        r = api(s, "POST", "/api/v1/devices", {"id": "dev02"})
        self.assertEqual(r.status, 201, r)
        dev02 = ws_control(s, "dev02", r.json["primary_key"])
        self.addCleanup(dev02.close)
        self.assertEqual(dev02.status, 101)
        self.addCleanup(self.ensure_agent)
        s.stop("agent")
        dev01 = ws_control(s)
        self.addCleanup(dev01.close)
        self.assertEqual(dev01.status, 101)

        answer = []
        t = threading.Thread(target=lambda: answer.append(initiate(s, "dev02", 22)))
        start = time.monotonic()
        t.start()
        request = json.loads(dev02.recv_text())
        self.assertEqual(request["type"], "stream_request")
        # dev01 accepts dev02's stream: the hub must ignore it.
        dev01.send_text(json.dumps({"type": "stream_response", "stream_id": request["stream_id"],
                                    "accept": True}))
        t.join(30)
        self.assertEqual(len(answer), 1)
        self.assertEqual((answer[0].status, answer[0].json["error"]), (504, "handshake_timeout"),
                         answer[0])
        self.assertGreaterEqual(time.monotonic() - start, 1.5)  # the 2 s bound, not dev01
        self.assertIn(f"device dev01: answer for unknown stream '{request['stream_id']}'",
                      s.log("hub"))
        api(s, "DELETE", "/api/v1/devices/dev02")


class Observability(HubTest):
    def metrics(self):
        r = https(self.stack, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"), r.headers)
        return parse_metrics(r.body.decode())

    def traffic(self, n_ok, n_rejected):
        for _ in range(n_ok):
            r = curl_via_socks(self.stack, self.stack.http_port)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn(b"hello from dev01", r.stdout)
        for _ in range(n_rejected):
            code, _ = socks_connect(self.stack.socks_port, "dev01.hub", 23)
            self.assertEqual(code, 0x02)

    def test_a_held_stream_counts_as_active_once_paired(self):
        code, sock = socks_connect(self.stack.socks_port, "dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0)
        self.addCleanup(sock.close)
        # The SOCKS success came after the pairing: the gauges say so at once.
        m = self.metrics()
        self.assertEqual(sample(m, "devstreams_streams_active"), 1)
        self.assertEqual(sample(m, "devstreams_streams_pending"), 0)
        sock.close()
        deadline = time.monotonic() + 10
        while sample(self.metrics(), "devstreams_streams_active") != 0:
            self.assertLess(time.monotonic(), deadline, "the stream still counts as active")
            time.sleep(0.1)
        self.assertEqual(sample(self.metrics(), "devstreams_streams_pending"), 0)

    def test_metrics_count_streams_rejects_and_bytes(self):
        n_ok, n_rej = 3, 2
        before = self.metrics()
        self.traffic(n_ok, n_rej)

        def delta(fams, name, **labels):
            return sample(fams, name, **labels) - sample(before, name, **labels)

        # Streams end asynchronously after curl is done: wait until all are counted.
        deadline = time.monotonic() + 20
        while True:
            m = self.metrics()
            ended = sum(delta(m, "devstreams_streams_total", **labels)
                        for _, labels, _ in m["devstreams_streams_total"]["samples"]) \
                if "devstreams_streams_total" in m else 0
            if ended >= n_ok + n_rej or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(delta(m, "devstreams_streams_total", outcome="ok"), n_ok)
        self.assertEqual(delta(m, "devstreams_streams_total", outcome="rejected"), n_rej)
        self.assertEqual(delta(m, "devstreams_rejects_total", reason="port-not-allowed"), n_rej)
        self.assertEqual(sample(m, "devstreams_devices_connected"), 1)
        self.assertEqual(sample(m, "devstreams_streams_active"), 0)
        self.assertEqual(sample(m, "devstreams_streams_pending"), 0)
        self.assertGreater(delta(m, "devstreams_bytes_relayed_total", direction="from_device"),
                           0)
        self.assertGreater(delta(m, "devstreams_bytes_relayed_total", direction="to_device"), 0)
        self.assertEqual(delta(m, "devstreams_handshake_seconds_count"), n_ok)
        for name, typ in [("devstreams_streams_total", "counter"),
                          ("devstreams_rejects_total", "counter"),
                          ("devstreams_devices_connected", "gauge"),
                          ("devstreams_bytes_relayed_total", "counter"),
                          ("devstreams_handshake_seconds", "histogram")]:
            self.assertEqual(m[name]["type"], typ, name)
            self.assertTrue(m[name]["help"], name)

    def test_audit_lists_recent_streams(self):
        n_ok = 2
        self.traffic(n_ok, 1)

        def recent():
            return api(self.stack, "GET", "/api/v1/streams?limit=100").json["recent"]

        wait_until(lambda: sum(a["outcome"] == "ok" for a in recent()) >= n_ok, 20,
                   "audit records of the streams")
        r = api(self.stack, "GET", "/api/v1/streams?limit=100")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["active"], [])
        ok = [a for a in r.json["recent"] if a["outcome"] == "ok"]
        self.assertGreaterEqual(len(ok), n_ok)
        for a in ok:
            self.assertEqual(a["policy"], "service")
            self.assertEqual(a["device"], "dev01")
            self.assertEqual((a["host"], a["port"]), ("127.0.0.1", self.stack.http_port))
            self.assertGreater(a["bytes_from_device"], 0)
            self.assertGreater(a["bytes_to_device"], 0)
            self.assertGreaterEqual(a["end_ms"], a["start_ms"])
            self.assertRegex(a["stream_id"], r"^[0-9a-f]{32}$")
        rejected = [a for a in r.json["recent"] if a["outcome"] == "rejected"]
        self.assertTrue(rejected)
        self.assertEqual(rejected[0]["port"], 23)
        self.assertIn("port-not-allowed", rejected[0]["reason"])
        # Newest first, and `limit` is honoured.
        starts = [a["start_ms"] for a in r.json["recent"]]
        self.assertEqual(starts, sorted(starts, reverse=True))
        one = api(self.stack, "GET", "/api/v1/streams?limit=1").json["recent"]
        self.assertEqual(len(one), 1)
        self.assertEqual(api(self.stack, "GET", "/api/v1/streams?limit=0").status, 400)
        self.assertEqual(api(self.stack, "GET", "/api/v1/streams?limit=x").status, 400)
        self.assertLogHas("hub", "audit stream=")
        for a in ok:
            self.assertLogHas("hub", f"audit stream={a['stream_id']} policy=service device=dev01")

    def test_health_routing_and_upgrade_answers(self):
        s = self.stack
        r = https(s, "GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        self.assertEqual(r.json["status"], "ok")
        self.assertEqual(r.json["devices_online"], 1)
        self.assertIn("streams", r.json)
        r = https(s, "GET", "/no/such/thing")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"), r)
        for method, path, allow in [("POST", "/healthz", "GET, HEAD"),
                                    ("DELETE", "/api/v1/streams", "GET, HEAD"),
                                    ("GET", "/api/v1/devices/dev01/streams", "POST"),
                                    ("PATCH", "/metrics", "GET, HEAD"),
                                    ("PATCH", "/api/v1/devices/dev01", "GET, HEAD, PUT, DELETE")]:
            r = api(s, method, path)
            self.assertEqual((r.status, r.json["error"]), (405, "method_not_allowed"),
                             f"{method} {path}: {r}")
            self.assertEqual(r.headers.get("allow"), allow, f"{method} {path}: {r}")
        # HEAD is GET without the body (RFC 9110 9.3.2).
        get, head = https(s, "GET", "/metrics"), https(s, "HEAD", "/metrics")
        self.assertEqual((head.status, head.body), (200, b""), head)
        self.assertEqual(head.headers["content-type"], get.headers["content-type"])
        self.assertGreater(int(head.headers["content-length"]), 0, head)
        # A 401 says how to authenticate (RFC 9110 11.6.1).
        r = https(s, "GET", "/api/v1/devices")
        self.assertEqual(r.status, 401, r)
        self.assertTrue(r.headers.get("www-authenticate", "").startswith("SharedAccessSignature"),
                        r.headers)
        # A control upgrade without Sec-WebSocket-Key.
        r = https(s, "GET", "/api/v1/devices/dev01/control", token=device_token(s),
                  headers={"Upgrade": "websocket", "Connection": "Upgrade",
                           "Sec-WebSocket-Version": "13"})
        self.assertEqual(r.status, 400, r)
        self.assertTrue(device_online(s))  # the agent's channel is untouched
        # Not an upgrade at all.
        r = https(s, "GET", "/api/v1/devices/dev01/control", token=device_token(s))
        self.assertEqual(r.status, 426, r)
        # A body that is not {"port": ...}.
        for body in [b"{", {"port": 0}, {"port": 70000}, {"port": "22"}, {"host": "x"}]:
            r = api(s, "POST", "/api/v1/devices/dev01/streams", body)
            self.assertEqual((r.status, r.json["error"]), (400, "bad_request"), f"{body}: {r}")
        r = initiate(s, "nosuchdevice", 22)
        self.assertEqual((r.status, r.json["error"]), (404, "device_unknown"), r)


class Replacement(HubTest):
    def test_second_control_connection_replaces_the_first(self):
        s = self.stack
        online_before = s.log("agent").count("online: control channel")
        intruder = ws_control(s)
        self.addCleanup(intruder.close)
        self.assertEqual(intruder.status, 101)
        wait_until(lambda: "control channel closed (4000" in s.log("agent"), 15,
                   "the agent's channel closed with 4000")
        self.assertLogHas("hub", "device dev01: new control connection replaces the previous one")
        # The agent reconnects (about 1 s later) and in turn replaces the intruder.
        self.assertEqual(read_close(intruder, timeout=30), 4000)
        wait_until(lambda: s.log("agent").count("online: control channel") > online_before, 30,
                   "the agent back online")
        wait_online(s)
        r = curl_via_socks(s, s.http_port)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"hello from dev01", r.stdout)


class Shutdown(HubTest):
    """operations.md: on SIGTERM the hub closes device channels and streams with 1001, and
    the agent closes its control channel."""

    def test_hub_sigterm_closes_channels_and_streams_with_1001(self):
        s = self.stack
        self.addCleanup(self.ensure_hub)
        held = self.hold_streams(1)
        agent_mark, daemon_mark = len(s.log("agent")), len(s.log("daemon"))
        self.assertEqual(s.stop("hub"), 0)
        held[0].settimeout(20)
        # A stream ended by the hub did not finish normally: its client gets a reset, not a FIN.
        with self.assertRaises(ConnectionResetError):
            held[0].recv(100)
        wait_until(lambda: "control channel closed (" in s.log("agent")[agent_mark:], 10,
                   "the agent to see its channel closed")
        wait_until(lambda: "stream closed (" in s.log("daemon")[daemon_mark:], 10,
                   "the daemon to see its stream closed")
        self.assertLogHas("hub", "outcome=cancelled reason=\"hub shutting down\"")
        self.assertOnlyCode1001("agent", "control channel closed (", agent_mark)
        self.assertOnlyCode1001("daemon", "stream closed (", daemon_mark)

    def test_agent_sigterm_closes_its_control_channel(self):
        s = self.stack
        self.addCleanup(self.ensure_agent)
        mark = len(s.log("hub"))
        self.assertEqual(s.stop("agent"), 0)
        wait_until(lambda: "device dev01: control channel closed (" in s.log("hub")[mark:], 10,
                   "the hub to see the channel closed")
        self.assertLogHas("hub", "device dev01: control channel closed (1001", mark)
        self.assertFalse(device_online(s))

    def assertOnlyCode1001(self, name, event, since):
        other = [line for line in log_lines(self.stack, name, event, since)
                 if event + "1001" not in line]
        if other:
            self.fail(f"{name}.log: closed with another code than 1001:\n" + "\n".join(other))

    def ensure_hub(self):
        if "hub" not in self.stack.procs:
            self.stack.start_hub()
        wait_online(self.stack)


# ---------------------------------------------------------------------------------------------
# The service control channel: pipelined stream initiation over one WebSocket.

def ws_service(stack, token=None):
    return WsClient(stack.hub_port, "/api/v1/service/control",
                    {"Authorization": token or service_token(stack)}, ca_file(stack))


def send_binary(ws, payload):
    """A masked binary frame (WsClient sends only text)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    ws.sock.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + masked)


def recv_answers(ws, n, timeout=30):
    """The next `n` stream_response messages, by id (as JSON text, so 7 and "7" differ)."""
    ws.sock.settimeout(timeout)
    out = {}
    while len(out) < n:
        msg = json.loads(ws.recv_text())
        assert msg["type"] == "stream_response", msg
        out[json.dumps(msg["id"])] = msg
    return out


class ServiceChannel(HubTest):
    def open_channel(self, token=None):
        ws = ws_service(self.stack, token)
        self.addCleanup(ws.close)
        return ws

    def open_side(self, url, token):
        ws = WsClient(self.stack.hub_port, stream_path(url), {"Authorization": f"Bearer {token}"},
                      ca_file(self.stack))
        self.addCleanup(ws.close)
        return ws

    def test_service_channel_auth_refusals_401_and_403(self):
        s = self.stack
        wrong_key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
        for token in (service_token(s, key=wrong_key), service_token(s, expiry=int(time.time()) - 60),
                      service_token(s, policy="nosuchpolicy"), device_token(s),
                      "SharedAccessSignature garbage"):
            ws = ws_service(s, token)
            ws.close()
            self.assertEqual(ws.status, 401, token)
        # A policy without `connect`: add one to the seed and rebuild the registry from it.
        reader_key = "UkVBREVSUkVBREVSUkVBREVSUkVBREVSUkVBREVSUkU="
        self.addCleanup(wait_online, s)
        s.stop("hub")
        with open(os.path.join(s.state, "bootstrap.yaml"), "a") as f:
            f.write(f'  - name: reader\n    key: "{reader_key}"\n    permissions: [registry-read]\n')
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(s.state, "registry.db" + suffix))
        s.start_hub()
        wait_online(s)
        ws = ws_service(s, service_token(s, key=reader_key, policy="reader"))
        ws.close()
        self.assertEqual(ws.status, 403)
        r = https(s, "POST", "/api/v1/devices/dev01/streams", {"port": 22},
                  token=service_token(s, key=reader_key, policy="reader"))
        self.assertEqual((r.status, r.json["error"]), (403, "forbidden"), r)
        # Not an upgrade, or not a GET.
        r = api(s, "GET", "/api/v1/service/control")
        self.assertEqual(r.status, 426, r)
        r = api(s, "POST", "/api/v1/service/control", {})
        self.assertEqual(r.status, 405, r)
        self.assertLogLacks("hub", reader_key, "a key")

    def test_20_pipelined_requests_on_one_channel(self):
        ws = self.open_channel()
        self.assertEqual(ws.status, 101)
        ids = [f"req-{i}" if i % 2 else i for i in range(20)]
        for i in ids:  # all sent before any answer is read
            ws.send_text(json.dumps({"type": "stream_request", "id": i, "device": "dev01",
                                     "port": self.holder.port, "host": "127.0.0.1"}))
        answers = recv_answers(ws, 20)
        self.assertEqual(set(answers), {json.dumps(i) for i in ids})
        sids = set()
        for a in answers.values():
            self.assertEqual(a["status"], 200, a)
            self.assertEqual(a["url"], f"wss://127.0.0.1:{self.stack.hub_port}/api/v1/streams/"
                             + a["stream_id"])
            sids.add(a["stream_id"])
        self.assertEqual(len(sids), 20)
        for a in answers.values():  # every grant opens its side
            self.assertEqual(self.open_side(a["url"], a["token"]).status, 101)
        for a in answers.values():
            self.assertLogLacks("hub", a["token"], "a stream token")

    def test_malformed_messages_leave_the_channel_up(self):
        ws = self.open_channel()
        self.assertEqual(ws.status, 101)
        bad = [
            {"id": "t", "type": "bogus"},
            {"id": "n", "device": "dev01", "port": 22},
            {"id": 1, "type": "stream_request", "device": "dev01", "port": 0},
            {"id": 2, "type": "stream_request", "device": "dev01", "port": 70000},
            {"id": 3, "type": "stream_request", "device": "dev01", "port": "22"},
            {"id": 4, "type": "stream_request", "device": "dev01", "port": 22, "host": 5},
            {"id": 5, "type": "stream_request", "port": 22},
            {"id": 6, "type": "stream_request", "device": 7, "port": 22},
        ]
        for m in bad:
            ws.send_text(json.dumps(m))
        answers = recv_answers(ws, len(bad))
        for m in bad:
            a = answers[json.dumps(m["id"])]
            self.assertEqual((a["status"], a["error"]), (400, "bad_request"), a)
            self.assertTrue(a["message"])
        # Still up: a good request is answered (23 is not on the allow-list: answered at once).
        ws.send_text(json.dumps({"type": "stream_request", "id": "ok", "device": "dev01",
                                 "port": 23}))
        a = recv_answers(ws, 1)['"ok"']
        self.assertEqual((a["status"], a["error"]), (403, "port-not-allowed"), a)
        # Without an id there is nothing to answer: the channel closes with 1007.
        ws.send_text("not json")
        self.assertEqual(read_close(ws), 1007)
        ws2 = self.open_channel()
        ws2.send_text(json.dumps({"type": "stream_request", "device": "dev01", "port": 23}))
        self.assertEqual(read_close(ws2), 1007)
        # Binary data is not part of the protocol: 1003.
        ws3 = self.open_channel()
        send_binary(ws3, b"x")
        self.assertEqual(read_close(ws3), 1003)
        self.assertTrue(device_online(self.stack))

    def test_limits_give_the_same_statuses_as_post(self):
        s = self.stack
        self.addCleanup(restart_hub, s)
        self.addCleanup(configure_hub, s, self.base_hub_yaml)
        configure_hub(s, self.base_hub_yaml, max_streams_per_device=1)
        restart_hub(s)
        held = self.hold_streams(1)
        self.assertEqual(len(held), 1)
        ws = self.open_channel()
        requests = {"busy": ("dev01", self.holder.port), "unknown": ("nosuchdevice", 22)}
        for i, (device, port) in requests.items():
            ws.send_text(json.dumps({"type": "stream_request", "id": i, "device": device,
                                     "port": port}))
        answers = recv_answers(ws, 2)
        busy, unknown = answers['"busy"'], answers['"unknown"']
        post_busy = initiate(s, "dev01", self.holder.port)
        post_unknown = initiate(s, "nosuchdevice", 22)
        self.assertEqual((busy["status"], busy["error"]), (429, "device_busy"), busy)
        self.assertGreaterEqual(busy["retry_after"], 1)
        self.assertEqual((post_busy.status, post_busy.json["error"]), (429, "device_busy"))
        self.assertEqual(int(post_busy.headers["retry-after"]), busy["retry_after"])
        self.assertEqual((unknown["status"], unknown["error"]), (404, "device_unknown"), unknown)
        self.assertEqual((post_unknown.status, post_unknown.json["error"]),
                         (404, "device_unknown"))
        self.assertEqual(unknown["message"], post_unknown.json["message"])
        for h in held:
            h.close()

    def test_offline_device_and_channel_loss_end_waiting_streams(self):
        s = self.stack
        self.addCleanup(self.ensure_agent)
        s.stop("agent")
        ws = self.open_channel()
        ws.send_text(json.dumps({"type": "stream_request", "id": 1, "device": "dev01",
                                 "port": 22}))
        a = recv_answers(ws, 1)["1"]
        self.assertEqual((a["status"], a["error"]), (503, "device_offline"), a)
        # A device that never answers; the service channel goes away while it waits.
        dev = ws_control(s)
        self.addCleanup(dev.close)
        self.assertEqual(dev.status, 101)
        mark = len(s.log("hub"))
        ws.send_text(json.dumps({"type": "stream_request", "id": 2, "device": "dev01",
                                 "port": 22}))
        request = json.loads(dev.recv_text())
        ws.close()
        sid = request["stream_id"]
        self.assertLogHas("hub", f"stream {sid}: client went away during the handshake", mark)


if __name__ == "__main__":
    unittest.main(verbosity=2)
