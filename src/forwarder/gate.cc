// moveThroughGate: chain by chain, without copying the bytes that pass.
#include "forwarder/gate.h"

namespace ds {

GateState moveThroughGate(evbuffer* in, evbuffer* out, const UpstreamGate& gate, uint64_t& moved) {
  while (evbuffer_get_length(in) > 0) {
    evbuffer_iovec chain;
    if (evbuffer_peek(in, -1, nullptr, &chain, 1) < 1) break;
    size_t pass = 0;
    GateState st = gate(static_cast<const char*>(chain.iov_base), chain.iov_len, pass);
    if (pass > chain.iov_len) pass = chain.iov_len;
    evbuffer_remove_buffer(in, out, pass);
    moved += pass;
    if (st == GateState::Done) evbuffer_drain(in, evbuffer_get_length(in));
    if (st != GateState::Open) return st;
  }
  return GateState::Open;
}

}  // namespace ds
