// A deterministic byte pattern with a long period, for tests that check data arrived intact
// and in order.
#pragma once

#include <cstddef>
#include <string>

namespace ds::test {

inline std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

}  // namespace ds::test
