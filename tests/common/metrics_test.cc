// Tests for the metrics registry and its text exposition, and for the strict exposition parser
// that integration tests use to read GET /metrics.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/prom_text.h"

namespace ds::metrics {
namespace {

using ds::test::Family;
using ds::test::parsePrometheusText;
using ds::test::valueOf;
using LabelMap = std::map<std::string, std::string>;

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<Family> parseOk(const std::string& text) {
  std::vector<Family> fams;
  std::string err;
  EXPECT_TRUE(parsePrometheusText(text, fams, err)) << err << "\n" << text;
  return fams;
}

std::string parseErr(const std::string& text) {
  std::vector<Family> fams;
  std::string err;
  EXPECT_FALSE(parsePrometheusText(text, fams, err)) << "accepted:\n" << text;
  EXPECT_TRUE(fams.empty());
  EXPECT_FALSE(err.empty());
  return err;
}

TEST(MetricsNames, Grammar) {
  for (std::string_view good : {"a", "_x", ":y", "ds_streams_total", "a:b_9"}) {
    EXPECT_TRUE(isMetricName(good)) << good;
  }
  for (std::string_view bad : {"", "9a", "a-b", "a b", "a.b", "é"}) {
    EXPECT_FALSE(isMetricName(bad)) << bad;
  }
  for (std::string_view good : {"a", "_x", "le", "device_id9"}) {
    EXPECT_TRUE(isLabelName(good)) << good;
  }
  for (std::string_view bad : {"", "__x", "9a", "a:b", "a-b"}) {
    EXPECT_FALSE(isLabelName(bad)) << bad;
  }
}

TEST(MetricsRender, SmallRegistryExactText) {
  MetricSet r;
  Counter& get =
      r.counter("ds_requests_total", "Requests handled.", {{"method", "GET"}, {"code", "200"}});
  get.inc();
  get.inc(2);
  r.counter("ds_requests_total", "Requests handled.", {{"method", "POST"}, {"code", "500"}})
      .inc(0.5);
  Gauge& open = r.gauge("ds_streams_open", "Open streams.");
  open.set(5);
  open.dec();
  open.inc(0.25);
  Histogram& lat =
      r.histogram("ds_setup_seconds", "Stream setup latency.", {0.25, 1, 2.5}, {{"kind", "ssh"}});
  for (double v : {0.125, 0.25, 0.5, 4.0}) lat.observe(v);
  r.histogram("ds_frame_bytes", "Frame sizes.", {1024, 65536});

  EXPECT_EQ(r.render(),
            "# HELP ds_requests_total Requests handled.\n"
            "# TYPE ds_requests_total counter\n"
            "ds_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "ds_requests_total{method=\"POST\",code=\"500\"} 0.5\n"
            "# HELP ds_streams_open Open streams.\n"
            "# TYPE ds_streams_open gauge\n"
            "ds_streams_open 4.25\n"
            "# HELP ds_setup_seconds Stream setup latency.\n"
            "# TYPE ds_setup_seconds histogram\n"
            "ds_setup_seconds_bucket{kind=\"ssh\",le=\"0.25\"} 2\n"
            "ds_setup_seconds_bucket{kind=\"ssh\",le=\"1\"} 3\n"
            "ds_setup_seconds_bucket{kind=\"ssh\",le=\"2.5\"} 3\n"
            "ds_setup_seconds_bucket{kind=\"ssh\",le=\"+Inf\"} 4\n"
            "ds_setup_seconds_sum{kind=\"ssh\"} 4.875\n"
            "ds_setup_seconds_count{kind=\"ssh\"} 4\n"
            "# HELP ds_frame_bytes Frame sizes.\n"
            "# TYPE ds_frame_bytes histogram\n"
            "ds_frame_bytes_bucket{le=\"1024\"} 0\n"
            "ds_frame_bytes_bucket{le=\"65536\"} 0\n"
            "ds_frame_bytes_bucket{le=\"+Inf\"} 0\n"
            "ds_frame_bytes_sum 0\n"
            "ds_frame_bytes_count 0\n");
}

TEST(MetricsRender, EmptyRegistryIsEmpty) {
  MetricSet r;
  EXPECT_EQ(r.render(), "");
  EXPECT_TRUE(parseOk("").empty());
}

TEST(MetricsRender, Escaping) {
  MetricSet r;
  r.gauge("ds_info", "Line one\nback\\slash \"quoted\"", {{"path", "a\\b\"c\nd"}, {"x", ""}})
      .set(1);
  const std::string text = r.render();
  EXPECT_EQ(text,
            "# HELP ds_info Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE ds_info gauge\n"
            "ds_info{path=\"a\\\\b\\\"c\\nd\",x=\"\"} 1\n");
  auto fams = parseOk(text);
  ASSERT_EQ(fams.size(), 1u);
  EXPECT_EQ(fams[0].help, "Line one\nback\\slash \"quoted\"");
  EXPECT_EQ(valueOf(fams, "ds_info", {{"path", "a\\b\"c\nd"}, {"x", ""}}), 1);
}

TEST(MetricsRender, NumberSpelling) {
  EXPECT_EQ(formatNumber(0), "0");
  EXPECT_EQ(formatNumber(-0.0), "0");
  EXPECT_EQ(formatNumber(3), "3");
  EXPECT_EQ(formatNumber(-2), "-2");
  EXPECT_EQ(formatNumber(1e6), "1000000");
  EXPECT_EQ(formatNumber(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(formatNumber(0.1), "0.1");
  EXPECT_EQ(formatNumber(0.0025), "0.0025");
  EXPECT_EQ(formatNumber(-2.5), "-2.5");
  EXPECT_EQ(formatNumber(1.5e-7), "1.5e-07");
  EXPECT_EQ(formatNumber(1e300), "1e+300");
  EXPECT_EQ(formatNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(formatNumber(kInf), "+Inf");
  EXPECT_EQ(formatNumber(-kInf), "-Inf");
  EXPECT_EQ(formatNumber(std::nan("")), "NaN");
  // Every finite spelling reads back exactly.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) {
    double v = std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(rng() % 200) - 150);
    std::string s = formatNumber(v);
    EXPECT_EQ(std::stod(s), v) << s;
  }
}

TEST(MetricsRegistry, SameNameAndLabelsSameObject) {
  MetricSet r;
  Counter& a = r.counter("ds_bytes_total", "Bytes.", {{"dir", "in"}, {"dev", "dev01"}});
  a.inc(10);
  Gauge& g = r.gauge("ds_conns", "Connections.");
  Histogram& h = r.histogram("ds_wait_seconds", "Wait.", latencyBuckets(), {{"dev", "dev01"}});
  // Many more series and families must not move the first ones.
  for (int i = 0; i < 200; ++i) {
    r.counter("ds_bytes_total", "Bytes.", {{"dir", "in"}, {"dev", "d" + std::to_string(i)}});
    r.gauge("ds_g" + std::to_string(i), "Filler.");
  }
  EXPECT_EQ(&r.counter("ds_bytes_total", "Bytes.", {{"dir", "in"}, {"dev", "dev01"}}), &a);
  // The same label set in another order is the same series; it keeps its first order.
  EXPECT_EQ(&r.counter("ds_bytes_total", "Bytes.", {{"dev", "dev01"}, {"dir", "in"}}), &a);
  EXPECT_NE(&r.counter("ds_bytes_total", "Bytes.", {{"dir", "out"}, {"dev", "dev01"}}), &a);
  EXPECT_EQ(&r.gauge("ds_conns", "Connections."), &g);
  EXPECT_EQ(&r.histogram("ds_wait_seconds", "Wait.", latencyBuckets(), {{"dev", "dev01"}}), &h);
  EXPECT_EQ(a.value(), 10);
  EXPECT_NE(r.render().find("ds_bytes_total{dir=\"in\",dev=\"dev01\"} 10\n"), std::string::npos);
}

TEST(MetricsValues, CounterGaugeHistogram) {
  Counter c;
  c.inc();
  c.inc(2.5);
  c.inc(-4);
  c.inc(std::nan(""));
  EXPECT_EQ(c.value(), 3.5);

  Gauge g;
  g.inc();
  g.dec(3);
  EXPECT_EQ(g.value(), -2);
  g.set(7.5);
  EXPECT_EQ(g.value(), 7.5);

  Histogram h({1, 2, kInf});  // the trailing +Inf is implicit
  EXPECT_EQ(h.bounds(), (std::vector<double>{1, 2}));
  for (double v : {0.5, 1.0, 1.5, 2.0, 9.0}) h.observe(v);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.sum(), 14);
  EXPECT_EQ(h.cumulativeCounts(), (std::vector<uint64_t>{2, 4, 5}));
  h.observe(std::nan(""));
  EXPECT_EQ(h.cumulativeCounts(), (std::vector<uint64_t>{2, 4, 6}));
  EXPECT_TRUE(std::isnan(h.sum()));

  EXPECT_EQ(latencyBuckets(), (std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25, 0.5, 1, 2.5, 5, 10, 30, 60}));
  MetricSet r;
  r.histogram("ds_lat_seconds", "Latency.", latencyBuckets()).observe(0.003);
  auto fams = parseOk(r.render());
  EXPECT_EQ(valueOf(fams, "ds_lat_seconds_bucket", {{"le", "0.0025"}}), 0);
  EXPECT_EQ(valueOf(fams, "ds_lat_seconds_bucket", {{"le", "0.005"}}), 1);
  EXPECT_EQ(valueOf(fams, "ds_lat_seconds_bucket", {{"le", "60"}}), 1);
  EXPECT_EQ(valueOf(fams, "ds_lat_seconds_sum"), 0.003);
}

TEST(MetricsValues, ConcurrentUpdates) {
  MetricSet r;
  Counter& c = r.counter("ds_ops_total", "Operations.");
  Gauge& g = r.gauge("ds_level", "Level.");
  Histogram& h = r.histogram("ds_op_seconds", "Op time.", {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        g.inc();
        g.dec(2);
        h.observe(i % 2 ? 0.25 : 1);
        if (i % 1000 == 0) parseOk(r.render());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(g.value(), -40000);
  EXPECT_EQ(h.count(), 40000u);
  EXPECT_EQ(h.cumulativeCounts(), (std::vector<uint64_t>{20000, 40000}));
}

TEST(MetricsRegistryDeathTest, ProgrammingErrorsAbort) {
  auto withCounter = [](auto&& f) {
    MetricSet r;
    r.counter("ds_x_total", "X.");
    r.histogram("ds_h", "H.", {1});
    f(r);
  };
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.gauge("ds_x_total", "X."); }), "counter");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.counter("ds_x_total", "Other."); }), "help");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.counter("9lives", "Bad."); }), "metric name");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.counter("ds-dash", "Bad."); }), "metric name");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.counter("", "Bad."); }), "metric name");
  EXPECT_DEATH(withCounter([](MetricSet& r) {
                 r.counter("ds_y", "Y.", {{"a-b", "1"}});
               }),
               "label name");
  EXPECT_DEATH(withCounter([](MetricSet& r) {
                 r.counter("ds_y", "Y.", {{"__a", "1"}});
               }),
               "label name");
  EXPECT_DEATH(withCounter([](MetricSet& r) {
                 r.counter("ds_y", "Y.", {{"a", "1"}, {"a", "2"}});
               }),
               "repeated");
  EXPECT_DEATH(withCounter([](MetricSet& r) {
                 r.histogram("ds_z", "Z.", {1}, {{"le", "1"}});
               }),
               "le");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.histogram("ds_z", "Z.", {2, 1}); }), "increasing");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.histogram("ds_z", "Z.", {1, 1}); }), "increasing");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.histogram("ds_z", "Z.", {std::nan("")}); }),
               "finite");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.histogram("ds_h", "H.", {2}); }), "bounds");
  EXPECT_DEATH(withCounter([](MetricSet& r) { r.gauge("ds_h_count", "C."); }), "collides");
  EXPECT_DEATH(withCounter([](MetricSet& r) {
                 r.gauge("ds_k_sum", "S.");
                 r.histogram("ds_k", "K.", {1});
               }),
               "collides");
}

// A model of what a registry should hold, built alongside it, to check the parsed exposition.
struct Expected {
  std::string name;
  LabelMap labels;
  double value;
};

TEST(PromText, ParsesBiggerRandomRegistry) {
  std::mt19937 rng(20240611);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::vector<std::string> devs = {"dev01", "dev\"02", "dev\\03", "dev\n04", "d\xc3\xa9v05"};
  const std::vector<double> bounds = {0.001, 0.01, 0.1, 1, 10};

  MetricSet r;
  std::vector<Expected> expected;
  std::vector<std::string> familyOrder;
  for (int f = 0; f < 12; ++f) {
    const std::string name = "ds_family" + std::to_string(f);
    const int kind = f % 3;
    familyOrder.push_back(kind == 0 ? name + "_total" : name);
    for (size_t d = 0; d < devs.size(); ++d) {
      Labels labels = {{"device", devs[d]}, {"port", std::to_string(20 + f)}};
      LabelMap lm(labels.begin(), labels.end());
      if (kind == 0) {
        Counter& c = r.counter(name + "_total", "Counter " + std::to_string(f) + ".", labels);
        double total = 0;
        for (int i = pick(5); i > 0; --i) {
          double v = pick(3) == 0 ? pick(1000) / 7.0 : pick(100);
          c.inc(v);
          total += v;
        }
        expected.push_back({name + "_total", lm, total});
      } else if (kind == 1) {
        Gauge& g = r.gauge(name, "Gauge\\" + std::to_string(f) + "\nsecond line", labels);
        double v = (pick(2) ? -1 : 1) * pick(100000) / 64.0;
        if (pick(10) == 0) v = pick(2) ? kInf : -kInf;
        g.set(v);
        expected.push_back({name, lm, v});
      } else {
        Histogram& h = r.histogram(name, "Histogram " + std::to_string(f) + ".", bounds, labels);
        std::vector<double> cumulative(bounds.size() + 1, 0);
        double sum = 0;
        for (int i = pick(40); i > 0; --i) {
          double v = std::pow(10.0, pick(600) / 100.0 - 4);  // 1e-4 .. 1e2
          h.observe(v);
          sum += v;
          for (size_t b = 0; b < bounds.size(); ++b) {
            if (v <= bounds[b]) ++cumulative[b];
          }
          ++cumulative.back();
        }
        for (size_t b = 0; b <= bounds.size(); ++b) {
          LabelMap bl = lm;
          bl["le"] = b < bounds.size() ? formatNumber(bounds[b]) : "+Inf";
          expected.push_back({name + "_bucket", bl, cumulative[b]});
        }
        expected.push_back({name + "_sum", lm, sum});
        expected.push_back({name + "_count", lm, cumulative.back()});
      }
    }
  }

  auto fams = parseOk(r.render());
  ASSERT_EQ(fams.size(), familyOrder.size());
  for (size_t i = 0; i < fams.size(); ++i) {
    EXPECT_EQ(fams[i].name, familyOrder[i]);
    EXPECT_EQ(fams[i].type, i % 3 == 0 ? "counter" : i % 3 == 1 ? "gauge" : "histogram");
    if (i % 3 == 1) {
      EXPECT_EQ(fams[i].help, "Gauge\\" + std::to_string(i) + "\nsecond line");
    }
  }
  size_t samples = 0;
  for (const auto& f : fams) samples += f.samples.size();
  EXPECT_EQ(samples, expected.size());
  for (const auto& e : expected) {
    double got = valueOf(fams, e.name, e.labels);
    // Sums are added in the same order as the histogram does, so they match exactly.
    EXPECT_EQ(got, e.value) << e.name;
  }
  EXPECT_TRUE(std::isnan(valueOf(fams, "ds_family0_total")));  // no series without labels
  EXPECT_TRUE(std::isnan(valueOf(fams, "ds_nothing")));
  ASSERT_NE(ds::test::findFamily(fams, "ds_family2"), nullptr);
  EXPECT_EQ(ds::test::findFamily(fams, "ds_family2")->samples.size(),
            devs.size() * (bounds.size() + 3));
}

TEST(PromText, AcceptsFormatVariants) {
  auto fams = parseOk(
      "# a free comment\n"
      "\n"
      "# HELP a_total\n"
      "# TYPE a_total counter\n"
      "a_total{x=\"1\",} 2 1700000000000\n"
      "a_total{} 3\n"
      "# HELP b B.\n"
      "# TYPE b untyped\n"
      "b\t-1.5e3\n"
      "# HELP c C.\n"
      "# TYPE c gauge\n"
      "c{v=\"q\"} NaN\n"
      "c{v=\"r\"} -Inf\n"
      "c{v=\"s\"} .5\n"
      "# HELP e E.\n"
      "# TYPE e histogram\n");
  ASSERT_EQ(fams.size(), 4u);
  EXPECT_EQ(fams[0].help, "");
  EXPECT_EQ(valueOf(fams, "a_total", {{"x", "1"}}), 2);
  EXPECT_EQ(valueOf(fams, "a_total"), 3);
  EXPECT_EQ(valueOf(fams, "b"), -1500);
  EXPECT_TRUE(std::isnan(valueOf(fams, "c", {{"v", "q"}})));
  EXPECT_EQ(valueOf(fams, "c", {{"v", "r"}}), -kInf);
  EXPECT_EQ(valueOf(fams, "c", {{"v", "s"}}), 0.5);
  EXPECT_TRUE(fams[3].samples.empty());
}

const std::string kHead = "# HELP m M.\n# TYPE m gauge\n";
const std::string kHistHead = "# HELP h H.\n# TYPE h histogram\n";

TEST(PromText, RejectsMissingHelpOrType) {
  EXPECT_NE(parseErr("# HELP m M.\nm 1\n").find("before # TYPE"), std::string::npos);
  parseErr("# TYPE m gauge\nm 1\n");
  parseErr("# HELP m M.\n");
  parseErr("# HELP m M.\n# HELP n N.\n# TYPE n gauge\n");
  parseErr("# HELP m M.\n# TYPE n gauge\n");
  parseErr("# HELP m M.\n# TYPE m summary\n");
  parseErr("# HELP m M.\n# TYPE m\n");
  parseErr("# HELP m M.\n# TYPE m gauge extra\n");
  parseErr("# HELP 1m M.\n# TYPE 1m gauge\n");
  parseErr("# HELP m bad \\t escape\n# TYPE m gauge\n");
  parseErr("# HELP\n");
  parseErr(kHead + "# TYPE m gauge\n");
}

TEST(PromText, RejectsBadLabelSyntax) {
  for (const char* line : {
           "m{a=\"1\" 1\n",            // unterminated set
           "m{a=\"1} 1\n",             // unterminated value
           "m{a=1} 1\n",               // unquoted value
           "m{a\"1\"} 1\n",            // no '='
           "m{=\"1\"} 1\n",            // empty name
           "m{1a=\"1\"} 1\n",          // bad name
           "m{__a=\"1\"} 1\n",         // reserved name
           "m{a=\"1\",,b=\"2\"} 1\n",  // empty pair
           "m{a=\"1\"b=\"2\"} 1\n",    // missing comma
           "m{a=\"1\", b=\"2\"} 1\n",  // blank inside the braces
           "m{a=\"\\t\"} 1\n",         // unknown escape
           "m{a=\"1\",a=\"2\"} 1\n",   // repeated label
           "m{a=\"1\"}1\n",            // no blank before the value
           "m 1x\n",                   // bad value
           "m\n",                      // no value
           "m 0x10\n",                 // hex is not a sample value
           "m inf\n",                  // not Prometheus' spelling
           "m 1 2.5\n",                // bad timestamp
           "m 1 \n",                   // trailing blank
           " m 1\n",                   // leading blank
       }) {
    SCOPED_TRACE(line);
    parseErr(kHead + line);
  }
  parseErr(kHead + "m 1");  // no final line feed
}

TEST(PromText, RejectsBadHistograms) {
  const std::string ok = "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
  parseOk(kHistHead + ok);
  EXPECT_NE(
      parseErr(kHistHead + "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n")
          .find("cumulative"),
      std::string::npos);
  parseErr(kHistHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\nh_sum 3\nh_count 2\n");
  parseErr(kHistHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n");
  parseErr(kHistHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n");
  parseErr(kHistHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n");
  parseErr(kHistHead + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n" +
           "h_sum 3\nh_count 2\n");
  parseErr(kHistHead + "h_bucket 1\nh_sum 3\nh_count 1\n");                 // no le
  parseErr(kHistHead + "h_bucket{le=\"x\"} 1\nh_sum 3\nh_count 1\n");       // bad le
  parseErr(kHistHead + "h_sum{le=\"1\"} 3\n" + ok);                         // le on _sum
  parseErr(kHistHead + "h_sum 3\nh_count 0\n");                             // no buckets
  parseErr(kHistHead + "h 1\n" + ok);                                       // bare name
  parseErr(kHistHead + "h_bucket{le=\"+Inf\"} -1\nh_sum 0\nh_count -1\n");  // negative
  // Each label set is its own series: one good, one not cumulative.
  parseErr(kHistHead + ok +
           "h_bucket{a=\"x\",le=\"1\"} 2\nh_bucket{a=\"x\",le=\"+Inf\"} 1\nh_sum{a=\"x\"} 3\n" +
           "h_count{a=\"x\"} 1\n");
}

TEST(PromText, RejectsDuplicatesAndForeignSamples) {
  EXPECT_NE(parseErr(kHead + "m{a=\"1\"} 1\nm{a=\"1\"} 2\n").find("duplicate"), std::string::npos);
  parseErr(kHead + "m 1\nm 1\n");
  parseErr(kHistHead + "h_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n");
  EXPECT_NE(parseErr("x 1\n" + kHead).find("unknown family"), std::string::npos);
  EXPECT_NE(parseErr(kHead + "x 1\n").find("unknown family"), std::string::npos);
  parseErr(kHead + "m_total 1\n");
  parseErr(kHead + "m_count 1\n");
  // A family appears once, so its samples cannot come back after another family.
  EXPECT_NE(parseErr(kHead + "m 1\n# HELP n N.\n# TYPE n gauge\nn 1\nm 2\n").find("ended"),
            std::string::npos);
  parseErr(kHead + "m 1\n" + kHead);
  parseErr("# HELP c C.\n# TYPE c counter\nc -1\n");
}

}  // namespace
}  // namespace ds::metrics
