// Tests of the configuration values every program's settings share: durations, sizes, log levels,
// and the syntax of device ids, policy names and keys.
#include "common/config.h"

#include <gtest/gtest.h>

#include <string>

#include "support/config_files.h"

namespace ds::config {
namespace {

using std::chrono::milliseconds;

using test::kKey;
using test::kKey2;

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

TEST(ParseLogLevel, Table) {
  const std::pair<std::string_view, std::optional<LogLevel>> cases[] = {
      {"debug", LogLevel::Debug}, {"info", LogLevel::Info}, {"warn", LogLevel::Warn},
      {"error", LogLevel::Error}, {"INFO", std::nullopt},   {"warning", std::nullopt},
      {"", std::nullopt}};
  for (const auto& [in, out] : cases) EXPECT_EQ(parseLogLevel(in), out) << in;
  for (auto l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    EXPECT_EQ(parseLogLevel(toString(l)), l);
  }
}

TEST(IsValidDeviceId, Table) {
  for (const std::string& ok : {std::string("dev01"), std::string("a"),
                                std::string("-.%_*?!(),:=@$'"), std::string(128, 'x')}) {
    EXPECT_TRUE(isValidDeviceId(ok)) << ok;
  }
  for (const std::string& bad :
       {std::string(129, 'x'), std::string(), std::string("dev 01"), std::string("dev/01"),
        std::string("dev#01"), std::string("dev+01"), std::string("d\xc3\xa9v"),
        std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidDeviceId(bad)) << bad;
  }
}

TEST(IsValidPolicyName, Table) {
  for (const std::string& ok :
       {std::string("service"), std::string("iothub_owner-2.x"), std::string(64, 'p')}) {
    EXPECT_TRUE(isValidPolicyName(ok)) << ok;
  }
  for (const std::string& bad :
       {std::string(65, 'p'), std::string(), std::string("a b"), std::string("a&b")}) {
    EXPECT_FALSE(isValidPolicyName(bad)) << bad;
  }
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

}  // namespace
}  // namespace ds::config
