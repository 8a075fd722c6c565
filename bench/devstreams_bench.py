#!/usr/bin/env python3
"""One run that measures devstreams on loopback against direct TCP and `ssh -D`, interleaving
the setups (A B C D A B C D ...) so that machine noise hits all of them alike. devstreams runs
twice, on two stacks of its own: (c) with streams multiplexed on the channels already open (the
default) and (d) with `multiplex: false` at the agent and the daemon, one WebSocket per stream
(the previous data plane), so every figure of (c) has its ratio to `ssh -D` and to (d):

  throughput    one stream, N MiB each way at once: (a) direct TCP, (b) ssh -D through a private
                sshd, (c) and (d) SOCKS5 -> devstreamsd -> hub -> agent -> target. MB/s per
                direction, CPU seconds per GiB of every process taking part, ratios.
  setup         sequential connect -> SOCKS success -> 1-byte echo -> close, (b) (c) (d);
                p50/p90/p99 of the whole and of the open alone (to SOCKS success).
  rate          new streams per second sustained by 8 clients in 2 processes, (b) (c) (d),
                then by 32 in 4: at 8 each setup's latency bounds its rate, at 32 the
                programs' capacity does.
  interactive   a 1-byte echo at a time on one stream while a bulk stream (both ways at once)
                saturates the same device's link, (b) (c) (d): echo p50/p99 and the bulk MB/s.
  fairness      two bulk streams (both ways at once) on one device, (b) (c) (d): each one's
                MB/s and their ratio.
  backpressure  a reader that takes 1 MiB/s while the other end writes as fast as it can, both
                directions through (c); RSS of hub, agent and daemon before, peak and after.
  hold          1,000 streams through (c) held 60 s with an echo on each every 5 s, three
                rounds: every echo must come back, descriptors must fall back to where they were
                before any stream (give or take the warm pools) and RSS must converge.
  concurrency   N streams held open with small echoes through (c), then (d): RSS per stream and
                file descriptors at hub, agent and daemon; failures.
  wan           (b) (c) (d) with every wide-area leg through tests/e2e/fault_relay.py (ssh <->
                sshd; daemon <-> hub and agent <-> hub), without and with 40 ms of added round
                trip on each devstreams leg and 80 ms on ssh's one leg (the same end-to-end
                round trip): setup latency and throughput side by side.

Prints a table and the targets with met / not met; --json PATH writes every figure. Exits
non-zero when a setup did not complete or bytes did not arrive intact (the targets never change
the exit status). --quick is the CTest smoke run (< 90 s, every byte checked).

usage: bench/devstreams_bench.py [--quick] [--json PATH] [--size MiB] [--rounds N]
                                 [--streams N | --10k] [--setups N] [--rate-seconds S]
                                 [--echoes N] [--fair-seconds S] [--slow-seconds S]
                                 [--only PHASES]
                                 [--hold-streams N] [--hold-seconds S] [--echo-interval S]
                                 [--hold-rounds N]
                                 [--wan-size MiB] [--wan-rounds N] [--wan-setups N]
Needs a built default preset (DS_BIN_DIR selects another build), ssh and sshd.
See docs/performance.md."""

import argparse
import contextlib
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
    echo (any number of connections), slowread (1 MiB/s), fastwrite (as fast as it can), flood
    (fastwrite while discarding what comes)."""
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

    def drain(c):
        buf = bytearray(BUF)
        try:
            while c.recv_into(buf):
                pass
        except OSError:
            pass

    def flood(c):
        """Bulk both ways until the client goes: discards what comes, sends PATTERN repeated."""
        threading.Thread(target=drain, args=(c,), daemon=True).start()
        fastwrite(c)

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
    for k, h in (("bulk", bulk), ("slowread", slowread), ("fastwrite", fastwrite),
                 ("flood", flood)):
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

# Whether devstreams-agent and devstreamsd know their `multiplex` key (an unknown key fails the
# configuration). Until they do, both devstreams setups run the one data plane they have.
PROGRAMS_KNOW_MULTIPLEX = True


# Limits raised in each program's section, so that the rate and concurrency tests measure the data
# path, not the configured limits.
LIMITS = {"hub.yaml": ("max_streams", "max_streams_per_device", "max_pending_handshakes",
                       "new_streams_per_second", "max_connections", "max_connections_per_address",
                       "max_tls_handshakes", "max_tls_handshakes_per_address",
                       "max_streams_per_policy", "max_pending_per_policy"),
          "agent.yaml": ("max_streams",),
          "daemon.yaml": ("max_clients", "max_clients_per_address")}


class BenchStack(Stack):
    """The e2e Stack with figures-friendly settings written before any program starts: log
    level info (debug logs every stream) and the programs' LIMITS raised. With
    `multiplex` False the agent and the daemon use one WebSocket per stream (`multiplex: false`
    in their sections); with None they keep their default."""

    def __init__(self, multiplex=None, **kw):
        # the harness writes the key (scripts/init-state.sh) from DS_E2E_MULTIPLEX
        saved = os.environ.get("DS_E2E_MULTIPLEX")
        os.environ["DS_E2E_MULTIPLEX"] = ("" if multiplex is None or not PROGRAMS_KNOW_MULTIPLEX
                                          else "true" if multiplex else "false")
        try:
            super().__init__(**kw)
        finally:
            if saved is None:
                del os.environ["DS_E2E_MULTIPLEX"]
            else:
                os.environ["DS_E2E_MULTIPLEX"] = saved

    def _registry(self):
        for name in ("hub.yaml", "agent.yaml", "daemon.yaml"):
            path = os.path.join(self.state, name)
            with open(path) as f:
                text = f.read().replace("log_level: debug", "log_level: info")
            # the program's section is the file's last block
            text = text.rstrip("\n") + "\n" + "".join(f"  {k}: 1000000\n" for k in LIMITS[name])
            with open(path, "w") as f:
                f.write(text)
        return super()._registry()

    def pids(self):
        return {n: self.procs[n].pid for n in ("hub", "agent", "daemon")}


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
    """`count` sequential connect -> SOCKS success -> 1-byte echo -> close per setup, in blocks of
    50 taking turns; the whole and the open alone (to SOCKS success)."""
    lat = {s.key: [] for s in setups}
    opens = {s.key: [] for s in setups}
    fails = {s.key: 0 for s in setups}
    block = 50
    done = 0
    while done < count:
        n = min(block, count - done)
        for st in setups:
            for _ in range(n):
                t0 = time.perf_counter()
                try:
                    s = st.open(port, timeout=30)
                    t1 = time.perf_counter()
                    with s:
                        s.sendall(b"x")
                        if s.recv(1) != b"x":
                            raise OSError("bad echo")
                except (OSError, EOFError):
                    fails[st.key] += 1
                    continue
                lat[st.key].append((time.perf_counter() - t0) * 1000)
                opens[st.key].append((t1 - t0) * 1000)
        done += n
    out = {}
    for st in setups:
        v, o = lat[st.key], opens[st.key]
        if fails[st.key]:
            problems.append(f"setup latency {st.key}: {fails[st.key]} of {count} failed")
        out[st.key] = {"label": st.label, "count": len(v), "failed": fails[st.key],
                       "p50_ms": pct(v, 50), "p90_ms": pct(v, 90), "p99_ms": pct(v, 99),
                       "max_ms": max(v) if v else float("nan"),
                       "open_p50_ms": pct(o, 50), "open_p90_ms": pct(o, 90),
                       "open_p99_ms": pct(o, 99)}
        log(f"  setup {st.key}: p50 {out[st.key]['p50_ms']:.2f} ms, p99 {out[st.key]['p99_ms']:.2f} ms"
            f" (open p50 {out[st.key]['open_p50_ms']:.2f} ms)")
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
    # let the programs close every stream (their warm pools may keep more hub connections than
    # before, for a while), then see what memory they kept
    end = time.monotonic() + 30
    while time.monotonic() < end and any(fd_count(p) > base_fd[k] + POOL_FDS[k]
                                         for k, p in stack_pids.items()):
        time.sleep(0.5)
    time.sleep(1.0)
    rss_after = {k: rss_kib(p) for k, p in stack_pids.items()}
    fds_after = {k: fd_count(p) for k, p in stack_pids.items()}
    if fails[0] or echo_fail:
        problems.append(f"concurrency {setup.key}: {fails[0]} of {n} failed to open, "
                        f"{echo_fail} failed to echo")
    per = {k: (rss[k] - base_rss[k]) / max(ok, 1) for k in stack_pids}
    fds_per = {k: (fds[k] - base_fd[k]) / max(ok, 1) for k in stack_pids}
    out = {"label": setup.label, "streams": n, "opened": ok, "open_failed": fails[0], "echo_failed": echo_fail,
           "open_seconds": open_s, "rss_kib_before": base_rss, "rss_kib_held": rss,
           "rss_kib_per_stream": per, "rss_kib_per_stream_total": sum(per.values()),
           "fds_before": base_fd, "fds_held": fds, "fds_per_stream": fds_per,
           "rss_kib_after_close": rss_after,
           "fds_after_close": fds_after}
    log(f"  concurrency {setup.key}: {ok}/{n} open in {open_s:.1f} s; RSS/stream "
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
                       "per_second": ok / elapsed, "clients": procs * threads, "procs": procs}
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


# ------------------------------------------------------------ streams side by side on one device

class FloodStream:
    """One bulk stream to the flood target, both ways at once: a thread sends PATTERN as fast as
    the stream takes it, another reads and checks what comes back, until stop()."""

    def __init__(self, setup, port, full):
        self.key = setup.key
        self.s = setup.open(port)
        self.s.settimeout(60)
        self.sent = 0
        self.chk = Checker(full)
        self.stopping = False
        self.errors = []
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]
        for t in self.threads:
            t.start()

    def _write(self):
        try:
            while not self.stopping:
                pos = self.sent % MiB
                self.sent += self.s.send(PAT2[pos:pos + MiB])
        except OSError as e:
            if not self.stopping:
                self.errors.append(f"send: {e}")

    def _read(self):
        buf = bytearray(BUF)
        mv = memoryview(buf)
        try:
            while True:
                n = self.s.recv_into(buf)
                if n == 0:
                    if not self.stopping:
                        self.errors.append("the device side closed")
                    return
                self.chk.feed(mv[:n])
        except OSError as e:
            if not self.stopping:
                self.errors.append(f"recv: {e}")

    def mark(self):
        """(time, bytes sent, bytes received) now."""
        return time.perf_counter(), self.sent, self.chk.got

    def stop(self):
        """Ends the stream; returns the problems it had (errors, bad bytes, nothing received)."""
        self.stopping = True
        with contextlib.suppress(OSError):
            self.s.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(30)
        self.s.close()
        problems = [f"{self.key}: bulk stream: {e}" for e in self.errors]
        if self.chk.bad:
            problems.append(f"{self.key}: bulk stream: {self.chk.bad} bad chunks")
        if not self.chk.got or not self.sent:
            problems.append(f"{self.key}: bulk stream moved nothing "
                            f"(sent {self.sent}, received {self.chk.got})")
        return problems


def _flood_main(setup, port, full, conn):
    try:
        f = FloodStream(setup, port, full)
    except (OSError, EOFError) as e:
        conn.send(str(e))
        return
    conn.send(None)
    while conn.recv() == "mark":
        conn.send(f.mark())
    conn.send(f.stop())


class Flood:
    """A FloodStream in a process of its own, so that its threads never hold the interpreter
    lock of a client that measures latency. Raises OSError when the stream does not open."""

    def __init__(self, setup, port):
        self.conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=_flood_main, args=(setup, port, FULL_VERIFY, child),
                                daemon=True)
        self.proc.start()
        err = self.conn.recv() if self.conn.poll(90) else "no answer in 90 s"
        if err is not None:
            self.proc.join(10)
            raise OSError(f"bulk stream did not open: {err}")

    def mark(self):
        self.conn.send("mark")
        return self.conn.recv()

    def stop(self):
        self.conn.send("stop")
        problems = self.conn.recv()
        self.proc.join(10)
        return problems


def rate_between(a, b):
    """MB/s sent and received between two Flood.mark()s."""
    dt = max(b[0] - a[0], 1e-9)
    return (b[1] - a[1]) / dt / 1e6, (b[2] - a[2]) / dt / 1e6


def phase_interactive(setups, ports, echoes, rounds, gap, warmup, problems, log):
    """Per setup and round: an echo stream opened first, then a bulk stream (both ways) to the
    same device; after `warmup` s, 1-byte echoes one at a time `gap` s apart on the echo stream.
    Latency from send to the byte's return; the bulk stream's MB/s over the same time."""
    lat = {st.key: [] for st in setups}
    bulk = {st.key: [] for st in setups}
    fails = {st.key: 0 for st in setups}
    per_round = max(1, -(-echoes // rounds))
    for _ in range(rounds):
        for st in setups:
            try:
                e = st.open(ports["echo"])
            except (OSError, EOFError) as err:
                problems.append(f"interactive {st.key}: echo stream: {err}")
                fails[st.key] += per_round
                continue
            with e:
                e.settimeout(30)
                try:
                    flood = Flood(st, ports["flood"])
                except (OSError, EOFError) as err:
                    problems.append(f"interactive {st.key}: bulk stream: {err}")
                    fails[st.key] += per_round
                    continue
                time.sleep(warmup)
                m0 = flood.mark()
                for i in range(per_round):
                    b = bytes([i & 0xFF])
                    t0 = time.perf_counter()
                    try:
                        e.sendall(b)
                        if recv_exact(e, 1) != b:
                            raise OSError("wrong byte back")
                    except (OSError, EOFError):
                        fails[st.key] += 1
                        break
                    lat[st.key].append((time.perf_counter() - t0) * 1000)
                    time.sleep(gap)
                bulk[st.key].append(rate_between(m0, flood.mark()))
                problems += [f"interactive {p}" for p in flood.stop()]
    out = {}
    for st in setups:
        v = lat[st.key]
        if fails[st.key]:
            problems.append(f"interactive {st.key}: {fails[st.key]} echoes failed")
        out[st.key] = {"label": st.label, "echoes": len(v), "failed": fails[st.key],
                       "p50_ms": pct(v, 50), "p90_ms": pct(v, 90), "p99_ms": pct(v, 99),
                       "max_ms": max(v) if v else float("nan"),
                       "bulk_mb_per_s_sent": med([x[0] for x in bulk[st.key]]),
                       "bulk_mb_per_s_received": med([x[1] for x in bulk[st.key]])}
        d = out[st.key]
        log(f"  interactive {st.key}: echo p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms; "
            f"bulk {d['bulk_mb_per_s_sent']['median']:.1f}/"
            f"{d['bulk_mb_per_s_received']['median']:.1f} MB/s sent/received")
    return out


def phase_fairness(setups, port, seconds, rounds, warmup, problems, log):
    """Per setup and round: two bulk streams (both ways) to the same device at once; after
    `warmup` s, each one's MB/s over `seconds` and the ratio of the slower to the faster (bytes
    both ways)."""
    runs = {st.key: [] for st in setups}
    for _ in range(rounds):
        for st in setups:
            floods = []
            try:
                for _ in range(2):
                    floods.append(Flood(st, port))
            except (OSError, EOFError) as err:
                problems.append(f"fairness {st.key}: bulk stream: {err}")
                for f in floods:
                    f.stop()
                continue
            time.sleep(warmup)
            m0 = [f.mark() for f in floods]
            time.sleep(seconds)
            m1 = [f.mark() for f in floods]
            for f in floods:
                problems += [f"fairness {p}" for p in f.stop()]
            rates = [rate_between(a, b) for a, b in zip(m0, m1)]
            totals = [sum(r) for r in rates]
            runs[st.key].append({"mb_per_s": rates,
                                 "ratio": min(totals) / max(totals) if max(totals) else 0.0})
    out = {}
    for st in setups:
        r = runs[st.key]
        out[st.key] = {"label": st.label, "rounds": r,
                       "ratio": med([x["ratio"] for x in r]),
                       "mb_per_s_each_way": med([sum(x["mb_per_s"][i]) / 2 for x in r
                                                 for i in range(2)])}
        if r:
            log(f"  fairness {st.key}: ratio {out[st.key]['ratio']['median']:.2f}; MB/s each way "
                + "; ".join(" / ".join(f"{sum(x) / 2:.1f}" for x in run["mb_per_s"]) for run in r))
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


WAN_DELAYS_MS = (0, 20)  # added each way on every devstreams relay; twice that on ssh's


def phase_wan(ports, args, problems, log):
    """Setup latency and throughput of ssh -D and both devstreams data planes with every
    wide-area leg through a fault relay: without added delay, then with 20 ms each way on each
    devstreams relay (40 ms of round trip on each leg: daemon <-> hub and agent <-> hub) and
    40 ms each way on ssh's (80 ms on its one leg ssh <-> sshd: the same end-to-end round trip)."""
    relays = {}
    stacks = []
    out = {}
    try:
        for mux, suffix in ((True, "c"), (False, "d")):
            legs = {k: Relay("--connect-proxy") for k in ("agent", "daemon")}
            relays.update({f"{k}-{suffix}": r for k, r in legs.items()})
            stacks.append(WanStack(legs["agent"], legs["daemon"], multiplex=mux,
                                   allow_extra=list(ports.values()), with_sshd=not stacks))
        relays["ssh"] = Relay("--upstream", f"127.0.0.1:{stacks[0].ssh_port}")
        ssh_port = start_ssh_socks(stacks[0], relays["ssh"].port, name="ssh-wan")
        setups = [Setup("b", "ssh -D via relay", ssh_port, "127.0.0.1"),
                  Setup("c", "devstreams via relays", stacks[0].socks_port, "dev01.hub"),
                  Setup("d", "per-stream via relays", stacks[1].socks_port, "dev01.hub")]
        wait_until(lambda: _try_echo(setups[0], ports["echo"]), 20, "ssh -D via the relay")
        for delay in WAN_DELAYS_MS:
            for name, r in relays.items():
                r.command(f"delay {2 * delay if name == 'ssh' else delay}")
            key = f"rtt+{2 * delay}ms"
            log(f"wan {key} per devstreams leg: {args.wan_setups} setups, "
                f"{args.wan_size} MiB x {args.wan_rounds}")
            wait_until(lambda: all(_try_echo(st, ports["echo"]) for st in setups), 20,
                       "every setup through the relays")
            setup = phase_setup(setups, ports["echo"], args.wan_setups, problems, log)
            tp = phase_throughput(setups, ports["bulk"], args.wan_size * MiB, args.wan_rounds,
                                  problems, log)
            out[key] = {st.key: {"label": st.label, "added_rtt_ms": 4 * delay if st.key == "b"
                                 else 2 * delay, **{k: setup[st.key][k] for k in (
                                     "open_p50_ms", "open_p90_ms", "p50_ms", "p90_ms", "max_ms")},
                                 "mb_per_s_each_way": tp[st.key]["mb_per_s_each_way"]}
                        for st in setups}
    finally:
        for i, stack in enumerate(stacks):
            problems += [f"wan stack {'cd'[i]}: {p}" for p in stack.problems()]
            stack.close()
        for r in relays.values():
            r.close()
    return out


def wan_lines(res, args):
    lines = [f"Wide area: every leg through a fault relay (tests/e2e/fault_relay.py); "
             f"{args.wan_setups} setups, {args.wan_size} MiB each way x {args.wan_rounds}; ssh's "
             f"one leg gets the round trip of devstreams' two"]
    p = lines.append
    p(f"  {'RTT per dev. leg':<17} {'setup':<25} {'added RTT':>9} {'open p50':>9} {'p90':>7}"
      f" {'+echo p50':>9} {'p90':>7} {'MB/s each way':>24}")
    for key, by in res["wan"].items():
        for k in ("b", "c", "d"):
            d = by[k]
            p(f"  {key[3:]:<17} {k}) {d['label']:<22} {d['added_rtt_ms']:6d} ms "
              f"{d['open_p50_ms']:9.1f} {d['open_p90_ms']:7.1f} {d['p50_ms']:9.1f} "
              f"{d['p90_ms']:7.1f} {fmt_range(d['mb_per_s_each_way']):>24}")
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


def ratio(x, y):
    return x / y if y else float("nan")


def throughput_lines(res, args):
    lines = []
    p = lines.append
    tp = res["throughput"]
    p(f"Throughput: one stream, {args.size} MiB each way at once, {args.rounds} rounds interleaved"
      f" (median (min-max))")
    p(f"  {'setup':<34} {'MB/s each way':>24}   CPU s per GiB moved (both directions)")
    for k, d in tp.items():
        cpu = ", ".join(f"{n} {fmt_range(v, '{:.2f}')}" for n, v in d["cpu_s_per_gib"].items())
        p(f"  {k}) {d['label']:<31} {fmt_range(d['mb_per_s_each_way']):>24}   {cpu}")
    r = res["ratios"]
    p(f"  ratios (medians): c/a {r['c_over_a']:.2f}, c/b {r['c_over_b']:.2f}, c/d {r['c_over_d']:.2f},"
      f" d/b {r['d_over_b']:.2f}; CPU s/GiB of hub+agent+daemon: c {r['c_cpu_s_per_gib']:.2f},"
      f" d {r['d_cpu_s_per_gib']:.2f}")
    return lines


def latency_table(title, by, cols):
    lines = [title, f"  {'setup':<34} " + " ".join(f"{h:>9}" for h, _ in cols) + "  failed"]
    for k, d in by.items():
        lines.append(f"  {k}) {d['label']:<31} " + " ".join(f"{d[f]:9.2f}" for _, f in cols) +
                     f"  {d['failed']}")
    return lines


def report(res, args):
    """The figures of every phase that ran, then the targets they allow to judge."""
    lines = throughput_lines(res, args) if "throughput" in res else []
    p = lines.append
    if "setup" in res:
        lines += latency_table(
            f"Stream setup: {args.setups} sequential connect -> SOCKS success -> 1-byte echo -> "
            f"close (open: to SOCKS success)", res["setup"],
            [("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"), ("max ms", "max_ms"),
             ("open p50", "open_p50_ms"), ("open p99", "open_p99_ms")])
    if "rate" in res:
        p(f"Stream rate: {args.rate_seconds:g} s of open -> 1-byte echo -> close")
        for phase in ("rate", "rate_saturated"):
            for k, d in res.get(phase, {}).items():
                p(f"  {k}) {d['label']:<31} {d['per_second']:8.0f} streams/s  ({d['streams']} "
                  f"streams, {d['failed']} failed, {d['clients']} clients in {d['procs']} "
                  f"processes)")
    if "interactive" in res:
        lines += latency_table(
            f"Interactive: 1-byte echoes one at a time ({args.echoes} per setup) while a bulk "
            f"stream to the same device moves both ways", res["interactive"],
            [("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"), ("max ms", "max_ms")])
        for k, d in res["interactive"].items():
            p(f"  {k}) bulk stream meanwhile: {fmt_range(d['bulk_mb_per_s_sent'])} MB/s sent, "
              f"{fmt_range(d['bulk_mb_per_s_received'])} MB/s received")
    if "fairness" in res:
        p(f"Fairness: two bulk streams to one device at once, both ways, {args.fair_seconds:g} s "
          f"x {args.fair_rounds} rounds")
        for k, d in res["fairness"].items():
            each = "; ".join(" / ".join(f"{sum(x) / 2:.1f}" for x in r["mb_per_s"])
                             for r in d["rounds"])
            p(f"  {k}) {d['label']:<31} slower/faster {fmt_range(d['ratio'], '{:.2f}')}   "
              f"MB/s each way per stream: {each}")
    if "backpressure" in res:
        p(f"Backpressure: reader at 1 MiB/s, writer as fast as it can, {args.slow_seconds:g} s, "
          f"devstreams (c)")
        for dirn, d in res["backpressure"].items():
            p(f"  {dirn}: client moved {d['bytes_moved_by_client'] / MiB:.1f} MiB")
            for k in ("hub", "agent", "daemon"):
                p(f"    {k:<8} RSS before {d['rss_kib_before'][k] / 1024:6.1f} MiB, peak "
                  f"{d['rss_kib_peak'][k] / 1024:6.1f} MiB, after {d['rss_kib_after'][k] / 1024:6.1f}"
                  f" MiB, growth {d['rss_growth_kib'][k] / 1024:5.2f} MiB")
    if "hold" in res:
        lines += hold_lines(res)
    for k, c in res.get("concurrency", {}).items():
        p(f"Concurrency: {c['streams']} streams held open through {k}) {c['label']} "
          f"({c['opened']} opened, {c['open_failed']} failed to open, {c['echo_failed']} failed to"
          f" echo; opened in {c['open_seconds']:.1f} s)")
        p(f"  {'process':<10} {'RSS before':>12} {'RSS held':>12} {'per stream':>12} "
          f"{'RSS closed':>12} {'fds before':>11} {'fds held':>9} {'per stream':>10} "
          f"{'fds closed':>10}")
        for n in ("hub", "agent", "daemon"):
            p(f"  {n:<10} {c['rss_kib_before'][n] / 1024:8.1f} MiB {c['rss_kib_held'][n] / 1024:8.1f}"
              f" MiB {c['rss_kib_per_stream'][n]:8.1f} KiB {c['rss_kib_after_close'][n] / 1024:8.1f}"
              f" MiB {c['fds_before'][n]:11d} {c['fds_held'][n]:9d} {c['fds_per_stream'][n]:10.2f}"
              f" {c['fds_after_close'][n]:10d}")
        p(f"  total per stream {c['rss_kib_per_stream_total']:.1f} KiB")
    if "wan" in res:
        lines += wan_lines(res, args)
    res["targets"] = targets(res)
    if res["targets"]:
        p("Targets (c: devstreams; b: ssh -D; d: one WebSocket per stream, the previous data plane)")
        for t in res["targets"]:
            p(f"  {'met    ' if t['met'] else 'NOT MET'}  {t['target']:<58} measured {t['measured']}")
    return "\n".join(lines)


def targets(res):
    """The targets of multiplexed streams (and the slow reader's bound) that the phases which ran
    allow to judge: (c) against (b) `ssh -D` and (d) the previous data plane, same run."""
    out = []

    def add(target, measured, met):
        out.append({"target": target, "measured": measured, "met": bool(met)})

    if "setup" in res:
        st = res["setup"]
        b, c, d = st["b"], st["c"], st["d"]
        r50, r99 = ratio(c["p50_ms"], b["p50_ms"]), ratio(c["p99_ms"], b["p99_ms"])
        add("stream setup p50 c <= 1.5 x b", f"{r50:.2f} x ({c['p50_ms']:.2f} vs {b['p50_ms']:.2f} ms;"
            f" d {d['p50_ms']:.2f} ms, {ratio(d['p50_ms'], b['p50_ms']):.2f} x)", r50 <= 1.5)
        add("stream setup p50 c <= 1.0 x b (stretch)", f"{r50:.2f} x", r50 <= 1.0)
        add("stream setup p99 c <= 3 x b", f"{r99:.2f} x ({c['p99_ms']:.2f} vs {b['p99_ms']:.2f} ms;"
            f" d {d['p99_ms']:.2f} ms, {ratio(d['p99_ms'], b['p99_ms']):.2f} x)", r99 <= 3)
    for phase, target in (("rate", "new streams/s c >= 1.0 x b"),
                          ("rate_saturated", "new streams/s c >= 1.0 x b, 32 clients (capacity)")):
        if phase in res:
            rt = res[phase]
            rr = ratio(rt["c"]["per_second"], rt["b"]["per_second"])
            add(target, f"{rr:.2f} x ({rt['c']['per_second']:.0f} vs "
                f"{rt['b']['per_second']:.0f} /s; d {rt['d']['per_second']:.0f} /s)", rr >= 1.0)
    if "c" in res.get("concurrency", {}):
        c = res["concurrency"]["c"]
        total = c["rss_kib_per_stream_total"]
        text = f"{c['opened']} of {c['streams']} streams, {total:.1f} KiB/stream (hub+agent+daemon)"
        if c["streams"] < 10000:
            text += "; run with --10k for the 10,000 figure"
        if "d" in res["concurrency"]:
            dd = res["concurrency"]["d"]
            text += f"; d {dd['rss_kib_per_stream_total']:.1f} KiB/stream ({dd['opened']} streams)"
        add("10,000 concurrent streams at <= 16 KiB RSS/stream (c)", text,
            c["opened"] >= 10000 and not c["echo_failed"] and not c["open_failed"] and total <= 16)
    if "wan" in res and "rtt+40ms" in res["wan"]:
        w = res["wan"]["rtt+40ms"]
        b, c, d = w["b"], w["c"], w["d"]
        add("40 ms RTT per leg: open p50 c <= 2 x 40 + 5 ms",
            f"{c['open_p50_ms']:.1f} ms (b over 80 ms: {b['open_p50_ms']:.1f} ms; "
            f"d {d['open_p50_ms']:.1f} ms)", c["open_p50_ms"] <= 85)
        tr = ratio(c["mb_per_s_each_way"]["median"], d["mb_per_s_each_way"]["median"])
        add("40 ms RTT per leg: throughput c >= 0.8 x d",
            f"{tr:.2f} x ({c['mb_per_s_each_way']['median']:.1f} vs "
            f"{d['mb_per_s_each_way']['median']:.1f} MB/s each way; b "
            f"{b['mb_per_s_each_way']['median']:.1f})", tr >= 0.8)
    if "interactive" in res:
        it = res["interactive"]
        ri = ratio(it["c"]["p99_ms"], it["b"]["p99_ms"])
        add("1-byte echo p99 beside a bulk stream c <= 2 x b",
            f"{ri:.2f} x ({it['c']['p99_ms']:.2f} vs {it['b']['p99_ms']:.2f} ms; "
            f"d {it['d']['p99_ms']:.2f} ms)", ri <= 2)
    if "fairness" in res:
        fr = res["fairness"]["c"]["ratio"]["median"]
        add("two bulk streams on one device within 20 % (c)",
            f"slower/faster {fr:.2f} (b {res['fairness']['b']['ratio']['median']:.2f}, "
            f"d {res['fairness']['d']['ratio']['median']:.2f})", fr >= 0.8)
    if "throughput" in res:
        r, tp = res["ratios"], res["throughput"]
        add("throughput c >= 1.0 x d on loopback",
            f"{r['c_over_d']:.2f} x ({tp['c']['mb_per_s_each_way']['median']:.1f} vs "
            f"{tp['d']['mb_per_s_each_way']['median']:.1f} MB/s each way; c/b {r['c_over_b']:.2f})",
            r["c_over_d"] >= 1.0)
        add("CPU of hub+agent+daemon c <= 4.0 s/GiB", f"{r['c_cpu_s_per_gib']:.2f} s/GiB "
            f"(d {r['d_cpu_s_per_gib']:.2f})", r["c_cpu_s_per_gib"] <= 4.0)
    if "backpressure" in res:
        growth = max(v for d in res["backpressure"].values() for v in d["rss_growth_kib"].values())
        add("RSS growth <= 4 MiB per process, slow reader (c)", f"max {growth / 1024:.2f} MiB",
            growth <= 4 * 1024)
    return out


# --------------------------------------------------------------------------------------- main

PHASES = ("throughput", "setup", "rate", "interactive", "fairness", "backpressure", "hold",
          "concurrency", "wan")

FULL_VERIFY = True


def raise_nofile(need):
    """Raises the soft open-files limit (the programs inherit it) towards `need`; the hard
    limit only moves with CAP_SYS_RESOURCE. Returns the soft limit and the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((max(need, soft), max(need, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            break
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main():
    global FULL_VERIFY
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CTest: small sizes, every byte checked, < 90 s")
    ap.add_argument("--json", metavar="PATH", help="write all figures as JSON")
    ap.add_argument("--size", type=int, help="MiB each way per throughput round (default 2048)")
    ap.add_argument("--rounds", type=int, help="throughput rounds per setup (default 3)")
    ap.add_argument("--setups", type=int, help="stream setups per setup kind (default 1000)")
    ap.add_argument("--streams", type=int, help="concurrent streams (default 1000)")
    ap.add_argument("--10k", dest="tenk", action="store_true", help="10,000 concurrent streams")
    ap.add_argument("--rate-seconds", type=float, help="length of the rate test (default 10)")
    ap.add_argument("--echoes", type=int, help="interactive echoes per setup (default 500)")
    ap.add_argument("--fair-seconds", type=float, help="length of each fairness round (5)")
    ap.add_argument("--fair-rounds", type=int, help="fairness rounds per setup (2)")
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
    defaults = dict(size=32 if q else 2048, rounds=2 if q else 3, setups=60 if q else 1000,
                    streams=200 if q else (10000 if args.tenk else 1000),
                    rate_seconds=1 if q else 10, echoes=40 if q else 500,
                    fair_seconds=1 if q else 5, fair_rounds=1 if q else 2,
                    slow_seconds=3 if q else 20,
                    verify="full" if q else "sample", wan_size=4 if q else 64,
                    wan_rounds=1 if q else 2, wan_setups=5 if q else 50,
                    hold_streams=50 if q else 1000, hold_seconds=1 if q else 60,
                    echo_interval=0.5 if q else 5)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    FULL_VERIFY = args.verify == "full"

    # Open files per held stream: the bench client and the targets 1 each; with one WebSocket
    # per stream (d) the hub, the agent and the daemon 2 each (both sides); multiplexed (c) the
    # agent and the daemon 1 (the target, the client) and the hub none.
    need = 2 * max(args.streams, args.hold_streams) + 256
    nofile, hard = raise_nofile(need)
    ulimit = subprocess.run(["bash", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()

    t_log = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t_log:6.1f} s] {msg}", file=sys.stderr, flush=True)

    log(f"open files limit {nofile} (ulimit -n in the programs: {ulimit}); {os.cpu_count()} CPUs")
    if not PROGRAMS_KNOW_MULTIPLEX:
        log("warning: the programs do not know `multiplex` yet: (c) and (d) both run the "
            "one-WebSocket-per-stream data plane")
    fds_per_stream = {"c": 1 if PROGRAMS_KNOW_MULTIPLEX else 2, "d": 2}
    held = {k: min(args.streams, (nofile - 256) // n) for k, n in fds_per_stream.items()}
    for k, n in held.items():
        if n < args.streams:
            want = args.streams * fds_per_stream[k] + 256
            log(f"warning: {args.streams} streams through ({k}) need {want} open files per "
                f"program but the limit is {nofile} (hard limit {hard}); holding {n} instead")

    ports = {k: free_port() for k in ("bulk", "echo", "slowread", "fastwrite", "flood")}
    ready = CTX.Event()
    peer = CTX.Process(target=peer_main, args=(ports, FULL_VERIFY, ready), daemon=True)
    peer.start()
    if not ready.wait(10):
        sys.exit("targets did not start")

    problems = []
    res = {"config": {**vars(args), "cpus": os.cpu_count(), "nofile": nofile,
                      "streams_held": held, "programs_know_multiplex": PROGRAMS_KNOW_MULTIPLEX,
                      "loadavg_at_start": os.getloadavg()},
           "problems": problems}
    t_start = time.monotonic()
    stacks = {}
    try:
        stacks["c"] = BenchStack(multiplex=True, allow_extra=list(ports.values()), with_sshd=True)
        stacks["d"] = BenchStack(multiplex=False, allow_extra=list(ports.values()),
                                 with_sshd=False)
        stack = stacks["c"]
        ssh_port = start_ssh_socks(stack)
        pids = {k: st.pids() for k, st in stacks.items()}
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
                  Setup("c", "devstreams", stacks["c"].socks_port, "dev01.hub",
                        lambda: {**pids["c"], **bench_pids()}),
                  Setup("d", "devstreams per-stream", stacks["d"].socks_port, "dev01.hub",
                        lambda: {**pids["d"], **bench_pids()})]
        by_key = {st.key: st for st in setups}
        # the ssh -D path is ready once a stream through it works
        wait_until(lambda: _try_echo(setups[1], ports["echo"]), 20, "ssh -D forwarding")

        if "throughput" in phases:
            log(f"throughput: {args.size} MiB each way x {args.rounds} rounds")
            res["throughput"] = tp = phase_throughput(setups, ports["bulk"], args.size * MiB,
                                                      args.rounds, problems, log)
            mbs = {k: tp[k]["mb_per_s_each_way"]["median"] for k in tp}
            cpu = {k: sum(tp[k]["cpu_s_per_gib"][n]["median"] for n in ("hub", "agent", "daemon"))
                   for k in ("c", "d")}
            res["ratios"] = {"c_over_a": ratio(mbs["c"], mbs["a"]),
                             "c_over_b": ratio(mbs["c"], mbs["b"]),
                             "c_over_d": ratio(mbs["c"], mbs["d"]),
                             "d_over_b": ratio(mbs["d"], mbs["b"]),
                             "c_cpu_s_per_gib": cpu["c"], "d_cpu_s_per_gib": cpu["d"]}
        if "setup" in phases:
            log(f"stream setup: {args.setups} each")
            res["setup"] = phase_setup(setups[1:], ports["echo"], args.setups, problems, log)
        if "rate" in phases:
            log(f"rate: {args.rate_seconds:g} s each")
            res["rate"] = phase_rate(setups[1:], ports["echo"], args.rate_seconds, problems, log)
            log(f"rate: {args.rate_seconds:g} s each, 32 clients")
            res["rate_saturated"] = phase_rate(setups[1:], ports["echo"], args.rate_seconds,
                                               problems, log, procs=4, threads=8)
        if "interactive" in phases:
            log(f"interactive: {args.echoes} echoes each beside a bulk stream")
            res["interactive"] = phase_interactive(setups[1:], ports, args.echoes, 2,
                                                   0.002 if q else 0.005, 0.2 if q else 0.5,
                                                   problems, log)
        if "fairness" in phases:
            log(f"fairness: two bulk streams, {args.fair_seconds:g} s x {args.fair_rounds}")
            res["fairness"] = phase_fairness(setups[1:], ports["flood"], args.fair_seconds,
                                             args.fair_rounds, 0.2 if q else 0.5, problems, log)
        if "backpressure" in phases:
            log(f"backpressure: {args.slow_seconds:g} s each direction")
            res["backpressure"] = phase_backpressure(by_key["c"], ports, args.slow_seconds,
                                                     pids["c"], problems, log)
        if "hold" in phases:
            log(f"hold: {args.hold_streams} streams for {args.hold_seconds:g} s, "
                f"{args.hold_rounds} rounds")
            res["hold"] = phase_hold(by_key["c"], ports["echo"], args.hold_streams,
                                     args.hold_seconds, args.echo_interval, pids["c"], problems,
                                     log, args.hold_rounds, 3 if args.quick else 40)
        # last on each stack: the programs keep some memory of 10,000 streams after they closed
        if "concurrency" in phases:
            res["concurrency"] = {}
            for k in ("c", "d"):
                log(f"concurrency {k}: {held[k]} streams")
                res["concurrency"][k] = phase_concurrency(by_key[k], ports["echo"], held[k],
                                                          pids[k], problems, log)
        for k, st in stacks.items():
            for name in ("hub", "agent", "daemon"):
                if st.procs[name].poll() is not None:
                    problems.append(f"{k}: {name} exited with {st.procs[name].returncode}")
        if "wan" in phases:
            log("wan: ssh -D and devstreams through fault relays, without and with added delay")
            res["wan"] = phase_wan(ports, args, problems, log)
    except Exception as e:  # report what was measured so far, then fail
        problems.append(f"{type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
        for st in stacks.values():
            st.dump_logs()
    finally:
        for k, st in stacks.items():
            # stops the programs: non-zero exit after SIGTERM, sanitizer reports
            problems += [f"stack {k}: {p}" for p in st.problems()]
            st.close()
        peer.terminate()
        peer.join(5)
    res["seconds"] = time.monotonic() - t_start
    res["config"]["loadavg_at_end"] = os.getloadavg()
    print(report(res, args))
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
