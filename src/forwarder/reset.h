// The abnormal end of a TCP connection: a reset, so that the peer's next read or write fails
// instead of looking like a clean end of data. A pump ends its TCP side this way whenever the
// stream did not finish normally in both directions (docs/architecture.md, "Rules of the data
// path").
#pragma once

#include "common/event.h"

namespace ds {

// Discards what `bev` still holds, sets SO_LINGER {1, 0} on its socket and frees it: the kernel
// answers the peer with RST at once. Safe inside the bufferevent's own callbacks.
void resetConnection(BufferEventPtr bev);

}  // namespace ds
