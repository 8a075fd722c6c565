// The daemon's local control API: HTTP/1.1 over a Unix domain socket, one request per connection
// (Connection: close), JSON bodies, served by common/http_server.h. This file holds the transport
// only (socket file, limits, request target, JSON answers); what the paths mean is the handler's
// business (control_handlers.cc).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/event.h"
#include "common/http_server.h"
#include "hubclient/rest_client.h"

namespace ds::daemon {

// Where the control API listens by default (hubclient/rest_client.h, shared with its clients).
using hubclient::defaultControlSocket;

struct ApiRequest {
  std::string method;
  std::string path;   // percent-decoded, without the query
  std::string query;  // raw, without the '?'
  std::string body;
};

struct ApiResponse {
  int status = 200;
  nlohmann::json body;  // sent as application/json; not sent at all for 204
};

// {"error": code, "message": message} with `status`.
ApiResponse apiError(int status, std::string code, std::string message);

// Bounds of the server; the defaults are the production values (tests shorten the timeouts).
struct ControlApiLimits {
  size_t maxHeadBytes = 16 * 1024;                 // larger heads: 431
  size_t maxBodyBytes = 64 * 1024;                 // larger Content-Length: 413
  std::chrono::milliseconds readTimeout{10000};    // whole request: else 408
  std::chrono::milliseconds answerTimeout{60000};  // handler's answer: else 504
  size_t maxConnections = 64;                      // further connections are closed
};

class ControlApi : private HttpServerSession::Handler {
 public:
  // Answers a request. May be called later (from any loop callback) and at most once; further
  // calls, calls after the client went away and calls after the ControlApi is gone do nothing.
  using Respond = std::function<void(ApiResponse)>;
  using Handler = std::function<void(const ApiRequest&, Respond)>;

  ControlApi(Loop& loop, std::string path, std::string group, Handler handler);
  // Closes the listener and every connection, and removes the socket file it created.
  ~ControlApi() override;
  ControlApi(const ControlApi&) = delete;
  ControlApi& operator=(const ControlApi&) = delete;

  // Before start().
  void setLimits(const ControlApiLimits& limits) { limits_ = limits; }

  // Creates the parent directory when missing (0700, or 0750 owned by `group` when set), refuses
  // to replace a socket something still listens on ("another devstreamsd is running") or a file
  // that is not a socket, removes a stale socket, binds, sets the mode (0600, or 0660 with
  // `group` as owning group; an unknown group is an error) and listens. False with `err` set.
  bool start(std::string& err);

  const std::string& path() const { return path_; }
  // Connections being read or waiting for their answer.
  size_t connections() const { return conns_.size(); }

 private:
  static void onAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void onAcceptError(evconnlistener*, void* arg);
  void removeSocketFile();
  static void send(HttpServerSession& s, const ApiResponse& r);
  // HttpServerSession::Handler
  void onRequest(HttpServerSession& s) override;
  void onRefused(HttpServerSession& s, int status, std::string_view reason) override;
  void onEnd(HttpServerSession& s) override;

  Loop& loop_;
  std::string path_;
  std::string group_;
  Handler handler_;
  ControlApiLimits limits_;
  ListenerPtr listener_;
  std::unique_ptr<Timer> resume_;  // re-enables accepting after an accept error
  bool bound_ = false;             // the socket file is ours to remove
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::map<HttpServerSession*, std::unique_ptr<HttpServerSession>> conns_;
  std::shared_ptr<void> platform_;  // Windows: the named pipe server (control_api_win.cc)
};

}  // namespace ds::daemon
