// Configuration parsing: any text either loads or fails with a config::Error whose message
// starts with the file name; nothing else may escape and nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/settings.h"
#include "common/config.h"
#include "daemon/settings.h"
#include "hub/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string name = "/fuzz/in.yaml";
  auto check = [&](auto&& parse) {
    try {
      parse(text, name);
    } catch (const ds::config::Error& e) {
      if (std::string_view(e.what()).substr(0, name.size()) != name) std::abort();
    }
  };
  check([](std::string_view t, const std::string& n) { ds::config::parseHub(t, n); });
  check([](std::string_view t, const std::string& n) { ds::config::parseAgent(t, n); });
  check([](std::string_view t, const std::string& n) { ds::config::parseDaemon(t, n); });
  check([](std::string_view t, const std::string& n) { ds::config::parseRegistrySeed(t, n); });
  return 0;
}
