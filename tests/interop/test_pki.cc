// Certificate generation for the interoperability tests.
#include "test_pki.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace interop {
namespace {

struct OwnedPki : TestPki {
  ~OwnedPki() {
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
};

bool run(const std::string& cmd, const std::string& log, std::string& error) {
  std::string full = cmd + " >>" + log + " 2>&1";
  if (std::system(full.c_str()) == 0) return true;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  error = "command failed: " + cmd + "\n" + text.str();
  return false;
}

void generate(OwnedPki& p) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ds-interop-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    p.error = "mkdtemp failed";
    return;
  }
  p.dir = tmpl;
  const std::string d = p.dir + "/";
  const std::string log = d + "openssl.log";
  p.caPath = d + "ca.pem";
  p.certPath = d + "server.pem";
  p.keyPath = d + "server.key";
  {
    std::ofstream ext(d + "server.ext");
    ext << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
           "basicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=serverAuth\n";
  }
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  if (!run("openssl req -x509" + ec + " -keyout " + d + "ca.key -out " + p.caPath +
               " -days 2 -subj /CN=devstreams-interop-ca"
               " -addext basicConstraints=critical,CA:TRUE"
               " -addext keyUsage=critical,keyCertSign,cRLSign",
           log, p.error)) {
    return;
  }
  if (!run("openssl req -new" + ec + " -keyout " + p.keyPath + " -out " + d +
               "server.csr -subj /CN=localhost",
           log, p.error)) {
    return;
  }
  if (!run("openssl x509 -req -in " + d + "server.csr -CA " + p.caPath + " -CAkey " + d +
               "ca.key -CAcreateserial -out " + p.certPath + " -days 2 -extfile " + d +
               "server.ext",
           log, p.error)) {
    return;
  }
  p.ok = true;
}

}  // namespace

const TestPki& pki() {
  static OwnedPki p;
  static const bool generated = (generate(p), true);
  (void)generated;
  return p;
}

}  // namespace interop
