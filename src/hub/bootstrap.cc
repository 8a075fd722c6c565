// The hub's start-up: registry and TLS (bootstrap.h).
#include "hub/bootstrap.h"

#include "common/log.h"
#include "common/pki.h"
#include "common/tls.h"

namespace ds::hub {

std::unique_ptr<Registry> openRegistry(const config::HubConfig& cfg, std::string& err) {
  std::unique_ptr<Registry> registry = Registry::open(cfg.registry, err);
  if (!registry || !registry->empty() || cfg.bootstrapRegistry.empty()) return registry;
  config::RegistrySeed seed;
  try {
    seed = config::loadRegistrySeed(cfg.bootstrapRegistry);
  } catch (const config::Error& e) {
    err = e.what();
    return nullptr;
  }
  for (const auto& d : seed.devices) {
    DbResult r = registry->addDevice({d.id, d.primaryKey, d.secondaryKey, d.enabled, 0, 0});
    if (r != DbResult::Ok) {
      err = cfg.bootstrapRegistry + ": device " + d.id + ": " + dbResultName(r);
      return nullptr;
    }
  }
  for (const auto& p : seed.policies) {
    DbResult r = registry->addPolicy({p.name, p.key, p.permissions, p.devices});
    if (r != DbResult::Ok) {
      err = cfg.bootstrapRegistry + ": policy " + p.name + ": " + dbResultName(r);
      return nullptr;
    }
  }
  LOG_INFO("registry %s: imported %zu devices and %zu policies from %s", cfg.registry.c_str(),
           seed.devices.size(), seed.policies.size(), cfg.bootstrapRegistry.c_str());
  return registry;
}

SslCtxPtr serverTls(const config::HubConfig& cfg, std::string& caFingerprint, std::string& err) {
  std::string cert = cfg.cert, key = cfg.key;
  if (cert.empty()) {
    pki::BootstrapResult boot;
    if (!pki::ensureHubCertificates(cfg.stateDir, cfg.tlsNames, boot, err)) return nullptr;
    cert = boot.files.cert;
    key = boot.files.key;
    caFingerprint = boot.caFingerprint;
    if (boot.createdCa) {
      LOG_INFO("created a CA in %s; trust it with `ca: %s` (SHA-256 %s)", cfg.stateDir.c_str(),
               boot.files.caCert.c_str(), caFingerprint.c_str());
    } else {
      LOG_INFO("CA %s (SHA-256 %s)", boot.files.caCert.c_str(), caFingerprint.c_str());
    }
    if (boot.createdCert) LOG_INFO("issued server certificate %s", boot.files.cert.c_str());
  }
  SslCtxPtr ssl = tls::serverContext(cert, key, err);
  if (!ssl) return nullptr;
  // One TLS 1.3 session ticket per handshake: the daemon's and the agent's warm connections
  // resume their sessions, which spares the hub a certificate signature per connection.
  SSL_CTX_set_num_tickets(ssl.get(), 1);
  return ssl;
}

}  // namespace ds::hub
