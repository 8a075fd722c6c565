// Fuzz target for the service channel (stream_request with an id, stream_response) and the
// HTTP answer to stream initiation: never a throw, and an accepted message round-trips.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/protocol.h"
#include "fuzz_check.h"

namespace proto = ds::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::optional<proto::RequestId> id;
  auto req = proto::parseServiceRequest(in, id);
  if (req) {
    FUZZ_CHECK(id.has_value() && *id == req->id);
    FUZZ_CHECK(!req->device.empty() && req->device.size() <= proto::kMaxId);
    FUZZ_CHECK(req->port >= 1 && !req->host.empty() && req->host.size() <= proto::kMaxHost);
    std::optional<proto::RequestId> id2;
    auto again = proto::parseServiceRequest(proto::toText(*req), id2);
    FUZZ_CHECK(again && again->id == req->id && again->device == req->device &&
               again->host == req->host && again->port == req->port);
  } else {
    FUZZ_CHECK(!req.error.empty());
  }

  if (auto r = proto::parseServiceResponse(in)) {
    auto again = proto::parseServiceResponse(proto::toText(*r));
    FUZZ_CHECK(again && again->id == r->id && again->answer.status == r->answer.status);
    if (r->answer.status == 200) {
      FUZZ_CHECK(again->answer.grant.streamId == r->answer.grant.streamId &&
                 again->answer.grant.token == r->answer.grant.token);
    } else {
      FUZZ_CHECK(again->answer.error == r->answer.error &&
                 again->answer.message == r->answer.message);
    }
  }

  for (int status : {200, 403, 429, 502}) {
    if (auto a = proto::parseAnswerBody(status, in)) {
      FUZZ_CHECK(a->status == status);
      FUZZ_CHECK(a->message.size() <= proto::kMaxReason);
      auto again = proto::parseAnswerBody(status, proto::answerBody(*a));
      FUZZ_CHECK(again && again->grant.url == a->grant.url && again->error == a->error);
    }
  }
  return 0;
}
