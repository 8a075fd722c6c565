#!/usr/bin/env python3
"""Throughput and memory of one stream through the whole stack (client -> devstreamsd -> hub ->
agent -> target), against a direct loopback TCP connection to the same target, measured side by
side in the same run. Prints MiB/s for each, the ratio, the CPU seconds each program spent, and
the peak resident memory of each program.

usage: bench/stream_throughput.py [--size MiB] [--rounds N]   (needs a built default preset;
DS_BIN_DIR selects another build)"""

import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Stack, socks_connect  # noqa: E402

MiB = 1 << 20
CHUNK = b"\xa5" * MiB


class Source:
    """Sends `size` bytes to whoever connects, then closes."""

    def __init__(self, size):
        self.size = size
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._send, args=(c,), daemon=True).start()

    def _send(self, c):
        view = memoryview(CHUNK)
        left = self.size
        with c:
            try:
                while left > 0:
                    n = min(left, len(view))
                    c.sendall(view[:n])
                    left -= n
            except OSError:
                pass


def drain(sock):
    buf = bytearray(MiB)
    got = 0
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            return got
        got += n


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def timed(fn):
    start = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512, help="MiB per transfer")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.size * MiB
    src = Source(size)
    stack = Stack(allow_extra=[src.port], with_sshd=False)
    try:
        pids = {n: stack.procs[n].pid for n in ("hub", "agent", "daemon")}
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        direct, stream = [], []
        for _ in range(args.rounds):
            with socket.create_connection(("127.0.0.1", src.port)) as s:
                n, t = timed(lambda: drain(s))
            assert n == size, n
            direct.append(size / MiB / t)
            code, s = socks_connect(stack.socks_port, "dev01.hub", src.port)
            assert code == 0, code
            with s:
                n, t = timed(lambda: drain(s))
            assert n == size, n
            stream.append(size / MiB / t)
        cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in pids.items()}
        rss = {n: peak_rss_kib(p) for n, p in pids.items()}
    finally:
        stack.close()
    best_d, best_s = max(direct), max(stream)
    total = args.rounds * size / MiB
    print(f"transfer: {args.size} MiB x {args.rounds} rounds, device -> client")
    print(f"direct TCP loopback : {best_d:8.1f} MiB/s (best of {args.rounds})")
    print(f"devstreams stream   : {best_s:8.1f} MiB/s (best of {args.rounds}; "
          f"TLS 1.3 + WebSocket, 2 hops through the hub)")
    print(f"ratio stream/direct : {best_s / best_d:8.3f}")
    for n in ("hub", "agent", "daemon"):
        print(f"{n:7s}: {cpu[n]:6.2f} CPU s ({cpu[n] / total * 1000:.2f} ms/MiB), "
              f"peak RSS {rss[n] / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
