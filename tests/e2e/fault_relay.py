"""A fault-injecting TCP relay for the end-to-end tests and the benchmark: put between a program
and the hub (or any TCP peer), it adds delay, throttles, stalls, cuts every connection with a
reset, or resets once a number of bytes has passed; all of it changeable at runtime.

Two ways to place it:
  - plain: every accepted connection is relayed to one fixed upstream address;
  - HTTP CONNECT proxy: the relay answers `CONNECT host:port` itself and relays the tunnel.
    devstreams-agent and devstreamsd take it from HTTPS_PROXY, so every hub connection of one
    program (control or service channel, stream sides) goes through its own relay.

Faults apply to the bytes relayed after the tunnel is set up, per direction: "up" is from the
accepted client to the upstream, "down" the other way. Delay is a delay line (bytes keep
flowing; each chunk leaves `delay` seconds after it arrived), so a delay of 20 ms each way adds
40 ms to the round trip without limiting throughput beyond `buffer` bytes in flight.

In a test:   relay = FaultRelay(connect_proxy=True).start(); ...; relay.cut(); relay.close()
As a program (benchmarks):
    python3 fault_relay.py --listen 127.0.0.1:0 --connect-proxy --delay-ms 20
    python3 fault_relay.py --listen 127.0.0.1:2222 --upstream 127.0.0.1:22 --delay-ms 20
prints "listening on PORT" and runs until SIGTERM, SIGINT or the end of stdin. Lines on stdin
change it at runtime, each answered with "ok" (or "error ..."): `delay MS`, `rate BYTES_PER_S`
(0: unlimited), `stall`, `resume`, `cut`, `reset-after N up|down`."""

import argparse
import asyncio
import collections
import contextlib
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024


def _reset(writer):
    """Closes the connection under `writer` with RST (SO_LINGER {1, 0})."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One relayed connection: two directions, each a reader feeding a delay line and a writer
    draining it."""

    def __init__(self, relay, client, upstream):
        self.relay = relay
        self.ends = {"up": (client[0], upstream[1]), "down": (upstream[0], client[1])}
        self.writers = (client[1], upstream[1])
        self.dead = False
        self.tasks = []

    async def run(self):
        for d in ("up", "down"):
            line = collections.deque()
            state = {"bytes": 0, "more": asyncio.Event(), "room": asyncio.Event()}
            state["room"].set()
            self.tasks.append(asyncio.ensure_future(self._read(d, line, state)))
            self.tasks.append(asyncio.ensure_future(self._write(d, line, state)))
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def reset(self):
        if self.dead:
            return
        self.dead = True
        for w in self.writers:
            _reset(w)
        for t in self.tasks:
            t.cancel()

    async def _read(self, d, line, state):
        reader, _ = self.ends[d]
        r = self.relay
        try:
            while True:
                while state["bytes"] >= r.buffer:
                    state["room"].clear()
                    await state["room"].wait()
                data = await reader.read(CHUNK)
                line.append((time.monotonic() + r.delay, data))
                state["bytes"] += len(data)
                state["more"].set()
                if not data:
                    return  # EOF: the writer half-closes after what came before
        except (ConnectionError, OSError):
            self.reset()  # a reset on one side is passed on as a reset

    async def _write(self, d, line, state):
        _, writer = self.ends[d]
        r = self.relay
        try:
            while True:
                while not line:
                    state["more"].clear()
                    await state["more"].wait()
                due, data = line.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await r._running.wait()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                while data:
                    piece = data
                    if r.rate:
                        piece = data[:16384]
                    trip = r._trip
                    if trip and trip[0] == d:
                        piece = piece[:max(trip[1], 0)]
                    writer.write(piece)
                    await writer.drain()
                    data = data[len(piece):]
                    state["bytes"] -= len(piece)
                    state["room"].set()
                    r.bytes[d] += len(piece)
                    if trip and trip[0] == d:
                        trip[1] -= len(piece)
                        if trip[1] <= 0:
                            r._trip = None
                            r._cut_all()
                            return
                    if r.rate:
                        await asyncio.sleep(len(piece) / r.rate)
        except (ConnectionError, OSError):
            self.reset()


class FaultRelay:
    def __init__(self, upstream=None, connect_proxy=False, host="127.0.0.1", port=0, delay=0.0,
                 rate=None, buffer=8 << 20):
        if (upstream is None) == (not connect_proxy):
            raise ValueError("give an upstream (host, port) or connect_proxy=True")
        self.upstream = upstream
        self.connect_proxy = connect_proxy
        self.host, self.port = host, port
        self.delay = delay  # seconds, each direction
        self.rate = rate  # bytes per second per direction and connection, None: unlimited
        self.buffer = buffer  # bytes in flight per direction and connection
        self.bytes = {"up": 0, "down": 0}
        self.accepted = 0  # tunnels set up
        self.refused = 0  # CONNECTs whose upstream could not be reached
        self._links = set()
        self._trip = None
        self._loop = None
        self._thread = None
        self._server = None

    # --- life cycle -----------------------------------------------------------------------------

    def start(self):
        """Starts the relay on a thread of its own; returns self once it listens."""
        ready = threading.Event()

        def main():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault relay did not start")
        return self

    def close(self):
        if not self._loop:
            return

        async def stop():
            self._server.close()
            self._cut_all()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    # --- faults, callable from any thread -------------------------------------------------------

    def set_delay(self, seconds):
        self.delay = seconds

    def set_rate(self, bytes_per_second):
        self.rate = bytes_per_second

    def stall(self, on=True):
        """Stops (or resumes) forwarding in both directions; connections stay open and the
        senders' own buffers fill up, as on a link that went silent."""
        self._call(self._running.clear if on else self._running.set)

    def cut(self):
        """Resets every open connection on both sides now."""
        self._call(self._cut_all)

    def reset_after(self, n, direction="down"):
        """Once `n` more bytes passed in `direction` (on any connection), resets every open
        connection on both sides; exactly `n` bytes go through."""
        self._call(lambda: setattr(self, "_trip", [direction, n]))

    def connections(self):
        return len(self._links)

    # --- internals ------------------------------------------------------------------------------

    def _call(self, fn):
        done = threading.Event()

        def run():
            fn()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _cut_all(self):
        for link in list(self._links):
            link.reset()

    async def _listen(self):
        self._running = asyncio.Event()
        self._running.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  limit=CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        try:
            target = self.upstream
            if self.connect_proxy:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                parts = head.split(b"\r\n", 1)[0].split()
                if len(parts) != 3 or parts[0] != b"CONNECT":
                    writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    writer.close()
                    return
                host, _, port = parts[1].decode().rpartition(":")
                target = (host.strip("[]"), int(port))
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*target, limit=CHUNK), 10)
            except (OSError, asyncio.TimeoutError):
                self.refused += 1
                if self.connect_proxy:
                    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    writer.close()
                else:
                    _reset(writer)
                return
            for w in (writer, up_writer):
                sock = w.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.connect_proxy:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            self.accepted += 1
            link = _Link(self, (reader, writer), (up_reader, up_writer))
            self._links.add(link)
            try:
                await link.run()
            finally:
                self._links.discard(link)
                for w in (writer, up_writer):
                    if not link.dead:
                        w.close()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                asyncio.LimitOverrunError, ValueError):
            writer.transport.abort()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on")
    ap.add_argument("--upstream", help="HOST:PORT to relay to (plain mode)")
    ap.add_argument("--connect-proxy", action="store_true", help="be an HTTP CONNECT proxy")
    ap.add_argument("--delay-ms", type=float, default=0, help="added delay in each direction")
    ap.add_argument("--rate", type=float, help="bytes per second per direction and connection")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    upstream = None
    if args.upstream:
        uh, _, up = args.upstream.rpartition(":")
        upstream = (uh, int(up))
    relay = FaultRelay(upstream=upstream, connect_proxy=args.connect_proxy, host=host,
                       port=int(port), delay=args.delay_ms / 1000, rate=args.rate).start()
    print(f"listening on {relay.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def commands():
        for line in sys.stdin:
            words = line.split()
            try:
                if words[:1] == ["delay"]:
                    relay.set_delay(float(words[1]) / 1000)
                elif words[:1] == ["rate"]:
                    relay.set_rate(float(words[1]) or None)
                elif words == ["stall"] or words == ["resume"]:
                    relay.stall(words[0] == "stall")
                elif words == ["cut"]:
                    relay.cut()
                elif words[:1] == ["reset-after"]:
                    relay.reset_after(int(words[1]), words[2])
                else:
                    raise ValueError(f"unknown command {line.strip()!r}")
                print("ok", flush=True)
            except (ValueError, IndexError) as e:
                print(f"error {e}", flush=True)
        stop.set()

    threading.Thread(target=commands, daemon=True).start()
    stop.wait()
    relay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
