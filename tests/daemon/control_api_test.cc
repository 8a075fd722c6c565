// Tests for the control API's transport: real clients over the Unix socket, driven by the
// server's own loop (the client sockets are plain and the requests small enough to be written
// at once), the socket file's life and its permissions.
#include "daemon/control_api.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/http.h"
#include "support/run_loop.h"

namespace ds::daemon {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Answer {
  int status = 0;
  http::Response head;
  std::string body;
  std::string raw;
};

int connectTo(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    off += static_cast<size_t>(n);
  }
}

// Reads what is there without blocking; true once the peer closed.
bool readSome(int fd, std::string& into) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }
}

Answer parseAnswer(std::string raw) {
  Answer a;
  a.raw = std::move(raw);
  std::string_view rest = a.raw;
  // An interim 100 Continue may come first.
  for (;;) {
    http::ParseResult r = http::parseResponse(rest, a.head);
    if (r.status != http::ParseStatus::Done) {
      ADD_FAILURE() << "no complete response head in: " << a.raw;
      return a;
    }
    rest.remove_prefix(r.consumed);
    if (a.head.status != 100) break;
  }
  a.status = a.head.status;
  a.body = std::string(rest);
  return a;
}

class ControlApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ds-ctl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/run/devstreams/daemon.sock";
    safety_.arm(std::chrono::seconds(20));
  }
  void TearDown() override {
    api_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A server whose handler records the request and answers with `answer` (null: keep the
  // Respond for later).
  void startServer(std::function<void(const ApiRequest&, ControlApi::Respond)> handler = {},
                   const ControlApiLimits& limits = {}) {
    if (!handler) {
      handler = [this](const ApiRequest& r, ControlApi::Respond respond) {
        requests_.push_back(r);
        respond(ApiResponse{200, json{{"path", r.path}, {"query", r.query}, {"body", r.body}}});
      };
    }
    api_ = std::make_unique<ControlApi>(loop_, path_, "", std::move(handler));
    api_->setLimits(limits);
    std::string err;
    ASSERT_TRUE(api_->start(err)) << err;
  }

  // Sends `request` on a fresh connection and runs the loop until the server closed it.
  Answer exchange(const std::string& request) {
    int fd = connectTo(path_);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    if (fd < 0) return {};
    writeAll(fd, request);
    std::string raw;
    test::runUntil(loop_, timedOut_, [&] { return readSome(fd, raw); });
    ::close(fd);
    return parseAnswer(std::move(raw));
  }

  Loop loop_;
  bool timedOut_ = false;
  Timer safety_{loop_, [this] { timedOut_ = true; }};
  std::string dir_, path_;
  std::unique_ptr<ControlApi> api_;
  std::vector<ApiRequest> requests_;
};

TEST(DefaultControlSocket, FollowsXdgRuntimeDir) {
  const char* old = std::getenv("XDG_RUNTIME_DIR");
  std::string saved = old ? old : "";
  ::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
  EXPECT_EQ(defaultControlSocket(), "/run/user/1000/devstreams/daemon.sock");
  ::setenv("XDG_RUNTIME_DIR", "/run/user/1000/", 1);
  EXPECT_EQ(defaultControlSocket(), "/run/user/1000/devstreams/daemon.sock");
  ::setenv("XDG_RUNTIME_DIR", "", 1);
  EXPECT_EQ(defaultControlSocket(), "/run/devstreams/daemon.sock");
  ::unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(defaultControlSocket(), "/run/devstreams/daemon.sock");
  if (old) ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
}

TEST(ApiError, HasCodeAndMessage) {
  ApiResponse r = apiError(409, "listen_in_use", "127.0.0.1:2222 is in use");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body, json({{"error", "listen_in_use"}, {"message", "127.0.0.1:2222 is in use"}}));
}

TEST_F(ControlApiTest, AnswersAGetWithJson) {
  startServer();
  Answer a = exchange("GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(a.status, 200);
  ASSERT_NE(a.head.headers.find("Content-Type"), nullptr);
  EXPECT_EQ(*a.head.headers.find("Content-Type"), "application/json");
  EXPECT_TRUE(a.head.headers.hasToken("Connection", "close"));
  ASSERT_NE(a.head.headers.find("Content-Length"), nullptr);
  EXPECT_EQ(*a.head.headers.find("Content-Length"), std::to_string(a.body.size()));
  json body = json::parse(a.body);
  EXPECT_EQ(body["path"], "/v1/status");
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].method, "GET");
  EXPECT_EQ(requests_[0].query, "");
  EXPECT_EQ(requests_[0].body, "");
  EXPECT_EQ(api_->connections(), 0u);
}

TEST_F(ControlApiTest, PathIsPercentDecodedAndQuerySplitOff) {
  startServer();
  Answer a =
      exchange("DELETE /v1/forwards/%5B%3a%3A1%5D:2222+x?a=1&b=%20 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 200);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].method, "DELETE");
  EXPECT_EQ(requests_[0].path, "/v1/forwards/[::1]:2222+x");
  EXPECT_EQ(requests_[0].query, "a=1&b=%20");
}

TEST_F(ControlApiTest, DeliversTheBody) {
  startServer();
  std::string body = R"({"listen":"127.0.0.1:0","device":"dev01","port":22})";
  Answer a = exchange(
      "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(a.status, 200);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body, body);
}

TEST_F(ControlApiTest, ExpectContinueGetsAnInterimAnswer) {
  startServer();
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  writeAll(
      fd,
      "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  // The client waits for the interim answer before it sends the body.
  std::string raw;
  const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  test::runUntil(loop_, timedOut_, [&] {
    readSome(fd, raw);
    return raw.size() >= kContinue.size();
  });
  EXPECT_EQ(raw, kContinue);
  writeAll(fd, "{}");
  test::runUntil(loop_, timedOut_, [&] { return readSome(fd, raw); });
  ::close(fd);
  Answer a = parseAnswer(std::move(raw));
  EXPECT_EQ(a.status, 200);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body, "{}");
}

TEST_F(ControlApiTest, NoContentHasNoBody) {
  startServer([](const ApiRequest&, ControlApi::Respond respond) { respond({204, {}}); });
  Answer a = exchange("DELETE /v1/forwards/127.0.0.1:2222 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.body, "");
  EXPECT_EQ(a.head.headers.find("Content-Length"), nullptr);
}

TEST_F(ControlApiTest, ErrorStatusesCarryTheHandlersBody) {
  startServer([](const ApiRequest&, ControlApi::Respond respond) {
    respond(apiError(404, "forward_unknown", "no forward on 127.0.0.1:9"));
  });
  Answer a = exchange("DELETE /v1/forwards/127.0.0.1:9 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(json::parse(a.body)["error"], "forward_unknown");
}

TEST_F(ControlApiTest, InvalidUtf8InTheAnswerIsReplacedNotThrown) {
  startServer([](const ApiRequest&, ControlApi::Respond respond) {
    respond({200, json{{"id", std::string("dev\xff")}}});
  });
  Answer a = exchange("GET /v1/devices HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 200);
  EXPECT_TRUE(json::parse(a.body)["id"].is_string());
}

TEST_F(ControlApiTest, HandlerExceptionIs500) {
  startServer([](const ApiRequest&, ControlApi::Respond) { throw std::runtime_error("boom"); });
  Answer a = exchange("GET /v1/status HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 500);
  EXPECT_EQ(json::parse(a.body)["error"], "internal_error");
}

struct BadCase {
  const char* name;
  std::string request;
  int status;
};

TEST_F(ControlApiTest, BadRequestsGetJsonErrorsAndNeverReachTheHandler) {
  startServer();
  std::vector<BadCase> cases = {
      {"garbage", "GARBAGE\r\n\r\n", 400},
      {"bare LF", "GET /v1/status HTTP/1.1\n\n", 400},
      {"bad escape", "GET /v1/%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"short escape", "GET /v1/% HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"NUL escape", "GET /v1/a%00 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"absolute form", "GET http://localhost/v1/status HTTP/1.1\r\n\r\n", 400},
      {"asterisk", "OPTIONS * HTTP/1.1\r\n\r\n", 400},
      // Chunked bodies are not implemented (common/http_server.h).
      {"chunked",
       "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"bad length", "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400},
      {"conflicting lengths",
       "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       400},
      {"body too large", "POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n",
       413},
      {"head too large",
       "GET /v1/status HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n",
       431},
      {"target too long", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"version", "GET /v1/status HTTP/2.0\r\n\r\n", 505},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    Answer a = exchange(c.request);
    EXPECT_EQ(a.status, c.status);
    json body = json::parse(a.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << a.raw;
    EXPECT_TRUE(body["error"].is_string());
    EXPECT_TRUE(body["message"].is_string());
  }
  EXPECT_TRUE(requests_.empty());
  EXPECT_EQ(api_->connections(), 0u);
}

TEST_F(ControlApiTest, BodyAtTheLimitIsAccepted) {
  startServer();
  std::string body(64 * 1024, 'x');
  Answer a = exchange("POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(a.status, 200);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body.size(), body.size());
}

TEST_F(ControlApiTest, IncompleteRequestTimesOutWith408) {
  ControlApiLimits limits;
  limits.readTimeout = std::chrono::milliseconds(20);
  startServer({}, limits);
  Answer a = exchange("POST /v1/forwards HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n{");
  EXPECT_EQ(a.status, 408);
  EXPECT_EQ(json::parse(a.body)["error"], "timeout");
  EXPECT_TRUE(requests_.empty());
}

TEST_F(ControlApiTest, ClientLeavingBeforeTheRequestIsCompleteEndsTheConnection) {
  startServer();
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  writeAll(fd, "GET /v1/sta");
  test::runUntil(loop_, timedOut_, [&] { return api_->connections() == 1; });
  ::close(fd);
  test::runUntil(loop_, timedOut_, [&] { return api_->connections() == 0; });
  EXPECT_TRUE(requests_.empty());
}

TEST_F(ControlApiTest, AnswersAsynchronously) {
  ControlApi::Respond saved;
  startServer([&](const ApiRequest&, ControlApi::Respond respond) { saved = std::move(respond); });
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  // The client half-closes after its request, as some do; the answer still arrives.
  writeAll(fd, "GET /v1/devices HTTP/1.1\r\nHost: h\r\n\r\n");
  ::shutdown(fd, SHUT_WR);
  test::runUntil(loop_, timedOut_, [&] { return static_cast<bool>(saved); });
  test::spin(loop_);
  std::string raw;
  EXPECT_FALSE(readSome(fd, raw));
  EXPECT_EQ(raw, "");
  EXPECT_EQ(api_->connections(), 1u);

  saved(apiError(502, "hub_error", "hub answered 503"));
  saved(ApiResponse{200, json::object()});  // a second answer is ignored
  test::runUntil(loop_, timedOut_, [&] { return readSome(fd, raw); });
  ::close(fd);
  Answer a = parseAnswer(raw);
  EXPECT_EQ(a.status, 502);
  EXPECT_EQ(json::parse(a.body)["message"], "hub answered 503");
  EXPECT_EQ(api_->connections(), 0u);
}

TEST_F(ControlApiTest, AnswerAfterTheClientLeftIsHarmless) {
  ControlApi::Respond saved;
  startServer([&](const ApiRequest&, ControlApi::Respond respond) { saved = std::move(respond); });
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  writeAll(fd, "GET /v1/devices HTTP/1.1\r\nHost: h\r\n\r\n");
  test::runUntil(loop_, timedOut_, [&] { return static_cast<bool>(saved); });
  ::close(fd);
  test::spin(loop_);
  saved(ApiResponse{200, json{{"devices", json::array()}}});
  test::runUntil(loop_, timedOut_, [&] { return api_->connections() == 0; });
  test::spin(loop_);
  // And after the server itself is gone.
  api_.reset();
  test::spin(loop_);
  saved(ApiResponse{200, json::object()});
}

TEST_F(ControlApiTest, HandlerThatNeverAnswersGets504) {
  ControlApiLimits limits;
  limits.answerTimeout = std::chrono::milliseconds(20);
  ControlApi::Respond saved;
  startServer([&](const ApiRequest&, ControlApi::Respond respond) { saved = std::move(respond); },
              limits);
  Answer a = exchange("GET /v1/devices HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 504);
  saved(ApiResponse{});  // too late: ignored
  test::spin(loop_);
}

TEST_F(ControlApiTest, ServerGoneWithOpenConnections) {
  ControlApi::Respond saved;
  startServer([&](const ApiRequest&, ControlApi::Respond respond) { saved = std::move(respond); });
  int waiting = connectTo(path_);
  int reading = connectTo(path_);
  ASSERT_GE(waiting, 0);
  ASSERT_GE(reading, 0);
  writeAll(waiting, "GET /v1/devices HTTP/1.1\r\nHost: h\r\n\r\n");
  writeAll(reading, "GET /v1/dev");
  test::runUntil(loop_, timedOut_, [&] { return saved && api_->connections() == 2; });
  api_.reset();
  EXPECT_FALSE(fs::exists(path_));
  std::string raw;
  test::runUntil(loop_, timedOut_,
                 [&] { return readSome(waiting, raw) && readSome(reading, raw); });
  EXPECT_EQ(raw, "");
  saved(ApiResponse{});
  ::close(waiting);
  ::close(reading);
}

TEST_F(ControlApiTest, ConnectionsBeyondTheLimitAreClosed) {
  ControlApiLimits limits;
  limits.maxConnections = 2;
  startServer({}, limits);
  int a = connectTo(path_);
  int b = connectTo(path_);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  test::runUntil(loop_, timedOut_, [&] { return api_->connections() == 2; });
  int c = connectTo(path_);
  ASSERT_GE(c, 0);
  std::string raw;
  test::runUntil(loop_, timedOut_, [&] { return readSome(c, raw); });
  EXPECT_EQ(raw, "");
  ::close(c);
  EXPECT_EQ(api_->connections(), 2u);
  // The ones admitted still work.
  writeAll(a, "GET /v1/status HTTP/1.1\r\nHost: h\r\n\r\n");
  test::runUntil(loop_, timedOut_, [&] { return readSome(a, raw); });
  EXPECT_EQ(parseAnswer(raw).status, 200);
  ::close(a);
  ::close(b);
  test::runUntil(loop_, timedOut_, [&] { return api_->connections() == 0; });
}

// ---------------------------------------------------------------------------------------------
// The socket file.

TEST_F(ControlApiTest, CreatesPrivateDirectoryAndSocket) {
  ::umask(0022);
  startServer();
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/run/devstreams").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((dir_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(api_->path(), path_);
  api_.reset();
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(ControlApiTest, ExistingDirectoryIsLeftAlone) {
  fs::create_directories(dir_ + "/run/devstreams");
  ::chmod((dir_ + "/run/devstreams").c_str(), 0755);
  startServer();
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/run/devstreams").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ControlApiTest, GroupMakesTheSocketGroupAccessible) {
  group* g = ::getgrgid(::getgid());
  if (!g) GTEST_SKIP() << "the process's group has no name";
  api_ = std::make_unique<ControlApi>(loop_, path_, g->gr_name,
                                      [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  ASSERT_TRUE(api_->start(err)) << err;
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, ::getgid());
  ASSERT_EQ(::stat((dir_ + "/run/devstreams").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(ControlApiTest, UnknownGroupIsAnError) {
  api_ = std::make_unique<ControlApi>(loop_, path_, "no-such-group-ds-test",
                                      [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  EXPECT_FALSE(api_->start(err));
  EXPECT_NE(err.find("no-such-group-ds-test"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(ControlApiTest, LiveSocketIsRefused) {
  startServer();
  ControlApi second(loop_, path_, "", [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  EXPECT_FALSE(second.start(err));
  EXPECT_NE(err.find("another devstreamsd is running"), std::string::npos) << err;
  // The first one keeps its socket, also after the second is destroyed.
  EXPECT_TRUE(fs::exists(path_));
  Answer a = exchange("GET /v1/status HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 200);
}

TEST_F(ControlApiTest, StaleSocketIsReplaced) {
  fs::create_directories(dir_ + "/run/devstreams");
  {
    // A socket file left behind by a process that is gone.
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path_.data(), path_.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::exists(path_));
  startServer();
  Answer a = exchange("GET /v1/status HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(a.status, 200);
}

TEST_F(ControlApiTest, OtherFilesAreNotReplaced) {
  fs::create_directories(dir_ + "/run/devstreams");
  {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    std::fclose(f);
  }
  ControlApi api(loop_, path_, "", [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  EXPECT_FALSE(api.start(err));
  EXPECT_NE(err.find("not a socket"), std::string::npos) << err;
  EXPECT_TRUE(fs::is_regular_file(path_));
}

TEST_F(ControlApiTest, TooLongPathIsAnError) {
  ControlApi api(loop_, dir_ + "/" + std::string(200, 'a'), "",
                 [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  EXPECT_FALSE(api.start(err));
  EXPECT_NE(err.find("longer than"), std::string::npos) << err;
}

TEST_F(ControlApiTest, ParentThatIsAFileIsAnError) {
  {
    std::FILE* f = std::fopen((dir_ + "/run").c_str(), "w");
    std::fclose(f);
  }
  ControlApi api(loop_, path_, "", [](const ApiRequest&, ControlApi::Respond r) { r({}); });
  std::string err;
  EXPECT_FALSE(api.start(err));
  EXPECT_FALSE(err.empty());
}

}  // namespace
}  // namespace ds::daemon
