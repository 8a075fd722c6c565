"""Multiplexed streams against the real hub and agent, with an independent peer written from
docs/mux.md (mux_peer.py) playing the service or a device: the subprotocol negotiation, a stream
opened, accepted and relayed to the real agent, and hostile frames (bad ids, data beyond the
window, bytes that are no frame, answers for streams never opened, invalid text, a device that
vanishes). Each refusal is local to its stream or channel; the stack still serves afterwards."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_until  # noqa: E402
from mux_peer import (ACCEPT, CLOSE, DATA, EOF, OPEN, REJECT, WINDOW,  # noqa: E402
                      MuxPeer, accept_frame, close_frame, frame, open_frame, reject_frame)
from test_hostile import HostileHub, healthy  # noqa: E402
from test_hub import api, ca_file, device_token, service_token, wait_online  # noqa: E402


class MuxHub(HostileHub):
    def service(self, offer=True):
        peer = MuxPeer(self.stack.hub_port, "/api/v1/service/control",
                       {"Authorization": service_token(self.stack)}, ca_file(self.stack), offer)
        self.addCleanup(peer.close)
        peer.sock.settimeout(20)
        return peer

    def device(self, device):
        """A raw multiplexing device `device`, registered and online."""
        r = api(self.stack, "POST", "/api/v1/devices", {"id": device})
        self.assertIn(r.status, (201, 409), r)
        key = api(self.stack, "GET", f"/api/v1/devices/{device}").json["primary_key"]
        peer = MuxPeer(self.stack.hub_port, f"/api/v1/devices/{device}/control",
                       {"Authorization": device_token(self.stack, device, key)},
                       ca_file(self.stack))
        self.addCleanup(peer.close)
        peer.sock.settimeout(20)
        self.assertTrue(peer.selected)
        wait_online(self.stack, device)
        return peer

    def get_page(self, svc, stream):
        """Sends a GET on an accepted stream to the device's web server; the reply's bytes."""
        svc.send(frame(DATA, stream, b"GET / HTTP/1.0\r\n\r\n"), frame(EOF, stream))
        got = b""
        while True:
            f = svc.expect(DATA, EOF, CLOSE, stream=stream)
            if f.type == DATA:
                got += f.payload
            elif f.type == EOF:
                svc.send(close_frame(stream, 1000))
            else:
                return got, f.close()[0]


class Negotiation(MuxHub):
    def test_hub_selects_the_subprotocol_only_when_offered(self):
        self.assertTrue(self.service().selected)
        plain = self.service(offer=False)
        self.assertEqual(plain.status, 101)
        self.assertNotIn("sec-websocket-protocol", plain.headers)

    def test_a_stream_through_the_real_agent_carries_a_page_and_ends_with_1000(self):
        svc = self.service()
        svc.send(open_frame(1, device="dev01", host="127.0.0.1", port=self.stack.http_port,
                            user="alice", name="page"))
        f = svc.expect(ACCEPT, REJECT, stream=1)
        self.assertEqual(f.type, ACCEPT, f.reject() if f.type == REJECT else f)
        body, code = self.get_page(svc, 1)
        self.assertIn(b"hello from dev01", body)
        self.assertEqual(code, 1000)
        # The audit names the caller and the stream as for any stream.
        wait_until(lambda: any(r.get("name") == "page" and r.get("outcome") == "ok"
                               for r in api(self.stack, "GET", "/api/v1/streams").json["recent"]),
                   what="the stream's audit record")

    def test_refusals_carry_the_codes_of_the_post_endpoint(self):
        svc = self.service()
        svc.send(open_frame(1, device="dev09", host="127.0.0.1", port=22),
                 open_frame(3, device="dev01", host="127.0.0.1", port=1),
                 open_frame(5, device="dev01", host="127.0.0.1", port=self.stack.closed_port))
        codes = {}
        for _ in range(3):
            f = svc.expect(REJECT)
            codes[f.stream] = f.reject()[0]
        self.assertEqual(codes, {1: "device_unknown", 3: "port-not-allowed",
                                 5: "connection-refused"})


class HostileService(MuxHub):
    def test_requests_that_make_no_sense_are_refused_and_the_channel_stays(self):
        svc = self.service()
        svc.send(open_frame(1, device="dev01", host="127.0.0.1", port=0),   # no port, no socket
                 open_frame(3, device="", host="127.0.0.1", port=22),      # no device
                 open_frame(5, device="dev01", host="bad host!", port=22))  # not a host
        codes = {}
        while len(codes) < 3:
            f = svc.expect(REJECT)
            codes[f.stream] = f.reject()[0]
        self.assertEqual(codes[1], "bad_request")
        self.assertIn(codes[3], ("bad_request", "bad_device_id"))
        self.assertIn(codes[5], ("bad_request", "bad-host"))
        # The channel still opens streams.
        svc.send(open_frame(7, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        self.assertEqual(svc.expect(ACCEPT, REJECT, stream=7).type, ACCEPT)
        self.hub_alive()

    def test_invalid_utf8_in_an_open_fails_that_channel_only(self):
        other = self.service()
        svc = self.service()
        svc.send(frame(OPEN, 1, b"\x00\x04\x00\x00\x00\x16" + b"\x02\xff\xfe" + b"\x09127.0.0.1" +
                       b"\x00\x00\x00\x00"))
        self.assertEqual(svc.read_close_code(), 1002)
        other.send(open_frame(1, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        body, code = self.get_page(other, 1) if other.expect(ACCEPT, stream=1) else (b"", 0)
        self.assertIn(b"hello from dev01", body)
        self.hub_alive()

    def test_data_beyond_the_window_closes_that_stream_only(self):
        dev = self.device("slow01")  # accepts with a 4 KiB window and never reads
        svc = self.service()
        svc.send(open_frame(1, device="slow01", host="127.0.0.1", port=22),
                 open_frame(3, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        f = dev.expect(OPEN)
        dev.send(accept_frame(f.stream, window=4096))
        credit = {}
        for _ in range(2):
            a = svc.expect(ACCEPT)
            credit[a.stream] = a.window()
        # Use all the credit the hub grants until it grants no more (its buffers toward the
        # device are full and nothing is consumed), then send 64 KiB beyond it.
        chunk = b"x" * 16384
        while True:
            n = credit[1]
            credit[1] = 0
            while n > 0:
                svc.send(frame(DATA, 1, chunk[:min(n, len(chunk))]))
                n -= min(n, len(chunk))
            svc.sock.settimeout(1.5)
            try:
                while True:
                    w = svc.recv()
                    if w.type == WINDOW and w.stream == 1:
                        credit[1] += w.window()
            except (TimeoutError, OSError):
                pass
            svc.sock.settimeout(20)
            if credit[1] == 0:
                break
        svc.send(*[frame(DATA, 1, chunk) for _ in range(4)])
        self.assertEqual(svc.expect(CLOSE, stream=1).close()[0], 1002)
        # The hub ends the device's side too, and the other stream on the channel still works.
        g = dev.expect(DATA, CLOSE, stream=f.stream)  # the 4 KiB it allowed, then the end
        while g.type == DATA:
            g = dev.expect(DATA, CLOSE, stream=f.stream)
        body, code = self.get_page(svc, 3)
        self.assertIn(b"hello from dev01", body)
        self.hub_alive()

    def test_bytes_that_are_no_frame_close_the_channel_with_1002(self):
        svc = self.service()
        svc.send(frame(DATA, 0x80000001, b""))  # a stream id with the top bit set
        self.assertEqual(svc.read_close_code(), 1002)
        self.hub_alive()

    def test_an_open_with_the_hubs_parity_or_a_reused_id_fails_the_channel(self):
        svc = self.service()
        svc.send(open_frame(2, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        self.assertEqual(svc.read_close_code(), 1002)
        svc = self.service()
        svc.send(open_frame(1, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        svc.expect(ACCEPT, stream=1)
        svc.send(open_frame(1, device="dev01", host="127.0.0.1", port=self.stack.http_port))
        self.assertEqual(svc.read_close_code(), 1002)
        self.hub_alive()

    def test_a_flood_of_opens_is_refused_beyond_the_limits_and_the_channel_stays(self):
        dev = self.device("mute01")  # answers nothing: every open stays pending
        svc = self.service()
        svc.send(*[open_frame(1 + 2 * i, device="mute01", host="127.0.0.1", port=22)
                   for i in range(300)])
        refused = 0
        deadline = time.monotonic() + 20
        while refused < 300 - 128 and time.monotonic() < deadline:
            f = svc.expect(REJECT)
            refused += 1
        self.assertGreaterEqual(refused, 300 - 128)
        del dev
        self.hub_alive()


class HostileDevice(MuxHub):
    def test_answers_for_streams_never_opened_end_that_device_only(self):
        dev = self.device("liar01")
        dev.send(accept_frame(2), reject_frame(4, "port-not-allowed", "no"))
        self.assertEqual(dev.read_close_code(), 1002)
        wait_online(self.stack, "dev01")
        self.hub_alive()

    def test_a_device_that_vanishes_ends_its_streams_with_1001(self):
        dev = self.device("gone01")
        svc = self.service()
        svc.send(open_frame(1, device="gone01", host="127.0.0.1", port=22, user="bob"))
        f = dev.expect(OPEN)
        req = f.open_request()
        self.assertEqual((req["host"], req["port"], req["policy"], req["user"]),
                         ("127.0.0.1", 22, "service", "bob"))
        self.assertRegex(req["stream_id"], "^[0-9a-f]{32}$")
        dev.send(accept_frame(f.stream))
        svc.expect(ACCEPT, stream=1)
        dev.send(frame(DATA, f.stream, b"banner\n"))
        self.assertEqual(svc.expect(DATA, stream=1).payload, b"banner\n")
        # Gone without a close frame or a FIN.
        dev.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        dev.sock.close()
        f = svc.expect(CLOSE, stream=1)
        self.assertEqual(f.close()[0], 1001)
        self.hub_alive()

    def test_a_device_reject_code_reaches_the_service_unchanged(self):
        dev = self.device("picky01")
        svc = self.service()
        svc.send(open_frame(1, device="picky01", host="127.0.0.1", port=23))
        f = dev.expect(OPEN)
        dev.send(reject_frame(f.stream, "port-not-allowed", "23 is not on the list"))
        code, reason = svc.expect(REJECT, stream=1).reject()
        self.assertEqual(code, "port-not-allowed")
        self.assertIn("23 is not on the list", reason)
        self.assertTrue(healthy(self.stack))

    def test_window_frames_from_a_device_do_not_grow_credit_past_the_limit(self):
        dev = self.device("greedy01")
        svc = self.service()
        svc.send(open_frame(1, device="greedy01", host="127.0.0.1", port=22))
        f = dev.expect(OPEN)
        dev.send(accept_frame(f.stream), frame(WINDOW, f.stream, b"\x7f\xff\xff\xff"))
        svc.expect(ACCEPT, stream=1)
        # Credit beyond 2^31-1 is a stream error: that stream closes, the channel stays.
        g = dev.expect(CLOSE, stream=f.stream)
        self.assertEqual(g.close()[0], 1002)
        self.assertEqual(svc.expect(CLOSE, stream=1).close()[0], 1002)
        self.hub_alive()


if __name__ == "__main__":
    unittest.main()
