"""Hostile peers against the hub, over loopback with the real programs: requests and messages
with the wrong types or bytes, floods of connections and handshakes, descriptor exhaustion,
quotas, silent stream peers, long-lived tokens, and the metrics endpoint's protection. Every
test ends by checking that the stack still serves a normal stream."""

import contextlib
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import WsClient, wait_until  # noqa: E402
from test_hub import (HOUR, HubTest, api, ca_file, configure_hub, device_token,  # noqa: E402
                      https, initiate, parse_metrics, read_close, restart_hub, sample,
                      service_token, stream_path, ws_control)


def cpu_seconds(pid):
    """User plus system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_inode(local_port, remote_port):
    """The inode of the IPv4 TCP socket from local_port to remote_port, from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == local_port
                    and int(fields[2].split(":")[1], 16) == remote_port):
                return fields[9]
    return None


def descriptors(pid):
    """What each open descriptor of a process refers to."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def connect_from(source, port):
    """A TCP connection to the hub from another loopback address (its own per-address count)."""
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def healthy(stack, source=None):
    with contextlib.suppress(OSError, http.client.HTTPException):
        return https(stack, "GET", "/healthz", timeout=5, source=source).status == 200
    return False


def closed_at_once(sock, within=2.0):
    """Whether the peer closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class HostileHub(HubTest):
    def tearDown(self):
        # The rule of this file: whatever was thrown at it, the stack still serves (after a
        # restart of the hub the daemon may need a moment to notice).
        end = time.monotonic() + 15
        while True:
            try:
                self.stack.assert_serves()
                return
            except AssertionError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def reconfigure(self, **keys):
        configure_hub(self.stack, self.base_hub_yaml, **keys)
        restart_hub(self.stack)
        self.addCleanup(self.restore)

    def restore(self):
        configure_hub(self.stack, self.base_hub_yaml)
        restart_hub(self.stack)

    def hub_alive(self):
        p = self.stack.procs.get("hub")
        self.assertIsNotNone(p)
        self.assertIsNone(p.poll(), "devstreams-hub exited")
        r = https(self.stack, "GET", "/healthz")
        self.assertEqual(r.status, 200, r)


class Requests(HostileHub):
    def test_data_after_a_sides_eof_ends_the_stream_with_1002(self):
        # A per-stream side that half-closed and sends on: its late bytes would reach the target
        # ahead of the EOF and the cut stream would look complete.
        s = self.stack
        r = initiate(s, "dev01", s.http_port)
        self.assertEqual(r.status, 200, r)
        side = WsClient(s.hub_port, stream_path(r.json["url"]),
                        {"Authorization": "Bearer " + r.json["token"]}, ca_file(s))
        self.addCleanup(side.close)
        self.assertEqual(side.status, 101)
        side.send_frame(2, b"GET / HTTP/1.0\r\n")
        side.send_text('{"type":"eof"}')
        side.send_frame(2, b"after the eof")
        self.assertEqual(read_close(side), 1002)
        self.assertIn("side sent data after its EOF", s.log("hub"))
        self.hub_alive()

    def test_invalid_utf8_device_id_gets_400_and_the_hub_lives(self):
        pid = self.stack.procs["hub"].pid
        for path in ("/api/v1/devices/%FF/streams", "/api/v1/devices/%C3%28/control",
                     "/api/v1/devices/%FF", "/api/v1/devices/a%0Ab/streams"):
            for method in ("POST", "GET"):
                r = api(self.stack, method, path, {"port": 22})
                self.assertIn(r.status, (400, 405), (method, path, r))
                if r.status == 400:
                    self.assertEqual(r.json["error"], "bad_device_id", r)
        self.hub_alive()
        self.assertEqual(self.stack.procs["hub"].pid, pid, "the hub was restarted")

    def test_admin_bodies_with_wrong_types_get_400(self):
        s = self.stack
        for method, path, body in (
                ("POST", "/api/v1/devices", {"id": "x", "enabled": "yes"}),
                ("POST", "/api/v1/devices", {"id": 5}),
                ("POST", "/api/v1/devices", [1, 2]),
                ("POST", "/api/v1/devices", b"{\"id\": \"x\", \"primary_key\": 1}"),
                ("PUT", "/api/v1/devices/dev01", {"enabled": "no"}),
                ("PUT", "/api/v1/devices/dev01", {"primary_key": ["k"]}),
                ("POST", "/api/v1/devices/dev01/keys/rotate", {"key": 1}),
                ("POST", "/api/v1/devices/dev01/keys/rotate", b"\xff\xfe"),
                ("POST", "/api/v1/devices/dev01/streams", {"port": "22"}),
                ("POST", "/api/v1/devices/dev01/streams", {"port": 22, "host": 7}),
                ("POST", "/api/v1/devices/dev01/streams", {"port": 22, "host": "a b"}),
                ("POST", "/api/v1/devices/dev01/streams", {"port": 65536})):
            r = api(s, method, path, body)
            self.assertEqual(r.status, 400, (method, path, body, r))
            self.assertEqual(r.json["error"], "bad_request", r)
        self.hub_alive()
        r = api(s, "GET", "/api/v1/devices/dev01")
        self.assertTrue(r.json["enabled"])

    def test_wrong_websocket_version_gets_426_naming_version_13(self):
        ctx = ssl.create_default_context(cafile=ca_file(self.stack))
        with socket.create_connection(("127.0.0.1", self.stack.hub_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /api/v1/devices/dev01/control HTTP/1.1\r\nHost: localhost\r\n"
                            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            b"Sec-WebSocket-Version: 8\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    head += chunk
        lines = head.decode().split("\r\n")
        self.assertTrue(lines[0].startswith("HTTP/1.1 426"), lines[0])
        self.assertIn("sec-websocket-version: 13", [h.lower() for h in lines])

    def test_token_expiring_further_than_the_maximum_is_refused(self):
        far = int(time.time()) + 2 * 24 * HOUR  # the default maximum is 24 h
        r = https(self.stack, "GET", "/api/v1/devices", token=service_token(self.stack, far))
        self.assertEqual(r.status, 401, r)
        c = WsClient(self.stack.hub_port, "/api/v1/devices/dev01/control",
                     {"Authorization": device_token(self.stack, expiry=far)},
                     ca_file(self.stack))
        c.close()
        self.assertEqual(c.status, 401)
        r = api(self.stack, "GET", "/api/v1/devices")
        self.assertEqual(r.status, 200, r)


class DeviceMessages(HostileHub):
    def play_dev02(self):
        r = api(self.stack, "POST", "/api/v1/devices", {"id": "dev02"})
        self.assertIn(r.status, (201, 409), r)
        if r.status == 409:
            r = api(self.stack, "GET", "/api/v1/devices/dev02")
        dev = ws_control(self.stack, "dev02", r.json["primary_key"])
        self.addCleanup(dev.close)
        self.assertEqual(dev.status, 101)
        return dev

    def ask_dev02(self):
        answer = []
        t = threading.Thread(target=lambda: answer.append(initiate(self.stack, "dev02", 22)))
        t.start()
        return t, answer

    def test_answer_with_wrong_types_refuses_the_stream_and_the_hub_lives(self):
        dev = self.play_dev02()
        t, answer = self.ask_dev02()
        request = json.loads(dev.recv_text())
        dev.send_text(json.dumps({"type": "stream_response", "stream_id": request["stream_id"],
                                  "accept": False, "code": 1, "reason": None}))
        t.join(30)
        self.assertEqual(len(answer), 1)
        self.assertEqual(answer[0].status, 502, answer[0])
        self.assertEqual(answer[0].json["error"], "rejected", answer[0])
        self.hub_alive()

    def test_device_chosen_code_and_reason_are_bounded_and_never_a_label(self):
        dev = self.play_dev02()
        t, answer = self.ask_dev02()
        request = json.loads(dev.recv_text())
        code = "x" * 5000
        dev.send_text(json.dumps({"type": "stream_response", "stream_id": request["stream_id"],
                                  "accept": False, "code": code, "reason": "\r\nfake line" * 500}))
        t.join(30)
        self.assertEqual(answer[0].status, 502, answer[0])
        self.assertLessEqual(len(answer[0].json["error"]), 64)
        self.assertLessEqual(len(answer[0].json["message"].encode()), 256)
        r = https(self.stack, "GET", "/metrics")
        fams = parse_metrics(r.body.decode())
        reasons = {lbl.get("reason") for fam in fams.values() for name, lbl, _ in fam["samples"]
                   if name == "devstreams_rejects_total"}
        self.assertNotIn(code, reasons)
        self.assertIn("other", reasons)
        # A peer's CR/LF never starts a log line of its own.
        self.assertNotIn("\nfake line", self.stack.log("hub"))
        self.hub_alive()

    def test_malformed_control_message_closes_that_device_only(self):
        dev = self.play_dev02()
        dev.send_text("{\"type\": \"stream_response\", \"stream_id\": 5}")
        self.assertEqual(read_close(dev), 1007)
        self.hub_alive()


class Floods(HostileHub):
    def test_connections_per_address_are_capped(self):
        self.reconfigure(max_connections_per_address=8, request_timeout="30s")
        held = []
        self.addCleanup(lambda: [c.close() for c in held])
        for _ in range(8):
            held.append(connect_from("127.0.0.2", self.stack.hub_port))
        time.sleep(0.3)
        for c in held:
            self.assertFalse(closed_at_once(c, 0.1), "an admitted connection was closed")
        extra = connect_from("127.0.0.2", self.stack.hub_port)
        self.assertTrue(closed_at_once(extra), "a ninth connection from one address got in")
        extra.close()
        # Another address is counted on its own.
        other = connect_from("127.0.0.3", self.stack.hub_port)
        self.assertFalse(closed_at_once(other, 0.3), "another address was refused")
        other.close()
        for c in held:
            c.close()
        held.clear()
        # Slots come back as connections end; the agent (also on 127.0.0.1) is back too.
        wait_until(lambda: healthy(self.stack), 10, "hub serves")
        self.assertIn("too many connections from that address", self.stack.log("hub"))

    def test_tls_handshakes_in_progress_are_capped(self):
        self.reconfigure(max_tls_handshakes=4, request_timeout="30s")
        held = [connect_from("127.0.0.2", self.stack.hub_port) for _ in range(4)]
        self.addCleanup(lambda: [c.close() for c in held])
        time.sleep(0.3)
        extra = connect_from("127.0.0.3", self.stack.hub_port)
        self.assertTrue(closed_at_once(extra), "a fifth handshake was started")
        extra.close()
        for c in held:
            c.close()
        wait_until(lambda: healthy(self.stack), 10, "hub serves")

    def test_one_address_holds_only_its_share_of_tls_handshakes(self):
        # Silent sockets from one source would otherwise hold every slot until request_timeout.
        self.reconfigure(max_tls_handshakes=16, max_tls_handshakes_per_address=3,
                         request_timeout="30s")
        held = [connect_from("127.0.0.2", self.stack.hub_port) for _ in range(3)]
        self.addCleanup(lambda: [c.close() for c in held])
        time.sleep(0.3)
        extra = connect_from("127.0.0.2", self.stack.hub_port)
        self.assertTrue(closed_at_once(extra), "a fourth handshake from one address was started")
        extra.close()
        # Another source still gets a TLS handshake and an answer while the three are held.
        wait_until(lambda: healthy(self.stack), 10, "hub serves another address")
        self.assertIn("too many TLS handshakes in progress from that address",
                      self.stack.log("hub"))

    def test_a_newcomer_sheds_the_oldest_stalled_handshake_of_its_address(self):
        # Three silent sockets would lock their address out until request_timeout; once they
        # are older than any real handshake, a newcomer takes the oldest one's slot.
        self.reconfigure(max_tls_handshakes=16, max_tls_handshakes_per_address=3,
                         request_timeout="30s")
        other = connect_from("127.0.0.3", self.stack.hub_port)
        held = [connect_from("127.0.0.2", self.stack.hub_port) for _ in range(3)]
        self.addCleanup(lambda: [c.close() for c in held + [other]])
        time.sleep(1.5)
        self.assertTrue(healthy(self.stack, "127.0.0.2"), "the newcomer was not served")
        self.assertTrue(closed_at_once(held[0]), "the oldest stalled handshake was kept")
        for c in held[1:] + [other]:
            self.assertFalse(closed_at_once(c, 0.2), "a younger or unrelated handshake was shed")
        self.assertIn("TLS handshake stalled, its slot taken by a newer connection",
                      self.stack.log("hub"))
        fams = parse_metrics(https(self.stack, "GET", "/metrics").body.decode())
        self.assertEqual(sample(fams, "devstreams_tls_handshakes_shed_total"), 1.0)

    def test_a_newcomer_sheds_the_oldest_stalled_handshake_when_all_slots_are_held(self):
        self.reconfigure(max_tls_handshakes=4, request_timeout="30s")
        held = [connect_from("127.0.0.2", self.stack.hub_port) for _ in range(2)]
        held += [connect_from("127.0.0.3", self.stack.hub_port) for _ in range(2)]
        self.addCleanup(lambda: [c.close() for c in held])
        time.sleep(1.5)
        self.assertTrue(healthy(self.stack, "127.0.0.4"), "the newcomer was not served")
        self.assertTrue(closed_at_once(held[0]), "the oldest stalled handshake was kept")
        for c in held[1:]:
            self.assertFalse(closed_at_once(c, 0.2), "a younger handshake was shed")

    def test_out_of_descriptors_does_not_spin_and_recovers(self):
        s = self.stack
        s.stop("hub")
        s.start("hub", ["prlimit", "--nofile=40:40", "--",
                        os.path.join(os.environ["DS_BIN_DIR"], "hub", "devstreams-hub"), "-c",
                        os.path.join(s.state, "hub.yaml")])
        self.addCleanup(restart_hub, s)
        wait_until(lambda: healthy(s), 15, "hub under prlimit")
        # UBSan's vptr check validates a vtable it has not met yet through a pipe, so with no
        # descriptor left it takes a live object for one with an invalid vptr (libsanitizer's
        # IsAccessibleMemoryRange). The hub ends each answered connection through a lingering
        # close; the first one must be over before descriptors run out.
        self.answer_and_wait_until_closed(s)
        pid = s.procs["hub"].pid
        held = []
        self.addCleanup(lambda: [c.close() for c in held])
        for _ in range(60):
            with contextlib.suppress(OSError):
                held.append(connect_from("127.0.0.2", s.hub_port))
        wait_until(lambda: "accept failed" in s.log("hub"), 10, "an accept error")
        before = cpu_seconds(pid)
        time.sleep(2)
        spent = cpu_seconds(pid) - before
        # Spinning on a readable listener burns a whole core; pausing costs next to nothing.
        self.assertLess(spent, 0.5, f"the hub used {spent:.2f} s of CPU in 2 s at EMFILE")
        for c in held:
            c.close()
        held.clear()
        wait_until(lambda: healthy(s), 15, "hub serves again")

    def answer_and_wait_until_closed(self, s):
        """One /healthz answered with Connection: close, then wait until the hub has closed
        its end (its socket gone from the hub's descriptors)."""
        ctx = ssl.create_default_context(cafile=ca_file(s))
        with socket.create_connection(("127.0.0.1", s.hub_port), timeout=5) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
            inode = socket_inode(s.hub_port, tls.getsockname()[1])
            self.assertIsNotNone(inode, "the hub's end of the probe in /proc/net/tcp")
            tls.close()
        pid = s.procs["hub"].pid
        wait_until(lambda: f"socket:[{inode}]" not in descriptors(pid), 10, "the probe closed")


class Quotas(HostileHub):
    def test_policy_quota_of_concurrent_streams_gives_429(self):
        self.reconfigure(max_streams_per_policy=2)
        held = self.hold_streams(2)
        self.assertEqual(len(held), 2)
        r = initiate(self.stack, "dev01", self.holder.port)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"], "policy_quota", r)
        self.assertIn("retry-after", r.headers)
        for sock in held:
            sock.close()
        wait_until(lambda: initiate(self.stack, "dev01", self.stack.http_port).status == 200, 20,
                   "quota freed")

    def test_silently_vanished_stream_peer_frees_its_slot(self):
        self.reconfigure(keepalive="1s")
        r = initiate(self.stack, "dev01", self.holder.port)
        self.assertEqual(r.status, 200, r)
        # Open the service side and then never read nor answer a ping: a peer that vanished.
        side = WsClient(self.stack.hub_port, stream_path(r.json["url"]),
                        {"Authorization": "Bearer " + r.json["token"]}, ca_file(self.stack))
        self.addCleanup(side.close)
        self.assertEqual(side.status, 101)

        def active():
            fams = parse_metrics(https(self.stack, "GET", "/metrics").body.decode())
            return sample(fams, "devstreams_streams_active")

        wait_until(lambda: active() == 1, 10, "the stream paired")
        wait_until(lambda: active() == 0, 15, "the silent stream ended by keepalive")


class Metrics(HostileHub):
    def test_bearer_token_protects_metrics_and_health(self):
        token = "m" * 24
        self.reconfigure(metrics_token=token)
        self.assertEqual(https(self.stack, "GET", "/metrics").status, 401)
        self.assertEqual(https(self.stack, "GET", "/healthz").status, 401)
        r = https(self.stack, "GET", "/metrics", token="Bearer " + "x" * 24)
        self.assertEqual(r.status, 401)
        r = https(self.stack, "GET", "/metrics", token="Bearer " + token)
        self.assertEqual(r.status, 200, r)
        parse_metrics(r.body.decode())

    def test_separate_metrics_listener(self):
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        mport = port.getsockname()[1]
        port.close()
        self.reconfigure(metrics_listen=f"127.0.0.1:{mport}")
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
            self.assertEqual(r.status, 200)
            parse_metrics(r.read().decode())
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=10) as r:
            self.assertEqual(json.loads(r.read())["status"], "ok")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/api/v1/devices", timeout=10)
        self.assertEqual(e.exception.code, 404)
        self.assertEqual(https(self.stack, "GET", "/metrics").status, 404)


if __name__ == "__main__":
    unittest.main()
