// The control API's transport: the socket file, and one bounded HTTP/1.1 exchange per connection
// through common/http_server.h, answered in JSON.
#include "daemon/control_api.h"

#ifndef _WIN32
#include <grp.h>
#endif
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
#include "common/http_server.h"
#include "common/log.h"

namespace ds::daemon {

using json = nlohmann::json;

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
    case 501:
      return "not_implemented";
    case 505:
      return "http_version_not_supported";
    default:
      return "bad_request";
  }
}

std::string socketError() { return std::strerror(errno); }

#ifndef _WIN32
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
#endif

}  // namespace

// ---------------------------------------------------------------------------------------------
// The HTTP side: each connection is one common/http_server session, answered in JSON.

void ControlApi::send(HttpServerSession& s, const ApiResponse& r) {
  if (r.status == 204) {
    s.respond(204, "", "");
  } else {
    // Invalid UTF-8 from a peer (a device id, a hub message) must not throw here.
    std::string body = r.body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    s.respond(r.status, "application/json", body);
  }
  LOG_DEBUG("control: %s %s -> %d", s.request().method.c_str(), s.request().target.c_str(),
            r.status);
}

void ControlApi::onRequest(HttpServerSession& s) {
  const http::Request& req = s.request();
  std::string_view target = req.target;
  size_t q = target.find('?');
  std::optional<std::string> path = decodePath(target.substr(0, q));
  if (target.empty() || target[0] != '/' || !path) return onRefused(s, 400, "bad request target");
  ApiRequest request;
  request.method = req.method;
  request.path = std::move(*path);
  if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
  request.body = s.body();
  s.waitForAnswer(nullptr);
  Respond respond = [pending = s.pending()](const ApiResponse& r) {
    if (HttpServerSession* session = pending.session()) send(*session, r);
  };
  // The handler belongs to the daemon; a throw must not take the loop down with it.
  try {
    handler_(request, std::move(respond));
  } catch (const std::exception& e) {
    LOG_ERROR("control: %s %s: %s", request.method.c_str(), request.path.c_str(), e.what());
    send(s, apiError(500, "internal_error", e.what()));
  }
}

void ControlApi::onRefused(HttpServerSession& s, int status, std::string_view reason) {
  std::string message(reason);
  if (status == 408) {
    message = "request not complete in time";
  } else if (status == 504) {
    message = "no answer in time";
  } else {
    LOG_INFO("control: bad request: %s", message.c_str());
  }
  send(s, apiError(status, errorCode(status), std::move(message)));
}

void ControlApi::onEnd(HttpServerSession& s) {
  auto it = conns_.find(&s);
  if (it == conns_.end()) return;
  loop_.deferDelete(std::move(it->second));
  conns_.erase(it);
}

ControlApi::ControlApi(Loop& loop, std::string path, std::string group, Handler handler)
    : loop_(loop), path_(std::move(path)), group_(std::move(group)), handler_(std::move(handler)) {}

ControlApi::~ControlApi() {
  resume_.reset();
  listener_.reset();
  // Connections are dropped without an answer; a Respond kept by the handler then does nothing.
  conns_.clear();
  if (bound_) removeSocketFile();
}

#ifndef _WIN32  // control_api_win.cc
void ControlApi::removeSocketFile() {
  // Only the file this object bound: a successor may already have replaced it.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
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
#endif

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
  HttpServerOptions o;
  o.maxHeadBytes = self->limits_.maxHeadBytes;
  o.maxBodyBytes = self->limits_.maxBodyBytes;
  o.requestTimeout = self->limits_.readTimeout;
  o.answerTimeout = self->limits_.answerTimeout;
  // A client may half-close after its request; the answer can still be delivered.
  o.answerAfterHalfClose = true;
  auto session = std::make_unique<HttpServerSession>(
      self->loop_, std::move(bev), o, static_cast<HttpServerSession::Handler&>(*self));
  HttpServerSession* raw = session.get();
  self->conns_.emplace(raw, std::move(session));
  raw->start();
}

void ControlApi::onAcceptError(evconnlistener*, void* arg) {
  auto* self = static_cast<ControlApi*>(arg);
  LOG_WARN("control: accept failed: %s; pausing for a second", socketError().c_str());
  // Out of descriptors, for example: retrying at once would spin.
  evconnlistener_disable(self->listener_.get());
  self->resume_->arm(std::chrono::seconds(1));
}

}  // namespace ds::daemon
