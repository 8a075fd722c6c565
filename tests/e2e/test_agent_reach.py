"""End-to-end tests of the agent's per-caller decisions and Unix socket targets: stream requests
through the hub's API with different policies and asserted users against allow entries with
`from:`, and a Unix socket served by a Python server. Each refusal must not reach the target,
and the agent's log names the caller, the target and the stream's name."""

import contextlib
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, StackTest, WsClient, wait_until  # noqa: E402
from test_agent import restart_agent, set_agent_config, wait_online_count  # noqa: E402
from test_allow_list import Target  # noqa: E402
from test_hub import ca_file, https, service_token, stream_path  # noqa: E402

OTHER_KEY = "T1RIRVJPVEhFUk9USEVST1RIRVJPVEhFUk9USEVST1Q="


class UnixServer:
    """A Unix stream socket at `path` that greets each connection with "hello from unix\\n",
    then echoes, and counts connections."""

    def __init__(self, path):
        self.path = path
        self.connections = 0
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            c.sendall(b"hello from unix\n")
            while True:
                data = c.recv(65536)
                if not data:
                    return
                c.sendall(data)

    def close(self):
        self.srv.close()


class Reach(StackTest):
    """One stack with a second policy `other` (connect) beside `service`."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ds-unix-")
        cls.app = UnixServer(os.path.join(cls.tmp, "app.sock"))
        cls.hidden = UnixServer(os.path.join(cls.tmp, "hidden.sock"))  # on no allow entry
        cls.missing = os.path.join(cls.tmp, "missing.sock")
        cls.service_only = Target("127.0.0.1", 0)
        cls.alice_only = Target("127.0.0.1", 0)
        cls.stack = Stack(with_sshd=False)
        s = cls.stack
        # The second policy, imported into a fresh registry.
        s.stop("hub")
        with open(os.path.join(s.state, "bootstrap.yaml"), "a") as f:
            f.write(f'  - name: other\n    key: "{OTHER_KEY}"\n    permissions: [connect]\n')
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(s.state, "registry.db" + suffix))
        s.start_hub()
        set_agent_config(s, allow=[f"127.0.0.1:{s.http_port}", f"unix:{cls.app.path}",
                                   f"unix:{cls.missing}"])
        with open(os.path.join(s.state, "agent.yaml"), "a") as f:
            f.write(f"    - {{to: '127.0.0.1:{cls.service_only.port}', from: [service]}}\n"
                    f"    - to: '127.0.0.1:{cls.alice_only.port}'\n"
                    f"      from: [other/alice]\n")
        before = restart_agent(s)
        wait_online_count(s, before + 1)

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack, cls.app, cls.hidden, cls.service_only, cls.alice_only)

    def request(self, body, policy="service"):
        s = self.stack
        token = service_token(s, policy=policy, key=OTHER_KEY if policy == "other" else None)
        r = https(s, "POST", "/api/v1/devices/dev01/streams", body, token=token, timeout=60)
        return r.status, r.json

    def open_stream(self, body):
        """Opens the service side of an accepted stream; (the target's first line, the
        WebSocket)."""
        ws = WsClient(self.stack.hub_port, stream_path(body["url"]),
                      {"Authorization": f"Bearer {body['token']}"}, ca_file(self.stack))
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101)
        ws.sock.settimeout(20)
        return self.read_line(ws), ws

    def read_line(self, ws):
        got = b""
        while not got.endswith(b"\n"):
            op, data = ws.recv_frame()
            self.assertNotEqual(op, 8, f"stream closed after {got!r}")
            got += data
        return got.decode()

    @staticmethod
    def send_binary(ws, payload):
        """One masked binary frame (payload < 126 bytes)."""
        mask = os.urandom(4)
        ws.sock.sendall(bytes([0x82, 0x80 | len(payload)]) + mask +
                        bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def assertRefused(self, body, code, policy="service"):
        status, answer = self.request(body, policy)
        self.assertNotEqual(status, 200, f"{body} from {policy} was accepted")
        self.assertEqual(answer and answer.get("error"), code, f"{body}: {status} {answer}")
        return answer

    def test_unix_socket_target_is_connected_and_pumped(self):
        status, body = self.request({"unix": self.app.path, "name": "app\u00e9"})
        self.assertEqual(status, 200, body)
        line, ws = self.open_stream(body)
        self.assertEqual(line, "hello from unix\n")
        self.send_binary(ws, b"ping\n")
        self.assertEqual(self.read_line(ws), "ping\n")
        ws.close()
        path = self.app.path
        who = f"caller service, target unix:{path}, name 'app\\xc3\\xa9'"
        log = self.stack.log("agent")
        self.assertIn(f"unix:{path} allowed: by rule unix:{path} ({who})", log)
        self.assertIn(f"connected to unix:{path}", log)
        # The end of the stream, with its bytes: the greeting and the echo to the service.
        wait_until(lambda: f"(21 bytes to the service, 5 to the target; {who})"
                   in self.stack.log("agent"), what="the stream's last log line")

    def test_unix_socket_not_on_the_list_or_missing_is_refused(self):
        before = self.hidden.connections
        self.assertRefused({"unix": self.hidden.path}, "port-not-allowed")
        self.assertEqual(self.hidden.connections, before, "a refused socket was connected")
        answer = self.assertRefused({"unix": self.missing}, "connection-refused")
        self.assertIn("no socket at", str(answer))
        self.assertIn(f"rejected (connection-refused): no socket at unix:{self.missing} "
                      f"(caller service, target unix:{self.missing})", self.stack.log("agent"))
        # The path is compared exactly: another spelling of an allowed socket is refused.
        self.assertRefused({"unix": self.tmp + "/./app.sock"}, "port-not-allowed")
        # A socket rule allows no TCP port, and a port rule no socket.
        self.assertRefused({"unix": f"/127.0.0.1:{self.stack.http_port}"}, "port-not-allowed")

    def test_from_admits_one_policy_and_refuses_another(self):
        port = self.service_only.port
        status, body = self.request({"port": port, "host": "127.0.0.1", "name": "db"})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.open_stream(body)[0], "hello from 127.0.0.1\n")
        self.assertEqual(self.service_only.connections, 1)
        answer = self.assertRefused({"port": port, "host": "127.0.0.1"}, "port-not-allowed",
                                    policy="other")
        # The refusal reads like any other: it does not name the callers the entry admits.
        self.assertNotIn("service", str(answer))
        self.assertEqual(self.service_only.connections, 1, "a refused caller reached the target")
        log = self.stack.log("agent")
        self.assertIn(f"rejected (port-not-allowed): 127.0.0.1:{port} is not in the device's "
                      f"allow-list (caller other, target 127.0.0.1:{port})", log)
        self.assertIn(f"127.0.0.1:{port} allowed: address 127.0.0.1 by rule 127.0.0.1:{port} "
                      f"from [service] (caller service, target 127.0.0.1:{port}, name 'db')", log)

    def test_from_with_a_user_needs_that_user(self):
        port = self.alice_only.port
        target = {"port": port, "host": "127.0.0.1"}
        self.assertRefused(target, "port-not-allowed", policy="other")
        self.assertRefused(dict(target, user="bob"), "port-not-allowed", policy="other")
        self.assertRefused(dict(target, user="alice"), "port-not-allowed", policy="service")
        self.assertEqual(self.alice_only.connections, 0)
        status, body = self.request(dict(target, user="alice"), policy="other")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.open_stream(body)[0], "hello from 127.0.0.1\n")
        self.assertEqual(self.alice_only.connections, 1)
        log = self.stack.log("agent")
        self.assertIn(f"(caller other, user alice (asserted), target 127.0.0.1:{port})", log)
        self.assertIn(f"(caller other, user bob (asserted), target 127.0.0.1:{port})", log)

    def test_rules_for_everyone_still_serve_every_caller(self):
        for policy in ("service", "other"):
            status, body = self.request({"port": self.stack.http_port, "host": "127.0.0.1"},
                                        policy)
            self.assertEqual(status, 200, f"{policy}: {body}")
        self.stack.assert_serves()


if __name__ == "__main__":
    unittest.main()
