// The control API's transport on Windows: a named pipe that only the daemon's user, SYSTEM and
// Administrators can open (common/local_pipe.h). Each client reaches the loop as a socket, so
// the rest of control_api.cc is the same on both systems. docs/windows.md says why a pipe.
#ifdef _WIN32
#include <event2/event.h>

#include "common/local_pipe.h"
#include "common/log.h"
#include "daemon/control_api.h"

namespace ds::daemon {

namespace {
struct PipeListener {
  std::unique_ptr<localpipe::Server> server;
  EventPtr ready;  // freed before the server closes the socket it watches
};
}  // namespace

void ControlApi::removeSocketFile() {}

bool ControlApi::start(std::string& err) {
  auto pipe = std::make_shared<PipeListener>();
  pipe->server = localpipe::Server::start(path_, group_, err);
  if (!pipe->server) {
    err = "cannot serve the control pipe " + path_ + ": " + err;
    return false;
  }
  pipe->ready.reset(event_new(
      loop_.base(), pipe->server->notifySocket(), EV_READ | EV_PERSIST,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<ControlApi*>(arg);
        auto* listener = static_cast<PipeListener*>(self->platform_.get());
        listener->server->takeClients([self](intptr_t fd) {
          evutil_make_socket_nonblocking(fd);
          ControlApi::onAccept(nullptr, fd, nullptr, 0, self);
        });
      },
      this));
  event_add(pipe->ready.get(), nullptr);
  platform_ = std::move(pipe);
  LOG_INFO("control API on %s", path_.c_str());
  return true;
}

}  // namespace ds::daemon
#endif
