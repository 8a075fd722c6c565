// Tests of the YAML reader on its own: the document bounds, checked mappings and the readers of
// values, each error with the file:line:column it blames. The programs' sections are tested with
// their settings (tests/<program>/*_settings_test.cc).
#include "common/yaml_reader.h"

#include <gtest/gtest.h>

#include <string>

#include "support/config_files.h"

namespace ds::config::yaml {
namespace {

using test::configErrorOf;

// The top-level mapping of `text`, checked against `known`.
std::string mappingError(const std::string& text, std::initializer_list<std::string_view> known) {
  return configErrorOf([&] {
    Context ctx("/etc/t.yaml");
    Mapping m(ctx, valueOf(parseDocument(ctx, text), YAML::Mark::null_mark()), known);
  });
}

// The value of `key: <text>` read with `read`.
template <typename Read>
std::string valueError(const std::string& text, Read read) {
  return configErrorOf([&] {
    Context ctx("/etc/t.yaml");
    Mapping m(ctx, valueOf(parseDocument(ctx, "key: " + text + "\n"), YAML::Mark::null_mark()),
              {"key"});
    read(ctx, m.require("key"));
  });
}

TEST(YamlReader, UnknownKeysSuggestTheClosestKnownOne) {
  EXPECT_EQ(mappingError("listne: 1\n", {"listen", "ca"}),
            "/etc/t.yaml:1:1: unknown key 'listne' (did you mean 'listen'?)");
  // Short keys get a tighter bound: one edit, not two.
  EXPECT_EQ(mappingError("cx: 1\n", {"listen", "ca"}),
            "/etc/t.yaml:1:1: unknown key 'cx' (did you mean 'ca'?)");
  EXPECT_EQ(mappingError("xy: 1\n", {"listen", "ca"}), "/etc/t.yaml:1:1: unknown key 'xy'");
  EXPECT_EQ(mappingError("a: 1\nb: 2\na: 3\n", {"a", "b"}), "/etc/t.yaml:3:1: duplicate key 'a'");
  EXPECT_EQ(mappingError("[a]: 1\n", {"a"}), "/etc/t.yaml:1:1: expected a string key");
  EXPECT_EQ(mappingError("- a\n", {"a"}), "/etc/t.yaml:1:1: expected a mapping");
}

TEST(YamlReader, RequiredKeysAreBlamedOnTheirMapping) {
  EXPECT_EQ(configErrorOf([] {
              Context ctx("/etc/t.yaml");
              YAML::Node root = parseDocument(ctx, "\n  a: 1\n");
              Mapping(ctx, valueOf(root, YAML::Mark::null_mark()), {"a", "b"}).require("b");
            }),
            "/etc/t.yaml:2:3: missing required key 'b'");
}

TEST(YamlReader, QuotedValuesCloseOnTheirLine) {
  Context ctx("/etc/t.yaml");
  // yaml-cpp would read these as "secret " and as a value running over the next line.
  EXPECT_EQ(configErrorOf([&] { parseDocument(ctx, "a: 1\nb: \"secret\n"); }),
            "/etc/t.yaml:2:4: quoted value without its closing quote on the same line");
  EXPECT_EQ(configErrorOf([&] { parseDocument(ctx, "a: 'x\nb: 2\nc: 'y'\n"); }),
            "/etc/t.yaml:1:4: quoted value without its closing quote on the same line");
  EXPECT_EQ(configErrorOf([&] { parseDocument(ctx, "a: \"x\nb: 2\n"); }),
            "/etc/t.yaml:1:4: quoted value without its closing quote on the same line");
  // Escaped and doubled quotes are content; quoted keys and flow items close too.
  EXPECT_EQ(parseDocument(ctx, "a: \"q\\\"x\"\n")["a"].as<std::string>(), "q\"x");
  EXPECT_EQ(parseDocument(ctx, "a: 'it''s'\n")["a"].as<std::string>(), "it's");
  EXPECT_EQ(parseDocument(ctx, "\"k\": [\"a\", 'b']\n")["k"][1].as<std::string>(), "b");
  EXPECT_EQ(parseDocument(ctx, "a: don't\n")["a"].as<std::string>(), "don't");
}

TEST(YamlReader, DocumentsAreBounded) {
  Context ctx("/etc/t.yaml");
  EXPECT_TRUE(parseDocument(ctx, "").IsNull());
  EXPECT_TRUE(parseDocument(ctx, "---\n---\n").IsNull());
  EXPECT_EQ(configErrorOf([&] { parseDocument(ctx, "a: 1\n---\nb: 2\n"); }),
            "/etc/t.yaml:3:1: only one YAML document is allowed");
  std::string many;
  for (int i = 0; i < 17; ++i) many += "--- x\n";
  EXPECT_EQ(configErrorOf([&] { parseDocument(ctx, many); }),
            "/etc/t.yaml:17:1: more than 16 YAML documents (only one is allowed)");
  EXPECT_NE(configErrorOf([&] { parseDocument(ctx, "a: &x [*x]\n"); }).find("refers to itself"),
            std::string::npos);
}

TEST(YamlReader, ReadersOfValues) {
  EXPECT_EQ(valueError("0", count),
            "/etc/t.yaml:1:6: invalid count '0' (expected a positive integer)");
  EXPECT_EQ(valueError("1099511627777", count),
            "/etc/t.yaml:1:6: invalid count '1099511627777' (expected a positive integer)");
  EXPECT_EQ(valueError("1099511627776", count), "<no error>");
  EXPECT_EQ(valueError("0", port), "/etc/t.yaml:1:6: invalid port '0' (expected 1..65535)");
  EXPECT_EQ(valueError("yes", boolean), "/etc/t.yaml:1:6: expected true or false, got 'yes'");
  EXPECT_EQ(valueError("'off'", durationOrOff), "<no error>");
  EXPECT_EQ(valueError("'off'", duration), "/etc/t.yaml:1:6: invalid duration 'off'");
  EXPECT_EQ(valueError("[]", nonEmpty), "/etc/t.yaml:1:6: expected a string");
  // A key with no value is blamed on the key, not on what follows.
  EXPECT_EQ(valueError("", nonEmpty), "/etc/t.yaml:1:1: expected a string");
  auto wss = [](const Context& ctx, const Value& v) { return url(ctx, v, {"wss"}); };
  EXPECT_EQ(valueError("https://u:secret@h", wss), "/etc/t.yaml:1:6: invalid URL 'https://***@h'");
  EXPECT_EQ(valueError("https://h", wss),
            "/etc/t.yaml:1:6: unsupported URL scheme 'https' (expected wss)");
}

TEST(YamlReader, RelativePathsHangOffTheFilesDirectory) {
  Context ctx("/etc/devstreams/c.yaml");
  EXPECT_EQ(ctx.resolve("ca.pem"), "/etc/devstreams/ca.pem");
  EXPECT_EQ(ctx.resolve("../pki/./k.pem"), "/etc/pki/k.pem");
  EXPECT_EQ(ctx.resolve("/abs/x"), "/abs/x");
}

}  // namespace
}  // namespace ds::config::yaml
