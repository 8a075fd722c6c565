// Hub connections through an HTTP proxy: the proxy URL parser, the choice of proxy from the
// environment (HTTPS_PROXY, NO_PROXY), and the CONNECT step of real exchanges on loopback
// against an in-process fake proxy and an in-process TLS server that plays the hub.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/event.h"
#include "common/http.h"
#include "common/http_exchange.h"
#include "common/pki.h"
#include "common/sas.h"
#include "common/tls.h"
#include "hubclient/fake_hub.h"
#include "hubclient/hub_client.h"

namespace ds::hubclient {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// parseProxyUrl

struct UrlCase {
  const char* url;
  bool ok;
  const char* host = "";
  uint16_t port = 0;
  const char* user = "";
  const char* password = "";
};

TEST(ParseProxyUrl, Table) {
  const UrlCase cases[] = {
      {"http://proxy.corp", true, "proxy.corp", 3128},
      {"http://proxy.corp/", true, "proxy.corp", 3128},
      {"http://proxy.corp:8080", true, "proxy.corp", 8080},
      {"http://proxy.corp:8080/", true, "proxy.corp", 8080},
      {"HTTP://Proxy.Corp:1", true, "Proxy.Corp", 1},
      {"http://10.0.0.1:3129", true, "10.0.0.1", 3129},
      {"http://[::1]:8080", true, "::1", 8080},
      {"http://[::1]", true, "::1", 3128},
      {"http://alice:secret@proxy:3128", true, "proxy", 3128, "alice", "secret"},
      {"http://alice@proxy", true, "proxy", 3128, "alice", ""},
      {"http://alice:@proxy", true, "proxy", 3128, "alice", ""},
      // Percent-escapes are decoded; '+' is a plus sign, not a space.
      {"http://a%40corp:p%2Bw+x%3A%25@proxy:81", true, "proxy", 81, "a@corp", "p+w+x:%"},
      {"http://a%40b:c%40d@proxy", true, "proxy", 3128, "a@b", "c@d"},
      // The password may hold ':' and the last '@' ends the user info.
      {"http://u:pa:ss@w@proxy", true, "proxy", 3128, "u", "pa:ss@w"},
      {"http://u:p%zz@proxy", false},
      {"http://u:p%4@proxy", false},
      {"http://:secret@proxy", false},
      {"http://a%3Ab:secret@proxy", false},  // Basic cannot carry ':' in the user name
      {"https://proxy.corp:3128", false},    // TLS to the proxy itself is not supported
      {"socks5://proxy:1080", false},
      {"proxy.corp:3128", false},
      {"", false},
      {"http://", false},
      {"http://user:pw@", false},
      {"http://proxy:", false},
      {"http://proxy:0", false},
      {"http://proxy:65536", false},
      {"http://proxy:80x", false},
      {"http://proxy/path", false},
      {"http://proxy:3128/?q", false},
      {"http://proxy#frag", false},
      {"http://pro xy", false},
      {"http://[::1", false},
      {"http://[nothex]:1", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    ProxyTarget p;
    p.host = "unchanged";
    std::string err;
    ASSERT_EQ(parseProxyUrl(c.url, p, err), c.ok) << err;
    if (!c.ok) {
      EXPECT_FALSE(err.empty());
      EXPECT_EQ(p.host, "unchanged");  // untouched on failure
      continue;
    }
    EXPECT_TRUE(p.enabled());
    EXPECT_EQ(p.host, c.host);
    EXPECT_EQ(p.port, c.port);
    EXPECT_EQ(p.user, c.user);
    EXPECT_EQ(p.password, c.password);
  }
}

TEST(ParseProxyUrl, ErrorsNeverRepeatTheUrl) {
  for (const char* url : {"http://alice:s3cret@proxy:99999", "https://alice:s3cret@proxy",
                          "http://alice:s3cret%@proxy", "http://alice:s3cret@proxy/x"}) {
    ProxyTarget p;
    std::string err;
    ASSERT_FALSE(parseProxyUrl(url, p, err)) << url;
    EXPECT_EQ(err.find("s3cret"), std::string::npos) << err;
  }
  ProxyTarget p;
  std::string err;
  ASSERT_FALSE(parseProxyUrl("https://proxy", p, err));
  EXPECT_NE(err.find("http://"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------------------
// proxyFromEnvironment

class ProxyEnv : public ::testing::Test {
 protected:
  static constexpr const char* kVars[] = {"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"};

  void SetUp() override {
    for (const char* v : kVars) {
      const char* old = std::getenv(v);
      saved_.push_back(old ? std::optional<std::string>(old) : std::nullopt);
      unsetenv(v);
    }
  }
  void TearDown() override {
    for (size_t i = 0; i < saved_.size(); ++i) {
      if (saved_[i]) {
        setenv(kVars[i], saved_[i]->c_str(), 1);
      } else {
        unsetenv(kVars[i]);
      }
    }
  }
  // The proxy for `host`, or nullopt when none applies.
  static std::optional<ProxyTarget> proxyFor(const std::string& host) {
    ProxyTarget p;
    p.port = 9;  // must be reset when no proxy applies
    std::string err;
    EXPECT_TRUE(proxyFromEnvironment(host, p, err)) << err;
    if (!p.enabled()) return std::nullopt;
    return p;
  }

 private:
  std::vector<std::optional<std::string>> saved_;
};

TEST_F(ProxyEnv, NoVariablesMeansNoProxy) { EXPECT_FALSE(proxyFor("hub.example.com")); }

TEST_F(ProxyEnv, HttpsProxyUpperAndLowerCase) {
  setenv("https_proxy", "http://lower:3128", 1);
  ASSERT_TRUE(proxyFor("hub.example.com"));
  EXPECT_EQ(proxyFor("hub.example.com")->host, "lower");
  setenv("HTTPS_PROXY", "http://u%2Bx:p@upper:8080", 1);
  auto p = proxyFor("hub.example.com");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "upper");
  EXPECT_EQ(p->port, 8080);
  EXPECT_EQ(p->user, "u+x");
  EXPECT_EQ(p->password, "p");
  // An empty HTTPS_PROXY is as good as none.
  setenv("HTTPS_PROXY", "", 1);
  EXPECT_EQ(proxyFor("hub.example.com")->host, "lower");
}

TEST_F(ProxyEnv, MalformedProxyIsAnError) {
  setenv("HTTPS_PROXY", "https://user:hunter2@proxy", 1);
  ProxyTarget p;
  std::string err;
  EXPECT_FALSE(proxyFromEnvironment("hub.example.com", p, err));
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
  // ... unless NO_PROXY exempts the host anyway.
  setenv("NO_PROXY", "hub.example.com", 1);
  err.clear();
  EXPECT_TRUE(proxyFromEnvironment("hub.example.com", p, err)) << err;
  EXPECT_FALSE(p.enabled());
}

TEST_F(ProxyEnv, NoProxyRules) {
  setenv("HTTPS_PROXY", "http://proxy:3128", 1);
  struct Case {
    const char* noProxy;
    const char* host;
    bool direct;
  };
  const Case cases[] = {
      {"hub.example.com", "hub.example.com", true},
      {"HUB.Example.com", "hub.example.COM", true},
      {"example.com", "hub.example.com", true},   // domain match without a dot
      {".example.com", "hub.example.com", true},  // and with one
      {".example.com", "example.com", true},      // the domain itself
      {"*.example.com", "hub.example.com", true},
      {"example.com", "badexample.com", false},  // label boundary
      {".example.com", "hub.example.org", false},
      {"hub.example.com", "example.com", false},  // a subdomain does not cover its parent
      {"*", "anything.at.all", true},
      {" other.org , hub.example.com ", "hub.example.com", true},  // list, whitespace trimmed
      {"other.org,,\t", "hub.example.com", false},
      {"hub.example.com:8443", "hub.example.com", true},  // ports in entries are ignored
      {"127.0.0.1", "127.0.0.1", true},                   // IP literals as text
      {"127.0.0.1:443", "127.0.0.1", true},
      {"127.0.0.2", "127.0.0.1", false},
      {"::1", "::1", true},
      {"[::1]:443", "::1", true},
      {"localhost", "127.0.0.1", false},  // no resolving
      {"", "hub.example.com", false},
      {"hub.example.com.", "hub.example.com", false},
      {"example.com", "hub.example.com.", true},  // the host's trailing dot is dropped
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string("NO_PROXY=") + c.noProxy + " host=" + c.host);
    setenv("NO_PROXY", c.noProxy, 1);
    EXPECT_EQ(!proxyFor(c.host).has_value(), c.direct);
  }
  unsetenv("NO_PROXY");
  setenv("no_proxy", "example.com", 1);
  EXPECT_FALSE(proxyFor("hub.example.com"));
  EXPECT_TRUE(proxyFor("hub.example.org"));
}

// ---------------------------------------------------------------------------------------------
// The CONNECT step on loopback.

// Runs `loop` until `pred` holds or `timeout` passes; true when it holds.
bool runUntil(Loop& loop, const std::function<bool()>& pred,
              std::chrono::milliseconds timeout = 10s) {
  if (pred()) return true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool met = false;
  std::unique_ptr<Timer> poll;
  poll = std::make_unique<Timer>(loop, [&] {
    if (pred()) {
      met = true;
      loop.stop();
    } else if (std::chrono::steady_clock::now() >= deadline) {
      loop.stop();
    } else {
      poll->arm(2ms);
    }
  });
  poll->arm(2ms);
  loop.run();
  return met;
}

std::string readHead(bufferevent* bev, http::Request& req, size_t& consumed) {
  evbuffer* in = bufferevent_get_input(bev);
  size_t len = evbuffer_get_length(in);
  const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  http::ParseResult r = http::parseRequest(std::string_view(p, len), req);
  if (r.status == http::ParseStatus::NeedMore) return "more";
  if (r.status == http::ParseStatus::Invalid) return "invalid";
  consumed = r.consumed;
  return "";
}

using FakeHub = test::FakeHub;  // fake_hub.h

// An HTTP proxy that reads one CONNECT head per connection and then either answers with fixed
// bytes (and closes), says nothing, or answers 200 and relays to 127.0.0.1:relayPort.
class FakeProxy {
 public:
  enum class Mode { Answer, Silent, Relay };

  explicit FakeProxy(Loop& loop) : loop_(loop) {
    std::string err;
    listener_ = listenTcp(loop, "127.0.0.1", 0, &FakeProxy::onAccept, this, port_, err);
    EXPECT_TRUE(listener_) << err;
  }
  uint16_t port() const { return port_; }

  Mode mode = Mode::Answer;
  std::string answer;      // for Mode::Answer
  uint16_t relayPort = 0;  // for Mode::Relay
  bool closeAfterAnswer = true;
  std::vector<http::Request> seen;

 private:
  struct Conn {
    FakeProxy* proxy;
    BufferEventPtr client, upstream;
  };
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<FakeProxy*>(arg);
    auto c = std::make_unique<Conn>(Conn{self, newSocketBufferEvent(self->loop_, fd), nullptr});
    bufferevent_setcb(c->client.get(), &FakeProxy::onHead, nullptr, nullptr, c.get());
    bufferevent_enable(c->client.get(), EV_READ | EV_WRITE);
    self->conns_.push_back(std::move(c));
  }
  static void onHead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    FakeProxy* self = c->proxy;
    http::Request req;
    size_t consumed = 0;
    if (!readHead(bev, req, consumed).empty()) return;
    evbuffer_drain(bufferevent_get_input(bev), consumed);
    self->seen.push_back(req);
    switch (self->mode) {
      case Mode::Silent:
        bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
        return;
      case Mode::Answer:
        bufferevent_write(bev, self->answer.data(), self->answer.size());
        if (self->closeAfterAnswer) {
          self->loop_.closeAfterFlush(std::move(c->client));
        } else {
          bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
        }
        return;
      case Mode::Relay: {
        sockaddr_storage ss;
        socklen_t len;
        numericSockaddr("127.0.0.1", self->relayPort, ss, len);
        c->upstream = newSocketBufferEvent(self->loop_, -1);
        bufferevent_socket_connect(c->upstream.get(), reinterpret_cast<sockaddr*>(&ss),
                                   static_cast<int>(len));
        std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
        bufferevent_write(bev, ok.data(), ok.size());
        bufferevent_setcb(bev, &FakeProxy::onRelay, nullptr, nullptr, c);
        bufferevent_setcb(c->upstream.get(), &FakeProxy::onRelay, nullptr, nullptr, c);
        bufferevent_enable(c->upstream.get(), EV_READ | EV_WRITE);
        return;
      }
    }
  }
  static void onRelay(bufferevent* from, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    bufferevent* to = from == c->client.get() ? c->upstream.get() : c->client.get();
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
  }

  Loop& loop_;
  ListenerPtr listener_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
};

class ProxyConnect : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/ds-proxy-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    pki::BootstrapResult r;
    std::string err;
    ASSERT_TRUE(pki::ensureHubCertificates(*dir_, {"localhost", "127.0.0.1"}, r, err)) << err;
    files_ = new pki::HubFiles(r.files);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (dir_) std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    delete files_;
    dir_ = nullptr;
    files_ = nullptr;
  }

  void SetUp() override {
    std::string err;
    serverCtx_ = tls::serverContext(files_->cert, files_->key, err);
    ASSERT_TRUE(serverCtx_) << err;
    clientCtx_ = tls::clientContext(files_->caCert, err);
    ASSERT_TRUE(clientCtx_) << err;
    hub_ = std::make_unique<FakeHub>(loop_, serverCtx_.get());
    proxy_ = std::make_unique<FakeProxy>(loop_);
    target_.host = "127.0.0.1";
    target_.port = hub_->port();
    target_.serverName = "localhost";
    target_.resourceHost = "localhost";
    target_.ssl = clientCtx_.get();
    target_.proxy.host = "127.0.0.1";
    target_.proxy.port = proxy_->port();
  }

  std::string hubAuthority() const { return "127.0.0.1:" + std::to_string(hub_->port()); }

  // Asks for a stream through the target; the result once it is there.
  InitiateResult initiate(std::chrono::milliseconds timeout = 5s) {
    std::optional<InitiateResult> got;
    exchange_ = initiateStream(loop_, target_, "service", sas::randomKey(), "dev01", "127.0.0.1",
                               22, timeout, [&](InitiateResult&& r) { got = std::move(r); });
    EXPECT_TRUE(runUntil(loop_, [&] { return got.has_value(); }));
    return got.value_or(InitiateResult{});
  }

  // Opens a control channel through the target; the error ("" on success).
  std::string control() {
    bool finished = false;
    std::string error;
    exchange_ = openControl(loop_, target_, "dev01", sas::randomKey(), WsLimits{}, 5s,
                            [&](std::unique_ptr<WsConnection> ws, std::string err) {
                              finished = true;
                              error = err;
                              if (ws) ws_ = std::move(ws);
                            });
    EXPECT_TRUE(runUntil(loop_, [&] { return finished; }));
    return error;
  }

  // Answers CONNECT with `answer` and returns the failure the stream initiation reports.
  std::string failureFor(const std::string& answer) {
    proxy_->answer = answer;
    InitiateResult r = initiate();
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.code, "hub_unreachable");
    EXPECT_TRUE(hub_->requests.empty());
    return r.message;
  }

  static std::string* dir_;
  static pki::HubFiles* files_;
  Loop loop_;
  SslCtxPtr serverCtx_, clientCtx_;
  std::unique_ptr<FakeHub> hub_;
  std::unique_ptr<FakeProxy> proxy_;
  HubTarget target_;
  ExchangePtr exchange_;
  std::unique_ptr<WsConnection> ws_;
};

std::string* ProxyConnect::dir_ = nullptr;
pki::HubFiles* ProxyConnect::files_ = nullptr;

TEST_F(ProxyConnect, DirectPathIsUnchanged) {
  target_.proxy = ProxyTarget{};
  InitiateResult r = initiate();
  EXPECT_EQ(r.status, 200) << r.code << " " << r.message;
  EXPECT_EQ(r.grant.streamId, "s1");
  EXPECT_TRUE(proxy_->seen.empty());
}

TEST_F(ProxyConnect, StreamInitiationThroughTheTunnel) {
  proxy_->mode = FakeProxy::Mode::Relay;
  proxy_->relayPort = hub_->port();
  InitiateResult r = initiate();
  EXPECT_EQ(r.status, 200) << r.code << " " << r.message;
  EXPECT_EQ(r.grant.token, "t1");
  ASSERT_EQ(proxy_->seen.size(), 1u);
  const http::Request& req = proxy_->seen[0];
  EXPECT_EQ(req.method, "CONNECT");
  EXPECT_EQ(req.target, hubAuthority());
  ASSERT_TRUE(req.headers.find("Host"));
  EXPECT_EQ(*req.headers.find("Host"), hubAuthority());
  EXPECT_EQ(req.headers.find("Proxy-Authorization"), nullptr);  // no credentials configured
  ASSERT_EQ(hub_->requests.size(), 1u);
  EXPECT_EQ(hub_->requests[0], "POST /api/v1/devices/dev01/streams");
}

TEST_F(ProxyConnect, ControlChannelThroughTheTunnelWithCredentials) {
  proxy_->mode = FakeProxy::Mode::Relay;
  proxy_->relayPort = hub_->port();
  target_.proxy.user = "a@corp";
  target_.proxy.password = "p+w:x";
  EXPECT_EQ(control(), "");
  EXPECT_TRUE(ws_);
  ASSERT_EQ(proxy_->seen.size(), 1u);
  const std::string* auth = proxy_->seen[0].headers.find("Proxy-Authorization");
  ASSERT_TRUE(auth);
  EXPECT_EQ(*auth, "Basic " + sas::base64Encode(std::string("a@corp:p+w:x")));
  ASSERT_EQ(hub_->requests.size(), 1u);
  EXPECT_EQ(hub_->requests[0], "GET /api/v1/devices/dev01/control");
}

TEST_F(ProxyConnect, ProxyWantingCredentials) {
  std::string msg = failureFor(
      "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
      "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(msg, "proxy requires authentication (407)");
}

TEST_F(ProxyConnect, ProxyRefusingTheCredentials) {
  target_.proxy.user = "alice";
  target_.proxy.password = "hunter2";
  std::string msg = failureFor("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n");
  EXPECT_EQ(msg, "proxy refused the credentials (407)");
  EXPECT_EQ(msg.find("hunter2"), std::string::npos);
  // tinyproxy 1.11 answers wrong credentials with 401.
  EXPECT_EQ(failureFor("HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n"),
            "proxy refused the credentials (401)");
}

TEST_F(ProxyConnect, ProxyRefusingTheTarget) {
  EXPECT_EQ(failureFor("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"),
            "proxy refused CONNECT to " + hubAuthority() + ": 403 Forbidden");
  hub_->requests.clear();
  EXPECT_EQ(failureFor("HTTP/1.1 502 Bad Gateway\r\n\r\n"),
            "proxy refused CONNECT to " + hubAuthority() + ": 502 Bad Gateway");
}

TEST_F(ProxyConnect, ProxyTalkingNonsense) {
  std::string msg = failureFor("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  EXPECT_EQ(msg.rfind("bad answer from proxy 127.0.0.1:", 0), 0u) << msg;
}

TEST_F(ProxyConnect, BytesAfterTheConnectAnswerAreAnError) {
  proxy_->closeAfterAnswer = false;
  std::string msg = failureFor("HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03junk");
  EXPECT_EQ(msg, "proxy 127.0.0.1:" + std::to_string(proxy_->port()) +
                     " sent data after its CONNECT answer");
}

TEST_F(ProxyConnect, ProxyClosingWithoutAnswer) {
  std::string msg = failureFor("");
  EXPECT_EQ(msg, "proxy 127.0.0.1:" + std::to_string(proxy_->port()) +
                     " closed the connection before answering");
}

TEST_F(ProxyConnect, SilentProxyIsBoundedByTheTimeout) {
  proxy_->mode = FakeProxy::Mode::Silent;
  auto t0 = std::chrono::steady_clock::now();
  InitiateResult r = initiate(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.message, "timed out waiting for proxy 127.0.0.1:" + std::to_string(proxy_->port()));
}

TEST_F(ProxyConnect, UnreachableProxy) {
  // A port that was free a moment ago: nothing listens there.
  uint16_t port = 0;
  {
    std::string err;
    ListenerPtr l = listenTcp(loop_, "127.0.0.1", 0, nullptr, nullptr, port, err);
    ASSERT_TRUE(l) << err;
  }
  target_.proxy.port = port;
  InitiateResult r = initiate();
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.message.rfind("cannot connect to proxy 127.0.0.1:" + std::to_string(port), 0), 0u)
      << r.message;
}

TEST_F(ProxyConnect, TlsIsStillVerifiedThroughTheTunnel) {
  proxy_->mode = FakeProxy::Mode::Relay;
  proxy_->relayPort = hub_->port();
  target_.serverName = "not-the-hub.example";
  InitiateResult r = initiate();
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.message.find("certificate"), std::string::npos) << r.message;
  EXPECT_TRUE(hub_->requests.empty());
}

}  // namespace
}  // namespace ds::hubclient

namespace ds::hubclient {
namespace {

// `devstreams hub ...` reaches the hub through the one REST client: HTTPS_PROXY applies to it as
// it does to the daemon and the agent, and NO_PROXY keeps it direct.
class CliThroughProxy : public ProxyConnect {
 protected:
  // Runs `devstreams hub -c <config> device list` with `env` while the loop serves the fake hub
  // and proxy; its exit code.
  int runCli(const std::vector<std::string>& env) {
    std::string config = *dir_ + "/cli.yaml";
    {
      std::ofstream f(config);
      f << "daemon:\n  hub_url: https://127.0.0.1:" << hub_->port() << "\n  ca: " << files_->caCert
        << "\n  server_name: localhost\n  policy: service\n  key: " << sas::randomKey() << "\n";
    }
    pid_t pid = fork();
    if (pid == 0) {
      for (const char* v : {"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"}) unsetenv(v);
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      execl(DS_CLI_BIN, DS_CLI_BIN, "hub", "-c", config.c_str(), "device", "list",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    EXPECT_GT(pid, 0);
    int status = -1;
    EXPECT_TRUE(runUntil(
        loop_, [&] { return waitpid(pid, &status, WNOHANG) == pid; }, 30s));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

TEST_F(CliThroughProxy, HubCommandsTakeTheProxyFromTheEnvironment) {
  proxy_->mode = FakeProxy::Mode::Relay;
  proxy_->relayPort = hub_->port();
  std::string proxyUrl = "http://127.0.0.1:" + std::to_string(proxy_->port());
  EXPECT_EQ(runCli({"HTTPS_PROXY=" + proxyUrl}), 0);
  ASSERT_EQ(proxy_->seen.size(), 1u);
  EXPECT_EQ(proxy_->seen[0].method, "CONNECT");
  EXPECT_EQ(proxy_->seen[0].target, hubAuthority());
  ASSERT_EQ(hub_->requests.size(), 1u);
  EXPECT_EQ(hub_->requests[0], "GET /api/v1/devices");

  // NO_PROXY covering the hub: straight to it.
  EXPECT_EQ(runCli({"https_proxy=" + proxyUrl, "NO_PROXY=localhost,127.0.0.1"}), 0);
  EXPECT_EQ(proxy_->seen.size(), 1u);
  EXPECT_EQ(hub_->requests.size(), 2u);
}

TEST_F(CliThroughProxy, MalformedProxyIsAnErrorWithoutContactingTheHub) {
  EXPECT_EQ(runCli({"HTTPS_PROXY=https://proxy.corp:3128"}), 1);
  EXPECT_TRUE(proxy_->seen.empty());
  EXPECT_TRUE(hub_->requests.empty());
}

}  // namespace
}  // namespace ds::hubclient
