// Tests of the daemon's settings: defaults, and the exact "file:line:column: message" of every
// kind of error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "daemon/settings.h"
#include "support/config_files.h"

namespace ds::config {
namespace {

using net::Endpoint;
using std::chrono::milliseconds;
using test::kKey;
using test::kKey2;
using ::testing::ElementsAre;

class DaemonConfigTest : public test::ConfigFiles {
 protected:
  std::string daemonError(const std::string& text) { return loadError(loadDaemon, text); }
};

const std::string kDaemonMin = std::string("daemon:\n  hub_url: https://hub.example\n") +
                               "  ca: /etc/ds/ca.pem\n  policy: service\n  key: " + kKey + "\n";

TEST_F(DaemonConfigTest, SectionLogLevelOverridesTopLevel) {
  EXPECT_EQ(loadDaemon(write("c.yaml", kDaemonMin + "  log_level: debug\n")).logLevel,
            LogLevel::Debug);
}

TEST_F(DaemonConfigTest, DaemonDefaults) {
  DaemonConfig c = loadDaemon(write("c.yaml", kDaemonMin));
  EXPECT_EQ(c.hubUrl, "https://hub.example");
  EXPECT_EQ(c.ca, "/etc/ds/ca.pem");
  EXPECT_EQ(c.serverName, "hub.example");
  EXPECT_EQ(c.hubHostname, "hub.example");
  EXPECT_EQ(c.policy, "service");
  EXPECT_EQ(c.key, kKey);
  EXPECT_EQ(c.socksListen, (Endpoint{"127.0.0.1", 1080}));
  EXPECT_EQ(c.suffix, ".hub");
  EXPECT_TRUE(c.users.empty());
  EXPECT_TRUE(c.aliases.empty());
  EXPECT_FALSE(c.direct);
  EXPECT_EQ(c.clientTimeout, milliseconds(10000));
  EXPECT_EQ(c.controlSocket, "");
  EXPECT_EQ(c.controlGroup, "");
  EXPECT_TRUE(c.forwards.empty());
  EXPECT_EQ(c.handshakeTimeout, milliseconds(60000));
  EXPECT_EQ(c.highWatermark, 256u * 1024);
  EXPECT_TRUE(c.multiplex);
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(DaemonConfigTest, DaemonAllKeys) {
  DaemonConfig c = loadDaemon(write("c.yaml", std::string("daemon:\n") +
                                                  "  hub_url: wss://h.example:8443\n"
                                                  "  ca: ca.pem\n"
                                                  "  server_name: tls.example\n"
                                                  "  hub_hostname: sas.example\n"
                                                  "  policy: svc\n"
                                                  "  key: " +
                                                  kKey2 +
                                                  "\n"
                                                  "  socks_listen: 0.0.0.0:0\n"
                                                  "  users:\n"
                                                  "    - {name: alice, password: 'pa ss'}\n"
                                                  "    - {name: bob, password: x}\n"
                                                  "  client_timeout: 500ms\n"
                                                  "  suffix: .devices.example\n"
                                                  "  aliases:\n"
                                                  "    Web.Lab: {device: dev01, port: 8080}\n"
                                                  "    ssh.lab: {device: dev02}\n"
                                                  "  direct: true\n"
                                                  "  control_socket: run/d.sock\n"
                                                  "  control_group: devstreams\n"
                                                  "  forwards:\n"
                                                  "    - listen: 127.0.0.1:2222\n"
                                                  "      device: dev01\n"
                                                  "      port: 22\n"
                                                  "    - {listen: '[::1]:0', device: b, port: 80}\n"
                                                  "    - {listen: '[::1]:0', device: c, port: 81}\n"
                                                  "  handshake_timeout: 2m\n"
                                                  "  high_watermark: 4KiB\n"
                                                  "  multiplex: false\n"));
  EXPECT_EQ(c.ca, (dir_ / "ca.pem").string());
  EXPECT_EQ(c.serverName, "tls.example");
  EXPECT_EQ(c.hubHostname, "sas.example");
  EXPECT_EQ(c.policy, "svc");
  EXPECT_EQ(c.key, kKey2);
  EXPECT_EQ(c.socksListen, (Endpoint{"0.0.0.0", 0}));
  EXPECT_THAT(c.users, ElementsAre(User{"alice", "pa ss"}, User{"bob", "x"}));
  EXPECT_EQ(c.clientTimeout, milliseconds(500));
  EXPECT_EQ(c.suffix, ".devices.example");
  EXPECT_THAT(c.aliases,
              ElementsAre(Alias{"web.lab", "dev01", 8080}, Alias{"ssh.lab", "dev02", 0}));
  EXPECT_TRUE(c.direct);
  EXPECT_EQ(c.controlSocket, (dir_ / "run/d.sock").string());
  EXPECT_EQ(c.controlGroup, "devstreams");
  EXPECT_THAT(c.forwards, ElementsAre(Forward{{"127.0.0.1", 2222}, "dev01", 22},
                                      Forward{{"::1", 0}, "b", 80}, Forward{{"::1", 0}, "c", 81}));
  EXPECT_EQ(c.handshakeTimeout, milliseconds(120000));
  EXPECT_EQ(c.highWatermark, 4096u);
  EXPECT_FALSE(c.multiplex);
}

TEST_F(DaemonConfigTest, MissingSectionNamesTheFile) {
  std::string file = (dir_ / "c.yaml").string();
  EXPECT_EQ(daemonError(""), file + ": missing section 'daemon:'");
}

TEST_F(DaemonConfigTest, WrongTypes) {
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards: [x]\n"), at(6, 14) + "expected a mapping");
}

TEST_F(DaemonConfigTest, BadValues) {
  EXPECT_EQ(daemonError(kDaemonMin + "  suffix: hub\n"),
            at(6, 11) + "invalid suffix 'hub' (expected e.g. '.hub')");
  EXPECT_EQ(daemonError("daemon:\n  hub_url: https://h\n  ca: c\n  policy: 'a&b'\n"),
            at(4, 11) + "invalid policy name 'a&b'");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, port: 0}\n"),
            at(7, 40) + "invalid port '0' (expected 1..65535)");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, port: 2}\n" +
                        "    - {listen: 'h:1', device: e, port: 3}\n"),
            at(8, 16) + "duplicate forward listen endpoint 'h:1'");
}

TEST_F(DaemonConfigTest, DaemonUsersAliasesAndListenErrors) {
  EXPECT_EQ(daemonError(kDaemonMin + "  socks_listen: 0.0.0.0:1080\n"),
            at(6, 17) +
                "socks_listen '0.0.0.0:1080' is not loopback: configure `users:` so that clients "
                "must authenticate");
  EXPECT_EQ(daemonError(kDaemonMin + "  socks_listen: '[::]:1080'\n"),
            at(6, 17) +
                "socks_listen '[::]:1080' is not loopback: configure `users:` so that clients "
                "must authenticate");
  EXPECT_NO_THROW(loadDaemon(write("c.yaml", kDaemonMin + "  socks_listen: '[::1]:1080'\n")));
  EXPECT_NO_THROW(loadDaemon(write("c.yaml", kDaemonMin + "  socks_listen: 127.0.0.2:1080\n")));
  EXPECT_NO_THROW(loadDaemon(write("c.yaml", kDaemonMin + "  socks_listen: localhost:1080\n")));
  EXPECT_EQ(daemonError(kDaemonMin + "  users:\n    - {name: 'a:b', password: x}\n"),
            at(7, 14) + "user name must be 1..128 bytes without ':' or control characters");
  EXPECT_EQ(daemonError(kDaemonMin + "  users:\n    - {name: " + std::string(129, 'a') +
                        ", password: x}\n"),
            at(7, 14) + "user name must be 1..128 bytes without ':' or control characters");
  EXPECT_EQ(daemonError(kDaemonMin + "  users:\n    - {name: a, password: ''}\n"),
            at(7, 27) + "must not be empty");
  EXPECT_EQ(daemonError(kDaemonMin + "  users:\n    - {name: a}\n"),
            at(7, 7) + "missing required key 'password'");
  EXPECT_EQ(daemonError(kDaemonMin + "  users:\n    - {name: a, password: x}\n" +
                        "    - {name: a, password: y}\n"),
            at(8, 14) + "duplicate user 'a'");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    'bad name': {device: d}\n"),
            at(7, 5) + "invalid alias name 'bad name'");
  EXPECT_EQ(
      daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d}\n    A.LAB: {device: e}\n"),
      at(8, 5) + "duplicate alias 'a.lab'");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {port: 80}\n"),
            at(7, 12) + "missing required key 'device'");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d, port: 70000}\n"),
            at(7, 30) + "invalid port '70000' (expected 1..65535)");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases: [a]\n"),
            at(6, 12) + "expected a mapping of names to {device, port}");
  EXPECT_EQ(daemonError(kDaemonMin + "  direct: maybe\n"),
            at(6, 11) + "expected true or false, got 'maybe'");
  EXPECT_EQ(daemonError(kDaemonMin + "  multiplex: 1x\n"),
            at(6, 14) + "expected true or false, got '1x'");
  EXPECT_EQ(daemonError(kDaemonMin + "  control_socket: /" + std::string(120, 'x') + "\n"),
            at(6, 19) + "control_socket path is longer than 107 bytes");
}

TEST_F(DaemonConfigTest, AliasesAndForwardsTakeAHostOrASocket) {
  DaemonConfig c = loadDaemon(write(
      "c.yaml",
      kDaemonMin + "  aliases:\n" + "    cam.lab: {device: dev01, host: 192.168.1.20, port: 80}\n" +
          "    v6.lab: {device: dev01, host: 'fd00::1'}\n" +
          "    db.lab: {device: dev01, unix: /run/postgresql/.s.PGSQL.5432}\n" + "  forwards:\n" +
          "    - {listen: '127.0.0.1:8080', device: dev01, host: nas.lan, port: 80}\n" +
          "    - {listen: '127.0.0.1:5432', device: dev01, unix: /run/pg.sock}\n"));
  EXPECT_THAT(c.aliases,
              ElementsAre(Alias{"cam.lab", "dev01", 80, "192.168.1.20"},
                          Alias{"v6.lab", "dev01", 0, "fd00::1"},
                          Alias{"db.lab", "dev01", 0, "", "/run/postgresql/.s.PGSQL.5432"}));
  EXPECT_THAT(c.forwards,
              ElementsAre(Forward{{"127.0.0.1", 8080}, "dev01", 80, "nas.lan"},
                          Forward{{"127.0.0.1", 5432}, "dev01", 0, "", "/run/pg.sock"}));
}

TEST_F(DaemonConfigTest, HostAndSocketErrors) {
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d, host: 'a b'}\n"),
            at(7, 30) + "invalid host 'a b' (a name, IPv4 or IPv6 address)");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d, unix: run/a}\n"),
            at(7, 30) + "invalid unix 'run/a' (an absolute socket path of at most 107 bytes)");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d, host: h, unix: /a}\n"),
            at(7, 39) + "`unix:` goes without `host:`");
  EXPECT_EQ(daemonError(kDaemonMin + "  aliases:\n    a.lab: {device: d, port: 1, unix: /a}\n"),
            at(7, 30) + "`unix:` goes without `port:`");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, unix: /a, " +
                        "port: 2}\n"),
            at(7, 50) + "`unix:` goes without `port:`");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, host: h}\n"),
            at(7, 7) + "missing required key 'port'");
}

TEST_F(DaemonConfigTest, MissingRequiredKeysPointAtTheSection) {
  EXPECT_EQ(daemonError("daemon:\n\n    hub_url: wss://h\n    ca: c\n    key: k\n"),
            at(3, 5) + "missing required key 'policy'");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - listen: h:1\n      port: 2\n"),
            at(7, 7) + "missing required key 'device'");
}

TEST_F(DaemonConfigTest, UnknownAndDuplicateKeys) {
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, prot: 2}\n"),
            at(7, 34) + "unknown key 'prot' (did you mean 'port'?)");
}

// --- the shipped example ------------------------------------------------------------------------

TEST(ExampleConfig, LoadsForTheDaemonWithDefaults) {
  DaemonConfig daemon = loadDaemon(DS_EXAMPLE_CONFIG);
  DaemonConfig daemonDefaults;
  EXPECT_EQ(daemon.hubHostname, "localhost");  // the hub's hostname
  EXPECT_EQ(daemon.socksListen, daemonDefaults.socksListen);
  EXPECT_EQ(daemon.suffix, daemonDefaults.suffix);
  EXPECT_EQ(daemon.users, daemonDefaults.users);
  EXPECT_EQ(daemon.aliases, daemonDefaults.aliases);
  EXPECT_EQ(daemon.direct, daemonDefaults.direct);
  EXPECT_EQ(daemon.clientTimeout, daemonDefaults.clientTimeout);
  EXPECT_TRUE(daemon.forwards.empty());
  EXPECT_EQ(daemon.handshakeTimeout, daemonDefaults.handshakeTimeout);
  EXPECT_EQ(daemon.highWatermark, daemonDefaults.highWatermark);
  EXPECT_EQ(daemon.multiplex, daemonDefaults.multiplex);
}

// Every key the daemon's loader knows is shown in the example, commented out or not.
TEST(ExampleConfig, ShowsEveryDaemonKey) {
  test::expectExampleShows({"log_level:",
                            "hub_url:",
                            "ca:",
                            "server_name:",
                            "hub_hostname:",
                            "policy:",
                            "key:",
                            "socks_listen:",
                            "users:",
                            "client_timeout:",
                            "suffix:",
                            "aliases:",
                            "direct:",
                            "control_socket:",
                            "control_group:",
                            "forwards:",
                            "device:",
                            "port:",
                            "host:",
                            "unix:",
                            "handshake_timeout:",
                            "high_watermark:",
                            "multiplex:"});
}

}  // namespace
}  // namespace ds::config
