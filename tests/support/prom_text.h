// Strict parser of the Prometheus text exposition format 0.0.4, for tests that check what the
// programs serve on GET /metrics. Header-only; names are checked with common/metrics.h's
// isMetricName() and isLabelName(), whose grammar metrics_test checks on its own.
//
// Beyond the format itself it insists on what devstreams' renderer guarantees: every family opens
// with # HELP then # TYPE (counter, gauge, histogram or untyped) before its samples, a family
// appears once, its samples are contiguous and carry its name (histograms: name_bucket with le,
// name_sum, name_count), no series repeats, and each histogram series has cumulative buckets with
// increasing le ending in le="+Inf" equal to its _count, plus a _sum. No blanks inside {...}.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/metrics.h"

namespace ds::test {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name, help, type;
  std::vector<Sample> samples;
};

namespace prom_text_detail {

using metrics::isLabelName;
using metrics::isMetricName;

inline bool isDigit(char c) { return c >= '0' && c <= '9'; }

// A sample value: decimal float syntax, or Inf, +Inf, -Inf, NaN.
inline bool parseNumber(std::string_view s, double& v) {
  if (s == "+Inf" || s == "Inf") {
    v = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    v = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "NaN") {
    v = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t mantissaDigits = 0;
  while (i < s.size() && isDigit(s[i])) ++i, ++mantissaDigits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && isDigit(s[i])) ++i, ++mantissaDigits;
  }
  if (mantissaDigits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t expDigits = 0;
    while (i < s.size() && isDigit(s[i])) ++i, ++expDigits;
    if (expDigits == 0) return false;
  }
  if (i != s.size()) return false;
  std::string_view num = s[0] == '+' ? s.substr(1) : s;
  auto r = std::from_chars(num.data(), num.data() + num.size(), v);
  return r.ec == std::errc() && r.ptr == num.data() + num.size();
}

// An optional timestamp: decimal int64 milliseconds.
inline bool parseTimestamp(std::string_view s) {
  int64_t t = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), t);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// HELP text: only \\ and \n escapes.
inline bool unescapeHelp(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return false;
    if (s[i] == '\\') {
      out += '\\';
    } else if (s[i] == 'n') {
      out += '\n';
    } else {
      return false;
    }
  }
  return true;
}

// {name="value",...} starting at s[pos] == '{'; on success pos is just past '}'.
inline bool parseLabels(std::string_view s, size_t& pos, std::map<std::string, std::string>& labels,
                        std::string& err) {
  ++pos;  // '{'
  while (true) {
    if (pos < s.size() && s[pos] == '}') {
      ++pos;
      return true;
    }
    size_t start = pos;
    while (pos < s.size() && s[pos] != '=' && s[pos] != '}' && s[pos] != ',') ++pos;
    std::string name(s.substr(start, pos - start));
    if (!isLabelName(name)) {
      err = "bad label name \"" + name + "\"";
      return false;
    }
    if (pos >= s.size() || s[pos] != '=') {
      err = "expected '=' after label " + name;
      return false;
    }
    if (++pos >= s.size() || s[pos] != '"') {
      err = "expected '\"' after " + name + "=";
      return false;
    }
    ++pos;
    std::string value;
    bool closed = false;
    while (pos < s.size()) {
      char c = s[pos++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos >= s.size()) break;
      char e = s[pos++];
      if (e == '\\') {
        value += '\\';
      } else if (e == '"') {
        value += '"';
      } else if (e == 'n') {
        value += '\n';
      } else {
        err = std::string("bad escape \\") + e + " in label " + name;
        return false;
      }
    }
    if (!closed) {
      err = "unterminated value of label " + name;
      return false;
    }
    if (!labels.emplace(name, std::move(value)).second) {
      err = "label " + name + " repeated";
      return false;
    }
    if (pos < s.size() && s[pos] == ',') {
      ++pos;  // a trailing comma before '}' is allowed by the format
    } else if (pos >= s.size() || s[pos] != '}') {
      err = "expected ',' or '}' after label " + name;
      return false;
    }
  }
}

inline bool checkHistogram(const Family& fam, std::string& err) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, count) in order of appearance
    bool hasSum = false, hasCount = false;
    double count = 0;
  };
  std::vector<std::pair<std::map<std::string, std::string>, Series>> series;
  auto find = [&](std::map<std::string, std::string> labels) -> Series& {
    labels.erase("le");
    for (auto& [l, s] : series) {
      if (l == labels) return s;
    }
    series.emplace_back(std::move(labels), Series{});
    return series.back().second;
  };
  for (const Sample& smp : fam.samples) {
    Series& s = find(smp.labels);
    if (smp.name == fam.name + "_bucket") {
      double le = 0;
      parseNumber(smp.labels.at("le"), le);  // validated when the sample was read
      s.buckets.emplace_back(le, smp.value);
    } else if (smp.name == fam.name + "_sum") {
      s.hasSum = true;
    } else {
      s.hasCount = true;
      s.count = smp.value;
    }
  }
  for (const auto& [labels, s] : series) {
    std::string where = fam.name;
    for (const auto& [k, v] : labels) where += " " + k + "=" + v;
    if (s.buckets.empty()) {
      err = "histogram " + where + " has no buckets";
      return false;
    }
    for (size_t i = 0; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].second >= 0)) {
        err = "histogram " + where + " has a negative or NaN bucket count";
        return false;
      }
      if (i > 0 && !(s.buckets[i - 1].first < s.buckets[i].first)) {
        err = "histogram " + where + " buckets not in increasing le order";
        return false;
      }
      if (i > 0 && s.buckets[i].second < s.buckets[i - 1].second) {
        err = "histogram " + where + " buckets not cumulative";
        return false;
      }
    }
    if (s.buckets.back().first != std::numeric_limits<double>::infinity()) {
      err = "histogram " + where + " lacks the le=\"+Inf\" bucket";
      return false;
    }
    if (!s.hasCount || !s.hasSum) {
      err = "histogram " + where + " lacks _count or _sum";
      return false;
    }
    if (s.count != s.buckets.back().second) {
      err = "histogram " + where + " _count differs from the +Inf bucket";
      return false;
    }
  }
  return true;
}

}  // namespace prom_text_detail

// Parses a whole exposition into out (replaced). On failure returns false, leaves out empty and
// sets err to "line N: reason".
inline bool parsePrometheusText(std::string_view text, std::vector<Family>& out, std::string& err) {
  namespace d = prom_text_detail;
  out.clear();
  err.clear();
  std::vector<Family> fams;
  std::set<std::string> seen;                                                   // family names
  std::set<std::pair<std::string, std::map<std::string, std::string>>> series;  // current family
  enum class State { None, AfterHelp, InFamily } state = State::None;
  size_t lineNo = 0;
  auto fail = [&](const std::string& why) {
    err = "line " + std::to_string(lineNo) + ": " + why;
    return false;
  };
  // A sample whose name is not the current family's: of a family that ended, or of none.
  auto foreign = [&](const std::string& name, const std::string& current) {
    for (std::string_view suffix : {"", "_bucket", "_sum", "_count"}) {
      if (name.size() < suffix.size() ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
        continue;
      }
      std::string base = name.substr(0, name.size() - suffix.size());
      if (base == current || !seen.count(base)) continue;
      for (const Family& f : fams) {
        if (f.name == base && (suffix.empty() ? f.type != "histogram" : f.type == "histogram")) {
          return fail("sample " + name + " of family " + base + " after that family ended");
        }
      }
    }
    return fail("sample " + name + " of unknown family (current family " + current + ")");
  };
  auto finishFamily = [&]() {
    if (state == State::AfterHelp) return fail("# HELP for " + fams.back().name + " has no # TYPE");
    if (state == State::InFamily && fams.back().type == "histogram" &&
        !d::checkHistogram(fams.back(), err)) {
      return fail(err);
    }
    return true;
  };

  if (!text.empty() && text.back() != '\n') {
    lineNo = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    return fail("last line does not end with a line feed");
  }
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineNo;
    if (line.empty()) continue;

    if (line[0] == '#') {
      bool help = line.substr(0, 7) == "# HELP ";
      bool type = line.substr(0, 7) == "# TYPE ";
      if (!help && !type) {
        if (line == "# HELP" || line == "# TYPE") return fail("metric name missing");
        continue;  // any other comment
      }
      std::string_view rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name(rest.substr(0, sp));
      std::string_view arg =
          sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
      if (!d::isMetricName(name)) return fail("bad metric name \"" + name + "\"");
      if (help) {
        if (!finishFamily()) return false;
        if (!seen.insert(name).second) return fail("family " + name + " appears twice");
        Family f;
        f.name = name;
        if (!d::unescapeHelp(arg, f.help)) return fail("bad escape in # HELP for " + name);
        fams.push_back(std::move(f));
        series.clear();
        state = State::AfterHelp;
      } else {
        if (state != State::AfterHelp || fams.back().name != name) {
          return fail("# TYPE for " + name + " does not follow its # HELP");
        }
        if (arg != "counter" && arg != "gauge" && arg != "histogram" && arg != "untyped") {
          return fail("unsupported type \"" + std::string(arg) + "\" for " + name);
        }
        fams.back().type = std::string(arg);
        state = State::InFamily;
      }
      continue;
    }

    // name[{labels}] value [timestamp]
    Sample smp;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    smp.name = std::string(line.substr(0, i));
    if (!d::isMetricName(smp.name)) return fail("bad metric name \"" + smp.name + "\"");
    if (i < line.size() && line[i] == '{') {
      std::string why;
      if (!d::parseLabels(line, i, smp.labels, why)) return fail(why);
    }
    if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) {
      return fail("expected a blank before the value of " + smp.name);
    }
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t vstart = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    std::string_view value = line.substr(vstart, i - vstart);
    if (!d::parseNumber(value, smp.value)) {
      return fail("bad value \"" + std::string(value) + "\" for " + smp.name);
    }
    if (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (!d::parseTimestamp(line.substr(i))) return fail("bad timestamp for " + smp.name);
    }

    if (state != State::InFamily) {
      if (state == State::AfterHelp) return fail("sample " + smp.name + " before # TYPE");
      return fail("sample " + smp.name + " of unknown family");
    }
    Family& fam = fams.back();
    if (fam.type == "histogram") {
      bool bucket = smp.name == fam.name + "_bucket";
      if (!bucket && smp.name != fam.name + "_sum" && smp.name != fam.name + "_count") {
        return foreign(smp.name, fam.name);
      }
      auto le = smp.labels.find("le");
      if (bucket) {
        double bound = 0;
        if (le == smp.labels.end()) return fail(smp.name + " without le");
        if (!d::parseNumber(le->second, bound) || std::isnan(bound)) {
          return fail("bad le \"" + le->second + "\"");
        }
      } else if (le != smp.labels.end()) {
        return fail(smp.name + " with le");
      }
    } else if (smp.name != fam.name) {
      return foreign(smp.name, fam.name);
    }
    if (fam.type == "counter" && smp.value < 0) return fail("negative counter " + smp.name);
    if (!series.emplace(smp.name, smp.labels).second) {
      std::string_view key = line.substr(0, vstart);
      while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
      return fail("duplicate series " + std::string(key));
    }
    fam.samples.push_back(std::move(smp));
  }
  ++lineNo;
  if (!finishFamily()) return false;
  out = std::move(fams);
  return true;
}

// The value of the sample with exactly this name and label set; NaN if there is none.
inline double valueOf(const std::vector<Family>& families, std::string_view name,
                      const std::map<std::string, std::string>& labels = {}) {
  for (const Family& f : families) {
    for (const Sample& s : f.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// The family with this name, or nullptr.
inline const Family* findFamily(const std::vector<Family>& families, std::string_view name) {
  for (const Family& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace ds::test
