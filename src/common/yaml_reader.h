// Reading a configuration file: the YAML walked with its marks at hand, so that every error
// names the file and, where a position is known, its 1-based line and column. Each mapping is
// checked against the keys it may hold before any value is read, so a typo is reported as itself
// rather than as the required key it failed to provide. The programs' settings
// (src/<program>/settings.cc) are written with these pieces; everything here throws Error.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/net.h"

namespace ds::config::yaml {

// The file being read: errors name it, and relative paths in it hang off its directory.
class Context {
 public:
  explicit Context(const std::string& path);

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view msg) const;
  [[noreturn]] void fail(std::string_view msg) const;

  std::string resolve(const std::string& p) const;

 private:
  std::string path_;
  std::filesystem::path dir_;
};

// A node with the position to blame for it. An implicit null (`key:` with nothing after it) is
// marked by yaml-cpp at the following token, so such values are blamed on their key instead.
struct Value {
  YAML::Node node;
  YAML::Mark mark;
};

Value valueOf(const YAML::Node& node, const YAML::Mark& fallback);

// A mapping whose keys were all checked against those it may hold: an unknown key fails (with
// the closest known one as a suggestion), and so does a duplicate.
class Mapping {
 public:
  Mapping(const Context& ctx, const Value& v, std::initializer_list<std::string_view> known);

  const Value* find(std::string_view key) const;
  const Value& require(std::string_view key) const;
  const YAML::Mark& mark() const { return mark_; }

 private:
  struct Entry {
    std::string name;
    Value value;
  };
  const Context& ctx_;
  YAML::Mark mark_;
  std::vector<Entry> entries_;
};

// The whole file, or the document in `text`: at most one non-empty YAML document, without
// self-referring or deeply nested aliases. An empty file gives a null node.
std::string readFile(const std::string& path);
YAML::Node parseDocument(const Context& ctx, std::string_view text);

// The top level of a configuration file (`log_level:`, `hub:`, `agent:`, `daemon:`), with the
// section a program asked for. Only that section is read further.
struct Section {
  LogLevel logLevel = LogLevel::Info;
  Value node;
};
Section findSection(const Context& ctx, const YAML::Node& root, std::string_view name);

// 's' in single quotes, for messages.
std::string inQuotes(std::string_view s);
// A URL for a message: credentials ("user:password@") are replaced, whatever else is wrong.
std::string redactedUrl(std::string_view s);

// Readers of one value each, failing with the value's position.
const std::string& scalar(const Context& ctx, const Value& v, std::string_view what);
std::string nonEmpty(const Context& ctx, const Value& v);
std::string path(const Context& ctx, const Value& v);  // resolved against the file's directory
std::string hostName(const Context& ctx, const Value& v);
std::string key(const Context& ctx, const Value& v);
std::string deviceId(const Context& ctx, const Value& v);
std::chrono::milliseconds duration(const Context& ctx, const Value& v);
// A duration where 0 (or "off") turns the feature off.
std::chrono::milliseconds durationOrOff(const Context& ctx, const Value& v);
// A positive integer count (limits).
uint64_t count(const Context& ctx, const Value& v);
uint64_t size(const Context& ctx, const Value& v);
net::Endpoint endpoint(const Context& ctx, const Value& v);
uint16_t port(const Context& ctx, const Value& v);
bool boolean(const Context& ctx, const Value& v);
LogLevel logLevel(const Context& ctx, const Value& v);
net::Url url(const Context& ctx, const Value& v, std::initializer_list<std::string_view> schemes);
// An absent list is empty, and so is a key given with no value.
std::vector<Value> sequence(const Context& ctx, const Value& v);

// Sets `out` from `key` if the mapping has it.
template <typename T, typename Read>
void readIf(const Context& ctx, const Mapping& m, std::string_view key, T& out, Read read) {
  if (const Value* v = m.find(key)) out = read(ctx, *v);
}

}  // namespace ds::config::yaml
