// HTTP/1.1 client exchange and WebSocket upgrade helpers.
#include "common/http_exchange.h"

#include <netinet/in.h>

#include <algorithm>

#include "common/guard.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/ws_frame.h"

namespace ds {
namespace {

// Requests, answers and WebSocket frames are written whole: Nagle's algorithm would only hold
// the last segment of each back for a delayed ACK (about 40 ms per round trip).
void setNoDelay(bufferevent* bev) { net::setNoDelay(bufferevent_getfd(bev)); }

constexpr uint64_t kMaxBody = 1 << 20;

// "host:port", with brackets around an IPv6 address.
std::string authority(const std::string& host, uint16_t port) {
  return net::formatHostPort(host, port);
}
}  // namespace

HttpExchange::HttpExchange(Loop& loop, BufferEventPtr bev, std::string host, uint16_t port,
                           std::string request, std::chrono::milliseconds timeout, Done done)
    : loop_(loop),
      bev_(std::move(bev)),
      host_(std::move(host)),
      port_(port),
      request_(std::move(request)),
      timeout_(timeout),
      done_(std::move(done)),
      timer_(loop, [this] {
        failWith(!startError_.empty() ? startError_
                 : tunnel_ ? "timed out waiting for proxy " + authority(proxy_.host, proxy_.port)
                           : "timed out");
      }) {}

void HttpExchange::viaProxy(HttpProxy proxy) { proxy_ = std::move(proxy); }

std::string HttpExchange::targetName() const { return authority(host_, port_); }

void HttpExchange::start() {
  bufferevent_setcb(bev_.get(), &HttpExchange::onRead, nullptr, &HttpExchange::onEvent, this);
  timer_.arm(timeout_);
  if (proxy_.port != 0) {
    startProxy();
    return;
  }
  bufferevent_write(bev_.get(), request_.data(), request_.size());
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  if (tls::connect(bev_.get(), loop_.dns(), host_, port_) != 0) {
    // Errors are reported through onEvent as well; make sure `done` fires once and later.
    timer_.arm(std::chrono::milliseconds(0));
  }
}

// The proxy step: a plain connection to the proxy that carries CONNECT and its answer. Its
// socket is then handed to the TLS bufferevent (startTls); the plain bufferevent never closes it.
void HttpExchange::startProxy() {
  tunnel_ = newSocketBufferEvent(loop_, -1);
  if (!tunnel_) {
    startError_ = "cannot create a connection to the proxy";
    timer_.arm(std::chrono::milliseconds(0));
    return;
  }
  std::string target = targetName();
  std::string req = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
  if (!proxy_.authorization.empty()) req += "Proxy-Authorization: " + proxy_.authorization + "\r\n";
  req += "\r\n";
  bufferevent_setcb(tunnel_.get(), &HttpExchange::onProxyRead, nullptr, &HttpExchange::onProxyEvent,
                    this);
  bufferevent_write(tunnel_.get(), req.data(), req.size());
  bufferevent_enable(tunnel_.get(), EV_READ | EV_WRITE);
  if (bufferevent_socket_connect_hostname(tunnel_.get(), loop_.dns(), AF_UNSPEC,
                                          proxy_.host.c_str(), proxy_.port) != 0) {
    startError_ = "cannot connect to proxy " + authority(proxy_.host, proxy_.port);
    timer_.arm(std::chrono::milliseconds(0));
  }
}

template <class Body>
void HttpExchange::guardedCall(void* arg, Body body) {
  auto* self = static_cast<HttpExchange*>(arg);
  guarded(
      "hub request", [&] { body(self); }, [&] { self->failWith("internal error"); });
}

void HttpExchange::onProxyRead(bufferevent*, void* arg) {
  guardedCall(arg, [](HttpExchange* self) { self->parseProxyAnswer(); });
}

void HttpExchange::onProxyEvent(bufferevent* bev, short what, void* arg) {
  guardedCall(arg, [&](HttpExchange* self) {
    if (what & BEV_EVENT_CONNECTED) return setNoDelay(bev);
    std::string proxy = authority(self->proxy_.host, self->proxy_.port);
    if (what & BEV_EVENT_EOF) {
      self->parseProxyAnswer();
      if (self->tunnel_)
        self->failWith("proxy " + proxy + " closed the connection before answering");
      return;
    }
    int dnsErr = bufferevent_socket_get_dns_error(bev);
    if (dnsErr) {
      self->failWith("cannot resolve proxy " + self->proxy_.host + ": " +
                     evutil_gai_strerror(dnsErr));
    } else {
      self->failWith("cannot connect to proxy " + proxy + ": " +
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
  });
}

void HttpExchange::parseProxyAnswer() {
  if (!done_ || !tunnel_) return;
  evbuffer* in = bufferevent_get_input(tunnel_.get());
  size_t len = std::min<size_t>(evbuffer_get_length(in), http::Limits{}.maxHeadBytes + 4);
  const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  http::Response answer;
  http::ParseResult r = http::parseResponse(std::string_view(p, len), answer);
  if (r.status == http::ParseStatus::NeedMore) return;
  std::string proxy = authority(proxy_.host, proxy_.port);
  if (r.status == http::ParseStatus::Invalid) {
    failWith("bad answer from proxy " + proxy + ": " + r.error);
    return;
  }
  // 407 is the proxy's own "authenticate first". A CONNECT has no server behind it yet, so a
  // 401 is the proxy too: some (tinyproxy 1.11) answer wrong credentials with it.
  if (answer.status == 407 || answer.status == 401) {
    std::string code = " (" + std::to_string(answer.status) + ")";
    failWith(proxy_.authorization.empty() ? "proxy requires authentication" + code
                                          : "proxy refused the credentials" + code);
    return;
  }
  if (answer.status < 200 || answer.status > 299) {
    failWith("proxy refused CONNECT to " + targetName() + ": " + std::to_string(answer.status) +
             (answer.reason.empty() ? "" : " " + answer.reason));
    return;
  }
  evbuffer_drain(in, r.consumed);
  // The server speaks only after our ClientHello: anything here came from the proxy itself.
  if (evbuffer_get_length(in) != 0) {
    failWith("proxy " + proxy + " sent data after its CONNECT answer");
    return;
  }
  evutil_socket_t fd = bufferevent_getfd(tunnel_.get());
  bufferevent_setcb(tunnel_.get(), nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(tunnel_.get(), EV_READ | EV_WRITE);
  bufferevent_setfd(tunnel_.get(), -1);  // the socket now belongs to the TLS bufferevent
  tunnel_.reset();
  startTls(fd);
}

void HttpExchange::startTls(evutil_socket_t fd) {
  // The same steps as a direct connection, minus the connect: the TLS bufferevent takes the
  // socket (and closes it when freed), the handshake starts once it is writable, and the
  // request waits in the output until the handshake is done.
  if (tls::attachSocket(bev_.get(), fd) != 0) {
    failWith("cannot start TLS through the proxy");
    return;
  }
  bufferevent_write(bev_.get(), request_.data(), request_.size());
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

void HttpExchange::cancel() {
  done_ = nullptr;
  timer_.cancel();
  if (tunnel_) bufferevent_setcb(tunnel_.get(), nullptr, nullptr, nullptr, nullptr);
  tunnel_.reset();
  if (bev_) bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
  bev_.reset();
}

void HttpExchange::onRead(bufferevent*, void* arg) {
  guardedCall(arg, [](HttpExchange* self) { self->parse(); });
}

void HttpExchange::onEvent(bufferevent* bev, short what, void* arg) {
  guardedCall(arg, [&](HttpExchange* self) {
    if (what & BEV_EVENT_CONNECTED) return setNoDelay(bev);
    if (what & BEV_EVENT_EOF) {
      self->parse();
      if (self->done_) self->failWith("connection closed before the response was complete");
      return;
    }
    std::string err;
    int dnsErr = tls::dnsError(bev);
    if (dnsErr) {
      err = std::string("cannot resolve: ") + evutil_gai_strerror(dnsErr);
    } else {
      err = tls::lastError(bev);
      if (err.empty()) err = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    }
    self->failWith(err);
  });
}

void HttpExchange::parse() {
  if (!done_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  if (!haveHead_) {
    size_t len = std::min<size_t>(evbuffer_get_length(in), http::Limits{}.maxHeadBytes + 4);
    const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    http::ParseResult r = http::parseResponse(std::string_view(p, len), result_.response);
    if (r.status == http::ParseStatus::NeedMore) return;
    if (r.status == http::ParseStatus::Invalid) {
      failWith(std::string("bad response from server: ") + r.error);
      return;
    }
    evbuffer_drain(in, r.consumed);
    haveHead_ = true;
    if (result_.response.status == 101) {
      timer_.cancel();
      bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
      bufferevent_disable(bev_.get(), EV_READ);
      result_.upgraded = std::move(bev_);
      complete(std::move(result_));
      return;
    }
    bool valid = true;
    bodyLength_ = http::contentLength(result_.response.headers, &valid).value_or(0);
    if (!valid) {
      failWith("response with an invalid Content-Length");
      return;
    }
    if (bodyLength_ > kMaxBody) {
      failWith("response body too large");
      return;
    }
  }
  if (evbuffer_get_length(in) < bodyLength_) return;
  result_.body.resize(bodyLength_);
  evbuffer_remove(in, result_.body.data(), bodyLength_);
  timer_.cancel();
  complete(std::move(result_));
}

void HttpExchange::failWith(std::string error) {
  if (!done_) return;
  HttpResult r;
  r.error = error.empty() ? "connection failed" : std::move(error);
  complete(std::move(r));
}

void HttpExchange::complete(HttpResult&& r) {
  timer_.cancel();
  auto done = std::move(done_);
  done_ = nullptr;
  if (tunnel_) {
    bufferevent_setcb(tunnel_.get(), nullptr, nullptr, nullptr, nullptr);
    tunnel_.reset();
  }
  if (bev_) {
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    bev_.reset();
  }
  if (done) done(std::move(r));
}

namespace wshs {

std::string clientRequest(const std::string& host, const std::string& path, const std::string& key,
                          const std::vector<std::string>& extraHeaders) {
  std::string r = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                  "\r\nSec-WebSocket-Version: 13\r\n";
  for (const auto& h : extraHeaders) r += h + "\r\n";
  r += "\r\n";
  return r;
}

bool checkServerResponse(const http::Response& r, const std::string& key, std::string& err,
                         std::string_view offered, std::string* selected) {
  if (r.status != 101) {
    err = "expected 101, got " + std::to_string(r.status);
    return false;
  }
  if (!r.headers.hasToken("Upgrade", "websocket") || !r.headers.hasToken("Connection", "upgrade")) {
    err = "101 response without Upgrade: websocket";
    return false;
  }
  const std::string* accept = r.headers.find("Sec-WebSocket-Accept");
  if (!accept || *accept != ws::acceptKey(key)) {
    err = "wrong Sec-WebSocket-Accept";
    return false;
  }
  if (r.headers.find("Sec-WebSocket-Extensions")) {
    err = "server chose an extension that was not offered";
    return false;
  }
  const std::string* protocol = r.headers.find("Sec-WebSocket-Protocol");
  if (protocol && (offered.empty() || *protocol != offered)) {
    err = "server chose a subprotocol that was not offered";
    return false;
  }
  if (selected) *selected = protocol ? *protocol : std::string();
  return true;
}

namespace {

// RFC 6455 4.1: the base64 of 16 bytes, which is 22 characters, the last of them carrying only 2
// bits (A, Q, g or w), and "==".
bool validKey(const std::string& key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    char c = key[i];
    bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/';
    if (!b64) return false;
  }
  return key[21] == 'A' || key[21] == 'Q' || key[21] == 'g' || key[21] == 'w';
}

}  // namespace

int checkClientRequest(const http::Request& r, std::string& err) {
  if (r.method != "GET") {
    err = "upgrade must use GET";
    return 405;
  }
  if (!r.headers.hasToken("Upgrade", "websocket") || !r.headers.hasToken("Connection", "upgrade")) {
    err = "WebSocket upgrade required";
    return 426;
  }
  const std::string* version = r.headers.find("Sec-WebSocket-Version");
  if (!version || *version != "13") {
    err = "unsupported Sec-WebSocket-Version";
    return 426;
  }
  if (r.minorVersion < 1) {
    err = "a WebSocket upgrade needs HTTP/1.1";
    return 400;
  }
  const std::string* key = r.headers.find("Sec-WebSocket-Key");
  if (r.headers.count("Sec-WebSocket-Key") != 1 || !validKey(*key)) {
    err = "missing or malformed Sec-WebSocket-Key";
    return 400;
  }
  return 0;
}

std::vector<http::Header> upgradeRequiredHeaders() {
  return {{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}};
}

std::string serverResponse(const std::string& key, std::string_view protocol) {
  std::string r =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      ws::acceptKey(key) + "\r\n";
  if (!protocol.empty()) r += "Sec-WebSocket-Protocol: " + std::string(protocol) + "\r\n";
  return r + "\r\n";
}

}  // namespace wshs

bool headReady(evbuffer* in, size_t maxHead, HeadGate& gate) {
  size_t& scanned = gate.searched;
  if (scanned == 0) {
    char lead[2];
    while (evbuffer_copyout(in, lead, 2) == 2 && lead[0] == '\r' && lead[1] == '\n') {
      evbuffer_drain(in, 2);
    }
  }
  size_t len = evbuffer_get_length(in);
  bool ready = len > maxHead || len >= 2 * gate.parsed;
  if (!ready) {
    evbuffer_ptr from;
    evbuffer_ptr_set(in, &from, scanned > 3 ? scanned - 3 : 0, EVBUFFER_PTR_SET);
    ready = evbuffer_search(in, "\r\n\r\n", 4, &from).pos >= 0;
  }
  scanned = len;
  if (ready) gate.parsed = len;
  return ready;
}

std::string httpResponse(int status, std::string_view contentType, std::string_view body,
                         const std::vector<http::Header>& extra) {
  std::vector<http::Header> headers = {
      {"Content-Type", std::string(contentType)},
      {"Content-Length", std::to_string(body.size())},
      {"Connection", "close"},
  };
  headers.insert(headers.end(), extra.begin(), extra.end());
  std::string out = http::formatResponseHead(status, headers);
  out.append(body);
  return out;
}

}  // namespace ds
