// Windows stdio tunnel (stdio_tunnel.h).
#ifdef _WIN32
#include <windows.h>
#include <winsock2.h>

#include <cstdio>
#include <thread>

#include "cli/stdio_tunnel.h"

namespace ds::cli {
namespace {

bool sendAll(SOCKET s, const char* p, size_t n) {
  while (n > 0) {
    int sent = ::send(s, p, static_cast<int>(n), 0);
    if (sent <= 0) return false;
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

bool writeAll(HANDLE h, const char* p, size_t n) {
  while (n > 0) {
    DWORD done = 0;
    if (!WriteFile(h, p, static_cast<DWORD>(n), &done, nullptr) || done == 0) return false;
    p += done;
    n -= done;
  }
  return true;
}

}  // namespace

int runStdioTunnel(intptr_t fd) {
  SOCKET s = static_cast<SOCKET>(fd);
  u_long blocking = 0;
  ioctlsocket(s, FIONBIO, &blocking);
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
  HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);

  // stdin -> socket; the end of stdin (or a broken pipe) is a half-close towards the device.
  std::thread up([s, in] {
    static char buf[64 * 1024];
    DWORD n = 0;
    while (ReadFile(in, buf, sizeof buf, &n, nullptr) && n > 0) {
      if (!sendAll(s, buf, n)) return;
    }
    ::shutdown(s, SD_SEND);
  });

  // socket -> stdout, in this thread, until the device side ends.
  static char buf[64 * 1024];
  int n = 0;
  while ((n = ::recv(s, buf, sizeof buf, 0)) > 0) {
    if (!writeAll(out, buf, static_cast<size_t>(n))) break;
  }
  if (n < 0) std::fprintf(stderr, "devstreams: connection lost\n");
  // Done as on Linux once the socket side ends; the stdin reader may still block in ReadFile and
  // goes with the process.
  up.detach();
  closesocket(s);
  return n < 0 ? 1 : 0;
}

}  // namespace ds::cli
#endif
