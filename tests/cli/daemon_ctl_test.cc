// Tests for `devstreams status|streams|devices|forward`: the pure formatting and argument
// helpers against fixed JSON, the blocking client against a ControlApi served from a thread, and
// the binary's exit codes and output against the same server.
#include "cli/daemon_ctl.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/format.h"
#include "common/event.h"
#include "daemon/control_api.h"

namespace ds::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Pure helpers.

TEST(Format, HumanBytes) {
  EXPECT_EQ(humanBytes(0), "0B");
  EXPECT_EQ(humanBytes(1023), "1023B");
  EXPECT_EQ(humanBytes(1024), "1.0KiB");
  EXPECT_EQ(humanBytes(1258291), "1.2MiB");
  EXPECT_EQ(humanBytes(5ull << 30), "5.0GiB");
  EXPECT_EQ(humanBytes(UINT64_MAX), "16.0EiB");
}

TEST(Format, HumanAge) {
  EXPECT_EQ(humanAge(0), "0s");
  EXPECT_EQ(humanAge(3.2), "3s");
  EXPECT_EQ(humanAge(59.99), "59s");
  EXPECT_EQ(humanAge(60), "1m00s");
  EXPECT_EQ(humanAge(125), "2m05s");
  EXPECT_EQ(humanAge(3599), "59m59s");
  EXPECT_EQ(humanAge(3720), "1h02m");
  EXPECT_EQ(humanAge(86400 * 2 + 3600 * 3 + 5), "2d03h");
  EXPECT_EQ(humanAge(-5), "0s");
  EXPECT_EQ(humanAge(std::nan("")), "0s");
  EXPECT_EQ(humanAge(1e300), humanAge(1e15));
}

TEST(Format, TableAlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(formatTable({"A", "LONGER", "C"}, {{"xyz", "1", ""}, {"w", "22", "q"}}),
            "A    LONGER  C\n"
            "xyz  1\n"
            "w    22      q\n");
  EXPECT_EQ(formatTable({"ONLY"}, {}), "ONLY\n");
}

TEST(Format, TypedReadsTolerateBadFields) {
  json j = {{"s", "x"}, {"n", 5}, {"f", 2.5}, {"b", true}, {"z", nullptr}, {"neg", -3}};
  EXPECT_EQ(str(j, "s"), "x");
  EXPECT_EQ(str(j, "n"), "5");
  EXPECT_EQ(str(j, "z"), "");
  EXPECT_EQ(str(j, "missing"), "");
  EXPECT_EQ(num(j, "n"), 5);
  EXPECT_EQ(num(j, "f"), 2);
  EXPECT_EQ(num(j, "neg"), -3);
  EXPECT_EQ(num(j, "s"), 0);
  EXPECT_DOUBLE_EQ(real(j, "f"), 2.5);
  EXPECT_TRUE(flag(j, "b"));
  EXPECT_FALSE(flag(j, "n"));
  EXPECT_EQ(str(json::array(), "s"), "");
  EXPECT_EQ(num(json("text"), "n"), 0);
}

TEST(Arguments, DeviceTarget) {
  std::string device;
  uint16_t port = 0;
  ASSERT_TRUE(parseDeviceTarget("dev01:22", device, port));
  EXPECT_EQ(device, "dev01");
  EXPECT_EQ(port, 22);
  ASSERT_TRUE(parseDeviceTarget("a:b:65535", device, port));  // ids may hold ':'
  EXPECT_EQ(device, "a:b");
  EXPECT_EQ(port, 65535);
  for (const char* bad : {"dev01", "dev01:", ":22", "dev01:0", "dev01:65536", "dev01:22x",
                          "dev01:-1", "dev01:+22", "dev 01:22", "dev01:123456", ""}) {
    EXPECT_FALSE(parseDeviceTarget(bad, device, port)) << bad;
  }
}

TEST(Arguments, PathSegmentEncoding) {
  EXPECT_EQ(encodePathSegment("127.0.0.1:2222"), "127.0.0.1:2222");
  EXPECT_EQ(encodePathSegment("[::1]:2222"), "%5B::1%5D:2222");
  EXPECT_EQ(encodePathSegment("a/b?c d%"), "a%2Fb%3Fc%20d%25");
}

TEST(Arguments, ErrorText) {
  EXPECT_EQ(errorText({409, R"({"error":"listen_in_use","message":"127.0.0.1:2222 is in use"})"}),
            "127.0.0.1:2222 is in use (listen_in_use)");
  EXPECT_EQ(errorText({400, R"({"message":"bad body"})"}), "bad body");
  EXPECT_EQ(errorText({404, R"({"error":"forward_unknown"})"}), "forward_unknown");
  EXPECT_EQ(errorText({500, "oops"}), "devstreamsd answered HTTP 500");
}

TEST(Output, StatusConnected) {
  json s = json::parse(R"({"version":"0.1.0","pid":123,"uptime_seconds":125.5,
    "hub":{"url":"https://127.0.0.1:8443","connected":true,"since":"2026-11-29T17:00:00Z",
           "last_error":""},
    "listen":"127.0.0.1:1080","auth":false,"suffix":".hub","direct":false,
    "streams":2,"forwards":1,"streams_total":10,"failures_total":1})");
  EXPECT_EQ(formatStatus(s),
            "daemon:   devstreamsd 0.1.0, pid 123, up 2m05s\n"
            "hub:      https://127.0.0.1:8443 connected since 2026-11-29T17:00:00Z\n"
            "listen:   127.0.0.1:1080 (auth off, suffix .hub, direct off)\n"
            "streams:  2 active, 10 total, 1 failed\n"
            "forwards: 1\n");
}

TEST(Output, StatusDisconnected) {
  json s = json::parse(R"({"version":"0.1.0","pid":7,"uptime_seconds":3,
    "hub":{"url":"https://hub:8443","connected":false,"since":"","last_error":"connection refused"},
    "listen":"0.0.0.0:1080","auth":true,"suffix":".lab","direct":true,
    "streams":0,"forwards":0,"streams_total":0,"failures_total":0})");
  EXPECT_EQ(formatStatus(s),
            "daemon:   devstreamsd 0.1.0, pid 7, up 3s\n"
            "hub:      https://hub:8443 disconnected (last error: connection refused)\n"
            "listen:   0.0.0.0:1080 (auth on, suffix .lab, direct on)\n"
            "streams:  0 active, 0 total, 0 failed\n"
            "forwards: 0\n");
  // Nothing known: still one line per item.
  EXPECT_EQ(formatStatus(json::object()),
            "daemon:   devstreamsd -, pid 0, up 0s\n"
            "hub:      - disconnected\n"
            "listen:   - (auth off, suffix -, direct off)\n"
            "streams:  0 active, 0 total, 0 failed\n"
            "forwards: 0\n");
}

TEST(Output, Streams) {
  json a = json::parse(R"({"streams":[
    {"id":7,"device":"dev01","port":22,"target":"dev01.hub:22","client":"127.0.0.1:53422",
     "via":"socks5","stream_id":"9f","bytes_to_device":123,"bytes_from_device":1258291,
     "age_seconds":3.2},
    {"id":12,"device":"","port":443,"target":"example.com:443","client":"[::1]:40000",
     "via":"direct","stream_id":"","bytes_to_device":0,"bytes_from_device":2048,
     "age_seconds":125}]})");
  EXPECT_EQ(formatStreams(a),
            "ID  DEVICE  PORT  VIA     CLIENT           TO-DEVICE  FROM-DEVICE  AGE\n"
            "7   dev01   22    socks5  127.0.0.1:53422  123B       1.2MiB       3s\n"
            "12  -       443   direct  [::1]:40000      0B         2.0KiB       2m05s\n");
  EXPECT_EQ(formatStreams(json::parse(R"({"streams":[]})")),
            "ID  DEVICE  PORT  VIA  CLIENT  TO-DEVICE  FROM-DEVICE  AGE\n");
}

TEST(Output, Devices) {
  json a = json::parse(R"({"devices":[
    {"id":"dev01","online":true,"enabled":true,"last_seen":"2026-11-29T17:00:00Z"},
    {"id":"lab-printer","online":false,"enabled":false,"last_seen":""},
    {"id":"d3","online":false,"enabled":true,"last_seen":1700000000},
    {"id":"d4","online":false,"enabled":true,"last_seen":0}]})");
  EXPECT_EQ(formatDevices(a),
            "DEVICE       ONLINE  ENABLED  LAST-SEEN\n"
            "dev01        yes     yes      2026-11-29T17:00:00Z\n"
            "lab-printer  no      no       never\n"
            "d3           no      yes      2023-11-14T22:13:20Z\n"
            "d4           no      yes      never\n");
}

TEST(Output, Forwards) {
  json a = json::parse(R"({"forwards":[
    {"listen":"127.0.0.1:2222","device":"dev01","port":22,"origin":"config","connections":0},
    {"listen":"[::1]:8080","device":"web","port":80,"origin":"runtime","connections":3}]})");
  EXPECT_EQ(formatForwards(a),
            "LISTEN          DEVICE  HOST       PORT  ORIGIN   CONNECTIONS\n"
            "127.0.0.1:2222  dev01   127.0.0.1  22    config   0\n"
            "[::1]:8080      web     127.0.0.1  80    runtime  3\n");
  EXPECT_EQ(formatForward(a["forwards"][0]), "forward 127.0.0.1:2222 -> dev01:22\n");
}

TEST(Output, ForwardsToHostsAndSockets) {
  json a = json::parse(R"({"forwards":[
    {"listen":"127.0.0.1:8080","device":"dev01","port":80,"host":"192.168.1.10",
     "origin":"runtime","connections":1},
    {"listen":"127.0.0.1:8443","device":"dev01","port":443,"host":"fd00::1",
     "origin":"config","connections":0},
    {"listen":"127.0.0.1:5432","device":"dev01","port":0,"unix":"/run/pg.sock",
     "origin":"config","connections":0}]})");
  EXPECT_EQ(formatForwards(a),
            "LISTEN          DEVICE  HOST               PORT  ORIGIN   CONNECTIONS\n"
            "127.0.0.1:8080  dev01   192.168.1.10       80    runtime  1\n"
            "127.0.0.1:8443  dev01   fd00::1            443   config   0\n"
            "127.0.0.1:5432  dev01   unix:/run/pg.sock  -     config   0\n");
  EXPECT_EQ(formatForward(a["forwards"][0]),
            "forward 127.0.0.1:8080 -> 192.168.1.10:80 via dev01\n");
  EXPECT_EQ(formatForward(a["forwards"][1]), "forward 127.0.0.1:8443 -> [fd00::1]:443 via dev01\n");
  EXPECT_EQ(formatForward(a["forwards"][2]), "forward 127.0.0.1:5432 -> dev01:unix:/run/pg.sock\n");
}

// ---------------------------------------------------------------------------------------------
// Against a control API served from its own thread (its loop never leaves that thread).

class FakeDaemon {
 public:
  using Handler = daemon::ControlApi::Handler;

  FakeDaemon(std::string path, Handler handler) : path_(std::move(path)) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    wakeRead_ = sv[0];
    wakeWrite_ = sv[1];
    auto ready = started_.get_future();
    thread_ = std::thread([this, handler = std::move(handler)]() mutable {
      Loop loop;
      daemon::ControlApi api(loop, path_, "", std::move(handler));
      std::string err;
      if (!api.start(err)) {
        started_.set_value(err.empty() ? "start failed" : err);
        return;
      }
      EventPtr wake(event_new(
          loop.base(), wakeRead_, EV_READ,
          [](evutil_socket_t, short, void* arg) { static_cast<Loop*>(arg)->stop(); }, &loop));
      event_add(wake.get(), nullptr);
      started_.set_value("");
      loop.run();
    });
    startError_ = ready.get();
  }
  ~FakeDaemon() {
    char c = 'x';
    (void)!::write(wakeWrite_, &c, 1);
    thread_.join();
    ::close(wakeRead_);
    ::close(wakeWrite_);
  }
  const std::string& startError() const { return startError_; }

 private:
  std::string path_;
  std::promise<std::string> started_;
  int wakeRead_ = -1, wakeWrite_ = -1;
  std::thread thread_;
  std::string startError_;
};

struct Recorded {
  std::mutex mu;
  std::vector<daemon::ApiRequest> requests;
  void add(const daemon::ApiRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(r);
  }
  std::vector<daemon::ApiRequest> all() {
    std::lock_guard<std::mutex> lock(mu);
    return requests;
  }
};

// Answers like a daemon with one forward, a busy address and a failing hub.
daemon::ControlApi::Handler fakeHandler(Recorded& rec) {
  return [&rec](const daemon::ApiRequest& r, daemon::ControlApi::Respond respond) {
    rec.add(r);
    using daemon::ApiResponse;
    using daemon::apiError;
    if (r.method == "GET" && r.path == "/v1/status") {
      respond(ApiResponse{200, json{{"version", "0.1.0"},
                                    {"pid", 42},
                                    {"uptime_seconds", 5},
                                    {"hub",
                                     {{"url", "https://127.0.0.1:8443"},
                                      {"connected", true},
                                      {"since", "2026-11-29T17:00:00Z"},
                                      {"last_error", ""}}},
                                    {"listen", "127.0.0.1:1080"},
                                    {"auth", false},
                                    {"suffix", ".hub"},
                                    {"direct", false},
                                    {"streams", 0},
                                    {"forwards", 1},
                                    {"streams_total", 0},
                                    {"failures_total", 0}}});
    } else if (r.method == "GET" && r.path == "/v1/devices") {
      respond(apiError(502, "hub_error", "hub answered 503: unavailable"));
    } else if (r.method == "GET" && r.path == "/v1/forwards") {
      respond(ApiResponse{200, json::parse(R"({"forwards":[{"listen":"127.0.0.1:2222",
        "device":"dev01","port":22,"origin":"config","connections":0}]})")});
    } else if (r.method == "GET" && r.path == "/v1/streams") {
      respond(ApiResponse{200, json{{"unexpected", true}}});
    } else if (r.method == "POST" && r.path == "/v1/forwards") {
      json b = json::parse(r.body, nullptr, false);
      if (b.value("listen", "") == "127.0.0.1:2222") {
        respond(apiError(409, "listen_in_use", "127.0.0.1:2222 is in use"));
      } else {
        b["listen"] = "127.0.0.1:40000";
        b["origin"] = "runtime";
        b["connections"] = 0;
        respond(ApiResponse{201, b});
      }
    } else if (r.method == "DELETE" && r.path.starts_with("/v1/forwards/")) {
      if (r.path == "/v1/forwards/[::1]:2222" || r.path == "/v1/forwards/127.0.0.1:2222") {
        respond(ApiResponse{204, {}});
      } else {
        respond(apiError(404, "forward_unknown", "no forward on " + r.path.substr(13)));
      }
    } else {
      respond(apiError(404, "not_found", "no such path"));
    }
  };
}

class AgainstFakeDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ds-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/daemon.sock";
    daemon_ = std::make_unique<FakeDaemon>(path_, fakeHandler(rec_));
    ASSERT_EQ(daemon_->startError(), "");
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  struct Run {
    int code = -1;
    std::string out, err;
  };
  // Runs the devstreams binary with `args` (shell words; quoted by the caller where needed).
  Run cli(const std::string& args, const std::string& env = "") {
    std::string outFile = dir_ + "/out", errFile = dir_ + "/err";
    std::string cmd =
        env + " " + DS_CLI_BIN + " " + args + " </dev/null >" + outFile + " 2>" + errFile;
    int status = std::system(cmd.c_str());
    Run r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(outFile);
    r.err = slurp(errFile);
    return r;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  std::string dir_, path_;
  Recorded rec_;
  std::unique_ptr<FakeDaemon> daemon_;
};

TEST_F(AgainstFakeDaemon, RequestAndAnswer) {
  ControlAnswer a;
  std::string err;
  ASSERT_TRUE(controlRequest(path_, "GET", "/v1/status", "", a, err)) << err;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(json::parse(a.body)["pid"], 42);

  ASSERT_TRUE(controlRequest(path_, "POST", "/v1/forwards",
                             R"({"listen":"127.0.0.1:0","device":"dev01","port":22})", a, err))
      << err;
  EXPECT_EQ(a.status, 201);
  EXPECT_EQ(json::parse(a.body)["listen"], "127.0.0.1:40000");

  ASSERT_TRUE(controlRequest(path_, "DELETE", "/v1/forwards/%5B::1%5D:2222", "", a, err)) << err;
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.body, "");

  auto reqs = rec_.all();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].body, R"({"listen":"127.0.0.1:0","device":"dev01","port":22})");
  EXPECT_EQ(reqs[2].path, "/v1/forwards/[::1]:2222");
}

TEST_F(AgainstFakeDaemon, NoDaemonNamesTheSocket) {
  ControlAnswer a;
  std::string err;
  std::string missing = dir_ + "/nothing.sock";
  EXPECT_FALSE(controlRequest(missing, "GET", "/v1/status", "", a, err));
  EXPECT_NE(err.find(missing), std::string::npos) << err;
  EXPECT_NE(err.find("is devstreamsd running?"), std::string::npos) << err;
}

TEST_F(AgainstFakeDaemon, CliStatus) {
  Run r = cli("status --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("hub:      https://127.0.0.1:8443 connected since"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("forwards: 1"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(AgainstFakeDaemon, CliJsonPrintsTheBodyAsIs) {
  Run r = cli("forward list --json", "DEVSTREAMS_CONTROL=" + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["forwards"][0]["listen"], "127.0.0.1:2222");
}

TEST_F(AgainstFakeDaemon, CliForwardList) {
  Run r = cli("forward list --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "LISTEN          DEVICE  HOST       PORT  ORIGIN  CONNECTIONS\n"
            "127.0.0.1:2222  dev01   127.0.0.1  22    config  0\n");
}

TEST_F(AgainstFakeDaemon, CliForwardAddAndRemove) {
  Run r = cli("forward add 127.0.0.1:0 dev01:22 --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "forward 127.0.0.1:40000 -> dev01:22\n");
  r = cli("forward rm '[::1]:2222' --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "forward [::1]:2222 removed\n");
  auto reqs = rec_.all();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(json::parse(reqs[0].body),
            json({{"listen", "127.0.0.1:0"}, {"device", "dev01"}, {"port", 22}}));
  EXPECT_EQ(reqs[1].method, "DELETE");
  EXPECT_EQ(reqs[1].path, "/v1/forwards/[::1]:2222");
}

TEST_F(AgainstFakeDaemon, CliForwardAddWithHostOrUnix) {
  Run r = cli("forward add 127.0.0.1:0 dev01:80 --host 192.168.1.10 --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "forward 127.0.0.1:40000 -> 192.168.1.10:80 via dev01\n");
  r = cli("forward add 127.0.0.1:0 dev01 --unix /run/app.sock --control " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "forward 127.0.0.1:40000 -> dev01:unix:/run/app.sock\n");
  auto reqs = rec_.all();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(json::parse(reqs[0].body), json({{"listen", "127.0.0.1:0"},
                                             {"device", "dev01"},
                                             {"port", 80},
                                             {"host", "192.168.1.10"}}));
  EXPECT_EQ(json::parse(reqs[1].body),
            json({{"listen", "127.0.0.1:0"}, {"device", "dev01"}, {"unix", "/run/app.sock"}}));
  // Usage errors never reach the daemon.
  r = cli("forward add 127.0.0.1:0 'dev 01' --unix /run/app.sock --control " + path_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("with --unix, expected DEVICE"), std::string::npos) << r.err;
  r = cli("forward add 127.0.0.1:0 dev01 --unix /a --host h --control " + path_);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(rec_.all().size(), 2u);
}

TEST_F(AgainstFakeDaemon, CliDaemonErrorsExit1WithTheirMessage) {
  Run r = cli("forward add 127.0.0.1:2222 dev01:22 --control " + path_);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "devstreams: forward add: 127.0.0.1:2222 is in use (listen_in_use)\n");
  r = cli("forward rm 127.0.0.1:9 --control " + path_);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "devstreams: forward rm: no forward on 127.0.0.1:9 (forward_unknown)\n");
  r = cli("devices --control " + path_);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "devstreams: devices: hub answered 503: unavailable (hub_error)\n");
  // With --json the error body is printed too.
  r = cli("devices --json --control " + path_);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["error"], "hub_error");
}

TEST_F(AgainstFakeDaemon, CliUnexpectedAnswerExit1) {
  Run r = cli("streams --control " + path_);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unexpected answer"), std::string::npos) << r.err;
}

TEST_F(AgainstFakeDaemon, CliWithoutDaemonExit1) {
  std::string missing = dir_ + "/nothing.sock";
  for (const char* cmd : {"status", "streams", "devices", "forward list"}) {
    Run r = cli(std::string(cmd) + " --control " + missing);
    EXPECT_EQ(r.code, 1) << cmd;
    EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("is devstreamsd running?"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(AgainstFakeDaemon, CliUsageErrorsExit2WithoutAsking) {
  for (const char* args :
       {"forward add 127.0.0.1:2222 dev01", "forward add 127.0.0.1:2222 dev01:0",
        "forward add nonsense dev01:22", "forward add 127.0.0.1:2222", "forward rm",
        "forward rm nonsense", "forward", "status extra", "forward list --bogus"}) {
    Run r = cli(std::string(args) + " --control " + path_);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
  }
  EXPECT_TRUE(rec_.all().empty());
}

}  // namespace
}  // namespace ds::cli
