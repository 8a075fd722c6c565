// Fuzz target for the device control channel messages (stream_request, stream_response): the
// parsers never throw, bound every field, and what they accept survives a write and a re-parse
// unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/protocol.h"
#include "fuzz_check.h"

namespace proto = ds::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto r = proto::parseStreamRequest(in)) {
    FUZZ_CHECK(!r->streamId.empty() && r->streamId.size() <= proto::kMaxId);
    FUZZ_CHECK(r->port >= 1);
    FUZZ_CHECK(r->token.size() <= proto::kMaxId && r->url.size() <= proto::kMaxUrl);
    auto again = proto::parseStreamRequest(proto::toText(*r));
    FUZZ_CHECK(again && again->streamId == r->streamId && again->host == r->host &&
               again->port == r->port && again->url == r->url && again->token == r->token);
  } else {
    FUZZ_CHECK(!r.error.empty());
  }

  if (auto r = proto::parseStreamResponse(in)) {
    FUZZ_CHECK(r->streamId.size() <= proto::kMaxId);
    if (!r->accept) {
      FUZZ_CHECK(r->reason.size() <= proto::kMaxReason && proto::validUtf8(r->reason));
      FUZZ_CHECK(r->codeText.size() <= proto::kMaxCodeName && proto::validUtf8(r->codeText));
      // The classification follows the text.
      FUZZ_CHECK(proto::rejectFromName(r->codeText) == r->code ||
                 r->code == proto::Reject::Rejected);
    }
    auto again = proto::parseStreamResponse(proto::toText(*r));
    FUZZ_CHECK(again && again->streamId == r->streamId && again->accept == r->accept);
    if (!r->accept) {
      FUZZ_CHECK(again->code == r->code && again->codeText == r->codeText &&
                 again->reason == r->reason);
    }
  } else {
    FUZZ_CHECK(!r.error.empty());
  }

  // Cutting free text never splits a character and never grows it.
  for (size_t max : {size_t{0}, size_t{1}, size_t{7}, in.size() / 2}) {
    std::string cut = proto::truncateUtf8(in, max);
    FUZZ_CHECK(cut.size() <= max || cut.size() == in.size());
    if (proto::validUtf8(in)) FUZZ_CHECK(proto::validUtf8(cut));
  }
  return 0;
}
