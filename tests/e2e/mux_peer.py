"""An independent peer for multiplexed streams (docs/mux.md), written from the document and not
from the C++ code: the frame codec and a WebSocket client that offers the `devstreams.mux.1`
subprotocol, so e2e tests can play a device or a service, well-behaved or hostile."""

import struct

from harness import WsClient, recv_exact  # noqa: F401  (recv_exact for callers)

PROTOCOL = "devstreams.mux.1"

OPEN, ACCEPT, REJECT, DATA, EOF, CLOSE, WINDOW, PING = range(1, 9)
NAMES = {OPEN: "OPEN", ACCEPT: "ACCEPT", REJECT: "REJECT", DATA: "DATA", EOF: "EOF",
         CLOSE: "CLOSE", WINDOW: "WINDOW", PING: "PING"}
ACK = 0x1
WINDOW_SIZE = 256 * 1024


def frame(ftype, stream, payload=b"", flags=0):
    return struct.pack(">BBHI", ftype, flags, len(payload), stream) + payload


def field(text, size=1):
    b = text.encode() if isinstance(text, str) else text
    return (struct.pack(">B", len(b)) if size == 1 else struct.pack(">H", len(b))) + b


def open_frame(stream, window=WINDOW_SIZE, port=0, device="", host="", unix="", policy="",
               user="", name=""):
    payload = struct.pack(">IH", window, port)
    for f in (device, host, unix, policy, user, name):
        payload += field(f)
    return frame(OPEN, stream, payload)


def accept_frame(stream, window=WINDOW_SIZE):
    return frame(ACCEPT, stream, struct.pack(">I", window))


def reject_frame(stream, code, reason=""):
    return frame(REJECT, stream, field(code) + field(reason, 2))


def close_frame(stream, code=1000, reason=""):
    return frame(CLOSE, stream, struct.pack(">H", code) + field(reason, 2))


def window_frame(stream, increment):
    return frame(WINDOW, stream, struct.pack(">I", increment))


class Frame:
    def __init__(self, ftype, flags, stream, payload):
        self.type, self.flags, self.stream, self.payload = ftype, flags, stream, payload

    def open_request(self):
        window, port = struct.unpack(">IH", self.payload[:6])
        pos, fields = 6, []
        for _ in range(6):
            n = self.payload[pos]
            fields.append(self.payload[pos + 1:pos + 1 + n].decode())
            pos += 1 + n
        keys = ("device", "host", "unix", "policy", "user", "name")
        out = dict(window=window, port=port, stream_id="", **dict(zip(keys, fields)))
        if pos < len(self.payload):  # the optional seventh field: the hub's stream id
            n = self.payload[pos]
            out["stream_id"] = self.payload[pos + 1:pos + 1 + n].decode()
        return out

    def reject(self):
        n = self.payload[0]
        code = self.payload[1:1 + n].decode()
        m = struct.unpack(">H", self.payload[1 + n:3 + n])[0]
        return code, self.payload[3 + n:3 + n + m].decode()

    def close(self):
        code, m = struct.unpack(">HH", self.payload[:4])
        return code, self.payload[4:4 + m].decode()

    def window(self):
        """The window of an ACCEPT, the increment of a WINDOW."""
        return struct.unpack(">I", self.payload[:4])[0]

    def __repr__(self):
        return f"<{NAMES.get(self.type, self.type)} {self.stream} {self.payload[:40]!r}>"


class MuxPeer(WsClient):
    """A WebSocket that offers the mux subprotocol. `selected` says whether the hub chose it;
    frames are sent as binary messages and read back one frame at a time (pings answered)."""

    def __init__(self, port, path, headers, ca, offer=True):
        hdrs = dict(headers)
        if offer:
            hdrs["Sec-WebSocket-Protocol"] = PROTOCOL
        super().__init__(port, path, hdrs, ca)
        self.selected = self.headers.get("sec-websocket-protocol") == PROTOCOL
        self.buf = b""
        self.close_code = None  # the WebSocket close code once the hub closed

    def send(self, *frames):
        """All `frames` in one binary message."""
        self.send_frame(0x2, b"".join(frames))

    def _fill(self):
        while True:
            op, data = self.recv_frame()
            if op == 2 or op == 0:
                self.buf += data
                return
            if op == 8:
                self.close_code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                raise EOFError(f"channel closed ({self.close_code})")
            if op == 9:  # a WebSocket ping: pong
                self.send_frame(0xA, data)

    def recv(self, answer_pings=True):
        """The next frame (a mux PING is answered and skipped unless answer_pings is False)."""
        while True:
            while len(self.buf) < 8:
                self._fill()
            ftype, flags, n, stream = struct.unpack(">BBHI", self.buf[:8])
            while len(self.buf) < 8 + n:
                self._fill()
            f = Frame(ftype, flags, stream, self.buf[8:8 + n])
            self.buf = self.buf[8 + n:]
            if ftype == PING and answer_pings and not flags & ACK:
                self.send(frame(PING, 0, f.payload, ACK))
                continue
            return f

    def expect(self, *types, stream=None):
        """The next frame of one of `types` (on `stream` when given), skipping WINDOW frames and
        pings."""
        while True:
            f = self.recv()
            if f.type == WINDOW and WINDOW not in types:
                continue
            if f.type == PING and PING not in types:
                continue
            if stream is not None and f.stream != stream:
                raise AssertionError(f"expected a frame on stream {stream}, got {f}")
            if f.type not in types:
                raise AssertionError(f"expected {[NAMES[t] for t in types]}, got {f}")
            return f

    def read_close_code(self):
        """Reads until the WebSocket closes; its close code."""
        try:
            while True:
                self.recv()
        except EOFError:
            return self.close_code
