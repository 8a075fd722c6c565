// POSIX side of platform.h.
#ifndef _WIN32
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/platform.h"

namespace ds::platform {

void initProcess() {}

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
