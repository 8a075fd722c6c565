// Metrics with Prometheus text exposition (format 0.0.4): a MetricSet holds counters, gauges and
// histograms grouped into families by name, each series identified by its labels, rendered for
// GET /metrics.
//
// Updates are lock-free atomics (counters, gauges) or take a per-histogram mutex, so they are safe
// from any thread; registration and render() take the set's mutex. Mistakes in naming or
// typing metrics are programming errors and abort with a message.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ds::metrics {

// Label name/value pairs; the order given is the order printed. The same set in another order
// names the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The exposition format's names: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* not starting with "__".
bool isMetricName(std::string_view s);
bool isLabelName(std::string_view s);

// The Content-Type of render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// A monotonically increasing value. Names end in _total by convention.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Negative and NaN increments are ignored: a counter never goes down.
  void inc(double v = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with upper bounds (v <= bound); the +Inf bucket is implicit.
class Histogram {
 public:
  // Bounds must be strictly increasing and not NaN; a trailing +Inf is dropped (it is implicit).
  // Anything else aborts.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // A NaN observation counts in the +Inf bucket only and makes the sum NaN (as Prometheus
  // clients do).
  void observe(double v);
  uint64_t count() const;
  double sum() const;
  // The finite upper bounds, increasing.
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts, one per bound followed by the +Inf bucket (which equals count()).
  std::vector<uint64_t> cumulativeCounts() const;

 private:
  friend class MetricSet;
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // bounds_.size() + 1 entries
    double sum = 0;
  };
  Snapshot snapshot() const;

  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;  // per bucket, not cumulative; last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

class MetricSet {
 public:
  MetricSet();
  ~MetricSet();
  MetricSet(const MetricSet&) = delete;
  MetricSet& operator=(const MetricSet&) = delete;

  // Same name + labels returns the same object, whose address is stable for the MetricSet's
  // lifetime. Abort (programming error): an invalid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or
  // label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"), a label name repeated in one
  // series, a name registered before with another type or help text, a name that collides with
  // the _bucket/_sum/_count samples of a histogram (either way round), and for histograms the
  // label "le" or bounds that differ from those the family was registered with.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                       const Labels& labels = {});

  // Text exposition format 0.0.4: per family one # HELP and one # TYPE line, then its series;
  // families and series in registration order. Histograms print name_bucket{...,le="..."} with
  // cumulative counts up to le="+Inf", then name_sum and name_count. Empty set: "".
  std::string render() const;

 private:
  enum class Type { Counter, Gauge, Histogram };
  struct Series;
  struct Family;

  static const char* typeName(Type type);
  Series& series(const std::string& name, const std::string& help, Type type,
                 const std::vector<double>* bounds, const Labels& labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // registration order
  std::map<std::string, Family*, std::less<>> byName_;
};

// Prometheus number spelling: integral values within 2^53 without decimals ("3", "-2"), others
// the shortest text that reads back exactly ("0.005", "1e+300"), and "+Inf", "-Inf", "NaN".
std::string formatNumber(double v);

// Latency bucket bounds in seconds: 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30
// 60.
std::vector<double> latencyBuckets();

}  // namespace ds::metrics
