// Windows named pipes as sockets (local_pipe.h).
#ifdef _WIN32
#include <event2/util.h>
#include <sddl.h>
#include <windows.h>
#include <winsock2.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "common/local_pipe.h"
#include "common/platform.h"

namespace ds::localpipe {
namespace {

constexpr DWORD kBuffer = 64 * 1024;

std::string winError(DWORD code) {
  char buf[256];
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                           code, 0, buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.')) --n;
  return n ? std::string(buf, n) : "error " + std::to_string(code);
}

// One overlapped read or write on `h`, waited for; the bytes moved, 0 at the end or on error.
DWORD pipeIo(HANDLE h, bool write, char* buf, DWORD len, HANDLE event) {
  OVERLAPPED ov{};
  ov.hEvent = event;
  DWORD done = 0;
  BOOL ok = write ? WriteFile(h, buf, len, &done, &ov) : ReadFile(h, buf, len, &done, &ov);
  if (!ok && GetLastError() != ERROR_IO_PENDING) return 0;
  if (!GetOverlappedResult(h, &ov, &done, TRUE)) return 0;
  return done;
}

// Both directions between a connected pipe and a socket; the last one to end closes both.
struct Bridge {
  HANDLE pipe;
  SOCKET sock;
  bool server;
  std::atomic<int> alive{2};

  void release() {
    if (--alive > 0) return;
    if (server) DisconnectNamedPipe(pipe);
    CloseHandle(pipe);
    closesocket(sock);
    delete this;
  }
  // pipe -> socket; the pipe's end is a half-close of the socket.
  void up() {
    HANDLE ev = CreateEventA(nullptr, TRUE, FALSE, nullptr);
    static thread_local char buf[kBuffer];
    for (DWORD n; (n = pipeIo(pipe, false, buf, kBuffer, ev)) > 0;) {
      for (DWORD off = 0; off < n;) {
        int sent = ::send(sock, buf + off, static_cast<int>(n - off), 0);
        if (sent <= 0) goto done;
        off += static_cast<DWORD>(sent);
      }
    }
  done:
    ::shutdown(sock, SD_SEND);
    CloseHandle(ev);
    release();
  }
  // socket -> pipe; the socket's end ends the pipe once the peer has read everything.
  void down() {
    HANDLE ev = CreateEventA(nullptr, TRUE, FALSE, nullptr);
    static thread_local char buf[kBuffer];
    int n;
    while ((n = ::recv(sock, buf, sizeof buf, 0)) > 0) {
      if (pipeIo(pipe, true, buf, static_cast<DWORD>(n), ev) != static_cast<DWORD>(n)) break;
    }
    FlushFileBuffers(pipe);
    if (server) {
      DisconnectNamedPipe(pipe);  // the client's read ends; so does up()'s pending read
    } else {
      CancelIoEx(pipe, nullptr);
    }
    CloseHandle(ev);
    release();
  }
};

// Starts the two threads of a bridge; returns the socket for the caller's side, or -1.
intptr_t bridge(HANDLE pipe, bool server) {
  evutil_socket_t pair[2];
  if (evutil_socketpair(AF_INET, SOCK_STREAM, 0, pair) != 0) {
    if (server) DisconnectNamedPipe(pipe);
    CloseHandle(pipe);
    return -1;
  }
  auto* b = new Bridge{pipe, static_cast<SOCKET>(pair[0]), server};
  std::thread([b] { b->up(); }).detach();
  std::thread([b] { b->down(); }).detach();
  return pair[1];
}

// The DACL: full access for the current user, SYSTEM and Administrators; read and write for
// the members of `group` when one is given (its SID as text).
std::string pipeSddl(const std::string& groupSid) {
  std::string sddl = "D:P(A;;GA;;;" + platform::currentUserSid() + ")(A;;GA;;;SY)(A;;GA;;;BA)";
  if (!groupSid.empty()) sddl += "(A;;GRGW;;;" + groupSid + ")";
  return sddl;
}

// The SID of a local or domain group (or user) `name` as text; empty with `err` set.
std::string accountSid(const std::string& name, std::string& err) {
  BYTE sid[SECURITY_MAX_SID_SIZE];
  DWORD sidLen = sizeof sid;
  char domain[256];
  DWORD domainLen = sizeof domain;
  SID_NAME_USE use;
  if (!LookupAccountNameA(nullptr, name.c_str(), sid, &sidLen, domain, &domainLen, &use)) {
    err = "no group or account '" + name + "' on this machine (" + winError(GetLastError()) + ")";
    return {};
  }
  char* text = nullptr;
  if (!ConvertSidToStringSidA(sid, &text)) {
    err = "cannot read the SID of '" + name + "': " + winError(GetLastError());
    return {};
  }
  std::string out = text;
  LocalFree(text);
  return out;
}

}  // namespace

bool isPipeName(const std::string& name) {
  return name.size() > 9 && (name.compare(0, 9, "\\\\.\\pipe\\") == 0);
}

intptr_t connect(const std::string& name, int timeoutMs, std::string& err) {
  if (!isPipeName(name)) {
    err = "'" + name + "' is not a pipe name (\\\\.\\pipe\\NAME)";
    return -1;
  }
  ULONGLONG until = GetTickCount64() + static_cast<ULONGLONG>(timeoutMs);
  for (;;) {
    HANDLE h = CreateFileA(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      intptr_t s = bridge(h, false);
      if (s < 0) err = "cannot make a socket pair";
      return s;
    }
    DWORD e = GetLastError();
    ULONGLONG now = GetTickCount64();
    if (e != ERROR_PIPE_BUSY || now >= until) {
      err = e == ERROR_PIPE_BUSY ? std::string("the daemon is too busy") : winError(e);
      return -1;
    }
    WaitNamedPipeA(name.c_str(), static_cast<DWORD>(until - now));
  }
}

struct Server::Impl {
  std::string name;
  std::string sddl;
  PSECURITY_DESCRIPTOR sd = nullptr;
  HANDLE next = INVALID_HANDLE_VALUE;  // the instance waiting for a client
  HANDLE stop = nullptr;
  SOCKET notifyWrite = INVALID_SOCKET;
  std::string pending;  // bytes of client sockets read from the notify socket, not yet handed out
  std::thread thread;

  HANDLE create(bool first) {
    SECURITY_ATTRIBUTES sa{sizeof sa, sd, FALSE};
    return CreateNamedPipeA(
        name.c_str(),
        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, kBuffer, kBuffer, 0, &sa);
  }
};

std::unique_ptr<Server> Server::start(const std::string& name, const std::string& group,
                                      std::string& err) {
  if (!isPipeName(name)) {
    err = "on Windows control_socket is a pipe name like \\\\.\\pipe\\devstreamsd, not '" + name +
          "'";
    return nullptr;
  }
  std::unique_ptr<Server> s(new Server);
  s->impl_ = std::make_unique<Impl>();
  Impl& i = *s->impl_;
  i.name = name;
  std::string groupSid;
  if (!group.empty()) {
    groupSid = accountSid(group, err);
    if (groupSid.empty()) {
      err = "control_group: " + err;
      return nullptr;
    }
  }
  i.sddl = pipeSddl(groupSid);
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(i.sddl.c_str(), SDDL_REVISION_1, &i.sd,
                                                            nullptr)) {
    err = "cannot build the pipe's ACL: " + winError(GetLastError());
    return nullptr;
  }
  i.next = i.create(true);
  if (i.next == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    err = e == ERROR_ACCESS_DENIED ? "in use (another devstreamsd is running?)" : winError(e);
    return nullptr;
  }
  evutil_socket_t pair[2];
  if (evutil_socketpair(AF_INET, SOCK_STREAM, 0, pair) != 0) {
    err = "cannot make a socket pair";
    return nullptr;
  }
  evutil_make_socket_nonblocking(pair[0]);
  s->notifyRead_ = pair[0];
  i.notifyWrite = static_cast<SOCKET>(pair[1]);
  i.stop = CreateEventA(nullptr, TRUE, FALSE, nullptr);
  Server* raw = s.get();
  i.thread = std::thread([raw] { raw->acceptLoop(); });
  return s;
}

void Server::acceptLoop() {
  Impl& i = *impl_;
  HANDLE connected = CreateEventA(nullptr, TRUE, FALSE, nullptr);
  while (i.next != INVALID_HANDLE_VALUE) {
    OVERLAPPED ov{};
    ov.hEvent = connected;
    ResetEvent(connected);
    bool ok = ConnectNamedPipe(i.next, &ov) != 0;
    DWORD e = ok ? ERROR_PIPE_CONNECTED : GetLastError();
    if (e == ERROR_IO_PENDING) {
      HANDLE waits[2] = {connected, i.stop};
      if (WaitForMultipleObjects(2, waits, FALSE, INFINITE) != WAIT_OBJECT_0) {
        CancelIoEx(i.next, &ov);
        DWORD ignored;
        GetOverlappedResult(i.next, &ov, &ignored, TRUE);
        break;
      }
      DWORD ignored;
      e = GetOverlappedResult(i.next, &ov, &ignored, FALSE) ? ERROR_PIPE_CONNECTED : GetLastError();
    }
    HANDLE client = i.next;
    i.next = i.create(false);
    if (e != ERROR_PIPE_CONNECTED) {
      CloseHandle(client);
      if (i.next == INVALID_HANDLE_VALUE) break;
      continue;
    }
    intptr_t sock = bridge(client, true);
    if (sock >= 0 && ::send(i.notifyWrite, reinterpret_cast<const char*>(&sock), sizeof sock, 0) !=
                         sizeof sock) {
      closesocket(static_cast<SOCKET>(sock));
    }
    if (i.next == INVALID_HANDLE_VALUE) break;  // out of resources: no more clients
  }
  CloseHandle(connected);
}

void Server::takeClients(const std::function<void(intptr_t)>& onClient) {
  char buf[256];
  int n;
  while ((n = ::recv(static_cast<SOCKET>(notifyRead_), buf, sizeof buf, 0)) > 0) {
    impl_->pending.append(buf, static_cast<size_t>(n));
  }
  while (impl_->pending.size() >= sizeof(intptr_t)) {
    intptr_t sock;
    std::memcpy(&sock, impl_->pending.data(), sizeof sock);
    impl_->pending.erase(0, sizeof sock);
    onClient(sock);
  }
}

Server::~Server() {
  if (!impl_) return;
  if (impl_->stop) SetEvent(impl_->stop);
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->next != INVALID_HANDLE_VALUE) CloseHandle(impl_->next);
  if (impl_->stop) CloseHandle(impl_->stop);
  if (impl_->notifyWrite != INVALID_SOCKET) closesocket(impl_->notifyWrite);
  if (notifyRead_ >= 0) closesocket(static_cast<SOCKET>(notifyRead_));
  if (impl_->sd) LocalFree(impl_->sd);
}

}  // namespace ds::localpipe
#endif
