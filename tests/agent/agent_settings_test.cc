// Tests of the agent's settings and the syntax of its allow-list rules: defaults, and the exact
// "file:line:column: message" of every kind of error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "agent/settings.h"
#include "support/config_files.h"

namespace ds::config {
namespace {

using std::chrono::milliseconds;
using test::kKey;
using test::kKey2;
using ::testing::ElementsAre;

class AgentConfigTest : public test::ConfigFiles {
 protected:
  std::string agentError(const std::string& text) { return loadError(loadAgent, text); }
};

const std::string kAgentMin = std::string("agent:\n  hub_url: wss://hub.example:9443\n") +
                              "  ca: ca.pem\n  device_id: dev01\n  device_key: " + kKey + "\n";

TEST_F(AgentConfigTest, SectionLogLevelOverridesTopLevel) {
  EXPECT_EQ(loadAgent(write("c.yaml", "log_level: warn\n" + kAgentMin)).logLevel, LogLevel::Warn);
}

TEST_F(AgentConfigTest, AgentDefaults) {
  AgentConfig c = loadAgent(write("c.yaml", kAgentMin));
  EXPECT_EQ(c.hubUrl, "wss://hub.example:9443");
  EXPECT_EQ(c.ca, (dir_ / "ca.pem").string());
  EXPECT_EQ(c.serverName, "hub.example");
  EXPECT_EQ(c.hubHostname, "hub.example");
  EXPECT_EQ(c.deviceId, "dev01");
  EXPECT_EQ(c.deviceKey, kKey);
  EXPECT_THAT(c.allow, ElementsAre(AllowRule{"127.0.0.1", 22, 22}));
  EXPECT_EQ(c.proxy, "");
  EXPECT_EQ(c.connectTimeout, milliseconds(10000));
  EXPECT_EQ(c.reconnectMin, milliseconds(1000));
  EXPECT_EQ(c.reconnectMax, milliseconds(30000));
  EXPECT_EQ(c.keepalive, milliseconds(20000));
  EXPECT_EQ(c.keepaliveTimeout, milliseconds(60000));
  EXPECT_EQ(c.maxStreams, 256u);
  EXPECT_EQ(c.highWatermark, 256u * 1024);
  EXPECT_TRUE(c.multiplex);
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(AgentConfigTest, AgentAllKeys) {
  AgentConfig c = loadAgent(write("c.yaml", kAgentMin + "  server_name: tls.example\n"
                                                        "  hub_hostname: sas.example\n"
                                                        "  allow: ['10.0.0.1:80', '[::1]:22',\n"
                                                        "          'localhost:8000-8100']\n"
                                                        "  proxy: http://u:p@proxy.example:3128\n"
                                                        "  connect_timeout: 3\n"
                                                        "  reconnect_min: 100ms\n"
                                                        "  reconnect_max: 100ms\n"
                                                        "  keepalive: 1h\n"
                                                        "  keepalive_timeout: 2h\n"
                                                        "  max_streams: 3\n"
                                                        "  high_watermark: 1GiB\n"
                                                        "  multiplex: false\n"));
  EXPECT_EQ(c.serverName, "tls.example");
  EXPECT_EQ(c.hubHostname, "sas.example");
  EXPECT_THAT(c.allow, ElementsAre(AllowRule{"10.0.0.1", 80, 80}, AllowRule{"::1", 22, 22},
                                   AllowRule{"localhost", 8000, 8100}));
  EXPECT_EQ(c.proxy, "http://u:p@proxy.example:3128");
  EXPECT_EQ(c.connectTimeout, milliseconds(3000));
  EXPECT_EQ(c.reconnectMin, milliseconds(100));
  EXPECT_EQ(c.reconnectMax, milliseconds(100));
  EXPECT_EQ(c.keepalive, milliseconds(3600000));
  EXPECT_EQ(c.keepaliveTimeout, milliseconds(7200000));
  EXPECT_EQ(c.maxStreams, 3u);
  EXPECT_EQ(c.highWatermark, uint64_t{1} << 30);
  EXPECT_FALSE(c.multiplex);
}

TEST_F(AgentConfigTest, AgentLongKeepaliveStretchesTheDefaultTimeout) {
  EXPECT_EQ(loadAgent(write("c.yaml", kAgentMin + "  keepalive: 1m\n")).keepaliveTimeout,
            milliseconds(180000));
  EXPECT_EQ(loadAgent(write("c.yaml", kAgentMin + "  keepalive: 5s\n")).keepaliveTimeout,
            milliseconds(60000));
}

TEST(AllowRuleTest, ParsesPortsAndRanges) {
  EXPECT_EQ(parseAllowRule("127.0.0.1:22"), (AllowRule{"127.0.0.1", 22, 22}));
  EXPECT_EQ(parseAllowRule("localhost:8000-8100"), (AllowRule{"localhost", 8000, 8100}));
  EXPECT_EQ(parseAllowRule("[::1]:1-65535"), (AllowRule{"::1", 1, 65535}));
  EXPECT_EQ(parseAllowRule("h:5-5"), (AllowRule{"h", 5, 5}));
  for (const char* bad : {"h", "h:", "h:0", "h:0-5", "h:9-8", "h:1-", "h:-1", "h:1-2-3", "h:65536",
                          "h:1-70000", "a b:1", "[x]:1", "h:+1"}) {
    EXPECT_EQ(parseAllowRule(bad), std::nullopt) << bad;
  }
}

TEST(AllowRuleTest, MatchesHostAsTextAndPortInRange) {
  AllowRule r{"LocalHost", 8000, 8100};
  EXPECT_TRUE(r.matches("localhost", 8000));
  EXPECT_TRUE(r.matches("LOCALHOST", 8100));
  EXPECT_FALSE(r.matches("localhost", 7999));
  EXPECT_FALSE(r.matches("localhost", 8101));
  EXPECT_FALSE(r.matches("127.0.0.1", 8050));
  EXPECT_FALSE(r.matches("localhost.", 8050));
  EXPECT_EQ(r.toString(), "LocalHost:8000-8100");
  EXPECT_EQ((AllowRule{"::1", 22, 22}).toString(), "[::1]:22");
}

TEST(AllowRuleTest, UnixSocketPaths) {
  AllowRule sock;
  sock.path = "/run/app.sock";
  EXPECT_EQ(parseAllowRule("unix:/run/app.sock"), sock);
  EXPECT_EQ(sock.toString(), "unix:/run/app.sock");
  EXPECT_FALSE(sock.matches("", 0));
  // "unix" followed by a port is still a host named unix.
  EXPECT_EQ(parseAllowRule("unix:22"), (AllowRule{"unix", 22, 22}));
  for (const char* bad : {"unix:", "unix:run/app.sock", "unix:/a b", "unix:/a\tb", "unix:/\x7f"}) {
    EXPECT_EQ(parseAllowRule(bad), std::nullopt) << bad;
  }
  EXPECT_TRUE(parseAllowRule("unix:/" + std::string(106, 'a')));
  EXPECT_EQ(parseAllowRule("unix:/" + std::string(107, 'a')), std::nullopt);  // sun_path
  AllowRule r{"127.0.0.1", 22, 22};
  r.from = {"ops", "support/alice"};
  EXPECT_EQ(r.toString(), "127.0.0.1:22 from [ops, support/alice]");
}

TEST(AllowRuleTest, Callers) {
  for (const char* good : {"ops", "a.b_c-d", "support/alice", "ops/a b", "ops/alice@example.com"}) {
    EXPECT_TRUE(isValidCaller(good)) << good;
  }
  for (const char* bad : {"", "/alice", "ops/", "o ps", "ops/a:b", "ops/\n", "ops*", "é"}) {
    EXPECT_FALSE(isValidCaller(bad)) << bad;
  }
  EXPECT_TRUE(isValidCaller(std::string(64, 'p')));
  EXPECT_FALSE(isValidCaller(std::string(65, 'p')));
  EXPECT_TRUE(isValidCaller("p/" + std::string(255, 'u')));
  EXPECT_FALSE(isValidCaller("p/" + std::string(256, 'u')));
}

TEST_F(AgentConfigTest, AgentAllowEntryForms) {
  AgentConfig c =
      loadAgent(write("c.yaml", kAgentMin + "  allow:\n"
                                            "    - 127.0.0.1:22\n"
                                            "    - unix:/run/app.sock\n"
                                            "    - {to: '192.168.1.0/24:80', from: [ops]}\n"
                                            "    - to: unix:/run/db.sock\n"
                                            "      from: [ops, support/alice, ops]\n"));
  AllowRule net{"192.168.1.0/24", 80, 80}, app, db;
  net.from = {"ops"};
  app.path = "/run/app.sock";
  db.path = "/run/db.sock";
  db.from = {"ops", "support/alice"};  // a repeated caller once
  EXPECT_THAT(c.allow, ElementsAre(AllowRule{"127.0.0.1", 22, 22}, app, net, db));
}

TEST_F(AgentConfigTest, AgentAllowEntryErrors) {
  EXPECT_EQ(agentError(kAgentMin + "  allow: ['unix:run/app.sock']\n"),
            at(6, 11) +
                "invalid allow-list entry 'unix:run/app.sock' (expected host:port, "
                "host:first-last or unix:/absolute/path)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', form: [ops]}\n"),
            at(7, 28) + "unknown key 'form' (did you mean 'from'?)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {from: [ops]}\n"),
            at(7, 7) + "missing required key 'to'");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22'}\n"),
            at(7, 7) + "missing required key 'from'");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', from: []}\n"),
            at(7, 34) + "'from' names no caller (leave it out to admit every caller)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: 'h:9-8', from: [ops]}\n"),
            at(7, 12) +
                "invalid allow-list entry 'h:9-8' (expected host:port, host:first-last or "
                "unix:/absolute/path)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', from: [ops, 'o ps']}\n"),
            at(7, 40) + "invalid caller 'o ps' (expected a policy name or policy/user)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', from: [ops/]}\n"),
            at(7, 35) + "invalid caller 'ops/' (expected a policy name or policy/user)");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', from: ops}\n"),
            at(7, 34) + "expected a sequence");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: '127.0.0.1:22', from: [[ops]]}\n"),
            at(7, 35) + "expected a caller");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - {to: [a], from: [ops]}\n"),
            at(7, 12) + "expected an allow-list entry");
}

TEST_F(AgentConfigTest, AgentEmptyAllowListAllowsNothing) {
  EXPECT_TRUE(loadAgent(write("c.yaml", kAgentMin + "  allow: []\n")).allow.empty());
  EXPECT_TRUE(loadAgent(write("c.yaml", kAgentMin + "  allow:\n")).allow.empty());
}

TEST_F(AgentConfigTest, AgentAcceptsHttpsAndIpv6HubUrl) {
  AgentConfig c =
      loadAgent(write("c.yaml", std::string("agent:\n  hub_url: https://[::1]\n") +
                                    "  ca: ca.pem\n  device_id: d\n  device_key: " + kKey + "\n"));
  EXPECT_EQ(c.serverName, "::1");
  EXPECT_EQ(c.hubHostname, "::1");
}

TEST_F(AgentConfigTest, UnreadableFile) {
  EXPECT_EQ(errorOf([&] { loadAgent(dir_.string()); }),
            dir_.string() + ": cannot read: Is a directory");
}

TEST_F(AgentConfigTest, MissingSectionNamesTheFile) {
  std::string file = (dir_ / "c.yaml").string();
  EXPECT_EQ(agentError("hub:\n  cert: c.pem\n  key: k.pem\n"), file + ": missing section 'agent:'");
}

TEST_F(AgentConfigTest, WrongTypes) {
  EXPECT_EQ(agentError(kAgentMin + "  allow: 127.0.0.1:22\n"), at(6, 10) + "expected a sequence");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - [a]\n"),
            at(7, 7) + "expected an allow-list entry");
}

TEST_F(AgentConfigTest, BadValues) {
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h/x\n"), at(2, 12) + "invalid URL 'wss://h/x'");
  EXPECT_EQ(agentError("agent:\n  hub_url: ws://h\n"),
            at(2, 12) + "unsupported URL scheme 'ws' (expected wss or https)");
  EXPECT_EQ(agentError(kAgentMin + "  allow: [1.2.3.4:22, 'nope']\n"),
            at(6, 23) +
                "invalid allow-list entry 'nope' (expected host:port, host:first-last or "
                "unix:/absolute/path)");
  EXPECT_EQ(agentError(kAgentMin + "  allow: ['h:9-8']\n"),
            at(6, 11) +
                "invalid allow-list entry 'h:9-8' (expected host:port, host:first-last or "
                "unix:/absolute/path)");
  EXPECT_EQ(
      agentError(kAgentMin + "  proxy: socks5://p:1080\n"),
      at(6, 10) + "invalid proxy 'socks5://p:1080' (expected http://[user:password@]host[:port])");
  // A proxy's password never appears in an error.
  EXPECT_EQ(agentError(kAgentMin + "  proxy: https://user:s3cret@p:1080\n"),
            at(6, 10) +
                "invalid proxy 'https://***@p:1080' (expected "
                "http://[user:password@]host[:port])");
  EXPECT_EQ(agentError(kAgentMin + "  keepalive: 10s\n  keepalive_timeout: 5s\n"),
            at(7, 22) + "keepalive_timeout must not be shorter than keepalive");
  EXPECT_EQ(agentError(kAgentMin + "  multiplex: yes\n"),
            at(6, 14) + "expected true or false, got 'yes'");
  EXPECT_EQ(agentError(kAgentMin + "  max_streams: 0\n"),
            at(6, 16) + "invalid count '0' (expected a positive integer)");
  EXPECT_EQ(agentError(kAgentMin + "  reconnect_min: 1m\n"),
            at(6, 18) + "reconnect_min must not exceed reconnect_max");
  EXPECT_EQ(agentError(kAgentMin + "  reconnect_max: 1m\n  reconnect_min: 2m\n"),
            at(6, 18) + "reconnect_min must not exceed reconnect_max");
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n  ca: c\n  device_id: 'a b'\n"),
            at(4, 14) + "invalid device id 'a b'");
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n  ca: c\n  device_id: d\n  device_key: abc\n"),
            at(5, 15) + "invalid key: expected base64 of at least 16 bytes");
}

TEST_F(AgentConfigTest, MissingRequiredKeysPointAtTheSection) {
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n"), at(2, 3) + "missing required key 'ca'");
}

TEST_F(AgentConfigTest, UnknownAndDuplicateKeys) {
  // Reported before the missing keys a typo leaves behind.
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n  device-id: d\n"),
            at(3, 3) + "unknown key 'device-id' (did you mean 'device_id'?)");
}

// --- the shipped example ------------------------------------------------------------------------

TEST(ExampleConfig, LoadsForTheAgentWithDefaults) {
  const std::filesystem::path etc =
      std::filesystem::absolute(std::filesystem::path(DS_EXAMPLE_CONFIG).parent_path())
          .lexically_normal();
  AgentConfig agent = loadAgent(DS_EXAMPLE_CONFIG);
  AgentConfig agentDefaults;
  EXPECT_EQ(agent.ca, (etc / "ca.pem").string());
  EXPECT_EQ(agent.serverName, "localhost");
  EXPECT_EQ(agent.hubHostname, "localhost");  // the hub's hostname
  EXPECT_EQ(agent.allow, agentDefaults.allow);
  EXPECT_EQ(agent.connectTimeout, agentDefaults.connectTimeout);
  EXPECT_EQ(agent.reconnectMin, agentDefaults.reconnectMin);
  EXPECT_EQ(agent.reconnectMax, agentDefaults.reconnectMax);
  EXPECT_EQ(agent.keepalive, agentDefaults.keepalive);
  EXPECT_EQ(agent.keepaliveTimeout, agentDefaults.keepaliveTimeout);
  EXPECT_EQ(agent.maxStreams, agentDefaults.maxStreams);
  EXPECT_EQ(agent.proxy, agentDefaults.proxy);
  EXPECT_EQ(agent.highWatermark, agentDefaults.highWatermark);
  EXPECT_EQ(agent.multiplex, agentDefaults.multiplex);
}

// Every key the agent's loader knows is shown in the example, commented out or not.
TEST(ExampleConfig, ShowsEveryAgentKey) {
  test::expectExampleShows({"log_level:",
                            "hub_url:",
                            "ca:",
                            "server_name:",
                            "hub_hostname:",
                            "device_id:",
                            "device_key:",
                            "allow:",
                            "proxy:",
                            "connect_timeout:",
                            "reconnect_min:",
                            "reconnect_max:",
                            "keepalive:",
                            "keepalive_timeout:",
                            "max_streams:",
                            "high_watermark:",
                            "multiplex:",
                            "unix:/",
                            "to:",
                            "from:"});
}

}  // namespace
}  // namespace ds::config
