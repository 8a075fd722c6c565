// Tests for the hub's start-up (hub/bootstrap.h): the seed file is imported into an empty
// registry only, a bad seed is an error naming its file and line, and the hub's own CA is made
// once and kept (its fingerprint does not change across starts).
#include "hub/bootstrap.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace ds::hub {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kKey[] = "MDEyMzQ1Njc4OWFiY2RlZg==";

class BootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_.stateDir = dir_.path().string();
    cfg_.registry = dir_ / "registry.db";
    cfg_.bootstrapRegistry = dir_ / "seed.yaml";
    cfg_.tlsNames = {"127.0.0.1"};
  }
  void seed(const std::string& yaml) { std::ofstream(cfg_.bootstrapRegistry) << yaml; }

  test::TempDir dir_{"ds-bootstrap-test"};
  config::HubConfig cfg_;
};

TEST_F(BootstrapTest, SeedGoesIntoAnEmptyRegistryOnly) {
  seed(std::string("devices:\n  - id: dev01\n    primary_key: \"") + kKey +
       "\"\npolicies:\n  - name: service\n    key: \"" + kKey + "\"\n    permissions: [connect]\n");
  std::string err;
  auto first = openRegistry(cfg_, err);
  ASSERT_TRUE(first) << err;
  ASSERT_TRUE(first->device("dev01"));
  EXPECT_EQ(first->device("dev01")->primaryKey, kKey);
  ASSERT_TRUE(first->policy("service"));
  EXPECT_TRUE(first->policy("service")->allows("connect"));
  ASSERT_EQ(first->removeDevice("dev01"), DbResult::Ok);
  first.reset();
  // The registry still holds the policy: the seed is not imported again.
  auto second = openRegistry(cfg_, err);
  ASSERT_TRUE(second) << err;
  EXPECT_FALSE(second->device("dev01"));
}

TEST_F(BootstrapTest, NoSeedFileConfiguredLeavesTheRegistryEmpty) {
  cfg_.bootstrapRegistry.clear();
  std::string err;
  auto r = openRegistry(cfg_, err);
  ASSERT_TRUE(r) << err;
  EXPECT_TRUE(r->empty());
}

TEST_F(BootstrapTest, BadSeedIsAnErrorNamingTheFile) {
  seed("devices:\n  - id: dev01\n    colour: red\n");
  std::string err;
  EXPECT_FALSE(openRegistry(cfg_, err));
  EXPECT_THAT(err, HasSubstr(cfg_.bootstrapRegistry));
  EXPECT_THAT(err, HasSubstr("colour"));
}

TEST_F(BootstrapTest, OwnCaIsMadeOnceAndKept) {
  std::string fingerprint, err;
  SslCtxPtr first = serverTls(cfg_, fingerprint, err);
  ASSERT_TRUE(first) << err;
  EXPECT_FALSE(fingerprint.empty());
  EXPECT_TRUE(fs::exists(dir_.path() / "ca.crt"));
  std::string again;
  SslCtxPtr second = serverTls(cfg_, again, err);
  ASSERT_TRUE(second) << err;
  EXPECT_EQ(again, fingerprint);
}

TEST_F(BootstrapTest, ConfiguredCertificateThatIsMissingIsAnError) {
  cfg_.cert = dir_ / "missing.crt";
  cfg_.key = dir_ / "missing.key";
  std::string fingerprint, err;
  EXPECT_FALSE(serverTls(cfg_, fingerprint, err));
  EXPECT_FALSE(err.empty());
  EXPECT_TRUE(fingerprint.empty());
  EXPECT_FALSE(fs::exists(dir_.path() / "ca.crt"));
}

}  // namespace
}  // namespace ds::hub
