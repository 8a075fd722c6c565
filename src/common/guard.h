// The failure boundary of every libevent callback: an exception must never unwind into
// libevent (it would end the process). Whatever slips out of a handler is logged and closes the
// one connection it belongs to; the process and every other stream go on.
#pragma once

#include <exception>

#include "common/log.h"

namespace ds {

// Runs `body`. If it throws, logs the error with `where` and runs `recover` (which closes the
// connection concerned); an exception from `recover` is logged too and goes no further.
template <class Body, class Recover>
void guarded(const char* where, Body&& body, Recover&& recover) noexcept {
  try {
    body();
    return;
  } catch (const std::exception& e) {
    LOG_ERROR("%s: internal error, closing the connection: %s", where, e.what());
  } catch (...) {
    LOG_ERROR("%s: internal error, closing the connection", where);
  }
  try {
    recover();
  } catch (const std::exception& e) {
    LOG_ERROR("%s: closing after an internal error failed: %s", where, e.what());
  } catch (...) {
    LOG_ERROR("%s: closing after an internal error failed", where);
  }
}

// For callbacks that own no connection (timers of the process, signals): log and go on.
template <class Body>
void guarded(const char* where, Body&& body) noexcept {
  guarded(where, static_cast<Body&&>(body), [] {});
}

}  // namespace ds
