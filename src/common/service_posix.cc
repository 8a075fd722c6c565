// POSIX side of service.h: systemd and the shell start the programs directly.
#ifndef _WIN32
#include <cstdio>

#include "common/service.h"

namespace ds::service {

namespace {
const char* gName = "devstreams";
}

int run(const char* name, int argc, char** argv, Body body) {
  gName = name;
  return body(argc, argv);
}

void startError(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", gName, message.c_str());
}

void reportRunning() {}

}  // namespace ds::service
#endif
