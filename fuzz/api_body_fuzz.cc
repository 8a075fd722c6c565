// Fuzz target for the HTTP API bodies (stream initiation, device create/update, key rotation)
// and stream control frames: never a throw, values within their bounds and types.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/protocol.h"
#include "fuzz_check.h"

namespace proto = ds::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto b = proto::parseInitiateBody(in)) {
    FUZZ_CHECK(b->port >= 1 && !b->host.empty() && b->host.size() <= proto::kMaxHost);
    auto again = proto::parseInitiateBody(proto::toText(*b));
    FUZZ_CHECK(again && again->port == b->port && again->host == b->host);
  } else {
    FUZZ_CHECK(!b.error.empty());
  }
  for (bool idRequired : {true, false}) {
    if (auto d = proto::parseDeviceBody(in, idRequired)) {
      FUZZ_CHECK(d->id.size() <= proto::kMaxId);
      FUZZ_CHECK(!d->primaryKey || d->primaryKey->size() <= proto::kMaxKey);
      FUZZ_CHECK(idRequired || d->id.empty());
    }
  }
  (void)proto::parseRotateBody(in);
  if (auto c = proto::parseStreamControl(in)) {
    FUZZ_CHECK(proto::parseStreamControl(proto::toText(*c)).value == c.value);
  }
  // Every wire name maps back to its code.
  auto r = proto::rejectFromName(in);
  if (r != proto::Reject::Other) {
    FUZZ_CHECK(proto::rejectFromName(proto::name(r)) == r);
  }
  return 0;
}
