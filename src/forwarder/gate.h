// A gate on the client-to-target direction of a pump: it decides how much of the client's byte
// stream belongs to the target. An HTTP proxy request forwarded to a device is one request; the
// client's next request on the same connection must never reach that target.
#pragma once

#include <event2/buffer.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace ds {

enum class GateState { Open, Done, Failed };

// Fed the client's bytes in order: sets `pass` to how many of them go through (all of them while
// Open) and says whether more may follow (Open), the allowed part is complete (Done: the rest
// is dropped and the client is not read any more) or the bytes are malformed (Failed).
using UpstreamGate = std::function<GateState(const char* data, size_t len, size_t& pass)>;

// Moves from `in` to `out` what `gate` lets through, adding the count to `moved`. Once the gate
// is Done, whatever else `in` holds is drained.
GateState moveThroughGate(evbuffer* in, evbuffer* out, const UpstreamGate& gate, uint64_t& moved);

}  // namespace ds
