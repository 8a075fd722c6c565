// What the control API's paths mean (the transport is control_api.h). Request bodies are
// parsed once, at the edge, into types by total functions that never throw (as
// common/protocol.h does for the hub protocol); the handlers then work on the types.
#pragma once

#include <string_view>
#include <variant>

#include "daemon/control_api.h"
#include "daemon/settings.h"

namespace ds::daemon {

// The body of POST /v1/forwards: {"listen": "host:port", "device": str, "port": 1..65535},
// listening on a loopback address (forwarded connections are not authenticated). The forward,
// or the error answer (400 bad_request, bad_listen, bad_device_id, bad_port, not_loopback).
std::variant<config::Forward, ApiResponse> parseForwardBody(std::string_view body);

}  // namespace ds::daemon
