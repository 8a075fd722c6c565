"""End-to-end tests of `devstreams hub ...`: device administration and stream listing over the
hub's REST API, against a real stack (hub, agent dev01, daemon). New devices get their own
agents from the configuration the CLI writes, and are reached through the SOCKS endpoint."""

import base64
import json
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, StackTest, program, socks_connect, wait_until  # noqa: E402


def table(stdout):
    """Rows of a CLI table as lists of cells (header dropped); columns never hold blanks except
    in the last one."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [line.split() for line in lines[1:]]


class CommandLine(unittest.TestCase):
    """Bad command lines of every program: exit 2 (as the man pages say) and name what was
    wrong."""

    def run_program(self, name, *args):
        return subprocess.run([program(name), *args], capture_output=True, text=True, timeout=30)

    def test_bad_flags_exit_2_and_name_the_word(self):
        for name in ("devstreams-hub", "devstreams-agent", "devstreamsd", "devstreams"):
            r = self.run_program(name, "--no-such-flag")
            self.assertEqual(r.returncode, 2, (name, r.stderr))
            self.assertIn("--no-such-flag", r.stderr, name)
        r = self.run_program("devstreams", "nosuchcommand")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown command or option 'nosuchcommand'", r.stderr)
        r = self.run_program("devstreams-hub", "-c")
        self.assertEqual(r.returncode, 2, r.stderr)
        for name in ("devstreams-hub", "devstreams"):
            self.assertEqual(self.run_program(name, "--help").returncode, 0, name)


class Admin(StackTest):
    """One stack for the class; every test uses its own device ids and removes what it adds."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(with_sshd=False)
        cls.config = os.path.join(cls.stack.state, "daemon.yaml")

    @classmethod
    def tearDownClass(cls):
        cls.closeClassStack(cls.stack)

    # -- helpers --------------------------------------------------------------------------

    def cli(self, *args, config=None, timeout=60):
        argv = [program("devstreams"), "hub", "-c", config or self.config, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        return r

    def devices(self):
        """{id: (enabled, online, last_seen)} from `device list`."""
        r = self.ok("device", "list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "ENABLED", "ONLINE", "LAST", "SEEN"])
        out = {}
        for row in table(r.stdout):
            self.assertEqual(len(row), 4, row)
            out[row[0]] = (row[1], row[2], row[3])
        return out

    def wait_online(self, device, online=True, timeout=20):
        want = "yes" if online else "no"
        wait_until(lambda: self.devices().get(device, (None, None))[1] == want, timeout,
                   f"{device} online={online} in `device list`")

    def settings(self, stdout):
        """The key: value lines printed by `device add`."""
        out = {}
        for line in stdout.splitlines():
            k, _, v = line.partition(": ")
            out[k] = v
        return out

    def show(self, device):
        return self.settings(self.ok("device", "show", device).stdout)

    def add_with_agent(self, device, allow):
        """Adds `device`, writes its agent config, starts its agent and waits until online."""
        path = os.path.join(self.stack.dir, f"{device}-agent.yaml")
        r = self.ok("device", "add", device, "--agent-config", path,
                    *[a for port in allow for a in ("--allow", f"127.0.0.1:{port}")])
        self.addCleanup(self.cli, "device", "remove", device)
        self.stack.start(f"agent-{device}", [program("devstreams-agent"), "-c", path])
        self.addCleanup(self.stack.stop, f"agent-{device}")
        self.wait_online(device)
        return path, self.settings(r.stdout)

    def curl(self, device):
        return subprocess.run(["curl", "-sS", "--max-time", "20", "--socks5-hostname",
                               f"127.0.0.1:{self.stack.socks_port}",
                               f"http://{device}.hub:{self.stack.http_port}/"],
                              capture_output=True, text=True, timeout=30)

    # -- tests ----------------------------------------------------------------------------

    def test_list_shows_dev01_online(self):
        enabled, online, last_seen = self.devices()["dev01"]
        self.assertEqual((enabled, online), ("yes", "yes"))
        self.assertRegex(last_seen, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        doc = json.loads(self.ok("device", "list", "--json").stdout)
        dev01 = [d for d in doc["devices"] if d["id"] == "dev01"][0]
        self.assertTrue(dev01["online"])
        self.assertTrue(dev01["enabled"])
        self.assertNotIn("primary_key", dev01)

    def test_add_writes_agent_config_that_brings_the_device_online(self):
        path, settings = self.add_with_agent("dev02", [self.stack.http_port])
        self.assertEqual(settings["device_id"], "dev02")
        self.assertEqual(len(base64.b64decode(settings["primary_key"], validate=True)), 32)
        self.assertEqual(settings["hub_url"], f"wss://127.0.0.1:{self.stack.hub_port}")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            text = f.read()
        self.assertIn(f'device_key: "{settings["primary_key"]}"', text)
        self.assertIn(f'ca: "{os.path.join(self.stack.state, "ca.crt")}"', text)
        self.assertIn(f'- "127.0.0.1:{self.stack.http_port}"', text)
        self.assertNotIn('- "127.0.0.1:22"\n', text)  # the default entry, not a port 22xxx
        # The new device is reachable through the daemon, on its allow-list only.
        r = self.curl("dev02")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from dev01", r.stdout)
        self.assertEqual(socks_connect(self.stack.socks_port, "dev02.hub", 22)[0], 0x02)
        self.assertNotEqual(self.devices()["dev02"][2], "never")
        # A second add of the same id fails on the hub; the written file is never replaced.
        before = os.stat(path)
        r = self.cli("device", "add", "dev02")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)
        self.assertIn("(HTTP 409)", r.stderr)
        self.assertTrue(r.stderr.startswith("devstreams: "), r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        r = self.cli("device", "add", "dev02b", "--agent-config", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(os.stat(path).st_mtime_ns, before.st_mtime_ns)
        # Refused before any request: the device was not created.
        self.assertEqual(self.cli("device", "show", "dev02b").returncode, 1)

    def test_add_default_allow_list_is_ssh(self):
        path = os.path.join(self.stack.dir, "dev07-agent.yaml")
        self.ok("device", "add", "dev07", "--agent-config", path)
        self.addCleanup(self.cli, "device", "remove", "dev07")
        with open(path) as f:
            text = f.read()
        self.assertIn('allow:\n    - "127.0.0.1:22"\n', text)
        self.assertIn('device_id: "dev07"', text)

    def test_add_existing_device_fails_with_exists(self):
        r = self.cli("device", "add", "dev01")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)
        self.assertIn("HTTP 409", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_bad_device_id_is_refused_locally_with_exit_2(self):
        for cmd in (["device", "add"], ["device", "show"], ["device", "remove"],
                    ["device", "rotate-key"], ["device", "disable"], ["device", "enable"]):
            r = self.cli(*cmd, "bad/id")
            self.assertEqual(r.returncode, 2, (cmd, r.stderr))
            self.assertIn("invalid device id 'bad/id'", r.stderr)
        # Nothing reached the hub.
        hub_log = self.stack.log("hub")
        self.assertNotIn("bad%2Fid", hub_log)
        self.assertNotIn("bad/id", hub_log)

    def test_usage_errors_exit_2(self):
        for args in (["device"], ["device", "show"], ["streams", "--limit", "0"],
                     ["device", "add", "dev09", "--allow", "nonsense"], ["nosuch"]):
            r = self.cli(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        r = self.cli("device", "list", config=os.path.join(self.stack.dir, "missing.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.yaml", r.stderr)

    def test_show_and_rotate_keys(self):
        r = self.ok("device", "add", "dev03")
        self.addCleanup(self.cli, "device", "remove", "dev03")
        added = self.settings(r.stdout)
        shown = self.show("dev03")
        self.assertEqual(shown["id"], "dev03")
        self.assertEqual(shown["enabled"], "yes")
        self.assertEqual(shown["online"], "no")
        self.assertEqual(shown["last_seen"], "never")
        self.assertEqual(shown["primary_key"], added["primary_key"])
        self.assertEqual(shown["secondary_key"], added["secondary_key"])

        r = self.ok("device", "rotate-key", "dev03")
        fresh = self.settings(r.stdout)["primary_key"]
        self.assertNotEqual(fresh, added["primary_key"])
        shown = self.show("dev03")
        self.assertEqual(shown["primary_key"], fresh)
        self.assertEqual(shown["secondary_key"], added["secondary_key"])

        r = self.ok("device", "rotate-key", "dev03", "--secondary")
        fresh2 = self.settings(r.stdout)["secondary_key"]
        self.assertNotEqual(fresh2, added["secondary_key"])
        doc = json.loads(self.ok("device", "show", "dev03", "--json").stdout)
        self.assertEqual((doc["primary_key"], doc["secondary_key"]), (fresh, fresh2))

        r = self.cli("device", "rotate-key", "nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 404", r.stderr)

    def test_rotated_key_locks_out_the_old_agent_config(self):
        path, _ = self.add_with_agent("dev08", [self.stack.http_port])
        self.ok("device", "rotate-key", "dev08")
        # The connected agent keeps its channel; at its next connection the old key fails.
        self.stack.stop("agent-dev08")
        self.wait_online("dev08", online=False)
        self.stack.start("agent-dev08", [program("devstreams-agent"), "-c", path])
        wait_until(lambda: "device 'dev08' control refused" in self.stack.log("hub"), 15,
                   "the hub refusing the old key")
        self.assertEqual(self.devices()["dev08"][1], "no")

    def test_disable_and_enable(self):
        self.add_with_agent("dev04", [self.stack.http_port])
        r = self.ok("device", "disable", "dev04")
        self.assertIn("disabled", r.stdout)
        self.assertEqual(self.devices()["dev04"][:2], ("no", "no"))
        self.assertEqual(self.show("dev04")["enabled"], "no")
        self.assertEqual(socks_connect(self.stack.socks_port, "dev04.hub",
                                       self.stack.http_port)[0], 0x02)
        self.ok("device", "enable", "dev04")
        self.assertEqual(self.devices()["dev04"][0], "yes")
        # The agent retries with backoff (full jitter up to reconnect_max, 30 s) and comes back
        # by itself.
        self.wait_online("dev04", timeout=45)
        r = self.curl("dev04")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello from dev01", r.stdout)
        # enable/disable of an unknown id must not create it.
        r = self.cli("device", "disable", "nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 404", r.stderr)
        self.assertNotIn("nosuch", self.devices())

    def test_remove(self):
        self.ok("device", "add", "dev05")
        r = self.ok("device", "remove", "dev05")
        self.assertIn("removed", r.stdout)
        r = self.cli("device", "show", "dev05")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no device 'dev05'", r.stderr)
        self.assertIn("(HTTP 404)", r.stderr)
        self.assertNotIn("dev05", self.devices())
        r = self.cli("device", "remove", "dev05")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 404", r.stderr)

    def test_remove_disconnects_the_device(self):
        self.add_with_agent("dev06", [self.stack.http_port])
        self.ok("device", "remove", "dev06")
        self.assertNotIn("dev06", self.devices())
        self.assertEqual(socks_connect(self.stack.socks_port, "dev06.hub",
                                       self.stack.http_port)[0], 0x04)

    def test_streams_lists_a_recent_stream(self):
        r = self.curl("dev01")
        self.assertEqual(r.returncode, 0, r.stderr)
        target = f"127.0.0.1:{self.stack.http_port}"

        def recent():
            out = self.ok("streams").stdout
            part = out[out.index("RECENT"):]
            return [row for row in table(part) if row[1] == "dev01" and row[2] == target]

        wait_until(lambda: recent(), 10, "a recent stream to dev01")
        row = recent()[0]
        self.assertEqual(len(row[0]), 8)
        self.assertEqual(row[3], "ok")
        up, down = row[4].split("/")
        self.assertRegex(up, r"^\d")
        self.assertRegex(down, r"^\d")
        out = self.ok("streams").stdout
        self.assertTrue(out.startswith("ACTIVE ("), out)
        header = out[out.index("RECENT"):].splitlines()[1].split()
        self.assertEqual(header[:5], ["ID", "DEVICE", "TARGET", "OUTCOME", "BYTES"])

        doc = json.loads(self.ok("streams", "--json").stdout)
        self.assertIsInstance(doc["active"], list)
        mine = [s for s in doc["recent"] if s["device"] == "dev01" and s["outcome"] == "ok"]
        self.assertTrue(mine)
        self.assertGreater(mine[0]["bytes_from_device"], 0)
        self.assertTrue(mine[0]["stream_id"].startswith(row[0]))
        doc = json.loads(self.ok("streams", "--limit", "1", "--json").stdout)
        self.assertEqual(len(doc["recent"]), 1)

    def test_wrong_key_gives_401(self):
        with open(self.config) as f:
            lines = f.read().splitlines()
        wrong = base64.b64encode(os.urandom(32)).decode()
        lines = [f'  key: "{wrong}"' if line.startswith("  key:") else line for line in lines]
        path = os.path.join(self.stack.state, "wrong-key.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        for args in (["device", "list"], ["device", "add", "dev10"], ["streams"]):
            r = self.cli(*args, config=path)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertIn("(HTTP 401)", r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertNotIn("dev10", self.devices())

    def test_unreachable_hub_is_one_line(self):
        with open(self.config) as f:
            text = f.read()
        port = self.stack.closed_port
        text = text.replace(f"127.0.0.1:{self.stack.hub_port}", f"127.0.0.1:{port}")
        path = os.path.join(self.stack.state, "no-hub.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = self.cli("device", "list", config=path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach the hub", r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)

    def test_config_from_environment(self):
        env = dict(os.environ, DEVSTREAMS_CONFIG=self.config)
        r = subprocess.run([program("devstreams"), "hub", "device", "list"], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("dev01", r.stdout)


if __name__ == "__main__":
    unittest.main()
