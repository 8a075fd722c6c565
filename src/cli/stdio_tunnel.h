// `devstreams connect` on Windows: stdin and stdout (pipes from OpenSSH's ProxyCommand, a
// console or files) cannot be waited on by the event loop there, so two threads copy bytes with
// blocking calls on the raw handles (binary, no text-mode translation).
#pragma once

#include <cstdint>

namespace ds::cli {

// Copies stdin to the connected socket `fd` (its end becomes a half-close) and the socket to
// stdout until the socket side ends; then returns 0 (1 when the connection was lost).
int runStdioTunnel(intptr_t fd);

}  // namespace ds::cli
