// A fixture for tests of configuration loading: files written into a directory of the test's
// own, the message of the Error a loader throws, and the "file:line:column: " prefix of errors.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>

#include "common/config.h"
#include "support/temp_dir.h"

namespace ds::test {

// The message of the config::Error `f` throws, or a marker when it throws none.
inline std::string configErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const config::Error& e) {
    return e.what();
  }
  return "<no error>";
}

class ConfigFiles : public ::testing::Test {
 protected:
  // Writes `text` to a file in the test's directory and returns its path.
  std::string write(const std::string& name, const std::string& text) {
    std::filesystem::path p = dir_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  static std::string errorOf(const std::function<void()>& f) { return configErrorOf(f); }

  // The message of the Error that `load` throws for `text` written to `name`.
  template <typename Load>
  std::string loadError(Load load, const std::string& text, const std::string& name = "c.yaml") {
    std::string p = write(name, text);
    return errorOf([&] { load(p); });
  }

  // The prefix every error about c.yaml (r.yaml) carries.
  std::string at(int line, int column) const { return prefix("c.yaml", line, column); }
  std::string regAt(int line, int column) const { return prefix("r.yaml", line, column); }

  TempDir tmp_{"ds-config-test"};
  std::filesystem::path dir_ = tmp_.path();

 private:
  std::string prefix(const char* name, int line, int column) const {
    return (dir_ / name).string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
           ": ";
  }
};

#ifdef DS_EXAMPLE_CONFIG
// The text of the shipped example (DS_EXAMPLE_CONFIG, etc/devstreams.yaml).
inline std::string exampleConfigText() {
  std::ifstream in(DS_EXAMPLE_CONFIG);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every one of `keys` ("name:") is shown in the example, commented out or not.
inline void expectExampleShows(std::initializer_list<const char*> keys) {
  const std::string text = exampleConfigText();
  for (const char* k : keys) EXPECT_NE(text.find(k), std::string::npos) << k;
}
#endif

// A valid 16-byte key and a longer one.
inline constexpr const char* kKey = "AAAAAAAAAAAAAAAAAAAAAA==";
inline constexpr const char* kKey2 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

}  // namespace ds::test
