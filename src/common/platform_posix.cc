// POSIX side of platform.h.
#ifndef _WIN32
#include <sys/stat.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/platform.h"

namespace ds::platform {

void initProcess() {
#ifdef __GLIBC__
  // The data path allocates and frees buffers of up to 256 KiB (socket reads, evbuffer chains)
  // at a high rate. With glibc's defaults (an mmap threshold that follows the largest freed
  // block, a trim threshold twice that) the heap's top was handed back to the kernel and
  // faulted in again over and over: 10-15 % of each program's CPU at full throughput, in
  // page faults. Freed memory up to 32 MiB stays for reuse; blocks below 4 MiB come from the
  // heap.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
#endif
}

std::string systemConfigDir() { return "/etc/devstreams"; }

std::string userConfigDir() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/devstreams";
}

std::string joinPath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string defaultConfigFile(const std::string& name) { return joinPath(systemConfigDir(), name); }

std::string cliConfigFile(const std::string& name) { return defaultConfigFile(name); }

bool makePrivateDir(const std::string& dir, std::string& err) {
  for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
    std::string part = dir.substr(0, pos);
    bool last = pos == std::string::npos;
    if (::mkdir(part.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST) {
      err = "cannot create directory " + part + ": " + std::strerror(errno);
      return false;
    }
    if (last) return true;
  }
}

std::string currentUserSid() { return {}; }

void setBinaryStdio() {}

}  // namespace ds::platform
#endif
