// TLS bootstrap for the hub: on first start the hub creates its own CA and a server certificate
// signed by it in the state folder, and re-issues the server certificate when it no longer covers
// the configured names or is about to expire. Devices and services trust the CA (ca.crt).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ds::pki {

// The four files of the hub's PKI (paths).
struct HubFiles {
  std::string caCert, caKey, cert, key;
};

// "<dir>/ca.crt", "<dir>/ca.key", "<dir>/hub.crt", "<dir>/hub.key".
HubFiles hubFiles(const std::string& dir);

struct BootstrapResult {
  HubFiles files;
  bool createdCa = false;     // a new CA was created (ca.crt, ca.key)
  bool createdCert = false;   // hub.crt and hub.key were (re-)issued
  std::string caFingerprint;  // SHA-256 of ca.crt, "AB:CD:...:EF"
};

// Makes sure `dir` holds a CA and a server certificate signed by it, creating what is missing.
//
// The CA (P-256, 10 years, CN "devstreams hub CA <8 random hex>", basicConstraints critical
// CA:TRUE pathlen:0, keyUsage critical keyCertSign,cRLSign, subjectKeyIdentifier) is created only
// when both ca.crt and ca.key are missing; an existing CA is never replaced, and a lone ca.crt or
// ca.key is an error.
//
// The server certificate (P-256, 825 days but never past the CA, CN = names[0], SANs = `names`
// with IP literals as IP SANs and everything else as DNS SANs, extendedKeyUsage serverAuth,
// keyUsage digitalSignature, authorityKeyIdentifier, 128-bit random serial) and a fresh key are
// issued when hub.crt or hub.key is missing, when hub.crt does not cover every name, expires
// within 30 days, is not yet valid, is not signed by the CA or does not match hub.key.
//
// Keys are written 0600 and certificates 0644, each through a temporary file that is renamed into
// place; `dir` is created 0700 when missing. Files that exist but cannot be read or parsed are
// errors, never overwritten. Returns false with `err` naming the file and the problem.
bool ensureHubCertificates(const std::string& dir, const std::vector<std::string>& names,
                           BootstrapResult& out, std::string& err);

// SHA-256 fingerprint of the first certificate in a PEM file: "AB:CD:...:EF" (uppercase,
// colon-separated, as `openssl x509 -fingerprint -sha256` prints it). nullopt with `err` set when
// the file cannot be read or holds no certificate.
std::optional<std::string> sha256Fingerprint(const std::string& certPemPath, std::string& err);

}  // namespace ds::pki
