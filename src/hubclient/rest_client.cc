// The REST client: one request format, the hub over HTTPS (and its proxy), the daemon's
// control API over a local socket.
#include "hubclient/rest_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>

#include "common/http.h"
#include "common/http_exchange.h"
#ifdef _WIN32
#include "common/local_pipe.h"
#endif
#include "common/sas.h"
#include "common/tls.h"

namespace ds::hubclient {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxAnswer = 16 * 1024 * 1024;
constexpr int64_t kTokenLifetime = 3600;

// Closes the socket on every path out of callLocal.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) evutil_closesocket(fd);
  }
};

// Waits until `fd` is ready for `events` or the deadline passes; false on timeout or error.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{static_cast<decltype(pollfd::fd)>(fd), events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

std::string seconds(std::chrono::milliseconds d) {
  return std::to_string((d.count() + 999) / 1000) + "s";
}

}  // namespace

#ifdef _WIN32
std::string defaultControlSocket() { return "\\\\.\\pipe\\devstreamsd"; }
#else
std::string defaultControlSocket() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && xdg[0] == '/') {
    std::string dir = xdg;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/devstreams/daemon.sock";
  }
  return "/run/devstreams/daemon.sock";
}
#endif

std::string formatRequest(const RestRequest& r, const std::string& host) {
  std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: " + host + "\r\n";
  if (!r.authorization.empty()) out += "Authorization: " + r.authorization + "\r\n";
  if (!r.userAgent.empty()) out += "User-Agent: " + r.userAgent + "\r\n";
  if (r.acceptJson) out += "Accept: application/json\r\n";
  if (!r.body.empty()) out += "Content-Type: application/json\r\n";
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

ExchangePtr callHub(Loop& loop, const HubTarget& hub, const RestRequest& request,
                    std::chrono::milliseconds timeout, RestDone done) {
  BufferEventPtr bev = tls::newClient(loop, hub.ssl, hub.serverName);
  if (!bev) return nullptr;
  auto ex = std::make_unique<HttpExchange>(loop, std::move(bev), hub.host, hub.port,
                                           formatRequest(request, authority(hub)), timeout,
                                           [done = std::move(done)](HttpResult&& r) {
                                             RestResult out;
                                             out.error = std::move(r.error);
                                             out.status = r.response.status;
                                             out.body = std::move(r.body);
                                             done(std::move(out));
                                           });
  if (hub.proxy.enabled()) ex->viaProxy(exchangeProxy(hub.proxy));
  ex->start();
  return ex;
}

bool setUpHub(const HubSettings& s, SslCtxPtr& ssl, HubTarget& out, std::string& err,
              const char** proxySource) {
  ssl = tls::clientContext(s.ca, err);
  if (!ssl) return false;
  if (!makeTarget(s.hubUrl, s.serverName, s.resourceHost, ssl.get(), out, err)) return false;
  std::string proxyErr;
  if (!s.proxyUrl.empty()) {
    if (!parseProxyUrl(s.proxyUrl, out.proxy, proxyErr)) {
      // The URL may carry a password: name the key, not its value.
      err = "invalid proxy: " + proxyErr;
      return false;
    }
    if (proxySource) *proxySource = "proxy: key";
  } else {
    if (!proxyFromEnvironment(out.host, out.proxy, proxyErr)) {
      err = "invalid HTTPS_PROXY in the environment: " + proxyErr;
      return false;
    }
    if (proxySource) *proxySource = "HTTPS_PROXY";
  }
  return true;
}

bool HubRestClient::call(RestRequest request, RestResult& out, std::string& err,
                         std::chrono::milliseconds timeout) {
  std::optional<std::string> auth =
      sas::makeToken(target_.resourceHost, key_,
                     static_cast<int64_t>(std::time(nullptr)) + kTokenLifetime, policy_);
  if (!auth) {
    err = "cannot sign a token with the configured key";
    return false;
  }
  request.authorization = *auth;
  request.userAgent = "devstreams/0.1";
  request.acceptJson = true;
  bool finished = false;
  ExchangePtr ex = callHub(loop_, target_, request, timeout, [&](RestResult&& r) {
    out = std::move(r);
    finished = true;
    loop_.stop();
  });
  if (!ex) {
    err = "cannot create a TLS connection: " + tls::lastError();
    return false;
  }
  loop_.run();
  ex.reset();
  std::string where = authority(target_);
  if (!finished) {
    err = "cannot reach the hub at " + where + ": no answer";
    return false;
  }
  if (!out.ok()) {
    err = "cannot reach the hub at " + where + ": " + out.error;
    return false;
  }
  return true;
}

bool callLocal(const std::string& socketPath, RestRequest request, RestResult& out,
               std::string& err, std::chrono::milliseconds timeout) {
  const std::string hint = " (is devstreamsd running?)";
  Clock::time_point deadline = Clock::now() + timeout;
#ifdef _WIN32
  // A named pipe, reached through a socket that a bridge copies to and from (local_pipe.h).
  std::string pipeErr;
  Fd s{
      static_cast<int>(localpipe::connect(socketPath, static_cast<int>(timeout.count()), pipeErr))};
  if (s.fd < 0) {
    err = "cannot connect to " + socketPath + ": " + pipeErr + hint;
    return false;
  }
#else
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (socketPath.empty() || socketPath.size() >= sizeof sun.sun_path) {
    err = "invalid control socket path '" + socketPath + "'";
    return false;
  }
  std::memcpy(sun.sun_path, socketPath.data(), socketPath.size());
  Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (s.fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    // A Unix socket whose backlog is full answers EAGAIN; anything else is final.
    bool busy = errno == EAGAIN || errno == EINPROGRESS;
    err = "cannot connect to " + socketPath + ": " +
          (busy ? std::string("the daemon is too busy") : std::strerror(errno)) + hint;
    return false;
  }
#endif

  request.userAgent = "devstreams/0.1";
  request.acceptJson = true;
  std::string bytes = formatRequest(request, "localhost");
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(s.fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!waitFor(s.fd, POLLOUT, deadline)) {
        err =
            "devstreamsd at " + socketPath + " did not take the request within " + seconds(timeout);
        return false;
      }
    } else {
      err = "sending to devstreamsd at " + socketPath + " failed: " + std::strerror(errno);
      return false;
    }
  }

  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      if (raw.size() > kMaxAnswer) {
        err = "the answer of devstreamsd at " + socketPath + " is larger than 16 MiB";
        return false;
      }
    } else if (n == 0 || (errno == ECONNRESET && !raw.empty())) {
      break;  // the end, or a reset after the answer came: parse what arrived
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (!waitFor(s.fd, POLLIN, deadline)) {
        err = "no answer from devstreamsd at " + socketPath + " within " + seconds(timeout);
        return false;
      }
    } else {
      err = "reading from devstreamsd at " + socketPath + " failed: " + std::strerror(errno);
      return false;
    }
  }

  std::string_view rest = raw;
  http::Response head;
  for (;;) {
    http::ParseResult r = http::parseResponse(rest, head);
    if (r.status != http::ParseStatus::Done) {
      err = raw.empty()
                ? "devstreamsd at " + socketPath + " closed the connection without an answer"
                : "bad answer from devstreamsd at " + socketPath;
      return false;
    }
    rest.remove_prefix(r.consumed);
    if (head.status >= 200) break;  // skip interim answers (100 Continue)
  }
  bool valid = true;
  std::optional<uint64_t> length = http::contentLength(head.headers, &valid);
  if (!valid || (length && rest.size() < *length)) {
    err = "incomplete answer from devstreamsd at " + socketPath;
    return false;
  }
  if (length) rest = rest.substr(0, *length);
  out.error.clear();
  out.status = head.status;
  out.body = std::string(rest);
  return true;
}

}  // namespace ds::hubclient
