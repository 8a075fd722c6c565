// The prefix contract of the SOCKS parsers (socks4.h, socks5.h), checked by their fuzz targets:
// every prefix of a message is NeedMore, an Invalid verdict never turns back, and the verdict of
// the whole input is reached by the largest message's length.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.h"
#include "socks/socks5.h"

namespace ds::socks {

inline bool sameResult(const ParseResult& a, const ParseResult& b) {
  if (a.status != b.status || a.consumed != b.consumed) return false;
  if (a.status != ParseStatus::Invalid) return true;
  return a.reply == b.reply && std::strcmp(a.error, b.error) == 0;
}

// What every result of a SOCKS parser on `size` bytes satisfies, whatever the input.
inline void checkShape(const ParseResult& r, size_t size) {
  FUZZ_CHECK(r.consumed <= size);
  switch (r.status) {
    case ParseStatus::Done:
      FUZZ_CHECK(r.consumed > 0);
      FUZZ_CHECK(r.error == nullptr);
      break;
    case ParseStatus::NeedMore:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(r.error == nullptr);
      break;
    case ParseStatus::Invalid:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(r.error != nullptr && r.error[0] != '\0');
      FUZZ_CHECK(replyName(r.reply) != nullptr);
      FUZZ_CHECK(r.reply != Reply::Succeeded);
      break;
  }
}

// Re-parses every prefix from an exactly sized copy, so a read past len shows up under ASan
// even when the fuzzer's buffer is longer. Prefixes longer than `limit` (the largest message)
// cannot change the verdict and are skipped to keep long inputs fast. `checkShape(r, n)` checks
// each prefix's result on its own.
template <typename Out, typename Parse, typename CheckShape>
void checkPrefixes(Parse parse, const uint8_t* data, size_t size, const ParseResult& full,
                   size_t limit, CheckShape checkShape) {
  const size_t end = std::min(size, limit);
  bool sawInvalid = false;
  for (size_t n = 0; n <= end; ++n) {
    std::vector<uint8_t> exact(data, data + n);
    Out scratch{};
    ParseResult r = parse(exact.data(), n, scratch);
    checkShape(r, n);
    switch (full.status) {
      case ParseStatus::Done:
        if (n < full.consumed) {
          FUZZ_CHECK(r.status == ParseStatus::NeedMore);
        } else {
          FUZZ_CHECK(sameResult(r, full));
        }
        break;
      case ParseStatus::NeedMore:
        FUZZ_CHECK(r.status == ParseStatus::NeedMore);
        break;
      case ParseStatus::Invalid:
        if (sawInvalid) FUZZ_CHECK(r.status == ParseStatus::Invalid);
        FUZZ_CHECK(r.status != ParseStatus::Done);
        if (r.status == ParseStatus::Invalid) {
          FUZZ_CHECK(sameResult(r, full));
          sawInvalid = true;
        }
        break;
    }
  }
  // No message is longer than `limit`, so by then every verdict has been reached.
  if (full.status == ParseStatus::Invalid) FUZZ_CHECK(sawInvalid);
  if (full.status == ParseStatus::NeedMore) FUZZ_CHECK(size < limit);
}

// Parses `data` into `out`, then checks the result's shape and every prefix against it.
template <typename Out, typename Parse, typename CheckShape>
ParseResult parseChecked(Parse parse, const uint8_t* data, size_t size, Out& out, size_t limit,
                         CheckShape checkShape) {
  ParseResult r = parse(data, size, out);
  checkShape(r, size);
  checkPrefixes<Out>(parse, data, size, r, limit, checkShape);
  return r;
}

}  // namespace ds::socks
