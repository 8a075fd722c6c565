// The hub's start-up before it listens: the registry (opened, and seeded once from the
// bootstrap file when empty) and the TLS server context (the configured certificate, or the
// hub's own CA and certificate, made on first start).
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/event.h"
#include "hub/registry.h"

namespace ds::hub {

// Opens `cfg.registry`; an empty one imports the devices and policies of
// `cfg.bootstrapRegistry` (when set). Null with `err` on failure.
std::unique_ptr<Registry> openRegistry(const config::HubConfig& cfg, std::string& err);

// The server context from `cfg.cert`/`cfg.key`, or from certificates the hub makes in
// `cfg.stateDir` when none is configured (then `caFingerprint` is its CA's SHA-256). Null with
// `err` on failure.
SslCtxPtr serverTls(const config::HubConfig& cfg, std::string& caFingerprint, std::string& err);

}  // namespace ds::hub
