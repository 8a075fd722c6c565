// The control API's transport: the socket file, one bounded HTTP/1.1 exchange per connection.
#include "daemon/control_api.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string_view>
#include <vector>

#include "common/guard.h"
#include "common/http.h"
#include "common/http_exchange.h"
#include "common/log.h"

namespace ds::daemon {

using json = nlohmann::json;

std::string defaultControlSocket() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && xdg[0] == '/') {
    std::string dir = xdg;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/devstreams/daemon.sock";
  }
  return "/run/devstreams/daemon.sock";
}

ApiResponse apiError(int status, std::string code, std::string message) {
  ApiResponse r;
  r.status = status;
  r.body = json{{"error", std::move(code)}, {"message", std::move(message)}};
  return r;
}

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding of a path ('+' stays '+'); nullopt for a bad escape or a NUL.
std::optional<std::string> decodePath(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hexValue(s[i + 1]);
    int lo = hexValue(s[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

const char* errorCode(int status) {
  switch (status) {
    case 408:
      return "timeout";
    case 413:
      return "body_too_large";
    case 414:
      return "uri_too_long";
    case 431:
      return "header_too_large";
    case 505:
      return "http_version_not_supported";
    default:
      return "bad_request";
  }
}

std::string socketError() { return std::strerror(errno); }

bool fillAddress(const std::string& path, sockaddr_un& sun, std::string& err) {
  sun = {};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path) {
    err = "control socket path '" + path + "' is empty or longer than " +
          std::to_string(sizeof sun.sun_path - 1) + " bytes";
    return false;
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  return true;
}

// mkdir -p of `dir`; directories it creates get `mode` (and `gid` when not -1).
bool makeDirs(const std::string& dir, mode_t mode, gid_t gid, std::string& err) {
  if (dir.empty()) return true;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    std::string part = dir.substr(0, pos);
    if (part.empty()) continue;
    if (::mkdir(part.c_str(), mode) == 0) {
      // mkdir's mode is filtered by the umask; set exactly what was asked.
      if (::chmod(part.c_str(), mode) != 0 ||
          (gid != static_cast<gid_t>(-1) && ::chown(part.c_str(), static_cast<uid_t>(-1), gid))) {
        err = "cannot set up directory " + part + ": " + socketError();
        return false;
      }
      continue;
    }
    if (errno != EEXIST) {
      err = "cannot create directory " + part + ": " + socketError();
      return false;
    }
    struct stat st {};
    if (::stat(part.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      err = part + " exists and is not a directory";
      return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Conn: one accepted connection, from the first byte to the answer.

class ControlApi::Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(ControlApi& api, BufferEventPtr bev)
      : api_(&api), bev_(std::move(bev)), timer_(api.loop_, [this] { onTimeout(); }) {}

  void start() {
    bufferevent_setcb(bev_.get(), &Conn::onRead, nullptr, &Conn::onEvent, this);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
    timer_.arm(api_->limits_.readTimeout);
  }

  // Writes the answer and hands the connection to the loop for its last flush.
  void send(const ApiResponse& r) {
    if (!api_ || !bev_ || answered_) return;
    answered_ = true;
    timer_.cancel();
    std::string out;
    if (r.status == 204) {
      out = http::formatResponseHead(204, {{"Connection", "close"}});
    } else {
      // Invalid UTF-8 from a peer (a device id, a hub message) must not throw here.
      std::string body = r.body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      out = httpResponse(r.status, "application/json", body);
    }
    bufferevent_write(bev_.get(), out.data(), out.size());
    LOG_DEBUG("control: %s %s -> %d", req_.method.c_str(), req_.target.c_str(), r.status);
    bufferevent_setcb(bev_.get(), nullptr, nullptr, nullptr, nullptr);
    ControlApi* api = api_;
    api_ = nullptr;
    api->loop_.closeAfterFlush(std::move(bev_));
    api->endConn(this);
  }

  // The ControlApi is going away: drop the connection without an answer.
  void detach() {
    api_ = nullptr;
    timer_.cancel();
    bev_.reset();
  }

 private:
  static void onRead(bufferevent*, void* arg) {
    auto* self = static_cast<Conn*>(arg);
    guarded(
        "control API", [&] { self->parse(); }, [&] { self->gone(); });
  }

  static void onEvent(bufferevent*, short what, void* arg) {
    auto* self = static_cast<Conn*>(arg);
    guarded(
        "control API",
        [&] {
          if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) return;
          if (self->dispatched_ && !(what & BEV_EVENT_ERROR)) {
            // A client may half-close after its request; the answer can still be delivered.
            bufferevent_disable(self->bev_.get(), EV_READ);
            return;
          }
          self->gone();
        },
        [&] { self->gone(); });
  }

  void gone() {
    ControlApi* api = api_;
    detach();
    if (api) api->endConn(this);
  }

  void onTimeout() {
    if (dispatched_) {
      send(apiError(504, "timeout", "no answer in time"));
    } else {
      send(apiError(408, "timeout", "request not complete in time"));
    }
  }

  void fail(int status, std::string message) {
    LOG_INFO("control: bad request: %s", message.c_str());
    send(apiError(status, errorCode(status), std::move(message)));
  }

  void parse() {
    if (!bev_) return;
    evbuffer* in = bufferevent_get_input(bev_.get());
    if (dispatched_) {
      // One request per connection: whatever follows it is ignored.
      evbuffer_drain(in, evbuffer_get_length(in));
      return;
    }
    const ControlApiLimits& limits = api_->limits_;
    if (!haveHead_) {
      http::Limits hl;
      hl.maxHeadBytes = limits.maxHeadBytes;
      if (!headReady(in, hl.maxHeadBytes, gate_)) return;
      size_t len = std::min<size_t>(evbuffer_get_length(in), hl.maxHeadBytes + 4);
      const char* p = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
      http::ParseResult r = http::parseRequest(std::string_view(p, len), req_, hl);
      if (r.status == http::ParseStatus::NeedMore) return;
      if (r.status == http::ParseStatus::Invalid) return fail(r.httpStatus, r.error);
      evbuffer_drain(in, r.consumed);
      haveHead_ = true;
      if (req_.headers.find("Transfer-Encoding")) {
        return fail(400, "Transfer-Encoding is not supported; send a Content-Length");
      }
      bool valid = true;
      bodyLen_ = http::contentLength(req_.headers, &valid).value_or(0);
      if (!valid) return fail(400, "invalid Content-Length");
      if (bodyLen_ > limits.maxBodyBytes) return fail(413, "request body too large");
      std::string_view target = req_.target;
      size_t q = target.find('?');
      std::optional<std::string> path = decodePath(target.substr(0, q));
      if (target.empty() || target[0] != '/' || !path) {
        return fail(400, "bad request target");
      }
      request_.method = req_.method;
      request_.path = std::move(*path);
      if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));
      if (bodyLen_ > 0 && req_.headers.hasToken("Expect", "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        bufferevent_write(bev_.get(), kContinue.data(), kContinue.size());
      }
    }
    if (evbuffer_get_length(in) < bodyLen_) return;
    request_.body.resize(bodyLen_);
    evbuffer_remove(in, request_.body.data(), bodyLen_);
    evbuffer_drain(in, evbuffer_get_length(in));
    dispatched_ = true;
    timer_.arm(limits.answerTimeout);
    dispatch();
  }

  void dispatch() {
    std::weak_ptr<Conn> weak = weak_from_this();
    Respond respond = [weak](const ApiResponse& r) {
      if (auto c = weak.lock()) c->send(r);
    };
    // The handler belongs to the daemon; a throw must not take the loop down with it.
    try {
      api_->handler_(request_, std::move(respond));
    } catch (const std::exception& e) {
      LOG_ERROR("control: %s %s: %s", request_.method.c_str(), request_.path.c_str(), e.what());
      send(apiError(500, "internal_error", e.what()));
    }
  }

  ControlApi* api_;
  BufferEventPtr bev_;
  Timer timer_;
  http::Request req_;
  ApiRequest request_;
  bool haveHead_ = false;
  HeadGate gate_;  // when to parse the head (headReady)
  bool dispatched_ = false;
  bool answered_ = false;
  uint64_t bodyLen_ = 0;
};

namespace {
// Keeps a connection alive until the running callback has returned.
struct ConnHolder : Deletable {
  explicit ConnHolder(std::shared_ptr<void> c) : conn(std::move(c)) {}
  std::shared_ptr<void> conn;
};
}  // namespace

// ---------------------------------------------------------------------------------------------

ControlApi::ControlApi(Loop& loop, std::string path, std::string group, Handler handler)
    : loop_(loop), path_(std::move(path)), group_(std::move(group)), handler_(std::move(handler)) {}

ControlApi::~ControlApi() {
  resume_.reset();
  listener_.reset();
  for (auto& [raw, conn] : conns_) {
    conn->detach();
    loop_.deferDelete(std::make_unique<ConnHolder>(std::move(conn)));
  }
  conns_.clear();
  if (bound_) {
    // Only the file this object bound: a successor may already have replaced it.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
      ::unlink(path_.c_str());
    }
  }
}

bool ControlApi::start(std::string& err) {
  sockaddr_un sun{};
  if (!fillAddress(path_, sun, err)) return false;
  gid_t gid = static_cast<gid_t>(-1);
  if (!group_.empty()) {
    std::vector<char> buf(16384);
    group g{};
    group* found = nullptr;
    int rc = ::getgrnam_r(group_.c_str(), &g, buf.data(), buf.size(), &found);
    if (rc != 0 || !found) {
      err = "unknown group '" + group_ + "' for the control socket";
      return false;
    }
    gid = found->gr_gid;
  }
  size_t slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (!makeDirs(path_.substr(0, slash), group_.empty() ? 0700 : 0750, gid, err)) return false;
  }

  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      err = path_ + " exists and is not a socket; not replacing it";
      return false;
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
      err = "socket: " + socketError();
      return false;
    }
    int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&sun), sizeof sun);
    int connectErrno = errno;
    ::close(probe);
    if (rc == 0) {
      err = "another devstreamsd is running (" + path_ + " accepts connections)";
      return false;
    }
    if (connectErrno != ECONNREFUSED) {
      err =
          "cannot check the existing control socket " + path_ + ": " + std::strerror(connectErrno);
      return false;
    }
    LOG_INFO("control: removing stale socket %s", path_.c_str());
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      err = "cannot remove stale socket " + path_ + ": " + socketError();
      return false;
    }
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    err = "socket: " + socketError();
    return false;
  }
  // The socket file is created with the umask's mode; keep it private until chmod below.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  int bindErrno = errno;
  ::umask(old);
  if (rc != 0) {
    err = "cannot bind the control socket " + path_ + ": " + std::strerror(bindErrno);
    ::close(fd);
    return false;
  }
  bool ok = ::lstat(path_.c_str(), &st) == 0;
  if (ok) {
    bound_ = true;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  ok = ok && ::chmod(path_.c_str(), group_.empty() ? 0600 : 0660) == 0;
  ok = ok && (group_.empty() || ::chown(path_.c_str(), static_cast<uid_t>(-1), gid) == 0);
  if (!ok) {
    err = "cannot set the mode of the control socket " + path_ + ": " + socketError();
    ::close(fd);
    if (bound_) ::unlink(path_.c_str());
    bound_ = false;
    return false;
  }
  listener_.reset(evconnlistener_new(loop_.base(), &ControlApi::onAccept, this,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                     static_cast<int>(limits_.maxConnections), fd));
  if (!listener_) {
    err = "cannot listen on the control socket " + path_ + ": " + socketError();
    ::close(fd);
    ::unlink(path_.c_str());
    bound_ = false;
    return false;
  }
  evconnlistener_set_error_cb(listener_.get(), &ControlApi::onAcceptError);
  resume_ = std::make_unique<Timer>(loop_, [this] {
    if (listener_) evconnlistener_enable(listener_.get());
  });
  // A client that leaves before its answer is written must not kill the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  LOG_INFO("control API on %s", path_.c_str());
  return true;
}

void ControlApi::onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* self = static_cast<ControlApi*>(arg);
  if (self->conns_.size() >= self->limits_.maxConnections) {
    LOG_WARN("control: %zu connections open; closing a new one", self->conns_.size());
    evutil_closesocket(fd);
    return;
  }
  BufferEventPtr bev = newSocketBufferEvent(self->loop_, fd);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  auto conn = std::make_shared<Conn>(*self, std::move(bev));
  Conn* raw = conn.get();
  self->conns_.emplace(raw, std::move(conn));
  raw->start();
}

void ControlApi::onAcceptError(evconnlistener*, void* arg) {
  auto* self = static_cast<ControlApi*>(arg);
  LOG_WARN("control: accept failed: %s; pausing for a second", socketError().c_str());
  // Out of descriptors, for example: retrying at once would spin.
  evconnlistener_disable(self->listener_.get());
  self->resume_->arm(std::chrono::seconds(1));
}

void ControlApi::endConn(Conn* c) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  loop_.deferDelete(std::make_unique<ConnHolder>(std::move(it->second)));
  conns_.erase(it);
}

}  // namespace ds::daemon
