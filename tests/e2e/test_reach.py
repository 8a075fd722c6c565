"""Reach past the device's loopback, and let the device decide per caller.

A second loopback address stands in for a host on the device's LAN: an HTTP server and the
private sshd listen on 127.0.0.2 and are reached as `127.0.0.2.via.dev01.hub` with ssh, curl and
Chromium, under the subnet rule `127.0.0.2/32:PORT`; ::1 is reached as `0--1.via.dev01.hub`.
127.0.0.3 listens on the same port but is outside the rule: refused with 0x02 and never
connected. Callers: the policy `acme` holds only `acme-*` devices and is refused at the hub;
rules with `from: [ops]` and `from: ["ops/alice"]` admit the daemon of policy ops (and its
proxy user alice) and refuse the others; a Unix socket is reached through an alias with `unix:`.
The hub's audit and the agent's log name the caller."""

import os
import shutil
import socket
import tempfile
import time
import unittest

from harness import (DeviceWeb, Stack, StackTest, recv_all, run_chromium, sas_token,
                     socks5_connect, wait_until)
from test_agent_reach import UnixServer
from test_allow_list import Target
from test_daemon import curl
from test_hub import https

ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")
STREAM_LINE = r"stream [0-9a-f]{32}:"  # an agent log line about a stream


def exchange(s, data=b"GET / HTTP/1.0\r\n\r\n"):
    """Sends `data`, half-closes, returns all that comes back until the peer closes."""
    with s:
        s.settimeout(20)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


class ReachTest(StackTest):
    """One stack for a class: hub, agent dev01, the stack's daemon (policy service), a daemon of
    policy ops (users alice and bob) and one of policy acme (devices acme-* only)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="devstreams-reach-")
        cls.peers = []
        try:
            cls._peers()
            cls.stack = Stack(
                ssh_listen=("127.0.0.1", "127.0.0.2"),
                allow_extra=[
                    f"127.0.0.2/32:{cls.lan.port}",
                    "127.0.0.2/32:{ssh}",
                    f"[::1]:{cls.v6.port}",
                    f"unix:{cls.sock.path}",
                    {"to": f"127.0.0.1:{cls.ops_web.port}", "from": ["ops"]},
                    {"to": f"127.0.0.1:{cls.alice_web.port}", "from": ["ops/alice"]},
                ],
                policies=[{"name": "ops", "permissions": ["connect"]},
                          {"name": "acme", "permissions": ["connect"], "devices": ["acme-*"]},
                          {"name": "admin", "permissions": ["registry-read"]}],
                aliases={"lanweb": {"device": "dev01", "host": "127.0.0.2", "port": cls.lan.port},
                         "appsock": {"device": "dev01", "unix": cls.sock.path},
                         "othersock": {"device": "dev01", "unix": cls.other_sock.path}})
            cls.ops = cls.stack.add_daemon("daemon-ops", "ops", users=[ALICE, BOB])
            cls.acme = cls.stack.add_daemon("daemon-acme", "acme")
        except BaseException:
            cls._close_peers()
            raise

    @classmethod
    def _peers(cls):
        cls.lan = DeviceWeb(address="127.0.0.2")
        cls.peers.append(cls.lan)
        cls.outside = Target("127.0.0.3", cls.lan.port)  # same port, outside the rule
        cls.peers.append(cls.outside)
        cls.v6 = DeviceWeb(address="::1")
        cls.peers.append(cls.v6)
        cls.ops_web = DeviceWeb()
        cls.peers.append(cls.ops_web)
        cls.alice_web = DeviceWeb()
        cls.peers.append(cls.alice_web)
        cls.sock = UnixServer(os.path.join(cls.tmp, "app.sock"))
        cls.peers.append(cls.sock)
        cls.other_sock = UnixServer(os.path.join(cls.tmp, "other.sock"))  # not allowed
        cls.peers.append(cls.other_sock)

    @classmethod
    def _close_peers(cls):
        for p in cls.peers:
            p.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.closeClassStack(cls.stack)
        finally:
            cls._close_peers()

    @property
    def proxy(self):
        return f"127.0.0.1:{self.stack.socks_port}"

    def agent_log_since(self, offset):
        return self.stack.log("agent")[offset:]

    def streams(self):
        """GET /api/v1/streams as the admin policy (registry-read only)."""
        token = sas_token("localhost", self.stack.policy_keys["admin"], int(time.time()) + 3600,
                          "admin")
        r = https(self.stack, "GET", "/api/v1/streams", token=token)
        self.assertEqual(r.status, 200, r)
        return r.json


class Lan(ReachTest):
    """127.0.0.2 and ::1 as hosts on dev01's network; 127.0.0.3 outside the rule."""

    def test_curl_reaches_127_0_0_2_by_the_via_scheme(self):
        before = self.lan.count("/")
        r = curl("--socks5-hostname", self.proxy,
                 f"http://127.0.0.2.via.dev01.hub:{self.lan.port}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from web", r.stdout)
        self.assertEqual(self.lan.count("/"), before + 1)
        # The HTTP proxy front knows the scheme too.
        r = curl("--proxy", f"http://{self.proxy}",
                 f"http://127.0.0.2.via.dev01.hub:{self.lan.port}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from web", r.stdout)

    def test_ssh_reaches_127_0_0_2_by_the_via_scheme(self):
        r = self.stack.ssh("echo $SSH_CONNECTION", host="127.0.0.2.via.dev01.hub")
        self.assertEqual(r.returncode, 0, r.stderr)
        fields = r.stdout.decode().split()
        self.assertEqual(fields[2:], ["127.0.0.2", str(self.stack.ssh_port)], r.stdout)

    def test_chromium_reaches_127_0_0_2_through_socks5(self):
        self._chromium(f"--proxy-server=socks5://{self.proxy}")

    def test_chromium_reaches_127_0_0_2_through_pac(self):
        self._chromium(f"--proxy-pac-url=http://{self.proxy}/proxy.pac")

    def _chromium(self, flag):
        if not shutil.which("chromium"):  # a missing peer fails the test: never a skip
            self.fail("chromium is not installed (scripts/setup.sh --tests installs it)")
        before = self.lan.count("/")
        r = run_chromium(f"http://127.0.0.2.via.dev01.hub:{self.lan.port}/", flag)
        self.assertIn(b"hello from web", r.stdout, r.stderr[-3000:])
        self.assertGreater(self.lan.count("/"), before)

    def test_curl_reaches_ipv6_loopback_as_0__1(self):
        before = self.v6.count("/")
        r = curl("--socks5-hostname", self.proxy, f"http://0--1.via.dev01.hub:{self.v6.port}/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from web", r.stdout)
        self.assertEqual(self.v6.count("/"), before + 1)

    def test_alias_with_host(self):
        before = self.lan.count("/")
        r = curl("--socks5-hostname", self.proxy, "http://lanweb:1/")  # the alias names the port
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from web", r.stdout)
        self.assertEqual(self.lan.count("/"), before + 1)

    def test_outside_the_subnet_rule_gives_0x02_and_no_connection(self):
        code, s = socks5_connect(self.stack.socks_port, "127.0.0.3.via.dev01.hub", self.lan.port)
        self.assertEqual(code, 0x02)
        # 127.0.0.2 on a port the rules do not name, and 127.0.0.1 on the LAN rule's port.
        code, _ = socks5_connect(self.stack.socks_port, "127.0.0.2.via.dev01.hub", self.v6.port)
        self.assertEqual(code, 0x02)
        code, _ = socks5_connect(self.stack.socks_port, "dev01.hub", self.lan.port)
        self.assertEqual(code, 0x02)
        time.sleep(0.5)  # a connection the agent had made would have been accepted by now
        self.assertEqual(self.outside.connections, 0)
        r = curl("--socks5-hostname", self.proxy,
                 f"http://127.0.0.3.via.dev01.hub:{self.lan.port}/")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.outside.connections, 0)
        self.stack.assert_serves()


class Callers(ReachTest):
    """The hub's device sets and the agent's `from:` rules."""

    def test_policy_outside_its_device_set_is_refused_at_the_hub(self):
        agent_before = len(self.stack.log("agent"))
        forbidden_before = self.forbidden_count()
        code, s = self.acme.connect("dev01.hub", self.stack.http_port)
        self.assertEqual(code, 0x02)
        wait_until(lambda: "may not reach device 'dev01'" in self.stack.log("daemon-acme"), 10,
                   "the hub's reason in the acme daemon's log")
        self.assertIn("403 forbidden policy 'acme'", self.stack.log("daemon-acme"))
        self.assertEqual(self.forbidden_count(), forbidden_before + 1)
        # The device never saw the request (the agent logs every stream request it gets, at
        # debug level or above); the same request by another policy reaches it.
        self.assertNotRegex(self.agent_log_since(agent_before), STREAM_LINE)
        self.stack.assert_serves()
        self.assertRegex(self.agent_log_since(agent_before), STREAM_LINE)

    def forbidden_count(self):
        """The hub's count of stream requests refused with `forbidden`."""
        r = https(self.stack, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        for line in r.body.decode().splitlines():
            if line.startswith('devstreams_rejects_total{reason="forbidden"} '):
                return float(line.split()[-1])
        return 0.0

    def test_from_policy_admits_ops_and_refuses_service(self):
        before = self.ops_web.count("/")
        code, s = self.ops.connect("dev01.hub", self.ops_web.port, *ALICE)
        self.assertEqual(code, 0)
        self.assertIn(b"hello from web", exchange(s))
        code, s = self.ops.connect("dev01.hub", self.ops_web.port, *BOB)
        self.assertEqual(code, 0)  # `from: [ops]`: every user of the policy
        self.assertIn(b"hello from web", exchange(s))
        self.assertEqual(self.ops_web.count("/"), before + 2)
        code, _ = self.stack.connect("dev01.hub", self.ops_web.port)  # policy service
        self.assertEqual(code, 0x02)
        code, _ = self.acme.connect("dev01.hub", self.ops_web.port)  # refused at the hub already
        self.assertEqual(code, 0x02)
        self.assertEqual(self.ops_web.count("/"), before + 2)

    def test_from_policy_user_admits_only_alice(self):
        before = self.alice_web.count("/")
        code, s = self.ops.connect("dev01.hub", self.alice_web.port, *ALICE)
        self.assertEqual(code, 0)
        self.assertIn(b"hello from web", exchange(s))
        code, _ = self.ops.connect("dev01.hub", self.alice_web.port, *BOB)
        self.assertEqual(code, 0x02)
        code, _ = self.stack.connect("dev01.hub", self.alice_web.port)
        self.assertEqual(code, 0x02)
        self.assertEqual(self.alice_web.count("/"), before + 1)
        # Rules for everyone still admit every caller.
        code, s = self.ops.connect("dev01.hub", self.stack.http_port, *BOB)
        self.assertEqual(code, 0)
        self.assertIn(b"hello from dev01", exchange(s))

    def test_unix_socket_target_through_an_alias(self):
        code, s = self.stack.connect("appsock", 9)  # the port is ignored for a socket
        self.assertEqual(code, 0)
        self.assertEqual(exchange(s, b"ping\n"), b"hello from unix\nping\n")
        code, _ = self.stack.connect("othersock", 9)  # a socket the allow-list does not name
        self.assertEqual(code, 0x02)
        self.assertEqual(self.other_sock.connections, 0)

    def test_audit_and_agent_log_name_the_caller(self):
        code, s = self.ops.connect("dev01.hub", self.alice_web.port, *ALICE)
        self.assertEqual(code, 0)
        exchange(s)
        code, _ = self.ops.connect("dev01.hub", self.alice_web.port, *BOB)
        self.assertEqual(code, 0x02)
        code, s = self.stack.connect("appsock", 9)
        self.assertEqual(code, 0)
        exchange(s, b"audit\n")

        def record(**want):
            for a in self.streams()["recent"]:
                if all(a.get(k) == v for k, v in want.items()):
                    return a
            return None

        target = {"device": "dev01", "port": self.alice_web.port}
        wait_until(lambda: record(user="alice", **target) and record(user="bob", **target), 10,
                   "audit records of alice's and bob's streams")
        alice = record(user="alice", **target)
        self.assertEqual((alice["policy"], alice["host"], alice["outcome"]),
                         ("ops", "127.0.0.1", "ok"), alice)
        bob = record(user="bob", **target)
        self.assertEqual(bob["policy"], "ops", bob)
        self.assertNotEqual(bob["outcome"], "ok", bob)
        wait_until(lambda: record(name="appsock"), 10, "the audit record of the named stream")
        self.assertEqual(record(name="appsock")["outcome"], "ok")
        # The agent's lines of alice's stream name her and her policy.
        lines = [line for line in self.stack.log("agent").splitlines()
                 if alice["stream_id"] in line]
        self.assertTrue(any("alice" in line and "ops" in line for line in lines),
                        "\n".join(lines) or "no agent line names the stream")
        lines = [line for line in self.stack.log("agent").splitlines()
                 if bob["stream_id"] in line]
        self.assertTrue(any("bob" in line for line in lines),
                        "\n".join(lines) or "no agent line names the stream")


if __name__ == "__main__":
    unittest.main()
