// The far end of a connection as raw bytes, for tests on a real event loop: everything it
// receives is collected in `in`, and `eof` is set once the other end closed (or failed).
#pragma once

#include <string>
#include <string_view>

#include "common/event.h"

namespace ds::test {

struct RawPeer {
  BufferEventPtr bev;
  std::string in;
  bool eof = false;

  // Takes `fd`; with `reading` false, nothing is read until startReading().
  void attach(Loop& loop, int fd, bool reading = true) {
    bev = newSocketBufferEvent(loop, fd);
    bufferevent_setcb(bev.get(), &RawPeer::onRead, nullptr, &RawPeer::onEvent, this);
    bufferevent_enable(bev.get(), reading ? EV_READ | EV_WRITE : EV_WRITE);
  }
  void startReading() { bufferevent_enable(bev.get(), EV_READ); }
  void write(std::string_view s) { bufferevent_write(bev.get(), s.data(), s.size()); }
  int fd() const { return bufferevent_getfd(bev.get()); }

  static void onRead(bufferevent* b, void* arg) {
    auto* self = static_cast<RawPeer*>(arg);
    evbuffer* input = bufferevent_get_input(b);
    size_t n = evbuffer_get_length(input);
    size_t old = self->in.size();
    self->in.resize(old + n);
    evbuffer_remove(input, self->in.data() + old, n);
  }
  static void onEvent(bufferevent* b, short what, void* arg) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      onRead(b, arg);
      static_cast<RawPeer*>(arg)->eof = true;
    }
  }
};

}  // namespace ds::test
