// Metrics registry: series bookkeeping, validation of names and bounds, and the text exposition.
#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace ds::metrics {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::vector<double> normalizeBounds(std::vector<double> bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (std::isnan(bounds[i]) || std::isinf(bounds[i])) {
      fail("histogram bound " + formatNumber(bounds[i]) + " is not a finite number");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      fail("histogram bounds are not strictly increasing at " + formatNumber(bounds[i]));
    }
  }
  return bounds;
}

// Labels sorted by name: the identity of a series regardless of the order given.
Labels sortedLabels(const Labels& labels) {
  Labels s = labels;
  std::sort(s.begin(), s.end());
  return s;
}

void appendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// name{a="x",b="y"[,le="..."]} value
void appendSample(std::string& out, std::string_view name, const Labels& labels,
                  const std::string* le, double value) {
  out += name;
  if (!labels.empty() || le) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      appendEscaped(out, v, true);
      out += '"';
    }
    if (le) {
      if (!first) out += ',';
      out += "le=\"";
      out += *le;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += formatNumber(value);
  out += '\n';
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool isMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool isLabelName(std::string_view s) {
  if (s.empty() || s.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string formatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) <= kExact) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::vector<double> latencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void Counter::inc(double v) {
  if (!(v >= 0)) return;  // negative or NaN
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(normalizeBounds(std::move(bounds))), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = bounds_.size();  // NaN lands in +Inf
  if (!std::isnan(v)) {
    i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  std::lock_guard lock(mu_);
  ++buckets_[i];
  ++count_;
  sum_ += v;
}

uint64_t Histogram::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

double Histogram::sum() const {
  std::lock_guard lock(mu_);
  return sum_;
}

std::vector<uint64_t> Histogram::cumulativeCounts() const { return snapshot().cumulative; }

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  std::lock_guard lock(mu_);
  s.cumulative.reserve(buckets_.size());
  uint64_t acc = 0;
  for (uint64_t b : buckets_) {
    acc += b;
    s.cumulative.push_back(acc);
  }
  s.sum = sum_;
  return s;
}

struct MetricSet::Series {
  Labels labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct MetricSet::Family {
  std::string name;
  std::string help;
  Type type;
  std::vector<double> bounds;                   // histograms only, normalized
  std::vector<std::unique_ptr<Series>> series;  // registration order
  std::map<Labels, Series*> bySortedLabels;
};

MetricSet::MetricSet() = default;
MetricSet::~MetricSet() = default;

const char* MetricSet::typeName(Type type) {
  switch (type) {
    case Type::Counter:
      return "counter";
    case Type::Gauge:
      return "gauge";
    case Type::Histogram:
      return "histogram";
  }
  return "untyped";
}

MetricSet::Series& MetricSet::series(const std::string& name, const std::string& help, Type type,
                                     const std::vector<double>* bounds, const Labels& labels) {
  if (!isMetricName(name)) fail("invalid metric name \"" + name + "\"");
  for (const auto& [k, v] : labels) {
    if (!isLabelName(k)) fail("invalid label name \"" + k + "\" for " + name);
    if (type == Type::Histogram && k == "le") fail("histogram " + name + " uses the label le");
  }
  Labels key = sortedLabels(labels);
  for (size_t i = 1; i < key.size(); ++i) {
    if (key[i - 1].first == key[i].first) {
      fail("label \"" + key[i].first + "\" repeated for " + name);
    }
  }

  std::lock_guard lock(mu_);
  Family* fam = nullptr;
  if (auto it = byName_.find(name); it != byName_.end()) {
    fam = it->second;
    if (fam->type != type) {
      fail(name + " registered as " + typeName(fam->type) + ", now as " + typeName(type));
    }
    if (fam->help != help) fail(name + " registered again with other help text");
    if (bounds && fam->bounds != *bounds) fail(name + " registered again with other bounds");
  } else {
    // A histogram's samples carry suffixed names that no other family may use.
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (endsWith(name, suffix)) {
        auto base = byName_.find(std::string_view(name).substr(0, name.size() - suffix.size()));
        if (base != byName_.end() && base->second->type == Type::Histogram) {
          fail(name + " collides with the samples of histogram " + base->first);
        }
      }
      if (type == Type::Histogram && byName_.count(name + std::string(suffix))) {
        fail("histogram " + name + " collides with the metric " + name + std::string(suffix));
      }
    }
    auto f = std::make_unique<Family>();
    f->name = name;
    f->help = help;
    f->type = type;
    if (bounds) f->bounds = *bounds;
    fam = f.get();
    families_.push_back(std::move(f));
    byName_.emplace(name, fam);
  }

  if (auto it = fam->bySortedLabels.find(key); it != fam->bySortedLabels.end()) {
    return *it->second;
  }
  auto s = std::make_unique<Series>();
  s->labels = labels;
  switch (type) {
    case Type::Counter:
      s->counter = std::make_unique<Counter>();
      break;
    case Type::Gauge:
      s->gauge = std::make_unique<Gauge>();
      break;
    case Type::Histogram:
      s->histogram = std::make_unique<Histogram>(fam->bounds);
      break;
  }
  Series* raw = s.get();
  fam->series.push_back(std::move(s));
  fam->bySortedLabels.emplace(std::move(key), raw);
  return *raw;
}

Counter& MetricSet::counter(const std::string& name, const std::string& help,
                            const Labels& labels) {
  return *series(name, help, Type::Counter, nullptr, labels).counter;
}

Gauge& MetricSet::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  return *series(name, help, Type::Gauge, nullptr, labels).gauge;
}

Histogram& MetricSet::histogram(const std::string& name, const std::string& help,
                                std::vector<double> bounds, const Labels& labels) {
  std::vector<double> normalized = normalizeBounds(std::move(bounds));
  return *series(name, help, Type::Histogram, &normalized, labels).histogram;
}

std::string MetricSet::render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& fam : families_) {
    out += "# HELP ";
    out += fam->name;
    out += ' ';
    appendEscaped(out, fam->help, false);
    out += "\n# TYPE ";
    out += fam->name;
    out += ' ';
    out += typeName(fam->type);
    out += '\n';
    std::vector<std::string> les;
    if (fam->type == Type::Histogram) {
      for (double b : fam->bounds) les.push_back(formatNumber(b));
      les.push_back("+Inf");
    }
    for (const auto& s : fam->series) {
      switch (fam->type) {
        case Type::Counter:
          appendSample(out, fam->name, s->labels, nullptr, s->counter->value());
          break;
        case Type::Gauge:
          appendSample(out, fam->name, s->labels, nullptr, s->gauge->value());
          break;
        case Type::Histogram: {
          Histogram::Snapshot snap = s->histogram->snapshot();
          const std::string bucket = fam->name + "_bucket";
          for (size_t i = 0; i < les.size(); ++i) {
            appendSample(out, bucket, s->labels, &les[i], static_cast<double>(snap.cumulative[i]));
          }
          appendSample(out, fam->name + "_sum", s->labels, nullptr, snap.sum);
          appendSample(out, fam->name + "_count", s->labels, nullptr,
                       static_cast<double>(snap.cumulative.back()));
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace ds::metrics
