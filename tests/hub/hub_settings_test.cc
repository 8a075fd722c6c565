// Tests of the hub's settings and the registry seed: defaults, path resolution, and the exact
// "file:line:column: message" of every kind of error, the YAML reader's own included.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "hub/settings.h"
#include "support/config_files.h"

namespace ds::config {
namespace {

namespace fs = std::filesystem;
using net::Endpoint;
using std::chrono::milliseconds;
using test::kKey;
using test::kKey2;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class HubConfigTest : public test::ConfigFiles {
 protected:
  std::string hubError(const std::string& text) { return loadError(loadHub, text); }
  std::string registryError(const std::string& text) {
    return loadError(loadRegistrySeed, text, "r.yaml");
  }
};

const std::string kHubMin = "hub:\n  cert: c.pem\n  key: k.pem\n  registry: r.yaml\n";

TEST_F(HubConfigTest, HubDefaults) {
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
  EXPECT_EQ(c.streamMemory, 1u << 30);
  EXPECT_TRUE(c.multiplex);
  EXPECT_EQ(c.logLevel, LogLevel::Info);
}

TEST_F(HubConfigTest, HubAllKeys) {
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
                              "  high_watermark: 1000\n"
                              "  stream_memory: 256MiB\n"
                              "  multiplex: false\n"));
  EXPECT_FALSE(c.multiplex);
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
  EXPECT_EQ(c.streamMemory, 256u << 20);
  EXPECT_EQ(c.logLevel, LogLevel::Warn);
}

TEST_F(HubConfigTest, HubPublicUrlFollowsHostnameAndPort) {
  HubConfig c =
      loadHub(write("c.yaml", kHubMin + "  listen: 0.0.0.0:9000\n  hostname: h.example\n"));
  EXPECT_EQ(c.publicUrl, "wss://h.example:9000");
  c = loadHub(write("c.yaml", kHubMin + "  hostname: '::1'\n"));
  EXPECT_EQ(c.publicUrl, "wss://[::1]:8443");
}

TEST_F(HubConfigTest, RelativePathsFollowTheFileNotTheWorkingDirectory) {
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

TEST_F(HubConfigTest, SectionLogLevelOverridesTopLevel) {
  EXPECT_EQ(loadHub(write("c.yaml", "log_level: debug\n" + kHubMin)).logLevel, LogLevel::Debug);
  EXPECT_EQ(
      loadHub(write("c.yaml", "log_level: debug\n" + kHubMin + "  log_level: error\n")).logLevel,
      LogLevel::Error);
}

TEST_F(HubConfigTest, OtherProgramsSectionsAreNotValidated) {
  std::string p = write("c.yaml", kHubMin + "agent:\n  no_such_key: 1\ndaemon: 7\n");
  EXPECT_NO_THROW(loadHub(p));
}

TEST_F(HubConfigTest, ParseFromMemory) {
  HubConfig c = parseHub(kHubMin, "/etc/devstreams/devstreams.yaml");
  EXPECT_EQ(c.cert, "/etc/devstreams/c.pem");
  EXPECT_EQ(errorOf([] { parseHub("hub: [", "mem"); }), "mem:1:1: end of sequence flow not found");
}

TEST_F(HubConfigTest, UnreadableFile) {
  std::string missing = (dir_ / "missing.yaml").string();
  EXPECT_EQ(errorOf([&] { loadHub(missing); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(errorOf([&] { loadRegistrySeed(missing); }),
            missing + ": cannot open: No such file or directory");
}

// Aliases that refer to themselves, or nest far too deep, are refused instead of walked forever.
TEST_F(HubConfigTest, SelfReferringAndDeepDocumentsAreRefused) {
  EXPECT_THAT(hubError("hub: &a\n  x: *a\n"),
              ::testing::HasSubstr("nests too deep or refers to itself through aliases"));
  std::string deep = "hub:\n  x: " + std::string(100, '[') + std::string(100, ']') + "\n";
  EXPECT_THAT(hubError(deep), ::testing::HasSubstr("nests too deep"));
}

TEST_F(HubConfigTest, SyntaxErrors) {
  EXPECT_EQ(hubError("hub:\n  cert: a\n   key: b\n"), at(3, 7) + "illegal map value");
  EXPECT_EQ(hubError("hub:\n  cert: a\n  - b\n"), at(3, 3) + "end of map not found");
  EXPECT_EQ(hubError(kHubMin + "---\nhub: {}\n"), at(6, 1) + "only one YAML document is allowed");
  EXPECT_NO_THROW(loadHub(write("c.yaml", "---\n" + kHubMin + "---\n")));
}

TEST_F(HubConfigTest, MissingSectionNamesTheFile) {
  std::string file = (dir_ / "c.yaml").string();
  EXPECT_EQ(hubError("# only a comment\n"), file + ": missing section 'hub:'");
}

TEST_F(HubConfigTest, WrongTypes) {
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
  EXPECT_EQ(hubError("hub:\n  [a]: 1\n"), at(2, 3) + "expected a string key");
}

TEST_F(HubConfigTest, BadValues) {
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
  EXPECT_EQ(hubError(kHubMin + "  max_token_lifetime: 10s\n"),
            at(5, 23) + "max_token_lifetime must be >= 60s");
}

TEST_F(HubConfigTest, MissingRequiredKeysPointAtTheSection) {
  // The hub needs no key at all (it makes its own certificate), but cert and key go together.
  EXPECT_EQ(hubError("hub:\n  key: k\n  registry: r\n"), at(2, 8) + "key given without cert");
  EXPECT_EQ(hubError("hub: {cert: c, registry: r}\n"), at(1, 13) + "cert given without key");
}

TEST_F(HubConfigTest, UnknownAndDuplicateKeys) {
  EXPECT_EQ(hubError("hub:\n  cert: c\n  listne: 1.2.3.4:5\n"),
            at(3, 3) + "unknown key 'listne' (did you mean 'listen'?)");
  EXPECT_EQ(hubError("hub:\n  colour: blue\n"), at(2, 3) + "unknown key 'colour'");
  EXPECT_EQ(hubError("hubs:\n  cert: c\n"), at(1, 1) + "unknown key 'hubs' (did you mean 'hub'?)");
  EXPECT_EQ(hubError(kHubMin + "  cert: again\n"), at(5, 3) + "duplicate key 'cert'");
}

TEST_F(HubConfigTest, RegistryLoads) {
  RegistrySeed r =
      loadRegistrySeed(write("r.yaml", std::string("devices:\n") +
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
  EXPECT_TRUE(r.policies[0].devices.empty());  // no `devices:`: every device
}

TEST_F(HubConfigTest, RegistryPolicyDevices) {
  RegistrySeed r = loadRegistrySeed(
      write("r.yaml", std::string("policies:\n  - name: acme\n    key: ") + kKey +
                          "\n    permissions: [connect]\n    devices: [\"acme-*\", dev01, "
                          "\"lab-?\"]\n"));
  ASSERT_EQ(r.policies.size(), 1u);
  EXPECT_THAT(r.policies[0].devices, ElementsAre("acme-*", "dev01", "lab-?"));
}

TEST_F(HubConfigTest, EmptyRegistry) {
  RegistrySeed r = loadRegistrySeed(write("r.yaml", ""));
  EXPECT_TRUE(r.devices.empty());
  EXPECT_TRUE(r.policies.empty());
  r = loadRegistrySeed(write("r.yaml", "devices:\npolicies: []\n"));
  EXPECT_TRUE(r.devices.empty());
}

TEST_F(HubConfigTest, RegistryErrors) {
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
  const std::string pol =
      "policies:\n  - name: s\n    key: " + k + "\n    permissions: [connect]\n    devices: ";
  EXPECT_EQ(
      registryError(pol + "[dev01, 'dev 02']\n"),
      regAt(5, 22) +
          "invalid device pattern 'dev 02' (a device id, '*' and '?' matching any characters)");
  EXPECT_EQ(registryError(pol + "[dev01, 'acme-*', 'acme-*']\n"),
            regAt(5, 32) + "duplicate device pattern 'acme-*'");
  EXPECT_EQ(registryError(pol + "[]\n"),
            regAt(5, 14) + "devices must name at least one device (leave it out for all)");
  EXPECT_EQ(registryError(pol + "dev01\n"), regAt(5, 14) + "expected a sequence");
  EXPECT_EQ(registryError(pol + "['']\n"), regAt(5, 15) + "must not be empty");
}

TEST_F(HubConfigTest, HubStateDirectoryAndLimits) {
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

// --- the shipped example ------------------------------------------------------------------------

TEST(ExampleConfig, LoadsForTheHubWithDefaults) {
  HubConfig hub = loadHub(DS_EXAMPLE_CONFIG);
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
}

// Every key the hub's loader knows is shown in the example, commented out or not.
TEST(ExampleConfig, ShowsEveryHubKey) {
  test::expectExampleShows({"log_level:",
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
                            "multiplex:",
                            "permissions:",
                            "devices: ["});
}

}  // namespace
}  // namespace ds::config
