// Tests of configuration loading: value syntaxes, defaults, path resolution, and the exact
// "file:line:column: message" of every kind of error.
#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace ds::config {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kKey = "AAAAAAAAAAAAAAAAAAAAAA==";  // 16 bytes
constexpr const char* kKey2 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ds-config-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes `text` to a file in the test's directory and returns its path.
  std::string write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  // The message of the Error `f` throws, or a marker when it throws none.
  static std::string errorOf(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  }

  std::string hubError(const std::string& text) {
    std::string p = write("c.yaml", text);
    return errorOf([&] { loadHub(p); });
  }
  std::string agentError(const std::string& text) {
    std::string p = write("c.yaml", text);
    return errorOf([&] { loadAgent(p); });
  }
  std::string daemonError(const std::string& text) {
    std::string p = write("c.yaml", text);
    return errorOf([&] { loadDaemon(p); });
  }
  std::string registryError(const std::string& text) {
    std::string p = write("r.yaml", text);
    return errorOf([&] { loadRegistry(p); });
  }

  // The prefix every error about c.yaml carries.
  std::string at(int line, int column) const {
    return (dir_ / "c.yaml").string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
           ": ";
  }
  std::string regAt(int line, int column) const {
    return (dir_ / "r.yaml").string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
           ": ";
  }

  fs::path dir_;
};

const std::string kHubMin = "hub:\n  cert: c.pem\n  key: k.pem\n  registry: r.yaml\n";
const std::string kAgentMin = std::string("agent:\n  hub_url: wss://hub.example:9443\n") +
                              "  ca: ca.pem\n  device_id: dev01\n  device_key: " + kKey + "\n";
const std::string kDaemonMin = std::string("daemon:\n  hub_url: https://hub.example\n") +
                               "  ca: /etc/ds/ca.pem\n  policy: service\n  key: " + kKey + "\n";

// --- value syntaxes -----------------------------------------------------------------------------

TEST(ParseDuration, Table) {
  struct Case {
    const char* in;
    std::optional<milliseconds> out;
  };
  const Case cases[] = {
      {"60s", milliseconds(60000)}, {"500ms", milliseconds(500)},
      {"2m", milliseconds(120000)}, {"1h", milliseconds(3600000)},
      {"15", milliseconds(15000)},  {"0", milliseconds(0)},
      {"0ms", milliseconds(0)},     {"2147483647", milliseconds(2147483647000)},
      {"2147483648", std::nullopt}, {"99999999999999999999999", std::nullopt},
      {"6x", std::nullopt},         {"", std::nullopt},
      {"s", std::nullopt},          {"-1s", std::nullopt},
      {"+1s", std::nullopt},        {"1 s", std::nullopt},
      {" 1s", std::nullopt},        {"1.5s", std::nullopt},
      {"1S", std::nullopt},         {"1sec", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseDuration(c.in), c.out) << c.in;
}

TEST(ParseSize, Table) {
  struct Case {
    const char* in;
    std::optional<uint64_t> out;
  };
  const Case cases[] = {
      {"16384", 16384},
      {"0", 0},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"1MiB", 1 << 20},
      {"1GiB", uint64_t{1} << 30},
      {"18446744073709551615", UINT64_MAX},
      {"18446744073709551616", std::nullopt},
      {"17179869184GiB", std::nullopt},
      {"17179869183GiB", uint64_t{17179869183} << 30},
      {"1KB", std::nullopt},
      {"1kib", std::nullopt},
      {"1 MiB", std::nullopt},
      {"MiB", std::nullopt},
      {"", std::nullopt},
      {"-1", std::nullopt},
      {"1.5MiB", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseSize(c.in), c.out) << c.in;
}

TEST(ParseEndpoint, Table) {
  struct Case {
    const char* in;
    std::optional<Endpoint> out;
  };
  const Case cases[] = {
      {"127.0.0.1:1080", Endpoint{"127.0.0.1", 1080}},
      {"[::1]:1080", Endpoint{"::1", 1080}},
      {"[fe80::1%eth0]:22", Endpoint{"fe80::1%eth0", 22}},
      {"localhost:8443", Endpoint{"localhost", 8443}},
      {"my-host.example_x:65535", Endpoint{"my-host.example_x", 65535}},
      {"0.0.0.0:0", Endpoint{"0.0.0.0", 0}},
      {"localhost:65536", std::nullopt},
      {"localhost:", std::nullopt},
      {"localhost", std::nullopt},
      {":80", std::nullopt},
      {"::1:80", std::nullopt},
      {"[::1]", std::nullopt},
      {"[::1]80", std::nullopt},
      {"[::1:80", std::nullopt},
      {"[]:80", std::nullopt},
      {"[nothex]:80", std::nullopt},
      {"host:-1", std::nullopt},
      {"host:+1", std::nullopt},
      {"host:0080x", std::nullopt},
      {"ho st:80", std::nullopt},
      {"host/x:80", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseEndpoint(c.in), c.out) << c.in;
}

TEST(Endpoint, ToStringBracketsIpv6) {
  EXPECT_EQ((Endpoint{"127.0.0.1", 1080}.toString()), "127.0.0.1:1080");
  EXPECT_EQ((Endpoint{"::1", 1080}.toString()), "[::1]:1080");
  EXPECT_EQ((Endpoint{"localhost", 0}.toString()), "localhost:0");
  for (const char* s : {"127.0.0.1:1080", "[::1]:22", "example.com:443"}) {
    EXPECT_EQ(parseEndpoint(s)->toString(), s);
  }
}

TEST(ParseUrl, Table) {
  struct Case {
    const char* in;
    std::optional<Url> out;
  };
  const Case cases[] = {
      {"wss://hub.example:8443", Url{"wss", "hub.example", 8443}},
      {"wss://hub.example", Url{"wss", "hub.example", 443}},
      {"https://hub.example/", Url{"https", "hub.example", 443}},
      {"HTTPS://Hub.example:1", Url{"https", "Hub.example", 1}},
      {"ws://localhost", Url{"ws", "localhost", 80}},
      {"http://127.0.0.1:8080", Url{"http", "127.0.0.1", 8080}},
      {"wss://[::1]:8443", Url{"wss", "::1", 8443}},
      {"wss://[::1]", Url{"wss", "::1", 443}},
      {"wss://hub:0", std::nullopt},
      {"wss://hub:65536", std::nullopt},
      {"wss://hub:", std::nullopt},
      {"ftp://hub", std::nullopt},
      {"hub.example:443", std::nullopt},
      {"://hub", std::nullopt},
      {"wss://", std::nullopt},
      {"wss://hub/path", std::nullopt},
      {"wss://hub?x=1", std::nullopt},
      {"wss://user@hub", std::nullopt},
      {"wss://::1", std::nullopt},
      {"w-s://hub", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parseUrl(c.in), c.out) << c.in;
}

TEST(ParseLogLevel, Table) {
  EXPECT_EQ(parseLogLevel("debug"), LogLevel::Debug);
  EXPECT_EQ(parseLogLevel("info"), LogLevel::Info);
  EXPECT_EQ(parseLogLevel("warn"), LogLevel::Warn);
  EXPECT_EQ(parseLogLevel("error"), LogLevel::Error);
  EXPECT_EQ(parseLogLevel("INFO"), std::nullopt);
  EXPECT_EQ(parseLogLevel("warning"), std::nullopt);
  EXPECT_EQ(parseLogLevel(""), std::nullopt);
  for (auto l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    EXPECT_EQ(parseLogLevel(toString(l)), l);
  }
}

TEST(IsValidDeviceId, Table) {
  EXPECT_TRUE(isValidDeviceId("dev01"));
  EXPECT_TRUE(isValidDeviceId("a"));
  EXPECT_TRUE(isValidDeviceId("-.%_*?!(),:=@$'"));
  EXPECT_TRUE(isValidDeviceId(std::string(128, 'x')));
  EXPECT_FALSE(isValidDeviceId(std::string(129, 'x')));
  EXPECT_FALSE(isValidDeviceId(""));
  EXPECT_FALSE(isValidDeviceId("dev 01"));
  EXPECT_FALSE(isValidDeviceId("dev/01"));
  EXPECT_FALSE(isValidDeviceId("dev#01"));
  EXPECT_FALSE(isValidDeviceId("dev+01"));
  EXPECT_FALSE(isValidDeviceId("d\xc3\xa9v"));
  EXPECT_FALSE(isValidDeviceId(std::string("a\0b", 3)));
}

TEST(IsValidPolicyName, Table) {
  EXPECT_TRUE(isValidPolicyName("service"));
  EXPECT_TRUE(isValidPolicyName("iothub_owner-2.x"));
  EXPECT_TRUE(isValidPolicyName(std::string(64, 'p')));
  EXPECT_FALSE(isValidPolicyName(std::string(65, 'p')));
  EXPECT_FALSE(isValidPolicyName(""));
  EXPECT_FALSE(isValidPolicyName("a b"));
  EXPECT_FALSE(isValidPolicyName("a&b"));
}

TEST(IsValidKey, Table) {
  EXPECT_TRUE(isValidKey(kKey));
  EXPECT_TRUE(isValidKey(kKey2));
  EXPECT_TRUE(isValidKey("AAAAAAAAAAAAAAAAAAAAAAAA"));       // 18 bytes, no padding
  EXPECT_TRUE(isValidKey("AAAAAAAAAAAAAAAAAAAAAAA="));       // 17 bytes
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAA"));          // 15 bytes
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAAAA"));        // missing padding
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAAAB=="));      // non-zero unused bits
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAAAAA=A==="));  // padding inside
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAAAA-_"));      // base64url alphabet
  EXPECT_FALSE(isValidKey("AAAAAAAA AAAAAAAAAAAAAAA"));
  EXPECT_FALSE(isValidKey("AAAAAAAAAAAAAAAAAAAA===="));
  EXPECT_FALSE(isValidKey(""));
}

// --- defaults and resolution --------------------------------------------------------------------

TEST_F(ConfigTest, HubDefaults) {
  HubConfig c = loadHub(write("c.yaml", kHubMin));
  EXPECT_EQ(c.listen, (Endpoint{"127.0.0.1", 8443}));
  EXPECT_EQ(c.hostname, "localhost");
  EXPECT_EQ(c.publicUrl, "wss://localhost:8443");
  EXPECT_EQ(c.cert, (dir_ / "c.pem").string());
  EXPECT_EQ(c.key, (dir_ / "k.pem").string());
  EXPECT_EQ(c.registry, (dir_ / "r.yaml").string());
  EXPECT_EQ(c.handshakeTimeout, milliseconds(60000));
  EXPECT_EQ(c.requestTimeout, milliseconds(10000));
  EXPECT_EQ(c.keepalive, milliseconds(20000));
  EXPECT_EQ(c.maxFrame, 1u << 20);
  EXPECT_EQ(c.maxMessage, 1u << 20);
  EXPECT_EQ(c.highWatermark, 256u * 1024);
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(ConfigTest, HubAllKeys) {
  HubConfig c = loadHub(write("sub/c.yaml",
                              "log_level: warn\n"
                              "hub:\n"
                              "  listen: '[::1]:0'\n"
                              "  hostname: hub.example\n"
                              "  public_url: wss://streams.example/\n"
                              "  cert: ../pki/./c.pem\n"
                              "  key: /abs/k.pem\n"
                              "  registry: r.yaml\n"
                              "  handshake_timeout: 5s\n"
                              "  request_timeout: 250ms\n"
                              "  keepalive: 1m\n"
                              "  max_frame: 64KiB\n"
                              "  max_message: 2MiB\n"
                              "  high_watermark: 1000\n"));
  EXPECT_EQ(c.listen, (Endpoint{"::1", 0}));
  EXPECT_EQ(c.hostname, "hub.example");
  EXPECT_EQ(c.publicUrl, "wss://streams.example");
  EXPECT_EQ(c.cert, (dir_ / "pki/c.pem").string());
  EXPECT_EQ(c.key, "/abs/k.pem");
  EXPECT_EQ(c.registry, (dir_ / "sub/r.yaml").string());
  EXPECT_EQ(c.handshakeTimeout, milliseconds(5000));
  EXPECT_EQ(c.requestTimeout, milliseconds(250));
  EXPECT_EQ(c.keepalive, milliseconds(60000));
  EXPECT_EQ(c.maxFrame, 65536u);
  EXPECT_EQ(c.maxMessage, 2u << 20);
  EXPECT_EQ(c.highWatermark, 1000u);
  EXPECT_EQ(c.logLevel, LogLevel::Warn);
}

TEST_F(ConfigTest, HubPublicUrlFollowsHostnameAndPort) {
  HubConfig c =
      loadHub(write("c.yaml", kHubMin + "  listen: 0.0.0.0:9000\n  hostname: h.example\n"));
  EXPECT_EQ(c.publicUrl, "wss://h.example:9000");
  c = loadHub(write("c.yaml", kHubMin + "  hostname: '::1'\n"));
  EXPECT_EQ(c.publicUrl, "wss://[::1]:8443");
}

TEST_F(ConfigTest, RelativePathsFollowTheFileNotTheWorkingDirectory) {
  write("conf/c.yaml", kHubMin);
  struct Chdir {
    fs::path old = fs::current_path();
    explicit Chdir(const fs::path& to) { fs::current_path(to); }
    ~Chdir() { fs::current_path(old); }
  };
  HubConfig c;
  {
    Chdir in(dir_);
    c = loadHub("conf/c.yaml");
  }
  EXPECT_EQ(c.cert, (dir_ / "conf/c.pem").string());
  EXPECT_TRUE(fs::path(c.registry).is_absolute());
}

TEST_F(ConfigTest, SectionLogLevelOverridesTopLevel) {
  EXPECT_EQ(loadHub(write("c.yaml", "log_level: debug\n" + kHubMin)).logLevel, LogLevel::Debug);
  EXPECT_EQ(
      loadHub(write("c.yaml", "log_level: debug\n" + kHubMin + "  log_level: error\n")).logLevel,
      LogLevel::Error);
  EXPECT_EQ(loadAgent(write("c.yaml", "log_level: warn\n" + kAgentMin)).logLevel, LogLevel::Warn);
  EXPECT_EQ(loadDaemon(write("c.yaml", kDaemonMin + "  log_level: debug\n")).logLevel,
            LogLevel::Debug);
}

TEST_F(ConfigTest, AgentDefaults) {
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
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(ConfigTest, AgentAllKeys) {
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
                                                        "  high_watermark: 1GiB\n"));
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
}

TEST_F(ConfigTest, AgentLongKeepaliveStretchesTheDefaultTimeout) {
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

TEST_F(ConfigTest, AgentEmptyAllowListAllowsNothing) {
  EXPECT_TRUE(loadAgent(write("c.yaml", kAgentMin + "  allow: []\n")).allow.empty());
  EXPECT_TRUE(loadAgent(write("c.yaml", kAgentMin + "  allow:\n")).allow.empty());
}

TEST_F(ConfigTest, AgentAcceptsHttpsAndIpv6HubUrl) {
  AgentConfig c =
      loadAgent(write("c.yaml", std::string("agent:\n  hub_url: https://[::1]\n") +
                                    "  ca: ca.pem\n  device_id: d\n  device_key: " + kKey + "\n"));
  EXPECT_EQ(c.serverName, "::1");
  EXPECT_EQ(c.hubHostname, "::1");
}

TEST_F(ConfigTest, DaemonDefaults) {
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
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(ConfigTest, DaemonAllKeys) {
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
                                                  "  high_watermark: 4KiB\n"));
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
}

TEST_F(ConfigTest, OtherProgramsSectionsAreNotValidated) {
  std::string p = write("c.yaml", kHubMin + "agent:\n  no_such_key: 1\ndaemon: 7\n");
  EXPECT_NO_THROW(loadHub(p));
}

TEST_F(ConfigTest, ParseFromMemory) {
  HubConfig c = parseHub(kHubMin, "/etc/devstreams/devstreams.yaml");
  EXPECT_EQ(c.cert, "/etc/devstreams/c.pem");
  EXPECT_EQ(errorOf([] { parseHub("hub: [", "mem"); }), "mem:1:1: end of sequence flow not found");
}

// --- errors -------------------------------------------------------------------------------------

TEST_F(ConfigTest, UnreadableFile) {
  std::string missing = (dir_ / "missing.yaml").string();
  EXPECT_EQ(errorOf([&] { loadHub(missing); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(errorOf([&] { loadRegistry(missing); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(errorOf([&] { loadAgent(dir_.string()); }),
            dir_.string() + ": cannot read: Is a directory");
}

TEST_F(ConfigTest, SyntaxErrors) {
  EXPECT_EQ(hubError("hub:\n  cert: a\n   key: b\n"), at(3, 7) + "illegal map value");
  EXPECT_EQ(hubError("hub:\n  cert: a\n  - b\n"), at(3, 3) + "end of map not found");
  EXPECT_EQ(hubError(kHubMin + "---\nhub: {}\n"), at(6, 1) + "only one YAML document is allowed");
  EXPECT_NO_THROW(loadHub(write("c.yaml", "---\n" + kHubMin + "---\n")));
}

TEST_F(ConfigTest, MissingSectionNamesTheFile) {
  std::string file = (dir_ / "c.yaml").string();
  EXPECT_EQ(agentError(kHubMin), file + ": missing section 'agent:'");
  EXPECT_EQ(daemonError(""), file + ": missing section 'daemon:'");
  EXPECT_EQ(hubError("# only a comment\n"), file + ": missing section 'hub:'");
}

TEST_F(ConfigTest, WrongTypes) {
  EXPECT_EQ(hubError("- hub\n"), at(1, 1) + "expected a mapping");
  EXPECT_EQ(hubError("hub: 3\n"), at(1, 6) + "expected a mapping");
  // A section with no value is blamed on its key, not on the next line.
  EXPECT_EQ(hubError("hub:\nagent: {}\n"), at(1, 1) + "expected a mapping");
  EXPECT_EQ(hubError("hub:\n  cert: [a]\n"), at(2, 9) + "expected a string");
  EXPECT_EQ(hubError("hub:\n  cert:\n  key: k\n"), at(2, 3) + "expected a string");
  EXPECT_EQ(hubError("hub:\n  cert: ''\n"), at(2, 9) + "must not be empty");
  EXPECT_EQ(hubError(kHubMin + "  listen: {a: 1}\n"), at(5, 11) + "expected an endpoint");
  EXPECT_EQ(hubError(kHubMin + "  max_frame: [1]\n"), at(5, 14) + "expected a size");
  EXPECT_EQ(hubError(kHubMin + "  keepalive: []\n"), at(5, 14) + "expected a duration");
  EXPECT_EQ(agentError(kAgentMin + "  allow: 127.0.0.1:22\n"), at(6, 10) + "expected a sequence");
  EXPECT_EQ(agentError(kAgentMin + "  allow:\n    - [a]\n"),
            at(7, 7) + "expected an allow-list entry");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards: [x]\n"), at(6, 14) + "expected a mapping");
  EXPECT_EQ(hubError("hub:\n  [a]: 1\n"), at(2, 3) + "expected a string key");
}

TEST_F(ConfigTest, BadValues) {
  EXPECT_EQ(hubError(kHubMin + "  handshake_timeout: 6x\n"), at(5, 22) + "invalid duration '6x'");
  EXPECT_EQ(hubError(kHubMin + "  request_timeout: 0\n"), at(5, 20) + "duration must be positive");
  EXPECT_EQ(hubError(kHubMin + "  max_message: 1MB\n"), at(5, 16) + "invalid size '1MB'");
  EXPECT_EQ(hubError(kHubMin + "  high_watermark: 0KiB\n"), at(5, 19) + "size must be positive");
  EXPECT_EQ(hubError(kHubMin + "  listen: localhost\n"),
            at(5, 11) + "invalid endpoint 'localhost' (expected host:port)");
  EXPECT_EQ(hubError(kHubMin + "  hostname: 'a b'\n"), at(5, 13) + "invalid host name 'a b'");
  EXPECT_EQ(hubError(kHubMin + "  public_url: https://x\n"),
            at(5, 15) + "unsupported URL scheme 'https' (expected wss)");
  EXPECT_EQ(hubError("log_level: loud\n" + kHubMin),
            at(1, 12) + "invalid log level 'loud' (expected debug, info, warn or error)");
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h/x\n"), at(2, 12) + "invalid URL 'wss://h/x'");
  EXPECT_EQ(agentError("agent:\n  hub_url: ws://h\n"),
            at(2, 12) + "unsupported URL scheme 'ws' (expected wss or https)");
  EXPECT_EQ(agentError(kAgentMin + "  allow: [1.2.3.4:22, 'nope']\n"),
            at(6, 23) + "invalid allow-list entry 'nope' (expected host:port or host:first-last)");
  EXPECT_EQ(agentError(kAgentMin + "  allow: ['h:9-8']\n"),
            at(6, 11) + "invalid allow-list entry 'h:9-8' (expected host:port or host:first-last)");
  EXPECT_EQ(
      agentError(kAgentMin + "  proxy: socks5://p:1080\n"),
      at(6, 10) + "invalid proxy 'socks5://p:1080' (expected http://[user:password@]host[:port])");
  // A proxy's password never appears in an error.
  EXPECT_EQ(agentError(kAgentMin + "  proxy: https://user:s3cret@p:1080\n"),
            at(6, 10) +
                "invalid proxy 'https://***@p:1080' (expected "
                "http://[user:password@]host[:port])");
  EXPECT_EQ(hubError(kHubMin + "  max_token_lifetime: 10s\n"),
            at(5, 23) + "max_token_lifetime must be >= 60s");
  EXPECT_EQ(agentError(kAgentMin + "  keepalive: 10s\n  keepalive_timeout: 5s\n"),
            at(7, 22) + "keepalive_timeout must not be shorter than keepalive");
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

TEST_F(ConfigTest, DaemonUsersAliasesAndListenErrors) {
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
            at(7, 14) + "user name must be 1..255 bytes without ':'");
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
  EXPECT_EQ(daemonError(kDaemonMin + "  control_socket: /" + std::string(120, 'x') + "\n"),
            at(6, 19) + "control_socket path is longer than 107 bytes");
}

TEST_F(ConfigTest, MissingRequiredKeysPointAtTheSection) {
  // The hub needs no key at all (it makes its own certificate), but cert and key go together.
  EXPECT_EQ(hubError("hub:\n  key: k\n  registry: r\n"), at(2, 8) + "key given without cert");
  EXPECT_EQ(hubError("hub: {cert: c, registry: r}\n"), at(1, 13) + "cert given without key");
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n"), at(2, 3) + "missing required key 'ca'");
  EXPECT_EQ(daemonError("daemon:\n\n    hub_url: wss://h\n    ca: c\n    key: k\n"),
            at(3, 5) + "missing required key 'policy'");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - listen: h:1\n      port: 2\n"),
            at(7, 7) + "missing required key 'device'");
}

TEST_F(ConfigTest, UnknownAndDuplicateKeys) {
  EXPECT_EQ(hubError("hub:\n  cert: c\n  listne: 1.2.3.4:5\n"),
            at(3, 3) + "unknown key 'listne' (did you mean 'listen'?)");
  // Reported before the missing keys a typo leaves behind.
  EXPECT_EQ(agentError("agent:\n  hub_url: wss://h\n  device-id: d\n"),
            at(3, 3) + "unknown key 'device-id' (did you mean 'device_id'?)");
  EXPECT_EQ(hubError("hub:\n  colour: blue\n"), at(2, 3) + "unknown key 'colour'");
  EXPECT_EQ(hubError("hubs:\n  cert: c\n"), at(1, 1) + "unknown key 'hubs' (did you mean 'hub'?)");
  EXPECT_EQ(daemonError(kDaemonMin + "  forwards:\n    - {listen: 'h:1', device: d, prot: 2}\n"),
            at(7, 34) + "unknown key 'prot' (did you mean 'port'?)");
  EXPECT_EQ(hubError(kHubMin + "  cert: again\n"), at(5, 3) + "duplicate key 'cert'");
}

// --- registry -----------------------------------------------------------------------------------

TEST_F(ConfigTest, RegistryLoads) {
  Registry r = loadRegistry(write("r.yaml", std::string("devices:\n") +
                                                "  - id: dev01\n"
                                                "    primary_key: " +
                                                kKey +
                                                "\n"
                                                "  - {id: dev02, primary_key: " +
                                                kKey + ", secondary_key: " + kKey2 +
                                                ", enabled: false}\n"
                                                "policies:\n"
                                                "  - name: service\n"
                                                "    key: " +
                                                kKey2 +
                                                "\n"
                                                "    permissions: [connect, registry-read]\n"
                                                "  - {name: admin, key: " +
                                                kKey + ", permissions: []}\n"));
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].id, "dev01");
  EXPECT_EQ(r.devices[0].primaryKey, kKey);
  EXPECT_EQ(r.devices[0].secondaryKey, "");
  EXPECT_TRUE(r.devices[0].enabled);
  EXPECT_EQ(r.devices[1].id, "dev02");
  EXPECT_EQ(r.devices[1].secondaryKey, kKey2);
  EXPECT_FALSE(r.devices[1].enabled);
  ASSERT_EQ(r.policies.size(), 2u);
  EXPECT_EQ(r.policies[0].name, "service");
  EXPECT_EQ(r.policies[0].key, kKey2);
  EXPECT_THAT(r.policies[0].permissions, ElementsAre("connect", "registry-read"));
  EXPECT_TRUE(r.policies[1].permissions.empty());
}

TEST_F(ConfigTest, EmptyRegistry) {
  Registry r = loadRegistry(write("r.yaml", ""));
  EXPECT_TRUE(r.devices.empty());
  EXPECT_TRUE(r.policies.empty());
  r = loadRegistry(write("r.yaml", "devices:\npolicies: []\n"));
  EXPECT_TRUE(r.devices.empty());
}

TEST_F(ConfigTest, RegistryErrors) {
  const std::string k(kKey);
  EXPECT_EQ(
      registryError("devices:\n  - {id: a, primary_key: " + k + "}\n  - {id: b, primary_key: " + k +
                    "}\n  - {id: a, primary_key: " + k + "}\n"),
      regAt(4, 10) + "duplicate device id 'a'");
  EXPECT_EQ(registryError("devices:\n  - id: 'dev 01'\n    primary_key: " + k + "\n"),
            regAt(2, 9) + "invalid device id 'dev 01'");
  EXPECT_EQ(registryError("devices:\n  - id: " + std::string(129, 'x') + "\n"),
            regAt(2, 9) + "invalid device id '" + std::string(129, 'x') + "'");
  EXPECT_EQ(registryError("devices:\n  - id: a\n"),
            regAt(2, 5) + "missing required key 'primary_key'");
  EXPECT_EQ(registryError("devices:\n  - {id: a, primary_key: " + k + ", enabled: yes}\n"),
            regAt(2, 61) + "expected true or false, got 'yes'");
  EXPECT_EQ(registryError("devices:\n  - {id: a, primary_key: " + k + ", secondary_key: x}\n"),
            regAt(2, 67) + "invalid key: expected base64 of at least 16 bytes");
  EXPECT_EQ(registryError("devices:\n  - {id: a, primary_key: " + k + ", primary: x}\n"),
            regAt(2, 52) + "unknown key 'primary'");
  EXPECT_EQ(registryError("devices: {}\n"), regAt(1, 10) + "expected a sequence");
  EXPECT_EQ(registryError("device: []\n"),
            regAt(1, 1) + "unknown key 'device' (did you mean 'devices'?)");
  EXPECT_EQ(registryError("policies:\n  - {name: s, key: " + k + ", permissions: [connect]}\n" +
                          "  - {name: s, key: " + k + ", permissions: [connect]}\n"),
            regAt(3, 12) + "duplicate policy name 's'");
  EXPECT_EQ(registryError("policies:\n  - {name: s, key: " + k + ", permissions: [root]}\n"),
            regAt(2, 60) +
                "unknown permission 'root' (expected connect, registry-read or registry-write)");
  EXPECT_EQ(
      registryError("policies:\n  - {name: s, key: " + k + ", permissions: [connect, connect]}\n"),
      regAt(2, 69) + "duplicate permission 'connect'");
  EXPECT_EQ(registryError("policies:\n  - {name: s, key: " + k + "}\n"),
            regAt(2, 5) + "missing required key 'permissions'");
  EXPECT_EQ(registryError("policies:\n  - {name: 's p', key: " + k + ", permissions: []}\n"),
            regAt(2, 12) + "invalid policy name 's p'");
}

// --- the shipped example ------------------------------------------------------------------------

TEST_F(ConfigTest, HubStateDirectoryAndLimits) {
  std::string file = write("hub.yaml",
                           "hub:\n  state_dir: st\n  idle_timeout: 'off'\n  max_streams: 7\n"
                           "  new_streams_per_second: 3\n  tls_names: [hub.example.net]\n");
  HubConfig c = loadHub(file);
  std::string dir = fs::path(file).parent_path().string();
  EXPECT_EQ(c.stateDir, dir + "/st");
  EXPECT_EQ(c.registry, dir + "/st/registry.db");
  EXPECT_EQ(c.idleTimeout.count(), 0);
  EXPECT_EQ(c.maxStreams, 7u);
  EXPECT_EQ(c.newStreamsPerSecond, 3u);
  EXPECT_EQ(c.tlsNames, std::vector<std::string>{"hub.example.net"});
  EXPECT_EQ(hubError("hub:\n  max_streams: 0\n"),
            at(2, 16) + "invalid count '0' (expected a positive integer)");
  EXPECT_EQ(hubError("hub:\n  idle_timeout: soon\n"), at(2, 17) + "invalid duration 'soon'");
  EXPECT_EQ(hubError("hub:\n  tls_names: []\n"),
            at(2, 14) + "tls_names must name at least one host");
}

TEST(ExampleConfig, LoadsForEveryProgramWithDefaults) {
  const std::string path = DS_TEST_DATA_DIR "/../../etc/devstreams.yaml";
  const fs::path etc = fs::absolute(fs::path(path).parent_path()).lexically_normal();

  HubConfig hub = loadHub(path);
  HubConfig hubDefaults;
  EXPECT_EQ(hub.listen, hubDefaults.listen);
  EXPECT_EQ(hub.hostname, hubDefaults.hostname);
  EXPECT_EQ(hub.publicUrl, "wss://localhost:8443");
  EXPECT_EQ(hub.cert, "");  // the hub makes its own certificate
  EXPECT_EQ(hub.stateDir, "/var/lib/devstreams");
  EXPECT_EQ(hub.registry, "/var/lib/devstreams/registry.db");
  EXPECT_EQ(hub.tlsNames, (std::vector<std::string>{"localhost", "127.0.0.1", "::1"}));
  EXPECT_EQ(hub.idleTimeout, hubDefaults.idleTimeout);
  EXPECT_EQ(hub.maxHeaderBytes, hubDefaults.maxHeaderBytes);
  EXPECT_EQ(hub.maxStreams, hubDefaults.maxStreams);
  EXPECT_EQ(hub.maxStreamsPerDevice, hubDefaults.maxStreamsPerDevice);
  EXPECT_EQ(hub.maxPendingHandshakes, hubDefaults.maxPendingHandshakes);
  EXPECT_EQ(hub.newStreamsPerSecond, hubDefaults.newStreamsPerSecond);
  EXPECT_EQ(hub.auditKeep, hubDefaults.auditKeep);
  EXPECT_EQ(hub.handshakeTimeout, hubDefaults.handshakeTimeout);
  EXPECT_EQ(hub.requestTimeout, hubDefaults.requestTimeout);
  EXPECT_EQ(hub.keepalive, hubDefaults.keepalive);
  EXPECT_EQ(hub.maxFrame, hubDefaults.maxFrame);
  EXPECT_EQ(hub.maxMessage, hubDefaults.maxMessage);
  EXPECT_EQ(hub.highWatermark, hubDefaults.highWatermark);
  EXPECT_EQ(hub.logLevel, hubDefaults.logLevel);

  AgentConfig agent = loadAgent(path);
  AgentConfig agentDefaults;
  EXPECT_EQ(agent.ca, (etc / "ca.pem").string());
  EXPECT_EQ(agent.serverName, "localhost");
  EXPECT_EQ(agent.hubHostname, hub.hostname);
  EXPECT_EQ(agent.allow, agentDefaults.allow);
  EXPECT_EQ(agent.connectTimeout, agentDefaults.connectTimeout);
  EXPECT_EQ(agent.reconnectMin, agentDefaults.reconnectMin);
  EXPECT_EQ(agent.reconnectMax, agentDefaults.reconnectMax);
  EXPECT_EQ(agent.keepalive, agentDefaults.keepalive);
  EXPECT_EQ(agent.keepaliveTimeout, agentDefaults.keepaliveTimeout);
  EXPECT_EQ(agent.maxStreams, agentDefaults.maxStreams);
  EXPECT_EQ(agent.proxy, agentDefaults.proxy);
  EXPECT_EQ(agent.highWatermark, agentDefaults.highWatermark);

  DaemonConfig daemon = loadDaemon(path);
  DaemonConfig daemonDefaults;
  EXPECT_EQ(daemon.hubHostname, hub.hostname);
  EXPECT_EQ(daemon.socksListen, daemonDefaults.socksListen);
  EXPECT_EQ(daemon.suffix, daemonDefaults.suffix);
  EXPECT_EQ(daemon.users, daemonDefaults.users);
  EXPECT_EQ(daemon.aliases, daemonDefaults.aliases);
  EXPECT_EQ(daemon.direct, daemonDefaults.direct);
  EXPECT_EQ(daemon.clientTimeout, daemonDefaults.clientTimeout);
  EXPECT_TRUE(daemon.forwards.empty());
  EXPECT_EQ(daemon.handshakeTimeout, daemonDefaults.handshakeTimeout);
  EXPECT_EQ(daemon.highWatermark, daemonDefaults.highWatermark);
}

// Every key the loaders know is shown in the example, commented out or not.
TEST(ExampleConfig, ShowsEveryKey) {
  std::ifstream in(DS_TEST_DATA_DIR "/../../etc/devstreams.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* k : {"log_level:",
                        "listen:",
                        "hostname:",
                        "public_url:",
                        "cert:",
                        "key:",
                        "registry:",
                        "state_dir:",
                        "tls_names:",
                        "bootstrap_registry:",
                        "idle_timeout:",
                        "max_header_bytes:",
                        "max_streams:",
                        "max_streams_per_device:",
                        "max_pending_handshakes:",
                        "new_streams_per_second:",
                        "audit_keep:",
                        "handshake_timeout:",
                        "request_timeout:",
                        "keepalive:",
                        "max_frame:",
                        "max_message:",
                        "high_watermark:",
                        "hub_url:",
                        "users:",
                        "client_timeout:",
                        "aliases:",
                        "direct:",
                        "control_socket:",
                        "control_group:",
                        "ca:",
                        "server_name:",
                        "hub_hostname:",
                        "device_id:",
                        "device_key:",
                        "allow:",
                        "connect_timeout:",
                        "reconnect_min:",
                        "reconnect_max:",
                        "keepalive_timeout:",
                        "proxy:",
                        "policy:",
                        "socks_listen:",
                        "suffix:",
                        "forwards:",
                        "device:",
                        "port:"}) {
    EXPECT_THAT(text, HasSubstr(k));
  }
}

}  // namespace
}  // namespace ds::config
