"""Hub connections through a real HTTP proxy (Debian's tinyproxy) with CONNECT: the agent and
the daemon take the proxy from HTTPS_PROXY; the agent comes online through it and streams work
end to end; wrong or missing credentials and a proxy that refuses the hub's port give clear
messages in the agent's log while it keeps retrying."""

import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, StackTest, free_port, port_open, program, wait_until  # noqa: E402

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy",
              "ALL_PROXY", "all_proxy")


class Tinyproxy:
    """tinyproxy in the foreground on a free loopback port with a private configuration."""

    def __init__(self, workdir, connect_port, auth=None):
        self.dir = os.path.join(workdir, f"tinyproxy-{free_port()}")
        os.makedirs(self.dir)
        self.port = free_port()
        self.logfile = os.path.join(self.dir, "tinyproxy.log")
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 60", "MaxClients 50",
                 f'LogFile "{self.logfile}"', "LogLevel Info",
                 f'PidFile "{self.dir}/tinyproxy.pid"', "Allow 127.0.0.1",
                 f"ConnectPort {connect_port}"]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: port_open(self.port) or self.proc.poll() is not None,
                       what="tinyproxy port")
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "stdout.log"), errors="replace") as f:
                    raise RuntimeError("tinyproxy did not start: " + f.read()[-2000:])
        except BaseException:
            self.close()
            raise

    def url(self, user=None, password=None):
        cred = f"{user}:{password}@" if user else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    def log(self):
        if not os.path.exists(self.logfile):
            return ""
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def connects_to(self, port):
        return len(re.findall(rf"Request \(file descriptor \d+\): CONNECT 127\.0\.0\.1:{port} ",
                              self.log()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


class _NoStack:
    def dump_logs(self):
        print("(the stack did not start)")


@contextlib.contextmanager
def proxy_environment(**values):
    """os.environ with only the given proxy variables set (programs started inside inherit it)."""
    saved = {k: os.environ.get(k) for k in PROXY_VARS}
    for k in PROXY_VARS:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ThroughProxy(StackTest):
    def setUp(self):
        self.assertTrue(os.path.exists(TINYPROXY),
                        "tinyproxy is not installed (scripts/setup.sh --tests installs it)")
        self.proxies = []
        self.stack = _NoStack()  # until the real one is up: the base class dumps its logs
        with proxy_environment():
            self.stack = Stack(with_sshd=False)

    def tearDown(self):
        try:
            self.assertCleanShutdown(self.stack)
        finally:
            self.stack.close()
            for p in self.proxies:
                p.close()

    def tinyproxy(self, connect_port=None, auth=None):
        p = Tinyproxy(self.stack.dir, connect_port or self.stack.hub_port, auth)
        self.proxies.append(p)
        return p

    def restart(self, name, **env):
        """Restarts the agent or the daemon with `env` as its proxy environment; returns the
        offset in its log where the new run starts."""
        self.stack.stop(name)
        offset = len(self.stack.log(name))
        with proxy_environment(**env):
            if name == "agent":
                self.stack.start_agent()
            else:
                self.stack.start("daemon", [program("devstreamsd"), "-c",
                                            os.path.join(self.stack.state, "daemon.yaml")])
                wait_until(lambda: port_open(self.stack.socks_port), what="daemon SOCKS port")
        return offset

    def agent_log_since(self, offset):
        return self.stack.log("agent")[offset:]

    def wait_online_since(self, offset, timeout=20):
        wait_until(lambda: "online: control channel" in self.agent_log_since(offset), timeout,
                   "agent online")

    def fetch_page(self):
        out = subprocess.run(["curl", "-sS", "--max-time", "30", "--socks5-hostname",
                              f"127.0.0.1:{self.stack.socks_port}",
                              f"http://dev01.hub:{self.stack.http_port}/"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_agent_and_daemon_work_through_the_proxy(self):
        # tinyproxy 1.11 takes only letters, digits, '-', '_' and '.' in BasicAuth; the URL
        # spells some of them as %-escapes, which the programs decode.
        proxy = self.tinyproxy(auth=("corp", "s3cr3t-p.ss"))
        url = proxy.url("corp", "s3cr3t%2Dp%2ess")
        offset = self.restart("agent", HTTPS_PROXY=url)
        self.wait_online_since(offset)
        log = self.agent_log_since(offset)
        self.assertIn(f"through the HTTP proxy 127.0.0.1:{proxy.port}", log)
        self.assertGreaterEqual(proxy.connects_to(self.stack.hub_port), 1, proxy.log())
        # Streams multiplexed on the channels need no connection of their own; one WebSocket
        # per stream (DS_E2E_MULTIPLEX=false) takes one through the proxy for the agent's side.
        per_stream = os.environ.get("DS_E2E_MULTIPLEX") == "false"
        before = proxy.connects_to(self.stack.hub_port)
        self.assertIn("hello from dev01", self.fetch_page())
        self.assertEqual(proxy.connects_to(self.stack.hub_port), before + per_stream,
                         proxy.log())
        before = proxy.connects_to(self.stack.hub_port)
        # Now the daemon too: its stream initiation and its stream side.
        daemon_offset = self.restart("daemon", https_proxy=url)
        self.assertIn(f"through the HTTP proxy 127.0.0.1:{proxy.port}",
                      self.stack.log("daemon")[daemon_offset:])
        # Its service channel (one CONNECT), then per stream the daemon's side and the agent's.
        wait_until(lambda: "hub service channel" in self.stack.log("daemon")[daemon_offset:],
                   what="the daemon's service channel")
        self.assertIn("hello from dev01", self.fetch_page())
        # The service channel, and with one WebSocket per stream the daemon's side and the
        # agent's (no warm connections through a proxy).
        self.assertEqual(proxy.connects_to(self.stack.hub_port) - before, 3 if per_stream else 1,
                         proxy.log())
        # Nothing secret in our logs.
        secret_b64 = base64.b64encode(b"corp:s3cr3t-p.ss").decode()
        for name in ("agent", "daemon"):
            text = self.stack.log(name)
            self.assertNotIn("s3cr3t", text)
            self.assertNotIn(secret_b64, text)

    def test_no_proxy_keeps_the_agent_direct(self):
        proxy = self.tinyproxy()
        offset = self.restart("agent", HTTPS_PROXY=proxy.url(), NO_PROXY="localhost, 127.0.0.1")
        self.wait_online_since(offset)
        self.assertNotIn("HTTP proxy", self.agent_log_since(offset))
        self.assertEqual(proxy.connects_to(self.stack.hub_port), 0, proxy.log())

    def test_missing_and_wrong_credentials_are_reported_and_retried(self):
        proxy = self.tinyproxy(auth=("corp", "right"))
        offset = self.restart("agent", HTTPS_PROXY=proxy.url())
        wait_until(lambda: self.agent_log_since(offset).count(
            "proxy requires authentication (407)") >= 2, 20, "two 407 failures in the agent log")
        offset = self.restart("agent", HTTPS_PROXY=proxy.url("corp", "wrong-pw"))
        # tinyproxy 1.11 answers wrong credentials with 401, later versions with 407.
        pattern = re.compile(r"proxy refused the credentials \(40[17]\)")
        wait_until(lambda: len(pattern.findall(self.agent_log_since(offset))) >= 2, 20,
                   "two credential failures in the agent log")
        self.assertNotIn("online: control channel", self.agent_log_since(offset))
        self.assertNotIn("wrong-pw", self.stack.log("agent"))
        # The right credentials bring it online.
        offset = self.restart("agent", HTTPS_PROXY=proxy.url("corp", "right"))
        self.wait_online_since(offset)

    def test_proxy_refusing_the_hub_port(self):
        other = free_port()
        proxy = self.tinyproxy(connect_port=other)
        offset = self.restart("agent", HTTPS_PROXY=proxy.url())
        want = f"proxy refused CONNECT to 127.0.0.1:{self.stack.hub_port}: 403"
        wait_until(lambda: self.agent_log_since(offset).count(want) >= 2, 20,
                   "two refused CONNECTs in the agent log")
        self.assertIn(f"Refused CONNECT method on port {self.stack.hub_port}", proxy.log())

    def test_unreachable_proxy(self):
        closed = free_port()
        offset = self.restart("agent", HTTPS_PROXY=f"http://127.0.0.1:{closed}")
        want = f"cannot connect to proxy 127.0.0.1:{closed}"
        wait_until(lambda: self.agent_log_since(offset).count(want) >= 2, 20,
                   "two proxy connection failures in the agent log")


if __name__ == "__main__":
    unittest.main()
