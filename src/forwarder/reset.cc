// resetConnection: SO_LINGER {1, 0} and close; endConnection: that or a flushed close.
#include "forwarder/reset.h"

#include <sys/socket.h>

namespace ds {

void resetConnection(BufferEventPtr bev) {
  if (!bev) return;
  bufferevent_setcb(bev.get(), nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(bev.get(), EV_READ | EV_WRITE);
  evutil_socket_t fd = bufferevent_getfd(bev.get());
  if (fd >= 0) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  bev.reset();  // BEV_OPT_CLOSE_ON_FREE: the close sends the reset
}

void endConnection(Loop& loop, BufferEventPtr bev, bool clean, bool bothShut) {
  if (!bev) return;
  bufferevent_setcb(bev.get(), nullptr, nullptr, nullptr, nullptr);
  if (clean && bothShut && evbuffer_get_length(bufferevent_get_output(bev.get())) == 0) {
    bev.reset();  // BEV_OPT_CLOSE_ON_FREE: a plain close, both FINs are through
  } else if (clean) {
    loop.closeAfterFlush(std::move(bev));
  } else {
    resetConnection(std::move(bev));
  }
}

}  // namespace ds
