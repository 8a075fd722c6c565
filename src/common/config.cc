// Configuration loading. The YAML tree is walked with its marks at hand: each mapping is checked
// against the keys it may hold before any value is read, so a typo is reported as itself rather
// than as the required key it failed to provide.
#include "common/config.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <memory>
#include <sstream>
#include <utility>

namespace ds::config {
namespace {

namespace fs = std::filesystem;

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAlnum(char c) { return isDigit(c) || isAlpha(c); }

// Parses a non-empty run of decimal digits, rejecting signs, spaces and overflow.
std::optional<uint64_t> parseUnsigned(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) return std::nullopt;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<uint16_t> parsePort(std::string_view s) {
  if (s.size() > 5) return std::nullopt;
  auto v = parseUnsigned(s);
  if (!v || *v > 65535) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

// Names and IPv4 literals; IPv6 literals go through bracketed forms instead.
bool isValidHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  return std::all_of(h.begin(), h.end(),
                     [](char c) { return isAlnum(c) || c == '.' || c == '-' || c == '_'; });
}

bool isValidIpv6(std::string_view h) {
  if (h.find('\0') != std::string_view::npos) return false;  // inet_pton would stop there
  // A zone ("fe80::1%eth0") is a local interface name, not part of the address.
  auto pct = h.find('%');
  std::string addr(h.substr(0, pct));
  if (pct != std::string_view::npos) {
    auto zone = h.substr(pct + 1);
    if (zone.empty() || !isValidHostName(zone)) return false;
  }
  in6_addr out{};
  return inet_pton(AF_INET6, addr.c_str(), &out) == 1;
}

// Splits "host[:port]" or "[v6][:port]"; `port` is left empty when absent.
bool splitHostPort(std::string_view s, std::string& host, std::string_view& port, bool& hasPort) {
  hasPort = false;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    auto inner = s.substr(1, close - 1);
    if (!isValidIpv6(inner)) return false;
    host.assign(inner);
    auto rest = s.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    hasPort = true;
    return true;
  }
  auto colon = s.find(':');
  auto name = s.substr(0, colon);
  if (!isValidHostName(name)) return false;
  host.assign(name);
  if (colon == std::string_view::npos) return true;
  port = s.substr(colon + 1);
  hasPort = true;
  return true;
}

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

std::string inQuotes(std::string_view s) { return "'" + std::string(s) + "'"; }

// A URL for a message: credentials ("user:password@") are replaced, whatever else is wrong.
std::string redactedUrl(std::string_view s) {
  size_t start = s.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  size_t end = s.find_first_of("/?#", start);
  std::string_view authority = s.substr(start, end == std::string_view::npos ? end : end - start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(s);
  return std::string(s.substr(0, start)) + "***@" + std::string(s.substr(start + at + 1));
}

// The file being read: errors name it, and relative paths in it hang off its directory.
class Context {
 public:
  explicit Context(const std::string& path) : path_(path) {
    fs::path parent = fs::path(path).parent_path();
    std::error_code ec;
    fs::path abs = parent.empty() ? fs::current_path(ec) : fs::absolute(parent, ec);
    dir_ = ec ? parent : abs;
  }

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view msg) const {
    if (mark.is_null()) fail(msg);
    throw Error(path_ + ":" + std::to_string(mark.line + 1) + ":" +
                std::to_string(mark.column + 1) + ": " + std::string(msg));
  }
  [[noreturn]] void fail(std::string_view msg) const {
    throw Error(path_ + ": " + std::string(msg));
  }

  std::string resolve(const std::string& p) const {
    fs::path fp(p);
    if (fp.is_absolute() || dir_.empty()) return fp.lexically_normal().string();
    return (dir_ / fp).lexically_normal().string();
  }

 private:
  std::string path_;
  fs::path dir_;
};

// A node with the position to blame for it. An implicit null (`key:` with nothing after it) is
// marked by yaml-cpp at the following token, so such values are blamed on their key instead.
struct Value {
  YAML::Node node;
  YAML::Mark mark;
};

Value valueOf(const YAML::Node& node, const YAML::Mark& fallback) {
  YAML::Mark m = node.Mark();
  if (node.IsNull() || m.is_null()) m = fallback;
  return {node, m};
}

// A mapping whose keys were all checked against those it may hold.
class Mapping {
 public:
  Mapping(const Context& ctx, const Value& v, std::initializer_list<std::string_view> known)
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

  const Value* find(std::string_view key) const {
    for (const auto& e : entries_) {
      if (e.name == key) return &e.value;
    }
    return nullptr;
  }

  const Value& require(std::string_view key) const {
    const Value* v = find(key);
    if (!v) ctx_.fail(mark_, "missing required key " + inQuotes(key));
    return *v;
  }

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
  if (!isValidHostName(s) && !isValidIpv6(s)) ctx.fail(v.mark, "invalid host name " + inQuotes(s));
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

// A duration where 0 (or "off") turns the feature off.
std::chrono::milliseconds durationOrOff(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a duration");
  if (s == "off") return std::chrono::milliseconds(0);
  auto d = parseDuration(s);
  if (!d) ctx.fail(v.mark, "invalid duration " + inQuotes(s));
  return *d;
}

// A positive integer count (limits).
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

Endpoint endpoint(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "an endpoint");
  auto e = parseEndpoint(s);
  if (!e) ctx.fail(v.mark, "invalid endpoint " + inQuotes(s) + " (expected host:port)");
  return *e;
}

AllowRule allowRule(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "an allow-list entry");
  auto r = parseAllowRule(s);
  if (!r) {
    ctx.fail(v.mark, "invalid allow-list entry " + inQuotes(s) +
                         " (expected host:port or host:first-last)");
  }
  return *r;
}

uint16_t port(const Context& ctx, const Value& v) {
  const std::string& s = scalar(ctx, v, "a port");
  auto p = parsePort(s);
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

Url url(const Context& ctx, const Value& v, std::initializer_list<std::string_view> schemes) {
  std::string s = nonEmpty(ctx, v);
  auto u = parseUrl(s);
  if (!u) ctx.fail(v.mark, "invalid URL " + inQuotes(redactedUrl(s)));
  if (std::find(schemes.begin(), schemes.end(), u->scheme) == schemes.end()) {
    std::string list;
    for (auto sch : schemes) list += (list.empty() ? "" : " or ") + std::string(sch);
    ctx.fail(v.mark, "unsupported URL scheme " + inQuotes(u->scheme) + " (expected " + list + ")");
  }
  return *u;
}

// An absent list is empty, and so is a key given with no value.
std::vector<Value> sequence(const Context& ctx, const Value& v) {
  std::vector<Value> out;
  if (v.node.IsNull()) return out;
  if (!v.node.IsSequence()) ctx.fail(v.mark, "expected a sequence");
  for (const auto& item : v.node) out.push_back(valueOf(item, v.mark));
  return out;
}

// Sets `out` from `key` if the mapping has it.
template <typename T, typename Read>
void readIf(const Context& ctx, const Mapping& m, std::string_view key, T& out, Read read) {
  if (const Value* v = m.find(key)) out = read(ctx, *v);
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
  size_t documents = 0;
  YAML::Mark last;
  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents;
    last = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

YAML::Node parseDocument(const Context& ctx, std::string_view text) {
  std::vector<YAML::Node> docs;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (parser.HandleNextDocument(counter)) {
      if (counter.documents > kMaxConfigDocuments) {
        ctx.fail(counter.last, "more than " + std::to_string(kMaxConfigDocuments) +
                                   " YAML documents (only one is allowed)");
      }
    }
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
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

// The top level of a configuration file, with the section a program asked for.
struct Section {
  LogLevel logLevel = LogLevel::Info;
  Value node;
};

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

}  // namespace

std::optional<LogLevel> parseLogLevel(std::string_view s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  return std::nullopt;
}

std::string_view toString(LogLevel level) {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

std::string Endpoint::toString() const {
  std::string p = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + p;
  return host + ":" + p;
}

std::optional<Endpoint> parseEndpoint(std::string_view s) {
  Endpoint e;
  std::string_view p;
  bool hasPort = false;
  if (!splitHostPort(s, e.host, p, hasPort) || !hasPort) return std::nullopt;
  auto port = parsePort(p);
  if (!port) return std::nullopt;
  e.port = *port;
  return e;
}

std::optional<AllowRule> parseAllowRule(std::string_view s) {
  AllowRule r;
  // A network, "192.168.1.0/24:80" or "[fd00::/8]:80": the prefix length stays with the host.
  std::string prefix, cut;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    size_t end = slash + 1;
    while (end < s.size() && isDigit(s[end])) ++end;
    if (end == slash + 1 || end - slash > 4) return std::nullopt;
    prefix = s.substr(slash, end - slash);
    cut = std::string(s.substr(0, slash)) + std::string(s.substr(end));
    s = cut;
  }
  std::string_view p;
  bool hasPort = false;
  if (!splitHostPort(s, r.host, p, hasPort) || !hasPort) return std::nullopt;
  if (!prefix.empty()) {
    unsigned char addr[16];
    int family = r.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
    if (inet_pton(family, r.host.c_str(), addr) != 1 ||
        std::stoul(prefix.substr(1)) > (family == AF_INET ? 32u : 128u)) {
      return std::nullopt;
    }
    r.host += prefix;
  }
  auto dash = p.find('-');
  auto first = parsePort(p.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : parsePort(p.substr(dash + 1));
  if (!first || !last || *first == 0 || *first > *last) return std::nullopt;
  r.portMin = *first;
  r.portMax = *last;
  return r;
}

bool AllowRule::matches(std::string_view h, uint16_t port) const {
  if (port < portMin || port > portMax || h.size() != host.size()) return false;
  return std::equal(h.begin(), h.end(), host.begin(), [](char a, char b) {
    return (isAlpha(a) ? (a | 0x20) : a) == (isAlpha(b) ? (b | 0x20) : b);
  });
}

std::string AllowRule::toString() const {
  std::string p = std::to_string(portMin);
  if (portMax != portMin) p += "-" + std::to_string(portMax);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + p;
  return host + ":" + p;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && isDigit(s[digits])) ++digits;
  auto n = parseUnsigned(s.substr(0, digits));
  if (!n) return std::nullopt;
  auto unit = s.substr(digits);
  uint64_t factor;
  if (unit.empty() || unit == "s") {
    factor = 1000;
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "m") {
    factor = uint64_t{60} * 1000;
  } else if (unit == "h") {
    factor = uint64_t{60} * 60 * 1000;
  } else {
    return std::nullopt;
  }
  // Capping at 2^31-1 seconds keeps every duration representable as a 32-bit count of seconds
  // and far from overflow when converted to finer clocks.
  constexpr uint64_t kMaxMs = uint64_t{std::numeric_limits<int32_t>::max()} * 1000;
  if (*n > kMaxMs / factor) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*n * factor));
}

std::optional<uint64_t> parseSize(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && isDigit(s[digits])) ++digits;
  auto n = parseUnsigned(s.substr(0, digits));
  if (!n) return std::nullopt;
  auto unit = s.substr(digits);
  unsigned shift;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  } else {
    return std::nullopt;
  }
  if (*n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return *n << shift;
}

std::optional<Url> parseUrl(std::string_view s) {
  auto sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  Url u;
  for (char c : s.substr(0, sep)) {
    if (!isAlpha(c)) return std::nullopt;
    u.scheme.push_back(static_cast<char>(c | 0x20));
  }
  uint16_t defaultPort;
  if (u.scheme == "wss" || u.scheme == "https") {
    defaultPort = 443;
  } else if (u.scheme == "ws" || u.scheme == "http") {
    defaultPort = 80;
  } else {
    return std::nullopt;
  }
  auto authority = s.substr(sep + 3);
  if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
  std::string_view p;
  bool hasPort = false;
  if (!splitHostPort(authority, u.host, p, hasPort)) return std::nullopt;
  u.port = defaultPort;
  if (hasPort) {
    auto port = parsePort(p);
    if (!port || *port == 0) return std::nullopt;
    u.port = *port;
  }
  return u;
}

bool isLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool isValidDeviceId(std::string_view id) {
  static constexpr std::string_view kSpecial = "-.%_*?!(),:=@$'";
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return isAlnum(c) || kSpecial.find(c) != std::string_view::npos;
  });
}

bool isValidPolicyName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool isValidKey(std::string_view b64) {
  if (b64.empty() || b64.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && b64[b64.size() - 1 - pad] == '=') ++pad;
  for (size_t i = 0; i < b64.size() - pad; ++i) {
    char c = b64[i];
    if (!isAlnum(c) && c != '+' && c != '/') return false;
  }
  // Unused low bits of the last symbol must be zero, or two spellings would name one key.
  if (pad > 0) {
    const char last = b64[b64.size() - 1 - pad];
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    auto bits = kAlphabet.find(last);
    if ((pad == 1 && (bits & 0x3) != 0) || (pad == 2 && (bits & 0xf) != 0)) return false;
  }
  return b64.size() / 4 * 3 - pad >= 16;
}

HubConfig parseHub(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "hub");
  Mapping m(ctx, sec.node,
            {"listen",
             "hostname",
             "public_url",
             "state_dir",
             "cert",
             "key",
             "tls_names",
             "registry",
             "bootstrap_registry",
             "handshake_timeout",
             "request_timeout",
             "keepalive",
             "idle_timeout",
             "max_frame",
             "max_message",
             "max_header_bytes",
             "high_watermark",
             "max_streams",
             "max_streams_per_device",
             "max_pending_handshakes",
             "new_streams_per_second",
             "audit_keep",
             "max_connections",
             "max_connections_per_address",
             "max_tls_handshakes",
             "max_streams_per_policy",
             "max_pending_per_policy",
             "max_token_lifetime",
             "metrics_listen",
             "metrics_token",
             "log_level"});
  HubConfig c;
  c.logLevel = sec.logLevel;
  c.stateDir = ctx.resolve(".");
  readIf(ctx, m, "state_dir", c.stateDir, path);
  while (c.stateDir.size() > 1 && (c.stateDir.ends_with("/.") || c.stateDir.back() == '/')) {
    c.stateDir.erase(c.stateDir.ends_with("/.") ? c.stateDir.size() - 2 : c.stateDir.size() - 1);
  }
  // Certificate and key come together or not at all (then the hub makes its own in state_dir).
  const Value* cert = m.find("cert");
  const Value* certKey = m.find("key");
  if (cert) c.cert = path(ctx, *cert);
  if (certKey) c.key = path(ctx, *certKey);
  if (cert && !certKey) ctx.fail(cert->mark, "cert given without key");
  if (certKey && !cert) ctx.fail(certKey->mark, "key given without cert");
  c.registry = c.stateDir + "/registry.db";
  readIf(ctx, m, "registry", c.registry, path);
  readIf(ctx, m, "bootstrap_registry", c.bootstrapRegistry, path);
  readIf(ctx, m, "listen", c.listen, endpoint);
  readIf(ctx, m, "hostname", c.hostname, hostName);
  c.tlsNames = {c.hostname, "127.0.0.1", "::1"};
  if (const Value* v = m.find("tls_names")) {
    c.tlsNames.clear();
    for (const Value& item : sequence(ctx, *v)) c.tlsNames.push_back(hostName(ctx, item));
    if (c.tlsNames.empty()) ctx.fail(v->mark, "tls_names must name at least one host");
  }
  if (const Value* v = m.find("public_url")) {
    url(ctx, *v, {"wss"});
    c.publicUrl = v->node.Scalar();
    if (c.publicUrl.back() == '/') c.publicUrl.pop_back();
  } else {
    c.publicUrl = "wss://" + Endpoint{c.hostname, c.listen.port}.toString();
  }
  readIf(ctx, m, "handshake_timeout", c.handshakeTimeout, duration);
  readIf(ctx, m, "request_timeout", c.requestTimeout, duration);
  readIf(ctx, m, "keepalive", c.keepalive, duration);
  readIf(ctx, m, "idle_timeout", c.idleTimeout, durationOrOff);
  readIf(ctx, m, "max_frame", c.maxFrame, size);
  readIf(ctx, m, "max_message", c.maxMessage, size);
  readIf(ctx, m, "max_header_bytes", c.maxHeaderBytes, size);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "max_streams", c.maxStreams, count);
  readIf(ctx, m, "max_streams_per_device", c.maxStreamsPerDevice, count);
  readIf(ctx, m, "max_pending_handshakes", c.maxPendingHandshakes, count);
  readIf(ctx, m, "new_streams_per_second", c.newStreamsPerSecond, count);
  readIf(ctx, m, "audit_keep", c.auditKeep, count);
  readIf(ctx, m, "max_connections", c.maxConnections, count);
  readIf(ctx, m, "max_connections_per_address", c.maxConnectionsPerAddress, count);
  readIf(ctx, m, "max_tls_handshakes", c.maxTlsHandshakes, count);
  readIf(ctx, m, "max_streams_per_policy", c.maxStreamsPerPolicy, count);
  readIf(ctx, m, "max_pending_per_policy", c.maxPendingPerPolicy, count);
  if (const Value* v = m.find("max_token_lifetime")) {
    c.maxTokenLifetime = std::chrono::duration_cast<std::chrono::seconds>(duration(ctx, *v));
    if (c.maxTokenLifetime.count() < 60) ctx.fail(v->mark, "max_token_lifetime must be >= 60s");
  }
  if (const Value* v = m.find("metrics_listen")) c.metricsListen = endpoint(ctx, *v);
  if (const Value* v = m.find("metrics_token")) {
    c.metricsToken = nonEmpty(ctx, *v);
    if (c.metricsToken.size() < 16)
      ctx.fail(v->mark, "metrics_token must be at least 16 characters");
  }
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

AgentConfig parseAgent(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "agent");
  Mapping m(ctx, sec.node,
            {"hub_url", "ca", "server_name", "hub_hostname", "device_id", "device_key", "allow",
             "proxy", "connect_timeout", "reconnect_min", "reconnect_max", "keepalive",
             "keepalive_timeout", "max_streams", "high_watermark", "log_level", "nameservers"});
  AgentConfig c;
  c.logLevel = sec.logLevel;
  const Value& hubUrl = m.require("hub_url");
  Url u = url(ctx, hubUrl, {"wss", "https"});
  c.hubUrl = hubUrl.node.Scalar();
  c.ca = path(ctx, m.require("ca"));
  c.deviceId = deviceId(ctx, m.require("device_id"));
  c.deviceKey = key(ctx, m.require("device_key"));
  c.serverName = u.host;
  c.hubHostname = u.host;
  readIf(ctx, m, "server_name", c.serverName, hostName);
  readIf(ctx, m, "hub_hostname", c.hubHostname, hostName);
  if (const Value* v = m.find("allow")) {
    c.allow.clear();
    for (const Value& item : sequence(ctx, *v)) c.allow.push_back(allowRule(ctx, item));
  }
  if (const Value* v = m.find("nameservers")) {
    for (const Value& item : sequence(ctx, *v)) {
      Endpoint e = endpoint(ctx, item);
      in6_addr any{};
      int family = e.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
      if (e.port == 0 || inet_pton(family, e.host.c_str(), &any) != 1) {
        ctx.fail(item.mark, "invalid name server " + inQuotes(item.node.Scalar()) +
                                " (expected an IP address and port, e.g. 127.0.0.1:53)");
      }
      c.nameservers.push_back(e);
    }
  }
  if (const Value* v = m.find("proxy")) {
    // The full syntax (credentials, percent-encoding) is checked by the hub client at start.
    c.proxy = nonEmpty(ctx, *v);
    if (!c.proxy.starts_with("http://")) {
      ctx.fail(v->mark, "invalid proxy " + inQuotes(redactedUrl(c.proxy)) +
                            " (expected http://[user:password@]host[:port])");
    }
  }
  readIf(ctx, m, "connect_timeout", c.connectTimeout, duration);
  readIf(ctx, m, "reconnect_min", c.reconnectMin, duration);
  readIf(ctx, m, "reconnect_max", c.reconnectMax, duration);
  if (c.reconnectMin > c.reconnectMax) {
    const Value* blame = m.find("reconnect_max");
    if (!blame) blame = m.find("reconnect_min");
    ctx.fail(blame->mark, "reconnect_min must not exceed reconnect_max");
  }
  readIf(ctx, m, "keepalive", c.keepalive, duration);
  if (const Value* v = m.find("keepalive_timeout")) {
    c.keepaliveTimeout = duration(ctx, *v);
    if (c.keepaliveTimeout < c.keepalive) {
      ctx.fail(v->mark, "keepalive_timeout must not be shorter than keepalive");
    }
  } else {
    // A long ping interval alone stretches the default: three intervals of silence at least.
    c.keepaliveTimeout = std::max(c.keepaliveTimeout, 3 * c.keepalive);
  }
  readIf(ctx, m, "max_streams", c.maxStreams, count);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

DaemonConfig parseDaemon(std::string_view text, const std::string& file) {
  Context ctx(file);
  Section sec = findSection(ctx, parseDocument(ctx, text), "daemon");
  Mapping m(ctx, sec.node,
            {"hub_url",
             "ca",
             "server_name",
             "hub_hostname",
             "policy",
             "key",
             "socks_listen",
             "users",
             "client_timeout",
             "suffix",
             "aliases",
             "direct",
             "control_socket",
             "control_group",
             "forwards",
             "handshake_timeout",
             "high_watermark",
             "max_clients",
             "max_clients_per_address",
             "log_level"});
  DaemonConfig c;
  c.logLevel = sec.logLevel;
  const Value& hubUrl = m.require("hub_url");
  Url u = url(ctx, hubUrl, {"https", "wss"});
  c.hubUrl = hubUrl.node.Scalar();
  c.ca = path(ctx, m.require("ca"));
  const Value& policy = m.require("policy");
  c.policy = nonEmpty(ctx, policy);
  if (!isValidPolicyName(c.policy))
    ctx.fail(policy.mark, "invalid policy name " + inQuotes(c.policy));
  c.key = key(ctx, m.require("key"));
  c.serverName = u.host;
  c.hubHostname = u.host;
  readIf(ctx, m, "server_name", c.serverName, hostName);
  readIf(ctx, m, "hub_hostname", c.hubHostname, hostName);
  const Value* listen = m.find("socks_listen");
  if (listen) c.socksListen = endpoint(ctx, *listen);
  if (const Value* v = m.find("users")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping u(ctx, item, {"name", "password"});
      User user;
      const Value& name = u.require("name");
      user.name = nonEmpty(ctx, name);
      // RFC 1929 carries each in one length byte; Basic auth cannot carry ':' in the name.
      if (user.name.size() > 255 || user.name.find(':') != std::string::npos) {
        ctx.fail(name.mark, "user name must be 1..255 bytes without ':'");
      }
      const Value& password = u.require("password");
      user.password = nonEmpty(ctx, password);
      if (user.password.size() > 255) ctx.fail(password.mark, "password must be 1..255 bytes");
      for (const User& prev : c.users) {
        if (prev.name == user.name) ctx.fail(name.mark, "duplicate user " + inQuotes(user.name));
      }
      c.users.push_back(std::move(user));
    }
  }
  if (c.users.empty() && !isLoopbackHost(c.socksListen.host)) {
    // An open proxy into every device would be one configuration slip away.
    ctx.fail(listen ? listen->mark : m.mark(),
             "socks_listen " + inQuotes(c.socksListen.toString()) +
                 " is not loopback: configure `users:` so that clients must authenticate");
  }
  readIf(ctx, m, "client_timeout", c.clientTimeout, duration);
  if (const Value* v = m.find("suffix")) {
    c.suffix = nonEmpty(ctx, *v);
    // The suffix is matched against whole DNS labels, so it must start a label of its own.
    if (c.suffix.front() != '.' || c.suffix.size() < 2 || !isValidHostName(c.suffix.substr(1))) {
      ctx.fail(v->mark, "invalid suffix " + inQuotes(c.suffix) + " (expected e.g. '.hub')");
    }
  }
  if (const Value* v = m.find("aliases")) {
    if (!v->node.IsMap()) ctx.fail(v->mark, "expected a mapping of names to {device, port}");
    for (const auto& kv : v->node) {
      Value name = valueOf(kv.first, v->mark);
      Alias a;
      a.name = nonEmpty(ctx, name);
      for (char& ch : a.name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!isValidHostName(a.name)) ctx.fail(name.mark, "invalid alias name " + inQuotes(a.name));
      for (const Alias& prev : c.aliases) {
        if (prev.name == a.name) ctx.fail(name.mark, "duplicate alias " + inQuotes(a.name));
      }
      Mapping am(ctx, valueOf(kv.second, name.mark), {"device", "port"});
      a.device = deviceId(ctx, am.require("device"));
      readIf(ctx, am, "port", a.port, port);
      c.aliases.push_back(std::move(a));
    }
  }
  readIf(ctx, m, "direct", c.direct, boolean);
  if (const Value* v = m.find("control_socket")) {
#ifdef _WIN32
    c.controlSocket = nonEmpty(ctx, *v);  // a pipe name (\\.\pipe\NAME), not a path to resolve
#else
    c.controlSocket = path(ctx, *v);
#endif
    // sockaddr_un holds 108 bytes with the terminating NUL.
    if (c.controlSocket.size() > 107) {
      ctx.fail(v->mark, "control_socket path is longer than 107 bytes");
    }
  }
  if (const Value* v = m.find("control_group")) c.controlGroup = nonEmpty(ctx, *v);
  if (const Value* v = m.find("forwards")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping f(ctx, item, {"listen", "device", "port"});
      Forward fw;
      const Value& listen = f.require("listen");
      fw.listen = endpoint(ctx, listen);
      fw.device = deviceId(ctx, f.require("device"));
      fw.port = port(ctx, f.require("port"));
      // Port 0 asks for an ephemeral port, which never collides.
      for (const Forward& prev : c.forwards) {
        if (fw.listen.port != 0 && prev.listen == fw.listen) {
          ctx.fail(listen.mark,
                   "duplicate forward listen endpoint " + inQuotes(fw.listen.toString()));
        }
      }
      c.forwards.push_back(std::move(fw));
    }
  }
  readIf(ctx, m, "handshake_timeout", c.handshakeTimeout, duration);
  readIf(ctx, m, "high_watermark", c.highWatermark, size);
  readIf(ctx, m, "max_clients", c.maxClients, count);
  readIf(ctx, m, "max_clients_per_address", c.maxClientsPerAddress, count);
  readIf(ctx, m, "log_level", c.logLevel, logLevel);
  return c;
}

Registry parseRegistry(std::string_view text, const std::string& file) {
  Context ctx(file);
  YAML::Node root = parseDocument(ctx, text);
  Registry r;
  if (root.IsNull()) return r;
  Mapping top(ctx, valueOf(root, YAML::Mark::null_mark()), {"devices", "policies"});
  if (const Value* v = top.find("devices")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping d(ctx, item, {"id", "primary_key", "secondary_key", "enabled"});
      Device dev;
      const Value& id = d.require("id");
      dev.id = deviceId(ctx, id);
      for (const Device& prev : r.devices) {
        if (prev.id == dev.id) ctx.fail(id.mark, "duplicate device id " + inQuotes(dev.id));
      }
      dev.primaryKey = key(ctx, d.require("primary_key"));
      readIf(ctx, d, "secondary_key", dev.secondaryKey, key);
      readIf(ctx, d, "enabled", dev.enabled, boolean);
      r.devices.push_back(std::move(dev));
    }
  }
  if (const Value* v = top.find("policies")) {
    for (const Value& item : sequence(ctx, *v)) {
      Mapping p(ctx, item, {"name", "key", "permissions"});
      Policy pol;
      const Value& name = p.require("name");
      pol.name = nonEmpty(ctx, name);
      if (!isValidPolicyName(pol.name))
        ctx.fail(name.mark, "invalid policy name " + inQuotes(pol.name));
      for (const Policy& prev : r.policies) {
        if (prev.name == pol.name)
          ctx.fail(name.mark, "duplicate policy name " + inQuotes(pol.name));
      }
      pol.key = key(ctx, p.require("key"));
      for (const Value& perm : sequence(ctx, p.require("permissions"))) {
        std::string s = nonEmpty(ctx, perm);
        if (s != "connect" && s != "registry-read" && s != "registry-write") {
          ctx.fail(perm.mark, "unknown permission " + inQuotes(s) +
                                  " (expected connect, registry-read or registry-write)");
        }
        if (std::find(pol.permissions.begin(), pol.permissions.end(), s) != pol.permissions.end()) {
          ctx.fail(perm.mark, "duplicate permission " + inQuotes(s));
        }
        pol.permissions.push_back(std::move(s));
      }
      r.policies.push_back(std::move(pol));
    }
  }
  return r;
}

HubConfig loadHub(const std::string& path) { return parseHub(readFile(path), path); }
AgentConfig loadAgent(const std::string& path) { return parseAgent(readFile(path), path); }
DaemonConfig loadDaemon(const std::string& path) { return parseDaemon(readFile(path), path); }
Registry loadRegistry(const std::string& path) { return parseRegistry(readFile(path), path); }

}  // namespace ds::config
