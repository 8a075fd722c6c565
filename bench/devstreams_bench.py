#!/usr/bin/env python3
"""One run that measures devstreams on loopback against direct TCP and `ssh -D`, interleaving
the setups (A B C A B C ...) so that machine noise hits all of them alike:

  throughput    one stream, N MiB each way at once: (a) direct TCP, (b) ssh -D through a private
                sshd, (c) SOCKS5 -> devstreamsd -> hub -> agent -> target. MB/s per direction,
                CPU seconds per GiB of every process taking part, ratios c/a and c/b.
  setup         sequential connect -> SOCKS success -> 1-byte echo -> close, (b) and (c); p50/p90/p99.
  concurrency   N streams held open with small echoes through (c): RSS per stream and file
                descriptors at hub, agent and daemon; failures.
  rate          new streams per second sustained by a few client processes, (b) and (c).
  backpressure  a reader that takes 1 MiB/s while the other end writes as fast as it can, both
                directions through (c); RSS of hub, agent and daemon before, peak and after.
  hold          1,000 streams through (c) held 60 s with an echo on each every 5 s, three
                rounds: every echo must come back, descriptors must fall back to where they were
                before any stream (give or take the warm pools) and RSS must converge.
  wan           (b) and (c) with every wide-area leg through tests/e2e/fault_relay.py (ssh <->
                sshd; daemon <-> hub and agent <-> hub), without and with 40 ms of added round
                trip on each: setup latency and throughput side by side.

Prints a table and the targets with met / not met; --json PATH writes every figure. Exits
non-zero when a setup did not complete or bytes did not arrive intact (the targets never change
the exit status). --quick is the CTest smoke run (< 60 s, every byte checked).

usage: bench/devstreams_bench.py [--quick] [--json PATH] [--size MiB] [--rounds N]
                                 [--streams N | --10k] [--setups N] [--rate-seconds S]
                                 [--slow-seconds S] [--only PHASES]
                                 [--hold-streams N] [--hold-seconds S] [--echo-interval S]
                                 [--hold-rounds N]
                                 [--wan-size MiB] [--wan-rounds N] [--wan-setups N]
Needs a built default preset (DS_BIN_DIR selects another build), ssh and sshd.
See docs/performance.md."""

import argparse
import json
import multiprocessing
import os
import random
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Stack, free_port, port_open, wait_until  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PATTERN = random.Random(7).randbytes(MiB)  # what every bulk sender sends, repeated
PAT2 = memoryview(PATTERN * 2)  # any window of up to 1 MiB at any offset, without wrapping
BUF = 1 << 20
SAMPLE = 4096  # bytes compared per received chunk when not verifying everything
CTX = multiprocessing.get_context("fork")


# ----------------------------------------------------------------------------------- checking

class Checker:
    """Counts received bytes of the repeated PATTERN and compares them with it: every byte
    (full) or the first SAMPLE bytes of each chunk (sample)."""

    def __init__(self, full):
        self.full = full
        self.got = 0
        self.bad = 0

    def feed(self, mv):
        n = len(mv)
        off = 0
        while off < n:
            k = min(n - off, MiB)
            pos = (self.got + off) % MiB
            m = k if self.full else min(k, SAMPLE)
            if bytes(mv[off:off + m]) != bytes(PAT2[pos:pos + m]):
                self.bad += 1
            off += k
        self.got += n


def send_pattern(sock, size):
    view = memoryview(PATTERN)
    left = size
    while left > 0:
        n = min(left, MiB)
        sock.sendall(view[:n])
        left -= n


# ------------------------------------------------------------------- device-side targets (peer)

def peer_main(ports, full, ready):
    """The targets, in a process of their own: bulk (size each way, checked, with a verdict),
    echo (any number of connections), slowread (1 MiB/s), fastwrite (as fast as it can)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def listener(port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(4096)
        return s

    def serve(srv, handler):
        while True:
            c, _ = srv.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()

    def bulk(c):
        with c:
            try:
                size, = struct.unpack(">Q", recv_exact(c, 8))
                t = threading.Thread(target=send_pattern, args=(c, size), daemon=True)
                t.start()
                chk = Checker(full)
                buf = bytearray(BUF)
                mv = memoryview(buf)
                while True:
                    n = c.recv_into(buf)
                    if n == 0:
                        break
                    chk.feed(mv[:n])
                t.join()
                c.sendall(struct.pack(">QQ", chk.got, chk.bad))
                c.shutdown(socket.SHUT_WR)
                c.recv(1)
            except OSError:
                pass

    def slowread(c):
        with c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
            buf = bytearray(64 * KiB)
            start = time.monotonic()
            got = 0
            try:
                while True:
                    due = start + got / MiB
                    now = time.monotonic()
                    if due > now:
                        time.sleep(due - now)
                    n = c.recv_into(buf)
                    if n == 0:
                        return
                    got += n
            except OSError:
                pass

    def fastwrite(c):
        with c:
            try:
                while True:
                    c.sendall(PATTERN)
            except OSError:
                pass

    def echo(srv):
        sel = selectors.DefaultSelector()
        srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                s = key.fileobj
                if s is srv:
                    while True:
                        try:
                            c, _ = srv.accept()
                        except BlockingIOError:
                            break
                        c.setblocking(False)
                        sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    continue
                try:
                    s.send(data)  # echoes are tiny: they fit in the send buffer
                except OSError:
                    sel.unregister(s)
                    s.close()

    srvs = {k: listener(p) for k, p in ports.items()}
    for k, h in (("bulk", bulk), ("slowread", slowread), ("fastwrite", fastwrite)):
        threading.Thread(target=serve, args=(srvs[k], h), daemon=True).start()
    threading.Thread(target=echo, args=(srvs["echo"],), daemon=True).start()
    ready.set()
    while True:
        time.sleep(3600)


# ------------------------------------------------------------------------------------ clients

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def socks_open(socks_port, host, port, timeout=60):
    """SOCKS5 CONNECT as common clients do it: greeting, then the request. Raises on failure."""
    s = socket.create_connection(("127.0.0.1", socks_port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"\x05\x01\x00")
        if recv_exact(s, 2) != b"\x05\x00":
            raise OSError("SOCKS greeting refused")
        name = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
        head = recv_exact(s, 4)
        if head[1] != 0:
            raise OSError(f"SOCKS reply {head[1]}")
        recv_exact(s, {1: 4, 4: 16}.get(head[3], 0) + 2 if head[3] != 3 else recv_exact(s, 1)[0] + 2)
        return s
    except BaseException:
        s.close()
        raise


class Setup:
    """How a client reaches a device-side port: directly, through ssh -D, or through devstreamsd."""

    def __init__(self, key, label, socks_port=None, host=None, pids=lambda: {}):
        self.key, self.label, self.socks_port, self.host, self.pids = key, label, socks_port, host, pids

    def open(self, port, timeout=60):
        if self.socks_port is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        return socks_open(self.socks_port, self.host, port, timeout)


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def cpu_snapshot(pids):
    return {name: proc_cpu(pid) for name, pid in pids.items()}


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def med(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} \
        if values else {"median": float("nan"), "min": float("nan"), "max": float("nan")}


# ----------------------------------------------------------------------------------- the stack

class BenchStack(Stack):
    """The e2e Stack with figures-friendly settings written before any program starts: log
    level info (debug logs every stream) and the hub's and agent's stream limits raised so that
    the rate and concurrency tests measure the data path, not the configured limits."""

    def _registry(self):
        for name in ("hub.yaml", "agent.yaml", "daemon.yaml"):
            path = os.path.join(self.state, name)
            with open(path) as f:
                text = f.read().replace("log_level: debug", "log_level: info")
            if name == "hub.yaml":
                text = text.rstrip("\n") + "\n" + "".join(
                    f"  {k}: 1000000\n" for k in ("max_streams", "max_streams_per_device",
                                                  "max_pending_handshakes",
                                                  "new_streams_per_second"))
            if name == "agent.yaml":
                text = text.rstrip("\n") + "\n  max_streams: 1000000\n"
            with open(path, "w") as f:
                f.write(text)
        return super()._registry()


def start_ssh_socks(stack, sshd_port=None, name="ssh"):
    """ssh -D to the stack's sshd (or to `sshd_port`, e.g. a relay in front of it)."""
    port = free_port()
    argv = ["ssh", "-N", "-F", "/dev/null", "-D", f"127.0.0.1:{port}",
            "-o", "Ciphers=aes128-gcm@openssh.com", "-o", "Compression=no",
            "-i", f"{stack.dir}/client_key", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ExitOnForwardFailure=yes",
            "-p", str(sshd_port or stack.ssh_port), f"{stack.ssh_user}@127.0.0.1"]
    stack.start(name, argv)
    wait_until(lambda: port_open(port), 20, "ssh -D port")
    return port


# ---------------------------------------------------------------------------------- the phases

def throughput_once(setup, port, size):
    """Sends `size` bytes each way at once over one stream; returns seconds, CPU per process."""
    pids = setup.pids()
    cpu0 = cpu_snapshot(pids)
    t0 = time.perf_counter()
    s = setup.open(port)
    s.settimeout(300)
    err = []

    def writer():
        try:
            s.sendall(struct.pack(">Q", size))
            send_pattern(s, size)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    w = threading.Thread(target=writer)
    w.start()
    chk = Checker(FULL_VERIFY)
    buf = bytearray(BUF)
    mv = memoryview(buf)
    tail = bytearray()
    while True:
        n = s.recv_into(buf)
        if n == 0:
            break
        data_n = max(0, min(n, size - chk.got))
        if data_n:
            chk.feed(mv[:data_n])
        tail += mv[data_n:n]
        if chk.got >= size and len(tail) >= 16:
            break
    elapsed = time.perf_counter() - t0
    w.join()
    s.close()
    pids_after = setup.pids()
    cpu1 = cpu_snapshot(pids_after)
    cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    problems = []
    if err:
        problems.append(f"{setup.key}: write failed: {err[0]}")
    if chk.got != size or chk.bad:
        problems.append(f"{setup.key}: client got {chk.got} of {size} bytes, {chk.bad} bad chunks")
    if len(tail) != 16:
        problems.append(f"{setup.key}: no verdict from the target ({len(tail)} bytes)")
    else:
        got, bad = struct.unpack(">QQ", tail)
        if got != size or bad:
            problems.append(f"{setup.key}: target got {got} of {size} bytes, {bad} bad chunks")
    return elapsed, cpu, problems


def phase_throughput(setups, port, size, rounds, problems, log):
    res = {s.key: {"seconds": [], "cpu": []} for s in setups}
    for r in range(rounds):
        for st in setups:
            sec, cpu, probs = throughput_once(st, port, size)
            problems += probs
            res[st.key]["seconds"].append(sec)
            res[st.key]["cpu"].append(cpu)
            log(f"  throughput round {r + 1}/{rounds} {st.key}: {size / sec / 1e6:8.1f} MB/s each way")
    out = {}
    moved_gib = 2 * size / GiB
    for st in setups:
        secs = res[st.key]["seconds"]
        names = sorted({k.split(":")[0] for c in res[st.key]["cpu"] for k in c})
        cpu_per = {}
        for name in names:
            vals = [sum(v for k, v in c.items() if k.split(":")[0] == name) / moved_gib
                    for c in res[st.key]["cpu"]]
            cpu_per[name] = med(vals)
        out[st.key] = {"label": st.label, "mb_per_s_each_way": med([size / t / 1e6 for t in secs]),
                       "cpu_s_per_gib": cpu_per}
    return out


def run_threads(target, arg_lists):
    """Runs target(*args) on one thread per entry of arg_lists and waits for all of them."""
    ts = [threading.Thread(target=target, args=args) for args in arg_lists]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def split_work(n, threads):
    """n items over `threads` workers as evenly as possible: one args tuple per worker."""
    return [(n // threads + (i < n % threads),) for i in range(threads)]


def open_echoed(setup, port, byte, timeout):
    """Opens a stream through `setup` and checks that one byte comes back; the open socket."""
    s = setup.open(port, timeout=timeout)
    s.sendall(byte)
    if s.recv(1) != byte:
        raise OSError("bad echo")
    return s


def phase_setup(setups, port, count, problems, log):
    lat = {s.key: [] for s in setups}
    fails = {s.key: 0 for s in setups}
    block = 50
    done = 0
    while done < count:
        n = min(block, count - done)
        for st in setups:
            for _ in range(n):
                t0 = time.perf_counter()
                try:
                    open_echoed(st, port, b"x", 30).close()
                except (OSError, EOFError):
                    fails[st.key] += 1
                    continue
                lat[st.key].append((time.perf_counter() - t0) * 1000)
        done += n
    out = {}
    for st in setups:
        v = lat[st.key]
        if fails[st.key]:
            problems.append(f"setup latency {st.key}: {fails[st.key]} of {count} failed")
        out[st.key] = {"label": st.label, "count": len(v), "failed": fails[st.key],
                       "p50_ms": pct(v, 50), "p90_ms": pct(v, 90), "p99_ms": pct(v, 99),
                       "max_ms": max(v) if v else float("nan")}
        log(f"  setup {st.key}: p50 {out[st.key]['p50_ms']:.2f} ms, p99 {out[st.key]['p99_ms']:.2f} ms")
    return out


def phase_concurrency(setup, port, n, stack_pids, problems, log):
    base_rss = {k: rss_kib(p) for k, p in stack_pids.items()}
    base_fd = {k: fd_count(p) for k, p in stack_pids.items()}
    socks = []
    lock = threading.Lock()
    fails = [0]
    threads = 32  # stream setup waits more than it works: openers overlap the waits
    t0 = time.perf_counter()

    def opener(k):
        mine = []
        for _ in range(k):
            try:
                mine.append(open_echoed(setup, port, b"o", 60))
            except (OSError, EOFError):
                with lock:
                    fails[0] += 1
        with lock:
            socks.extend(mine)

    run_threads(opener, split_work(n, threads))
    open_s = time.perf_counter() - t0
    time.sleep(0.5)
    rss = {k: rss_kib(p) for k, p in stack_pids.items()}
    fds = {k: fd_count(p) for k, p in stack_pids.items()}
    # every stream still works: one more echo on each, all sent before any is read
    echo_fail = 0
    for s in socks:
        try:
            s.sendall(b"h")
        except OSError:
            echo_fail += 1
    for s in socks:
        try:
            if s.recv(1) != b"h":
                echo_fail += 1
        except OSError:
            echo_fail += 1
    for s in socks:
        s.close()
    ok = len(socks)
    # let the programs close everything, then see what memory they kept
    end = time.monotonic() + 30
    while time.monotonic() < end and any(fd_count(p) > base_fd[k] + 8 for k, p in stack_pids.items()):
        time.sleep(0.5)
    time.sleep(1.0)
    rss_after = {k: rss_kib(p) for k, p in stack_pids.items()}
    fds_after = {k: fd_count(p) for k, p in stack_pids.items()}
    if fails[0] or echo_fail:
        problems.append(f"concurrency: {fails[0]} of {n} failed to open, {echo_fail} failed to echo")
    per = {k: (rss[k] - base_rss[k]) / max(ok, 1) for k in stack_pids}
    out = {"streams": n, "opened": ok, "open_failed": fails[0], "echo_failed": echo_fail,
           "open_seconds": open_s, "rss_kib_before": base_rss, "rss_kib_held": rss,
           "rss_kib_per_stream": per, "rss_kib_per_stream_total": sum(per.values()),
           "fds_before": base_fd, "fds_held": fds, "rss_kib_after_close": rss_after,
           "fds_after_close": fds_after}
    log(f"  concurrency: {ok}/{n} open in {open_s:.1f} s; RSS/stream "
        + ", ".join(f"{k} {v:.1f} KiB" for k, v in per.items()))
    return out


def rate_worker(setup, port, seconds, threads, q):
    ok = [0] * threads
    bad = [0] * threads
    deadline = time.monotonic() + seconds

    def loop(i):
        while time.monotonic() < deadline:
            try:
                open_echoed(setup, port, b"r", 30).close()
                ok[i] += 1
            except (OSError, EOFError):
                bad[i] += 1

    run_threads(loop, [(i,) for i in range(threads)])
    q.put((sum(ok), sum(bad)))


def phase_rate(setups, port, seconds, problems, log, procs=2, threads=4):
    out = {}
    for st in setups:
        q = CTX.Queue()
        t0 = time.perf_counter()
        ps = [CTX.Process(target=rate_worker, args=(st, port, seconds, threads, q))
              for _ in range(procs)]
        for p in ps:
            p.start()
        results = [q.get(timeout=seconds + 120) for _ in ps]
        for p in ps:
            p.join()
        elapsed = time.perf_counter() - t0
        ok = sum(r[0] for r in results)
        bad = sum(r[1] for r in results)
        if bad:
            problems.append(f"rate {st.key}: {bad} of {ok + bad} streams failed")
        out[st.key] = {"label": st.label, "streams": ok, "failed": bad, "seconds": elapsed,
                       "per_second": ok / elapsed, "clients": procs * threads}
        log(f"  rate {st.key}: {ok / elapsed:.0f} streams/s ({bad} failed)")
        time.sleep(1.0)
    return out


def phase_backpressure(setup, ports, seconds, stack_pids, problems, log):
    out = {}
    for direction, port in (("client_writes", ports["slowread"]),
                            ("device_writes", ports["fastwrite"])):
        before = {k: rss_kib(p) for k, p in stack_pids.items()}
        peak = dict(before)
        s = setup.open(port)
        s.settimeout(0.2)
        moved = 0
        deadline = time.monotonic() + seconds
        next_sample = 0.0
        view = memoryview(PATTERN)
        buf = bytearray(64 * KiB)
        start = time.monotonic()
        try:
            while time.monotonic() < deadline:
                if direction == "client_writes":
                    try:
                        moved += s.send(view)
                    except (socket.timeout, BlockingIOError):
                        pass
                else:
                    due = start + moved / MiB
                    now = time.monotonic()
                    if due > now:
                        time.sleep(min(due - now, 0.2))
                        continue
                    try:
                        n = s.recv_into(buf)
                    except socket.timeout:
                        continue
                    if n == 0:
                        raise OSError("device side closed")
                    moved += n
                if time.monotonic() >= next_sample:
                    for k, p in stack_pids.items():
                        peak[k] = max(peak[k], rss_kib(p))
                    next_sample = time.monotonic() + 0.25
        except OSError as e:
            problems.append(f"backpressure {direction}: {e}")
        after = {k: rss_kib(p) for k, p in stack_pids.items()}
        for k in peak:
            peak[k] = max(peak[k], after[k])
        s.close()
        growth = {k: max(peak[k], after[k]) - before[k] for k in before}
        out[direction] = {"seconds": seconds, "bytes_moved_by_client": moved,
                          "rss_kib_before": before, "rss_kib_peak": peak, "rss_kib_after": after,
                          "rss_growth_kib": growth}
        log(f"  backpressure {direction}: client moved {moved / MiB:.1f} MiB; RSS growth "
            + ", ".join(f"{k} {v / 1024:.2f} MiB" for k, v in growth.items()))
        time.sleep(1.0)
    return out


# ------------------------------------------------------------------ wide area (through relays)

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e",
                     "fault_relay.py")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy",
              "ALL_PROXY", "all_proxy")


class Relay:
    """tests/e2e/fault_relay.py in a process of its own (the bench client keeps its CPU), with
    its delay changed at runtime over stdin."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, RELAY, "--listen", "127.0.0.1:0", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"fault relay did not start: {line!r}")
        self.port = int(line.split()[-1])

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"fault relay: {text}: {answer}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class WanStack(BenchStack):
    """A BenchStack whose agent and daemon reach the hub through relays of their own (as their
    HTTPS_PROXY): both legs of every stream cross a relay."""

    def __init__(self, agent_relay, daemon_relay, **kw):
        self.relays = {"agent": agent_relay, "daemon": daemon_relay}
        super().__init__(**kw)

    def _with_proxy(self, name, start):
        saved = {k: os.environ.pop(k) for k in PROXY_VARS if k in os.environ}
        os.environ["HTTPS_PROXY"] = f"http://127.0.0.1:{self.relays[name].port}"
        try:
            return start()
        finally:
            os.environ.pop("HTTPS_PROXY", None)
            os.environ.update(saved)

    def start_agent(self):
        return self._with_proxy("agent", super().start_agent)

    def start_daemon(self):
        return self._with_proxy("daemon", super().start_daemon)


def phase_wan(ports, args, problems, log):
    """Setup latency and throughput of ssh -D and devstreams with every wide-area leg through a
    fault relay: without added delay, then with 20 ms each way on each relay (40 ms of round
    trip on each leg: ssh <-> sshd; daemon <-> hub and agent <-> hub)."""
    relays = {k: Relay("--connect-proxy") for k in ("agent", "daemon")}
    stack = None
    out = {}
    try:
        stack = WanStack(relays["agent"], relays["daemon"],
                         allow_extra=list(ports.values()), with_sshd=True)
        relays["ssh"] = Relay("--upstream", f"127.0.0.1:{stack.ssh_port}")
        ssh_port = start_ssh_socks(stack, relays["ssh"].port, name="ssh-wan")
        setups = [Setup("b", "ssh -D via relay", ssh_port, "127.0.0.1"),
                  Setup("c", "devstreams via relays", stack.socks_port, "dev01.hub")]
        wait_until(lambda: _try_echo(setups[0], ports["echo"]), 20, "ssh -D via the relay")
        for delay in (0, 20):
            for r in relays.values():
                r.command(f"delay {delay}")
            key = f"rtt+{2 * delay}ms"
            log(f"wan {key}: {args.wan_setups} setups, {args.wan_size} MiB x {args.wan_rounds}")
            wait_until(lambda: all(_try_echo(st, ports["echo"]) for st in setups), 20,
                       "both setups through the relays")
            setup = phase_setup(setups, ports["echo"], args.wan_setups, problems, log)
            tp = phase_throughput(setups, ports["bulk"], args.wan_size * MiB, args.wan_rounds,
                                  problems, log)
            out[key] = {st.key: {"label": st.label, "setup_p50_ms": setup[st.key]["p50_ms"],
                                 "setup_p90_ms": setup[st.key]["p90_ms"],
                                 "setup_max_ms": setup[st.key]["max_ms"],
                                 "mb_per_s_each_way": tp[st.key]["mb_per_s_each_way"]}
                        for st in setups}
    finally:
        if stack:
            problems += [f"wan stack: {p}" for p in stack.problems()]
            stack.close()
        for r in relays.values():
            r.close()
    return out


def wan_lines(res, args):
    lines = [f"Wide area: every leg through a fault relay (tests/e2e/fault_relay.py); "
             f"{args.wan_setups} setups, {args.wan_size} MiB each way x {args.wan_rounds}"]
    p = lines.append
    p(f"  {'added RTT per leg':<18} {'setup':<26} {'setup p50 ms':>12} {'p90 ms':>8} "
      f"{'MB/s each way':>24}")
    for key, by in res["wan"].items():
        for k in ("b", "c"):
            d = by[k]
            p(f"  {key[4:]:<18} {k}) {d['label']:<23} {d['setup_p50_ms']:12.1f} "
              f"{d['setup_p90_ms']:8.1f} {fmt_range(d['mb_per_s_each_way']):>24}")
    return lines


# ------------------------------------------------------------------ many streams held a while

# Warm hub connections the daemon's and the agent's pools may still hold right after a burst of
# opens (warm_pool.h: up to `max` 32 each, plus the channel); they idle out after busyFor + maxAge
# (35 s), so a wait that long must find the cold count exactly.
POOL_FDS = {"hub": 66, "agent": 33, "daemon": 33}
POOL_IDLE_OUT = 35


def phase_hold(setup, port, n, seconds, interval, stack_pids, problems, log, nrounds=3,
               settle_seconds=40):
    """Opens `n` streams, holds them `seconds` with an echo on every stream each `interval`,
    closes them; `nrounds` times. Every echo must come back. After each round the descriptors
    must fall back to where they were before any stream: exactly when `settle_seconds` lets the
    pools' warm connections idle out, else give or take those. RSS does not fall back (the allocator keeps its arenas), but it must
    converge: the last round may add at most half of what the second added, or 1 MiB."""
    rounds = []
    cold = {"fds": {k: fd_count(p) for k, p in stack_pids.items()},
            "rss_kib": {k: rss_kib(p) for k, p in stack_pids.items()}}
    for r in range(1, nrounds + 1):
        socks, fails, lock = [], [0], threading.Lock()

        def opener(k):
            mine = []
            for _ in range(k):
                try:
                    s = setup.open(port, timeout=60)
                    s.settimeout(30)
                    mine.append(s)
                except (OSError, EOFError):
                    with lock:
                        fails[0] += 1
            with lock:
                socks.extend(mine)

        threads = 32
        run_threads(opener, split_work(n, threads))
        held = {"fds": {k: fd_count(p) for k, p in stack_pids.items()},
                "rss_kib": {k: rss_kib(p) for k, p in stack_pids.items()}}
        echoes = echo_fail = 0
        end = time.monotonic() + seconds
        while True:
            for i, s in enumerate(socks):
                try:
                    s.sendall(bytes([i & 0xFF]))
                except OSError:
                    echo_fail += 1
            for i, s in enumerate(socks):
                try:
                    if s.recv(1) != bytes([i & 0xFF]):
                        echo_fail += 1
                except OSError:
                    echo_fail += 1
            echoes += len(socks)
            if time.monotonic() + interval > end:
                break
            time.sleep(interval)
        for s in socks:
            s.close()
        t_closed = time.monotonic()
        settle = t_closed + settle_seconds
        while time.monotonic() < settle and any(fd_count(p) > cold["fds"][k]
                                                for k, p in stack_pids.items()):
            time.sleep(0.25)
        time.sleep(1.0)
        after = {"fds": {k: fd_count(p) for k, p in stack_pids.items()},
                 "rss_kib": {k: rss_kib(p) for k, p in stack_pids.items()},
                 "settled_after_s": time.monotonic() - t_closed - 1.0}
        rounds.append({"opened": len(socks), "open_failed": fails[0], "echoes": echoes,
                       "echo_failed": echo_fail, "held": held, "after": after})
        log(f"  hold round {r}: {len(socks)}/{n} streams, {echoes} echoes, {echo_fail} failed; "
            "after: fds " + ", ".join(f"{k} {v}" for k, v in after["fds"].items()) + "; RSS " +
            ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in after["rss_kib"].items()))
    for r, d in enumerate(rounds, 1):
        if d["open_failed"] or d["echo_failed"] or d["opened"] != n:
            problems.append(f"hold round {r}: {d['opened']}/{n} opened, {d['open_failed']} "
                            f"failed to open, {d['echo_failed']} of {d['echoes']} echoes failed")
    slack = {k: 0 for k in stack_pids} if settle_seconds >= POOL_IDLE_OUT else POOL_FDS
    fd_back = all(d["after"]["fds"][k] <= cold["fds"][k] + slack[k]
                  for d in rounds for k in stack_pids)
    if not fd_back:
        problems.append(f"hold: descriptors not back at {cold['fds']} (+{slack} for the "
                        f"pools): " + "; ".join(str(d["after"]["fds"]) for d in rounds))
    rss_converges = True
    if len(rounds) >= 3:
        for k in stack_pids:
            second = rounds[1]["after"]["rss_kib"][k] - rounds[0]["after"]["rss_kib"][k]
            last = rounds[-1]["after"]["rss_kib"][k] - rounds[-2]["after"]["rss_kib"][k]
            if last > max(1024, second / 2):
                rss_converges = False
                problems.append(f"hold: RSS of {k} still grows: +{second} KiB in round 2, "
                                f"+{last} KiB in round {len(rounds)}")
    return {"streams": n, "seconds": seconds, "interval": interval, "cold": cold,
            "rounds": rounds, "fds_back": fd_back, "fd_slack": slack,
            "rss_converges": rss_converges}


def hold_lines(res):
    h = res["hold"]
    lines = [f"Held streams: {h['streams']} streams through devstreams held {h['seconds']:g} s "
             f"with an echo on each every {h['interval']:g} s, {len(h['rounds'])} rounds"]
    p = lines.append
    p(f"  {'round':<6} {'opened':>7} {'echoes':>8} {'failed':>7}   fds held -> after close "
      f"(hub/agent/daemon)   RSS held -> after close, MiB (hub/agent/daemon)")
    cold = h["cold"]
    p(f"  {'cold':<6} {'':>7} {'':>8} {'':>7}   " +
      "/".join(str(cold["fds"][k]) for k in ("hub", "agent", "daemon")).ljust(39) +
      "/".join(f"{cold['rss_kib'][k] / 1024:.1f}" for k in ("hub", "agent", "daemon")))
    for r, d in enumerate(h["rounds"], 1):
        fds = ("/".join(str(d["held"]["fds"][k]) for k in ("hub", "agent", "daemon")) + " -> " +
               "/".join(str(d["after"]["fds"][k]) for k in ("hub", "agent", "daemon")))
        rss = ("/".join(f"{d['held']['rss_kib'][k] / 1024:.1f}" for k in ("hub", "agent", "daemon"))
               + " -> " +
               "/".join(f"{d['after']['rss_kib'][k] / 1024:.1f}" for k in ("hub", "agent", "daemon")))
        p(f"  {r:<6} {d['opened']:>7} {d['echoes']:>8} {d['open_failed'] + d['echo_failed']:>7}   "
          f"{fds:<39}{rss}")
    slack = "" if not any(h["fd_slack"].values()) else " (give or take the warm pools)"
    p(f"  descriptors back at the cold baseline{slack}: {'yes' if h['fds_back'] else 'NO'}; "
      f"RSS converges: {'yes' if h['rss_converges'] else 'NO'}")
    return lines


# ------------------------------------------------------------------------------------- report

def fmt_range(d, f="{:.1f}"):
    return f"{f.format(d['median'])} ({f.format(d['min'])}-{f.format(d['max'])})"


def throughput_lines(res, args):
    lines = []
    p = lines.append
    tp = res["throughput"]
    p(f"Throughput: one stream, {args.size} MiB each way at once, {args.rounds} rounds interleaved"
      f" (median (min-max))")
    p(f"  {'setup':<34} {'MB/s each way':>24}   CPU s per GiB moved (both directions)")
    for k in ("a", "b", "c"):
        if k not in tp:
            continue
        d = tp[k]
        cpu = ", ".join(f"{n} {fmt_range(v, '{:.2f}')}" for n, v in d["cpu_s_per_gib"].items())
        p(f"  {k}) {d['label']:<31} {fmt_range(d['mb_per_s_each_way']):>24}   {cpu}")
    p(f"  ratio c/a {res['ratios']['c_over_a']:.2f}   ratio c/b {res['ratios']['c_over_b']:.2f}"
      f"   (medians)   devstreams total {res['ratios']['c_cpu_s_per_gib']:.2f} CPU s/GiB")
    return lines


def report(res, args):
    lines = throughput_lines(res, args)
    p = lines.append
    st = res["setup"]
    p(f"Stream setup: {args.setups} sequential connect -> SOCKS success -> 1-byte echo -> close")
    p(f"  {'setup':<34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} failed")
    for k in ("b", "c"):
        d = st[k]
        p(f"  {k}) {d['label']:<31} {d['p50_ms']:8.2f} {d['p90_ms']:8.2f} {d['p99_ms']:8.2f}"
          f" {d['max_ms']:8.2f} {d['failed']}")
    c = res["concurrency"]
    p(f"Concurrency: {c['streams']} streams held open through devstreams ({c['opened']} opened, "
      f"{c['open_failed']} failed to open, {c['echo_failed']} failed to echo; opened in "
      f"{c['open_seconds']:.1f} s)")
    p(f"  {'process':<10} {'RSS before':>12} {'RSS held':>12} {'per stream':>12} {'RSS closed':>12}"
      f" {'fds before':>11} {'fds held':>9} {'fds closed':>10}")
    for k in ("hub", "agent", "daemon"):
        p(f"  {k:<10} {c['rss_kib_before'][k] / 1024:8.1f} MiB {c['rss_kib_held'][k] / 1024:8.1f} MiB"
          f" {c['rss_kib_per_stream'][k]:8.1f} KiB {c['rss_kib_after_close'][k] / 1024:8.1f} MiB"
          f" {c['fds_before'][k]:11d} {c['fds_held'][k]:9d} {c['fds_after_close'][k]:10d}")
    p(f"  total per stream {c['rss_kib_per_stream_total']:.1f} KiB")
    r = res["rate"]
    p(f"Stream rate: {args.rate_seconds:g} s of open -> 1-byte echo -> close")
    for k in ("b", "c"):
        d = r[k]
        p(f"  {k}) {d['label']:<31} {d['per_second']:8.0f} streams/s  ({d['streams']} streams, "
          f"{d['failed']} failed, {d['clients']} clients in 2 processes)")
    b = res["backpressure"]
    p(f"Backpressure: reader at 1 MiB/s, writer as fast as it can, {args.slow_seconds:g} s, devstreams")
    for dirn, d in b.items():
        p(f"  {dirn}: client moved {d['bytes_moved_by_client'] / MiB:.1f} MiB")
        for k in ("hub", "agent", "daemon"):
            p(f"    {k:<8} RSS before {d['rss_kib_before'][k] / 1024:6.1f} MiB, peak "
              f"{d['rss_kib_peak'][k] / 1024:6.1f} MiB, after {d['rss_kib_after'][k] / 1024:6.1f} MiB,"
              f" growth {d['rss_growth_kib'][k] / 1024:5.2f} MiB")
    p("Targets")
    for t in res["targets"]:
        p(f"  {'met    ' if t['met'] else 'NOT MET'}  {t['target']:<52} measured {t['measured']}")
    return "\n".join(lines)


def targets(res):
    tp, r = res["throughput"], res["ratios"]
    st = res["setup"]["c"]
    c = res["concurrency"]
    rate = res["rate"]["c"]["per_second"]
    growth = max(v for d in res["backpressure"].values() for v in d["rss_growth_kib"].values())
    total_per = c["rss_kib_per_stream_total"]
    conc_ok = c["opened"] >= 10000 and not c["echo_failed"] and total_per <= 64
    asked = res["config"].get("streams_asked", c["streams"])
    conc_text = (f"{c['opened']} of {c['streams']} streams, {total_per:.1f} KiB/stream "
                 f"(hub+agent+daemon)")
    if asked > c["streams"]:
        conc_text += f" (open-files limit {res['config']['nofile']} allows no more)"
    elif c["streams"] < 10000:
        conc_text += "; run with --10k for the 10,000 figure"
    return [
        {"target": "throughput c >= 1.0 x b (ssh -D)", "measured": f"{r['c_over_b']:.2f} x",
         "met": r["c_over_b"] >= 1.0},
        {"target": "throughput c >= 0.5 x a (direct TCP)", "measured": f"{r['c_over_a']:.2f} x",
         "met": r["c_over_a"] >= 0.5},
        {"target": "CPU of daemon+hub+agent <= 2.5 s/GiB", "measured":
            f"{r['c_cpu_s_per_gib']:.2f} s/GiB", "met": r["c_cpu_s_per_gib"] <= 2.5},
        {"target": "stream setup p50 <= 3 ms", "measured": f"{st['p50_ms']:.2f} ms",
         "met": st["p50_ms"] <= 3},
        {"target": "stream setup p99 <= 10 ms", "measured": f"{st['p99_ms']:.2f} ms",
         "met": st["p99_ms"] <= 10},
        {"target": "10,000 concurrent streams at <= 64 KiB RSS/stream", "measured": conc_text,
         "met": conc_ok},
        {"target": ">= 1,000 new streams/s", "measured": f"{rate:.0f} /s", "met": rate >= 1000},
        {"target": "RSS growth <= 4 MiB per process, slow reader", "measured":
            f"max {growth / 1024:.2f} MiB", "met": growth <= 4 * 1024},
    ]


def partial_report(res, args):
    """The throughput, stream setup and rate figures of a run with --only (the full table needs
    every phase)."""
    lines = throughput_lines(res, args) if "throughput" in res else []
    p = lines.append
    if "setup" in res:
        p(f"Stream setup: {args.setups} sequential connect -> SOCKS success -> 1-byte echo -> close")
        p(f"  {'setup':<34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} failed")
        for k, d in res["setup"].items():
            p(f"  {k}) {d['label']:<31} {d['p50_ms']:8.2f} {d['p90_ms']:8.2f} {d['p99_ms']:8.2f}"
              f" {d['max_ms']:8.2f} {d['failed']}")
    if "rate" in res:
        p(f"Stream rate: {args.rate_seconds:g} s of open -> 1-byte echo -> close")
        for k, d in res["rate"].items():
            p(f"  {k}) {d['label']:<31} {d['per_second']:6.0f} streams/s  ({d['streams']} streams,"
              f" {d['failed']} failed, {d['clients']} clients in 2 processes)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- main

PHASES = ("throughput", "setup", "rate", "backpressure", "concurrency", "wan", "hold")

FULL_VERIFY = True


def main():
    global FULL_VERIFY
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CTest: small sizes, every byte checked, < 60 s")
    ap.add_argument("--json", metavar="PATH", help="write all figures as JSON")
    ap.add_argument("--size", type=int, help="MiB each way per throughput round (default 2048)")
    ap.add_argument("--rounds", type=int, help="throughput rounds per setup (default 3)")
    ap.add_argument("--setups", type=int, help="stream setups per setup kind (default 1000)")
    ap.add_argument("--streams", type=int, help="concurrent streams (default 1000)")
    ap.add_argument("--10k", dest="tenk", action="store_true", help="10,000 concurrent streams")
    ap.add_argument("--rate-seconds", type=float, help="length of the rate test (default 10)")
    ap.add_argument("--slow-seconds", type=float, help="length of each backpressure test (20)")
    ap.add_argument("--wan-size", type=int, help="MiB each way per wide-area round (64)")
    ap.add_argument("--wan-rounds", type=int, help="wide-area throughput rounds (2)")
    ap.add_argument("--wan-setups", type=int, help="wide-area stream setups per kind (50)")
    ap.add_argument("--hold-streams", type=int, help="streams held by the hold phase (1000)")
    ap.add_argument("--hold-seconds", type=float, help="how long they are held (60)")
    ap.add_argument("--echo-interval", type=float, help="seconds between echoes (5)")
    ap.add_argument("--hold-rounds", type=int, default=3, help="hold rounds (3)")
    ap.add_argument("--only", metavar="PHASES",
                    help="comma-separated phases to run, of " + ",".join(PHASES) +
                         " (default: all); e.g. --only setup,rate for stream setup alone")
    ap.add_argument("--verify", choices=("full", "sample"),
                    help="compare every received byte (full; --quick default) or the first "
                         f"{SAMPLE} bytes of every MiB (sample; default), always counting all")
    args = ap.parse_args()
    phases = set(PHASES) if not args.only else set(args.only.split(","))
    if phases - set(PHASES):
        ap.error(f"unknown phase(s) {','.join(sorted(phases - set(PHASES)))}; "
                 f"choose from {','.join(PHASES)}")
    q = args.quick
    defaults = dict(size=64 if q else 2048, rounds=2 if q else 3, setups=100 if q else 1000,
                    streams=200 if q else (10000 if args.tenk else 1000),
                    rate_seconds=2 if q else 10, slow_seconds=3 if q else 20,
                    verify="full" if q else "sample", wan_size=4 if q else 64,
                    wan_rounds=1 if q else 2, wan_setups=5 if q else 50,
                    hold_streams=50 if q else 1000, hold_seconds=2 if q else 60,
                    echo_interval=1 if q else 5)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    FULL_VERIFY = args.verify == "full"

    # File descriptors: hub, agent and daemon each hold 2 per stream (both sides), the client
    # and the targets 1. Raise the soft limit (the programs inherit it); the hard limit only
    # moves with CAP_SYS_RESOURCE.
    need = 2 * max(args.streams, args.hold_streams) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((max(need, soft), max(need, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            pass
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    ulimit = subprocess.run(["bash", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    log(f"open files limit {nofile} (ulimit -n in the programs: {ulimit}); {os.cpu_count()} CPUs")
    args.streams_asked = args.streams
    if nofile < need:
        args.streams = (nofile - 256) // 2
        log(f"warning: {args.streams_asked} streams need {need} open files per program but the "
            f"limit is {nofile} (hard limit {hard}); holding {args.streams} streams instead")

    ports = {k: free_port() for k in ("bulk", "echo", "slowread", "fastwrite")}
    ready = CTX.Event()
    peer = CTX.Process(target=peer_main, args=(ports, FULL_VERIFY, ready), daemon=True)
    peer.start()
    if not ready.wait(10):
        sys.exit("targets did not start")

    problems = []
    res = {"config": {**vars(args), "cpus": os.cpu_count(), "nofile": nofile,
                      "loadavg_at_start": os.getloadavg()},
           "problems": problems}
    t_start = time.monotonic()
    stack = BenchStack(allow_extra=list(ports.values()), with_sshd=True)
    try:
        ssh_port = start_ssh_socks(stack)
        stack_pids = {n: stack.procs[n].pid for n in ("hub", "agent", "daemon")}
        me, peer_pid = os.getpid(), peer.pid

        def bench_pids():
            return {"bench client": me, "bench targets": peer_pid}

        def ssh_pids():
            d = {"ssh": stack.procs["ssh"].pid, "sshd": stack.procs["sshd"].pid}
            for p in descendants(stack.procs["sshd"].pid):
                d[f"sshd:{p}"] = p
            return {**d, **bench_pids()}

        setups = [Setup("a", "direct TCP", pids=bench_pids),
                  Setup("b", "ssh -D (aes128-gcm)", ssh_port, "127.0.0.1", ssh_pids),
                  Setup("c", "devstreams", stack.socks_port, "dev01.hub",
                        lambda: {**stack_pids, **bench_pids()})]
        # the ssh -D path is ready once a stream through it works
        wait_until(lambda: _try_echo(setups[1], ports["echo"]), 20, "ssh -D forwarding")

        if "throughput" in phases:
            log(f"throughput: {args.size} MiB each way x {args.rounds} rounds")
            res["throughput"] = phase_throughput(setups, ports["bulk"], args.size * MiB,
                                                 args.rounds, problems, log)
            tp = res["throughput"]
            c_cpu = sum(tp["c"]["cpu_s_per_gib"][k]["median"] for k in ("hub", "agent", "daemon"))
            res["ratios"] = {
                "c_over_a": tp["c"]["mb_per_s_each_way"]["median"] / tp["a"]["mb_per_s_each_way"]["median"],
                "c_over_b": tp["c"]["mb_per_s_each_way"]["median"] / tp["b"]["mb_per_s_each_way"]["median"],
                "c_cpu_s_per_gib": c_cpu}
        if "setup" in phases:
            log(f"stream setup: {args.setups} each")
            res["setup"] = phase_setup(setups[1:], ports["echo"], args.setups, problems, log)
        if "rate" in phases:
            log(f"rate: {args.rate_seconds:g} s each")
            res["rate"] = phase_rate(setups[1:], ports["echo"], args.rate_seconds, problems, log)
        if "backpressure" in phases:
            log(f"backpressure: {args.slow_seconds:g} s each direction")
            res["backpressure"] = phase_backpressure(setups[2], ports, args.slow_seconds,
                                                     stack_pids, problems, log)
        if "hold" in phases:
            log(f"hold: {args.hold_streams} streams for {args.hold_seconds:g} s, "
                f"{args.hold_rounds} rounds")
            res["hold"] = phase_hold(setups[2], ports["echo"], args.hold_streams,
                                     args.hold_seconds, args.echo_interval, stack_pids, problems,
                                     log, args.hold_rounds, 5 if args.quick else 40)
        # last: the programs keep some memory of 10,000 streams after they closed
        if "concurrency" in phases:
            log(f"concurrency: {args.streams} streams")
            res["concurrency"] = phase_concurrency(setups[2], ports["echo"], args.streams,
                                                   stack_pids, problems, log)
        for name in ("hub", "agent", "daemon"):
            if stack.procs[name].poll() is not None:
                problems.append(f"{name} exited with {stack.procs[name].returncode}")
        if "wan" in phases:
            log("wan: ssh -D and devstreams through fault relays, without and with 40 ms RTT")
            res["wan"] = phase_wan(ports, args, problems, log)
    except Exception as e:  # report what was measured so far, then fail
        problems.append(f"{type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
        stack.dump_logs()
    finally:
        problems += stack.problems()  # stops the programs: non-zero exit after SIGTERM, sanitizer reports
        stack.close()
        peer.terminate()
        peer.join(5)
    res["seconds"] = time.monotonic() - t_start
    res["config"]["loadavg_at_end"] = os.getloadavg()
    complete = all(k in res for k in ("throughput", "setup", "concurrency", "rate", "backpressure"))
    if complete:
        res["targets"] = targets(res)
        print(report(res, args))
    elif any(k in res for k in ("throughput", "setup", "rate")):
        print(partial_report(res, args))
    if "wan" in res:
        print("\n".join(wan_lines(res, args)))
    if "hold" in res:
        print("\n".join(hold_lines(res)))
    print(f"run took {res['seconds']:.0f} s; load average (1 min) {res['config']['loadavg_at_start'][0]:.1f}"
          f" at start, {res['config']['loadavg_at_end'][0]:.1f} at end; "
          f"bytes checked {'completely' if FULL_VERIFY else 'by count and a sample of each MiB'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print("all setups completed; bytes arrived intact")
    return 0


def _try_echo(setup, port):
    try:
        with setup.open(port, timeout=5) as s:
            s.sendall(b"p")
            return s.recv(1) == b"p"
    except (OSError, EOFError):
        return False


if __name__ == "__main__":
    sys.exit(main())
