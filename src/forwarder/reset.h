// How a pump ends a TCP connection. The abnormal end is a reset, so that the peer's next read
// or write fails instead of looking like a clean end of data; a pump ends its TCP side this way
// whenever the stream did not finish normally in both directions (docs/architecture.md, "Rules
// of the data path").
#pragma once

#include "common/event.h"

namespace ds {

// Discards what `bev` still holds, sets SO_LINGER {1, 0} on its socket and frees it: the kernel
// answers the peer with RST at once. Safe inside the bufferevent's own callbacks.
void resetConnection(BufferEventPtr bev);

// The end of a pump's TCP side: after a normal end (clean) what is queued is flushed and the
// socket lingers as usual (Loop::closeAfterFlush); after any other end it is reset. `bothShut`
// says that the peer's FIN was read and ours sent with nothing left queued: the conversation is
// over, so the socket closes at once instead of lingering for a FIN it already has.
void endConnection(Loop& loop, BufferEventPtr bev, bool clean, bool bothShut = false);

}  // namespace ds
