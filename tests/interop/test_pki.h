// A throwaway PKI for the interoperability tests: a CA and a server certificate for 127.0.0.1
// and localhost, made with the openssl command line in a temporary directory that is removed
// at exit.
#pragma once

#include <string>

namespace interop {

struct TestPki {
  bool ok = false;
  std::string error;
  std::string dir;
  std::string caPath;    // CA certificate (PEM): the trust store of clients
  std::string certPath;  // server certificate (SAN IP:127.0.0.1, DNS:localhost)
  std::string keyPath;   // its private key
};

// Generated on first use, shared by every test of the program.
const TestPki& pki();

}  // namespace interop
