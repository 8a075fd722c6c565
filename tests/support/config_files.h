// A fixture for tests of configuration loading: files written into a directory of the test's
// own, the message of the Error a loader throws, and the "file:line:column: " prefix of errors.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "common/config.h"

namespace ds::test {

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ds-config-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to a file in the test's directory and returns its path.
  std::string write(const std::string& name, const std::string& text) {
    std::filesystem::path p = dir_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  // The message of the Error `f` throws, or a marker when it throws none.
  static std::string errorOf(const std::function<void()>& f) {
    try {
      f();
    } catch (const config::Error& e) {
      return e.what();
    }
    return "<no error>";
  }

  // The message of the Error that `load` throws for `text` written to `name`.
  template <typename Load>
  std::string loadError(Load load, const std::string& text, const std::string& name = "c.yaml") {
    std::string p = write(name, text);
    return errorOf([&] { load(p); });
  }

  // The prefix every error about c.yaml (r.yaml) carries.
  std::string at(int line, int column) const { return prefix("c.yaml", line, column); }
  std::string regAt(int line, int column) const { return prefix("r.yaml", line, column); }

  std::filesystem::path dir_;

 private:
  std::string prefix(const char* name, int line, int column) const {
    return (dir_ / name).string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
           ": ";
  }
};

// The text of the shipped example (DS_EXAMPLE_CONFIG, etc/devstreams.yaml).
inline std::string exampleConfigText() {
  std::ifstream in(DS_EXAMPLE_CONFIG);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A valid 16-byte key and a longer one.
inline constexpr const char* kKey = "AAAAAAAAAAAAAAAAAAAAAA==";
inline constexpr const char* kKey2 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

}  // namespace ds::test
