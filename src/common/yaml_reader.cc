// The YAML reader: document bounds, checked mappings, and one reader per kind of value.
#include "common/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

namespace ds::config::yaml {
namespace {

namespace fs = std::filesystem;

// Edit distance, for suggesting the intended key when an unknown one is close to a known one.
size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Bounds of a configuration document: far above any real file, far below trouble.
constexpr size_t kMaxConfigNodes = 100000;
constexpr size_t kMaxConfigDepth = 64;
constexpr size_t kMaxConfigDocuments = 16;

// Counts the documents of a YAML stream without building them. Some inputs drive yaml-cpp's
// parser to produce empty documents without end (LoadAll then grows until memory runs out), so
// the stream is first walked here with a bound.
class DocumentCounter : public YAML::EventHandler {
 public:
  explicit DocumentCounter(std::string_view text) : text_(text) {}
  size_t documents = 0;
  YAML::Mark last;
  // The first quoted scalar that does not close on its own line, if any.
  std::optional<YAML::Mark> unclosed;
  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents;
    last = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string&) override {
    // yaml-cpp closes a quoted scalar that reaches the end of the input (`key: "secret` as the
    // last line reads as "secret "), and one that misses its quote mid-file swallows the lines
    // after it. No configuration value spans lines, so a quoted one must close on its own.
    if (tag != "!" || unclosed || mark.pos < 0) return;
    const auto at = static_cast<size_t>(mark.pos);
    if (at >= text_.size() || (text_[at] != '"' && text_[at] != '\'')) return;
    const char quote = text_[at];
    for (size_t i = at + 1; i < text_.size(); ++i) {
      const char c = text_[i];
      if (c == '\n' || c == '\r') break;
      if (quote == '"' && c == '\\') {
        ++i;  // an escape: the next character is content
      } else if (c == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is a quote inside single quotes
        } else {
          return;
        }
      }
    }
    unclosed = mark;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::string_view text_;
};

}  // namespace

YAML::Node parseDocument(const Context& ctx, std::string_view text) {
  std::vector<YAML::Node> docs;
  DocumentCounter counter(text);
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(counter)) {
      if (counter.documents > kMaxConfigDocuments) {
        ctx.fail(counter.last, "more than " + std::to_string(kMaxConfigDocuments) +
                                   " YAML documents (only one is allowed)");
      }
      if (counter.unclosed) {
        ctx.fail(*counter.unclosed, "quoted value without its closing quote on the same line");
      }
    }
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // A missing quote is what makes the parser stumble further on: blame the quote.
    if (counter.unclosed && counter.unclosed->pos <= e.mark.pos) {
      ctx.fail(*counter.unclosed, "quoted value without its closing quote on the same line");
    }
    ctx.fail(e.mark, e.msg);
  }
  // An empty document, as a stray trailing `---` makes, holds nothing to lose.
  std::erase_if(docs, [](const YAML::Node& d) { return d.IsNull(); });
  if (docs.empty()) return YAML::Node();
  if (docs.size() > 1) ctx.fail(docs[1].Mark(), "only one YAML document is allowed");
  // Aliases make a graph of the tree: one that refers to itself (`a: &x [*x]`) or nests
  // aliases of aliases would make every later walk endless or exponential. A configuration
  // has no use for either, so the walk here is bounded and refuses them.
  size_t budget = kMaxConfigNodes;
  std::vector<std::pair<YAML::Node, size_t>> stack{{docs[0], 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (budget-- == 0 || depth > kMaxConfigDepth) {
      ctx.fail(node.Mark(), "the document nests too deep or refers to itself through aliases");
    }
    if (node.IsSequence() || node.IsMap()) {
      for (const auto& child : node) {
        if (node.IsMap()) {
          stack.emplace_back(child.first, depth + 1);
          stack.emplace_back(child.second, depth + 1);
        } else {
          stack.emplace_back(child, depth + 1);
        }
      }
    }
  }
  return docs[0];
}

std::string readFile(const std::string& path) {
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::string out;
  char buf[16384];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
  if (std::ferror(f.get())) throw Error(path + ": cannot read: " + std::strerror(errno));
  return out;
}

std::string inQuotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string redactedUrl(std::string_view s) {
  size_t start = s.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  size_t end = s.find_first_of("/?#", start);
  std::string_view authority = s.substr(start, end == std::string_view::npos ? end : end - start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(s);
  return std::string(s.substr(0, start)) + "***@" + std::string(s.substr(start + at + 1));
}

Context::Context(const std::string& path) : path_(path) {
  fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  fs::path abs = parent.empty() ? fs::current_path(ec) : fs::absolute(parent, ec);
  dir_ = ec ? parent : abs;
}

void Context::fail(const YAML::Mark& mark, std::string_view msg) const {
  if (mark.is_null()) fail(msg);
  throw Error(path_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) +
              ": " + std::string(msg));
}

void Context::fail(std::string_view msg) const { throw Error(path_ + ": " + std::string(msg)); }

std::string Context::resolve(const std::string& p) const {
  fs::path fp(p);
  if (fp.is_absolute() || dir_.empty()) return fp.lexically_normal().string();
  return (dir_ / fp).lexically_normal().string();
}

Value valueOf(const YAML::Node& node, const YAML::Mark& fallback) {
  YAML::Mark m = node.Mark();
  if (node.IsNull() || m.is_null()) m = fallback;
  return {node, m};
}

Mapping::Mapping(const Context& ctx, const Value& v, std::initializer_list<std::string_view> known)
    : ctx_(ctx), mark_(v.mark) {
  if (!v.node.IsMap()) ctx.fail(v.mark, "expected a mapping");
  for (const auto& kv : v.node) {
    YAML::Node k = kv.first;
    if (!k.IsScalar()) ctx.fail(valueOf(k, v.mark).mark, "expected a string key");
    const std::string& name = k.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string msg = "unknown key " + inQuotes(name);
      for (auto cand : known) {
        // Short keys get a tighter bound, or every two-letter typo would suggest `ca`.
        if (editDistance(name, cand) <= (cand.size() <= 3 ? 1u : 2u)) {
          msg += " (did you mean " + inQuotes(cand) + "?)";
          break;
        }
      }
      ctx.fail(k.Mark(), msg);
    }
    if (find(name)) ctx.fail(k.Mark(), "duplicate key " + inQuotes(name));
    entries_.push_back({name, valueOf(kv.second, k.Mark())});
  }
}

const Value* Mapping::find(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.name == key) return &e.value;
  }
  return nullptr;
}

const Value& Mapping::require(std::string_view key) const {
  const Value* v = find(key);
  if (!v) ctx_.fail(mark_, "missing required key " + inQuotes(key));
  return *v;
}

const std::string& scalar(const Context& ctx, const Value& v, std::string_view what) {
  if (!v.node.IsScalar()) ctx.fail(v.mark, "expected " + std::string(what));
  return v.node.Scalar();
}

std::string nonEmpty(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a string");
  if (s.empty()) ctx.fail(v.mark, "must not be empty");
  return s;
}

std::string path(const Context& ctx, const Value& v) { return ctx.resolve(nonEmpty(ctx, v)); }

std::string hostName(const Context& ctx, const Value& v) {
  std::string s = nonEmpty(ctx, v);
  if (!net::isValidHostName(s) && !net::isValidIpv6(s))
    ctx.fail(v.mark, "invalid host name " + inQuotes(s));
  return s;
}

std::string key(const Context& ctx, const Value& v) {
  std::string s = nonEmpty(ctx, v);
  if (!isValidKey(s)) ctx.fail(v.mark, "invalid key: expected base64 of at least 16 bytes");
  return s;
}

std::string deviceId(const Context& ctx, const Value& v) {
  std::string s = nonEmpty(ctx, v);
  if (!isValidDeviceId(s)) ctx.fail(v.mark, "invalid device id " + inQuotes(s));
  return s;
}

std::chrono::milliseconds duration(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a duration");
  auto d = parseDuration(s);
  if (!d) ctx.fail(v.mark, "invalid duration " + inQuotes(s));
  if (d->count() == 0) ctx.fail(v.mark, "duration must be positive");
  return *d;
}

std::chrono::milliseconds durationOrOff(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a duration");
  if (s == "off") return std::chrono::milliseconds(0);
  auto d = parseDuration(s);
  if (!d) ctx.fail(v.mark, "invalid duration " + inQuotes(s));
  return *d;
}

uint64_t count(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a positive integer");
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p != s.data() + s.size() || n == 0 || n > (uint64_t{1} << 40)) {
    ctx.fail(v.mark, "invalid count " + inQuotes(s) + " (expected a positive integer)");
  }
  return n;
}

uint64_t size(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a size");
  auto n = parseSize(s);
  if (!n) ctx.fail(v.mark, "invalid size " + inQuotes(s));
  if (*n == 0) ctx.fail(v.mark, "size must be positive");
  return *n;
}

net::Endpoint endpoint(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "an endpoint");
  auto e = net::parseEndpoint(s);
  if (!e) ctx.fail(v.mark, "invalid endpoint " + inQuotes(s) + " (expected host:port)");
  return *e;
}

uint16_t port(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a port");
  auto p = net::parsePort(s);
  if (!p || *p == 0) ctx.fail(v.mark, "invalid port " + inQuotes(s) + " (expected 1..65535)");
  return *p;
}

bool boolean(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "true or false");
  if (s == "true") return true;
  if (s == "false") return false;
  ctx.fail(v.mark, "expected true or false, got " + inQuotes(s));
}

LogLevel logLevel(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a log level");
  auto l = parseLogLevel(s);
  if (!l)
    ctx.fail(v.mark, "invalid log level " + inQuotes(s) + " (expected debug, info, warn or error)");
  return *l;
}

net::Url url(const Context& ctx, const Value& v, std::initializer_list<std::string_view> schemes) {
  std::string s = nonEmpty(ctx, v);
  auto u = net::parseUrl(s);
  if (!u) ctx.fail(v.mark, "invalid URL " + inQuotes(redactedUrl(s)));
  if (std::find(schemes.begin(), schemes.end(), u->scheme) == schemes.end()) {
    std::string list;
    for (auto sch : schemes) list += (list.empty() ? "" : " or ") + std::string(sch);
    ctx.fail(v.mark, "unsupported URL scheme " + inQuotes(u->scheme) + " (expected " + list + ")");
  }
  return *u;
}

std::vector<Value> sequence(const Context& ctx, const Value& v) {
  std::vector<Value> out;
  if (v.node.IsNull()) return out;
  if (!v.node.IsSequence()) ctx.fail(v.mark, "expected a sequence");
  for (const auto& item : v.node) out.push_back(valueOf(item, v.mark));
  return out;
}

Section findSection(const Context& ctx, const YAML::Node& root, std::string_view name) {
  if (root.IsNull()) ctx.fail("missing section " + inQuotes(std::string(name) + ":"));
  Mapping top(ctx, valueOf(root, YAML::Mark::null_mark()), {"log_level", "hub", "agent", "daemon"});
  Section out;
  readIf(ctx, top, "log_level", out.logLevel, logLevel);
  const Value* s = top.find(name);
  if (!s) ctx.fail("missing section " + inQuotes(std::string(name) + ":"));
  out.node = *s;
  return out;
}

}  // namespace ds::config::yaml
