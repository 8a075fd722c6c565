// Windows named pipes as sockets, for the daemon's control API (docs/windows.md says why a pipe):
// the event loop and the CLI keep their socket code, and a pair of threads per connection copies
// bytes between the pipe (overlapped I/O) and one end of a loopback socket pair.
#pragma once
#ifdef _WIN32

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ds::localpipe {

// Whether `name` has the form \\.\pipe\NAME.
bool isPipeName(const std::string& name);

// Connects to the pipe `name` (waiting up to `timeoutMs` while all instances are busy) and
// returns a blocking socket whose peer is bridged to the pipe; -1 with `err` set.
intptr_t connect(const std::string& name, int timeoutMs, std::string& err);

// Serves the pipe `name`: only the current user, SYSTEM and Administrators may open it (and
// the members of `group`, a local or domain group name, when not empty), and remote clients
// are refused. Every client becomes a socket handed to `onClient` on the thread
// that calls poll(). The first instance is created with FILE_FLAG_FIRST_PIPE_INSTANCE, so a
// name that another process already serves is an error ("in use").
class Server {
 public:
  ~Server();  // stops accepting; connections already bridged run to their end
  static std::unique_ptr<Server> start(const std::string& name, const std::string& group,
                                       std::string& err);
  // The socket to watch for readability; then call takeClients().
  intptr_t notifySocket() const { return notifyRead_; }
  // Calls `onClient` with each client socket accepted since the last call.
  void takeClients(const std::function<void(intptr_t)>& onClient);

 private:
  Server() = default;
  void acceptLoop();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  intptr_t notifyRead_ = -1;
};

}  // namespace ds::localpipe
#endif
