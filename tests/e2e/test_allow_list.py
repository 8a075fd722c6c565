"""End-to-end tests of the agent's allow-list against hostile host names: a DNS server of our own
on loopback whose answers change between the check and the connect, names that resolve to
addresses no rule allows, and host spellings that are not a name or an address. Two listeners
share one port on 127.0.0.1 (allowed) and 127.0.0.2 (never allowed): the second must never see
a connection. Every test ends by checking that the stack still serves a normal stream."""

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, StackTest, TcpServer, WsClient, program, wait_until  # noqa: E402
from test_agent import restart_agent, set_agent_config, wait_online_count  # noqa: E402
from test_hub import api, ca_file, stream_path  # noqa: E402

ALLOWED = "127.0.0.1"
FORBIDDEN = "127.0.0.2"


class DnsServer:
    """A UDP DNS server on 127.0.0.1 answering A and AAAA queries. `answers[name]` is a list of
    address lists: the first query of a type gets the first list, the second the second, and so
    on (the last one repeats). A name that ends in a key of `zones` gets that zone's addresses.
    Other names get NXDOMAIN. Every query is recorded as (lower-case name, "A" or "AAAA")."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answers = {}
        self.zones = {}
        self.queries = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def count(self, name, qtype="A"):
        with self.lock:
            return self.queries.count((name, qtype))

    def asked(self, needle):
        with self.lock:
            return [q for q in self.queries if needle in q[0]]

    def _addresses(self, name, qtype):
        if name in self.answers:
            seq = self.answers[name]
            n = sum(1 for q in self.queries if q == (name, qtype)) - 1  # this one is recorded
            return seq[min(n, len(seq) - 1)]
        for zone, addrs in self.zones.items():
            if name == zone or name.endswith("." + zone):
                return addrs
        return None

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue  # not a query we understand: no answer
            if reply:
                self.sock.sendto(reply, peer)

    def _answer(self, data):
        qid, flags, qdcount = struct.unpack(">HHH", data[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        pos, labels = 12, []
        while data[pos]:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
            pos += 1 + n
        qtype, qclass = struct.unpack(">HH", data[pos + 1:pos + 5])
        question = data[12:pos + 5]  # echoed as sent (the resolver randomises letter case)
        name = ".".join(labels).lower()
        kind = {1: "A", 28: "AAAA"}.get(qtype, str(qtype))
        with self.lock:
            self.queries.append((name, kind))
            addrs = self._addresses(name, kind)
        rdata = []
        if addrs is not None:
            for a in addrs:
                if kind == "A" and ":" not in a:
                    rdata.append(socket.inet_pton(socket.AF_INET, a))
                elif kind == "AAAA" and ":" in a:
                    rdata.append(socket.inet_pton(socket.AF_INET6, a))
        rcode = 3 if addrs is None else 0
        out = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(rdata), 0, 0)
        out += question
        for r in rdata:
            out += struct.pack(">HHHIH", 0xC00C, qtype, qclass, 0, len(r)) + r
        return out

    def close(self):
        self.sock.close()


class Target(TcpServer):
    """A TCP listener on `host`:`port` that greets each connection with "hello from HOST\\n"
    and counts connections."""

    def __init__(self, host, port):
        self.host = host
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(host, backlog=16, port=port)

    def handle(self, conn):
        with self.lock:
            self.connections += 1
        with conn:
            try:
                conn.sendall(f"hello from {self.host}\n".encode())
                conn.settimeout(30)
                while conn.recv(4096):
                    pass
            except OSError:
                pass


def two_targets():
    """Listeners on 127.0.0.1:P and 127.0.0.2:P for one free port P."""
    for _ in range(20):
        good = Target(ALLOWED, 0)
        try:
            return good, Target(FORBIDDEN, good.port)
        except OSError:
            good.close()
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


class AllowListDns(StackTest):
    """The agent resolves a name once, matches the addresses and connects only to those."""

    def setUp(self):
        self.dns = DnsServer()
        self.addCleanup(self.dns.close)
        self.good, self.bad = two_targets()
        self.addCleanup(self.good.close)
        self.addCleanup(self.bad.close)
        self.port = self.good.port
        self.stack = Stack(with_sshd=False)
        self.addCleanup(self.stack.close)

    def configure(self, *rules):
        s = self.stack
        allow = [f"127.0.0.1:{s.http_port}", *rules]
        set_agent_config(s, allow=allow, nameservers=f'["127.0.0.1:{self.dns.port}"]')
        before = restart_agent(s)
        wait_online_count(s, before + 1)

    def request(self, host):
        """A stream request for host:self.port through the hub's API; (status, JSON body)."""
        r = api(self.stack, "POST", "/api/v1/devices/dev01/streams",
                {"port": self.port, "host": host}, timeout=60)
        return r.status, r.json

    def greeting(self, body):
        """Opens the service side of an accepted stream; returns the target's first line."""
        ws = WsClient(self.stack.hub_port, stream_path(body["url"]),
                      {"Authorization": f"Bearer {body['token']}"}, ca_file(self.stack))
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101)
        ws.sock.settimeout(20)
        got = b""
        while b"\n" not in got:
            op, data = ws.recv_frame()
            self.assertNotEqual(op, 8, f"stream closed after {got!r}")
            got += data
        return got.decode().strip()

    def assertConnectsTo(self, host, where):
        status, body = self.request(host)
        self.assertEqual(status, 200, f"{host!r}: {body}")
        self.assertEqual(self.greeting(body), f"hello from {where}")

    def assertRefused(self, host, *errors):
        status, body = self.request(host)
        self.assertNotEqual(status, 200, f"{host!r} was accepted")
        self.assertIn(body and body.get("error"), errors, f"{host!r}: {status} {body}")

    def tearDown(self):
        # Whatever happened, the forbidden address never saw a connection, and the stack serves.
        self.assertEqual(self.bad.connections, 0, "a connection reached 127.0.0.2")
        self.stack.assert_serves()
        self.assertCleanShutdown(self.stack)  # exit 0 on SIGTERM, no sanitizer report

    def test_answer_changing_after_the_check_is_not_followed(self):
        self.configure(f"127.0.0.1:{self.port}")
        # First answer allowed, every later one not: the agent connects to the first.
        self.dns.answers["flip.test"] = [[ALLOWED], [FORBIDDEN]]
        self.assertConnectsTo("flip.test", ALLOWED)
        self.assertEqual(self.dns.count("flip.test", "A"), 1, "resolved once per request")
        self.assertIn("flip.test:%d allowed: address 127.0.0.1 by rule 127.0.0.1:%d"
                      % (self.port, self.port), self.stack.log("agent"))
        # The next request sees the new answer and is refused.
        self.assertRefused("flip.test", "port-not-allowed")
        # First answer forbidden, later ones allowed: refused, and nothing is resolved again.
        self.dns.answers["flop.test"] = [[FORBIDDEN], [ALLOWED]]
        self.assertRefused("flop.test", "port-not-allowed")
        self.assertEqual(self.dns.count("flop.test", "A"), 1)
        self.assertEqual(self.good.connections, 1)

    def test_name_with_allowed_and_forbidden_addresses_connects_only_to_the_allowed(self):
        self.configure(f"127.0.0.1:{self.port}")
        self.dns.answers["both.test"] = [[FORBIDDEN, ALLOWED]]
        for _ in range(3):
            self.assertConnectsTo("both.test", ALLOWED)
        self.dns.answers["elsewhere.test"] = [[FORBIDDEN]]
        self.assertRefused("elsewhere.test", "port-not-allowed")
        self.assertRefused("nxdomain.test", "unreachable")

    def test_name_rule_is_resolved_once_with_the_requested_name(self):
        self.configure(f"svc.test:{self.port}")
        self.dns.answers["svc.test"] = [[ALLOWED], [FORBIDDEN]]
        # The rule's name and the requested name are one lookup: its addresses are the ones
        # allowed and connected to.
        self.assertConnectsTo("SVC.Test.", ALLOWED)
        self.assertEqual(self.dns.count("svc.test", "A"), 1)
        # Now the name means 127.0.0.2: a request for 127.0.0.1 is no longer covered by it.
        self.assertRefused(ALLOWED, "port-not-allowed")

    def test_network_rule(self):
        self.configure(f"127.0.0.0/31:{self.port}")
        self.dns.answers["net.test"] = [[ALLOWED]]
        self.assertConnectsTo("net.test", ALLOWED)
        self.assertConnectsTo(ALLOWED, ALLOWED)
        self.assertRefused(FORBIDDEN, "port-not-allowed")

    def test_spellings_that_are_not_hosts_are_refused_without_a_lookup(self):
        # Every name in evil.test resolves to the forbidden address.
        self.dns.zones["evil.test"] = [FORBIDDEN]
        self.configure(f"localhost:{self.port}", f"127.0.0.1:{self.port}")
        # The hub may refuse some of these itself (400 bad_request); the agent says bad-host.
        bad = ["127.0.0.1%.evil.test", "127.0.0.1%x", "127.0.0.1%25.evil.test", "127.1",
               "0x7f000001", "2130706433", "0177.0.0.1", "127.0.0.1.", "127.0.0.1\r\nX: y",
               "127.0.0.1\n.evil.test", "127.0.0.1\x00.evil.test", "127.0.0.1 .evil.test",
               "", "[127.0.0.1]", "[::ffff:127.0.0.1%x]", "a_b.evil.test",
               "a" * 64 + ".evil.test", ("a" * 63 + ".") * 4 + "evil.test"]
        for host in bad:
            self.assertRefused(host, "bad-host", "bad_request")
        self.assertEqual(self.dns.asked("evil"), [], "a refused spelling was looked up")
        self.assertEqual(self.good.connections, 0)
        # Case, one trailing dot and the IPv4-mapped spelling are the same host.
        self.assertConnectsTo("LocalHost.", ALLOWED)
        self.assertConnectsTo("[::ffff:127.0.0.1]", ALLOWED)
        self.assertRefused("[::ffff:127.0.0.2]", "port-not-allowed")
        self.assertRefused("ok.evil.test", "port-not-allowed")  # a valid name, a forbidden address
        # The numeric spellings pass the hub's plausibility check: the agent refused them.
        for host in ("127.1", "0x7f000001", "2130706433", "0177.0.0.1"):
            self.assertIn(f'rejected (bad-host): "{host}" is not a valid host',
                          self.stack.log("agent"))

    def test_reload_with_an_entry_that_is_not_a_host_keeps_the_current_list(self):
        self.configure(f"127.0.0.1:{self.port}")
        s = self.stack
        set_agent_config(s, allow=[f"127.0.0.1:{s.http_port}", f"127.1:{self.port}"])
        s.procs["agent"].send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed, keeping the current allow-list" in s.log("agent"),
                   what="reload refused")
        self.assertIn(f"allow-list entry 127.1:{self.port}", s.log("agent"))
        self.assertConnectsTo(ALLOWED, ALLOWED)


class CheckedEntries(unittest.TestCase):
    """`devstreams-agent --check` refuses allow-list entries that are not hosts."""

    def check(self, entry):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("agent:\n  hub_url: wss://localhost:8443\n  ca: ca.pem\n"
                    "  device_id: dev01\n  device_key: AAAAAAAAAAAAAAAAAAAAAA==\n"
                    f"  allow:\n    - \"{entry}\"\n")
            f.flush()
            return subprocess.run([program("devstreams-agent"), "--check", "-c", f.name],
                                  capture_output=True, text=True, timeout=30)

    def test_check_refuses_entries_that_are_not_hosts(self):
        for entry in ("127.1:22", "0x7f000001:22", "0177.0.0.1:22", "[fe80::1%eth0]:22",
                      "a_b.example:22", "10.0.0.0/33:22"):
            r = self.check(entry)
            self.assertEqual(r.returncode, 2, f"{entry}: {r.stdout}{r.stderr}")
            self.assertIn("allow-list entry", r.stderr)
        for entry in ("127.0.0.1:22", "LocalHost.:22", "10.0.0.0/8:22", "[::ffff:127.0.0.1]:22"):
            r = self.check(entry)
            self.assertEqual(r.returncode, 0, f"{entry}: {r.stderr}")


if __name__ == "__main__":
    unittest.main()
