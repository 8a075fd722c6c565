// Hub TLS bootstrap with the OpenSSL 3 API: P-256 keys, the self-signed CA, server certificates
// issued from it, the checks that decide whether hub.crt is still good, and atomic writes with
// exact permissions.
#include "common/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <system_error>

#include "common/sas.h"
#include "common/tls.h"

namespace ds::pki {
namespace {

constexpr long kCaDays = 3650;
constexpr long kCertDays = 825;
constexpr long kRenewBeforeDays = 30;
// notBefore lies this far in the past so peers with a slightly slow clock accept a fresh
// certificate; notAfter is counted from notBefore so the lifetime stays exactly kCertDays.
constexpr long kBackdateSeconds = 3600;
constexpr size_t kMaxPemBytes = 1 << 20;
// ub-common-name (RFC 5280).
constexpr size_t kMaxCommonName = 64;
constexpr size_t kMaxDnsName = 253;

std::string opensslError() { return tls::opensslErrors(); }

std::string sysError(int e) { return std::error_code(e, std::generic_category()).message(); }

bool isIpLiteral(const std::string& name) {
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, name.c_str(), &a4) == 1 || inet_pton(AF_INET6, name.c_str(), &a6) == 1;
}

// Host names as they may appear in a DNS SAN: dot-separated labels of letters, digits, '-' and
// '_', 1..63 characters each; the leftmost label may be "*". This also keeps the SAN
// configuration string free of separators.
bool isDnsName(const std::string& name) {
  if (name.empty() || name.size() > kMaxDnsName) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string label =
        name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!(start == 0 && label == "*" && dot != std::string::npos)) {
      for (char c : label) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) return false;
      }
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

std::string lowercase(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Whether `path` exists; nullopt with `err` set when it cannot be checked or is not a file.
std::optional<bool> fileExists(const std::string& path, std::string& err) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    err = path + ": cannot check: " + sysError(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    err = path + ": not a regular file";
    return std::nullopt;
  }
  return true;
}

bool ensureDir(const std::string& dir, std::string& err) {
  // Every missing component is created 0700; existing ones are left as they are.
  for (size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      err = prefix + ": cannot create directory: " + sysError(errno);
      return false;
    }
  }
  if (::mkdir(dir.c_str(), 0700) == 0) {
    ::chmod(dir.c_str(), 0700);  // the umask must not widen or narrow it
  } else if (errno != EEXIST) {
    err = dir + ": cannot create directory: " + sysError(errno);
    return false;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    err = dir + ": " + sysError(errno);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    err = dir + ": not a directory";
    return false;
  }
  return true;
}

void syncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

bool readFile(const std::string& path, std::string& data, std::string& err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = path + ": cannot open: " + sysError(errno);
    return false;
  }
  data.clear();
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = path + ": cannot read: " + sysError(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxPemBytes) {
      err = path + ": too large for a PEM file";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

// Writes `data` to `path` through "<path>.tmp-<random>" created with O_EXCL and exactly `mode`.
// With `noClobber` the file is linked into place and an existing `path` is an error; otherwise it
// is renamed over `path`.
bool writeFileAtomic(const std::string& path, const std::string& data, mode_t mode, bool noClobber,
                     std::string& err) {
  std::string suffix = sas::randomHex(6);
  std::string tmp = path + ".tmp-" + suffix;
  int fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) {
    err = path + ": cannot create " + tmp + ": " + sysError(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    err = path + ": " + what + ": " + sysError(errno);
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  if (::fchmod(fd, mode) != 0) return fail("cannot set permissions of " + tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write " + tmp);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot sync " + tmp);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) return fail("cannot write " + tmp);
  if (noClobber) {
    if (::link(tmp.c_str(), path.c_str()) != 0) return fail("cannot create");
    ::unlink(tmp.c_str());
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("cannot replace");
  }
  return true;
}

// Never prompts for a passphrase: the hub's keys are unencrypted.
int noPassphrase(char*, int, int, void*) { return 0; }

// Reads one PEM object (`what`) from the file at `path` with `read` (PEM_read_bio_X509 and the
// like). The file's bytes are wiped once read: a key's must not linger in freed memory.
template <class Ptr, class Read>
Ptr loadPem(const std::string& path, std::string& err, Read read, const char* what) {
  std::string pem;
  if (!readFile(path, pem, err)) return nullptr;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    err = path + ": " + opensslError();
    return nullptr;
  }
  ERR_clear_error();
  Ptr object(read(bio.get(), nullptr, noPassphrase, nullptr));
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!object) err = path + ": no " + what + " (" + opensslError() + ")";
  return object;
}

X509Ptr loadCert(const std::string& path, std::string& err) {
  return loadPem<X509Ptr>(path, err, PEM_read_bio_X509, "PEM certificate");
}

PkeyPtr loadKey(const std::string& path, std::string& err) {
  return loadPem<PkeyPtr>(path, err, PEM_read_bio_PrivateKey, "unencrypted PEM private key");
}

std::optional<std::string> certPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return std::nullopt;
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

std::optional<std::string> keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return std::nullopt;
  }
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  std::string out(p, static_cast<size_t>(n));
  OPENSSL_cleanse(p, static_cast<size_t>(n));
  return out;
}

std::string fingerprintOf(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string timeText(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) return "?";
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

PkeyPtr newKey() { return PkeyPtr(EVP_EC_gen("P-256")); }

// A positive 128-bit random serial.
bool setRandomSerial(X509* cert) {
  unsigned char raw[16];
  BnPtr bn;
  do {
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    bn.reset(BN_bin2bn(raw, sizeof raw, nullptr));
    if (!bn) return false;
  } while (BN_is_zero(bn.get()));
  AsnIntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  return serial && X509_set_serialNumber(cert, serial.get()) == 1;
}

bool addExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// Version, serial, validity (notBefore backdated, `days` counted from it) and public key.
bool setBasics(X509* cert, EVP_PKEY* key, long days) {
  return X509_set_version(cert, X509_VERSION_3) == 1 && setRandomSerial(cert) &&
         X509_gmtime_adj(X509_getm_notBefore(cert), -kBackdateSeconds) != nullptr &&
         X509_time_adj_ex(X509_getm_notAfter(cert), static_cast<int>(days), -kBackdateSeconds,
                          nullptr) != nullptr &&
         X509_set_pubkey(cert, key) == 1;
}

bool setCommonName(X509* cert, const std::string& cn) {
  X509_NAME* name = X509_get_subject_name(cert);
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(cn.data()),
                                    static_cast<int>(cn.size()), -1, 0) == 1;
}

X509Ptr makeCa(EVP_PKEY* key) {
  std::string suffix = sas::randomHex(4);
  X509Ptr ca(X509_new());
  if (!ca || !setBasics(ca.get(), key, kCaDays) ||
      !setCommonName(ca.get(), "devstreams hub CA " + suffix) ||
      X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())) != 1) {
    return nullptr;
  }
  X509V3_CTX ctx{};
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca.get(), ca.get(), nullptr, nullptr, 0);
  if (!addExtension(ca.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !addExtension(ca.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !addExtension(ca.get(), &ctx, NID_subject_key_identifier, "hash") ||
      X509_sign(ca.get(), key, EVP_sha256()) <= 0) {
    return nullptr;
  }
  return ca;
}

std::string subjectAltNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ',';
    out += (isIpLiteral(n) ? "IP:" : "DNS:") + n;
  }
  return out;
}

X509Ptr issueServerCert(EVP_PKEY* key, X509* ca, EVP_PKEY* caKey,
                        const std::vector<std::string>& names) {
  X509Ptr cert(X509_new());
  if (!cert || !setBasics(cert.get(), key, kCertDays) || !setCommonName(cert.get(), names[0]) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) != 1) {
    return nullptr;
  }
  // Never valid beyond the CA that vouches for it.
  if (ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(ca)) > 0 &&
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(ca)) != 1) {
    return nullptr;
  }
  X509V3_CTX ctx{};
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca, cert.get(), nullptr, nullptr, 0);
  if (!addExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
      !addExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature") ||
      !addExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth") ||
      !addExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash") ||
      !addExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid,issuer") ||
      !addExtension(cert.get(), &ctx, NID_subject_alt_name, subjectAltNames(names)) ||
      X509_sign(cert.get(), caKey, EVP_sha256()) <= 0) {
    return nullptr;
  }
  return cert;
}

bool coversNames(X509* cert, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    int r = isIpLiteral(n)
                ? X509_check_ip_asc(cert, n.c_str(), 0)
                : X509_check_host(
                      cert, n.c_str(), n.size(),
                      X509_CHECK_FLAG_NO_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr);
    if (r != 1) return false;
  }
  return true;
}

// Whether the existing server certificate can stay: signed by `ca`, matching its key, valid now
// and for more than kRenewBeforeDays, and covering every name.
bool serverCertUsable(X509* cert, EVP_PKEY* key, X509* ca, const std::vector<std::string>& names) {
  bool ok = X509_check_issued(ca, cert) == X509_V_OK &&
            X509_verify(cert, X509_get0_pubkey(ca)) == 1 && X509_check_private_key(cert, key) == 1;
  if (ok) {
    time_t limit = time(nullptr) + kRenewBeforeDays * 86400;
    ok = X509_cmp_time(X509_get0_notBefore(cert), nullptr) < 0 &&
         X509_cmp_time(X509_get0_notAfter(cert), &limit) > 0 && coversNames(cert, names);
  }
  ERR_clear_error();  // failed checks leave errors behind
  return ok;
}

}  // namespace

HubFiles hubFiles(const std::string& dir) {
  std::string base = dir;
  if (base.empty() || base.back() != '/') base += '/';
  return HubFiles{base + "ca.crt", base + "ca.key", base + "hub.crt", base + "hub.key"};
}

bool ensureHubCertificates(const std::string& dir, const std::vector<std::string>& names,
                           BootstrapResult& out, std::string& err) {
  out = BootstrapResult{};
  out.files = hubFiles(dir);
  const HubFiles& f = out.files;
  ERR_clear_error();

  if (dir.empty()) {
    err = "PKI directory: empty path";
    return false;
  }
  if (names.empty()) {
    err = f.cert + ": no names to issue the certificate for";
    return false;
  }
  std::vector<std::string> sans;
  for (const auto& raw : names) {
    std::string n = isIpLiteral(raw) ? raw : lowercase(raw);
    if (!isIpLiteral(n) && !isDnsName(n)) {
      err = f.cert + ": \"" + raw + "\" is neither an IP address nor a DNS name";
      return false;
    }
    bool seen = false;
    for (const auto& s : sans) seen = seen || s == n;
    if (!seen) sans.push_back(n);
  }
  if (sans[0].size() > kMaxCommonName) {
    err = f.cert + ": \"" + names[0] + "\" is too long for the common name (at most " +
          std::to_string(kMaxCommonName) + " characters); list a shorter name first";
    return false;
  }
  if (!ensureDir(dir, err)) return false;

  // The CA: load it, or create it when neither file exists.
  auto caCertExists = fileExists(f.caCert, err);
  if (!caCertExists) return false;
  auto caKeyExists = fileExists(f.caKey, err);
  if (!caKeyExists) return false;
  X509Ptr ca;
  PkeyPtr caKey;
  if (*caCertExists && *caKeyExists) {
    if (!(ca = loadCert(f.caCert, err))) return false;
    if (!(caKey = loadKey(f.caKey, err))) return false;
    if (X509_check_ca(ca.get()) == 0) {
      err = f.caCert + ": not a CA certificate";
      return false;
    }
    if (X509_check_private_key(ca.get(), caKey.get()) != 1) {
      ERR_clear_error();
      err = f.caKey + ": does not match " + f.caCert;
      return false;
    }
    if (X509_cmp_time(X509_get0_notAfter(ca.get()), nullptr) <= 0) {
      err = f.caCert + ": the CA expired on " + timeText(X509_get0_notAfter(ca.get())) +
            "; move ca.crt and ca.key away to create a new CA";
      return false;
    }
  } else if (*caCertExists || *caKeyExists) {
    const std::string& present = *caCertExists ? f.caCert : f.caKey;
    const std::string& missing = *caCertExists ? f.caKey : f.caCert;
    err = missing + ": missing while " + present +
          " exists; an existing CA is never replaced (restore the file or move " + present +
          " away)";
    return false;
  } else {
    caKey = newKey();
    if (caKey) ca = makeCa(caKey.get());
    auto crtPem = ca ? certPem(ca.get()) : std::nullopt;
    auto keyText = ca ? keyPem(caKey.get()) : std::nullopt;
    if (!crtPem || !keyText) {
      err = f.caCert + ": cannot create the CA: " + opensslError();
      return false;
    }
    if (!writeFileAtomic(f.caKey, *keyText, 0600, /*noClobber=*/true, err)) return false;
    // The analyzer mistakes the string for a reallocated one; keyText is untouched since.
    // NOLINTNEXTLINE(clang-analyzer-cplusplus.InnerPointer)
    OPENSSL_cleanse(keyText->data(), keyText->size());
    if (!writeFileAtomic(f.caCert, *crtPem, 0644, /*noClobber=*/true, err)) {
      ::unlink(f.caKey.c_str());  // created just now; a lone key would block the next start
      return false;
    }
    out.createdCa = true;
  }
  out.caFingerprint = fingerprintOf(ca.get());
  if (out.caFingerprint.empty()) {
    err = f.caCert + ": cannot compute the fingerprint: " + opensslError();
    return false;
  }

  // The server certificate: keep it while it is usable, otherwise issue a new one with a new key.
  auto certExists = fileExists(f.cert, err);
  if (!certExists) return false;
  auto keyExists = fileExists(f.key, err);
  if (!keyExists) return false;
  bool issue = true;
  if (*certExists && *keyExists) {
    X509Ptr cert = loadCert(f.cert, err);
    if (!cert) return false;
    PkeyPtr key = loadKey(f.key, err);
    if (!key) return false;
    issue = !serverCertUsable(cert.get(), key.get(), ca.get(), sans);
  }
  if (issue) {
    PkeyPtr key = newKey();
    X509Ptr cert = key ? issueServerCert(key.get(), ca.get(), caKey.get(), sans) : nullptr;
    auto crtPem = cert ? certPem(cert.get()) : std::nullopt;
    auto keyText = cert ? keyPem(key.get()) : std::nullopt;
    if (!crtPem || !keyText) {
      err = f.cert + ": cannot issue the server certificate: " + opensslError();
      return false;
    }
    // Key first: should the certificate fail to land, the mismatch makes the next start re-issue.
    bool written = writeFileAtomic(f.key, *keyText, 0600, /*noClobber=*/false, err);
    // NOLINTNEXTLINE(clang-analyzer-cplusplus.InnerPointer)
    OPENSSL_cleanse(keyText->data(), keyText->size());
    if (!written || !writeFileAtomic(f.cert, *crtPem, 0644, /*noClobber=*/false, err)) {
      return false;
    }
    out.createdCert = true;
  }
  if (out.createdCa || out.createdCert) syncDir(dir);
  return true;
}

std::optional<std::string> sha256Fingerprint(const std::string& certPemPath, std::string& err) {
  ERR_clear_error();
  X509Ptr cert = loadCert(certPemPath, err);
  if (!cert) return std::nullopt;
  std::string fp = fingerprintOf(cert.get());
  if (fp.empty()) {
    err = certPemPath + ": cannot compute the fingerprint: " + opensslError();
    return std::nullopt;
  }
  return fp;
}

}  // namespace ds::pki
