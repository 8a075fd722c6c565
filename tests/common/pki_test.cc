// Tests for the hub's TLS bootstrap: files and permissions, the certificate contents, chain and
// name checks done by OpenSSL itself, idempotence and re-issuing, the fingerprint cross-checked
// against the openssl command, a real TLS 1.3 handshake, and errors for damaged files.
#include "common/pki.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/handle.h"
#include "common/tls.h"
#include "support/temp_dir.h"

namespace ds::pki {
namespace {

using ds::FreeWith;

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

using StorePtr = std::unique_ptr<X509_STORE, FreeWith<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FreeWith<X509_STORE_CTX_free>>;

const std::vector<std::string> kNames = {"localhost", "127.0.0.1", "::1"};

X509Ptr readCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PkeyPtr readKey(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned modeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 01000;  // no such mode: makes the check fail
  return st.st_mode & 0777;
}

std::string commonName(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

bool extensionCritical(X509* cert, int nid) {
  int idx = X509_get_ext_by_NID(cert, nid, -1);
  return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

// Days and seconds from notBefore to notAfter.
std::pair<int, int> lifetime(X509* cert) {
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert));
  return {days, secs};
}

// X509_verify_cert of `certPath` against the single trusted CA in `caPath`, for a TLS server.
bool chainVerifies(const std::string& caPath, const std::string& certPath, std::string& why) {
  X509Ptr ca = readCert(caPath);
  X509Ptr cert = readCert(certPath);
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ca || !cert || !store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    why = "setup: " + tls::opensslErrors();
    return false;
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) != 1) {
    why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    return false;
  }
  return true;
}

// What `openssl x509 -noout -fingerprint -sha256` prints after the '='.
std::string opensslCliFingerprint(const std::string& path) {
  std::string cmd = "openssl x509 -noout -fingerprint -sha256 -in '" + path + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  if (rc != 0) return "openssl failed: " + out;
  auto eq = out.find('=');
  if (eq == std::string::npos) return "unexpected output: " + out;
  out = out.substr(eq + 1);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Runs one TLS handshake between a server using hub.crt/hub.key and a client that trusts only
// ca.crt and expects `host`, over a BIO pair, then sends one message across.
bool handshake(const HubFiles& f, const std::string& host, std::string& why,
               long* clientVerify = nullptr) {
  SslCtxPtr sctx(SSL_CTX_new(TLS_server_method()));
  SslCtxPtr cctx(SSL_CTX_new(TLS_client_method()));
  if (!sctx || !cctx) {
    why = "SSL_CTX_new: " + tls::opensslErrors();
    return false;
  }
  SSL_CTX_set_min_proto_version(sctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_min_proto_version(cctx.get(), TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(sctx.get(), f.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx.get(), f.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(sctx.get()) != 1) {
    why = "server credentials: " + tls::opensslErrors();
    return false;
  }
  if (SSL_CTX_load_verify_locations(cctx.get(), f.caCert.c_str(), nullptr) != 1) {
    why = "client trust: " + tls::opensslErrors();
    return false;
  }
  SSL_CTX_set_verify(cctx.get(), SSL_VERIFY_PEER, nullptr);

  SslPtr client(SSL_new(cctx.get()));
  SslPtr server(SSL_new(sctx.get()));
  BIO* cb = nullptr;
  BIO* sb = nullptr;
  if (!client || !server || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1) {
    why = "SSL_new/BIO pair: " + tls::opensslErrors();
    return false;
  }
  SSL_set_bio(client.get(), cb, cb);  // each SSL now owns its end
  SSL_set_bio(server.get(), sb, sb);
  SSL_set_tlsext_host_name(client.get(), host.c_str());
  if (SSL_set1_host(client.get(), host.c_str()) != 1) {
    why = "SSL_set1_host: " + tls::opensslErrors();
    return false;
  }
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());

  bool clientDone = false, serverDone = false;
  auto step = [&](SSL* ssl, bool& done, const char* side) {
    if (done) return true;
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
      done = true;
      return true;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    why = std::string(side) + " handshake failed: " + tls::opensslErrors();
    return false;
  };
  for (int i = 0; i < 50 && !(clientDone && serverDone); ++i) {
    bool ok = step(client.get(), clientDone, "client") && step(server.get(), serverDone, "server");
    if (clientVerify) *clientVerify = SSL_get_verify_result(client.get());
    if (!ok) return false;
  }
  if (!clientDone || !serverDone) {
    why = "handshake did not finish";
    return false;
  }
  if (SSL_version(client.get()) != TLS1_3_VERSION) {
    why = std::string("negotiated ") + SSL_get_version(client.get());
    return false;
  }
  const char msg[] = "ping";
  char buf[16] = {};
  if (SSL_write(client.get(), msg, 4) != 4 || SSL_read(server.get(), buf, sizeof buf) != 4 ||
      std::string(buf) != "ping") {
    why = "application data: " + tls::opensslErrors();
    return false;
  }
  return true;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override { files_ = hubFiles(dir_); }
  void TearDown() override {
    // A test may leave the CA certificate without permissions; the directory still goes.
    std::error_code ec;
    std::filesystem::permissions(files_.caCert, std::filesystem::perms::owner_all, ec);
  }

  BootstrapResult ensure(const std::vector<std::string>& names = kNames) {
    BootstrapResult r;
    std::string err;
    EXPECT_TRUE(ensureHubCertificates(dir_, names, r, err)) << err;
    return r;
  }
  // ensureHubCertificates() must refuse: its error.
  std::string refusal() {
    BootstrapResult r;
    std::string err;
    EXPECT_FALSE(ensureHubCertificates(dir_, kNames, r, err));
    return err;
  }

  test::TempDir root_{"ds_pki_test"};
  std::string dir_ = root_ / "state/pki";  // does not exist yet
  HubFiles files_;
};

TEST(HubFilesTest, PathsInsideTheDirectory) {
  HubFiles f = hubFiles("/var/lib/devstreams/pki");
  EXPECT_EQ(f.caCert, "/var/lib/devstreams/pki/ca.crt");
  EXPECT_EQ(f.caKey, "/var/lib/devstreams/pki/ca.key");
  EXPECT_EQ(f.cert, "/var/lib/devstreams/pki/hub.crt");
  EXPECT_EQ(f.key, "/var/lib/devstreams/pki/hub.key");
  EXPECT_EQ(hubFiles("state/").cert, "state/hub.crt");
}

TEST_F(PkiTest, FirstCallCreatesAllFilesWithTheirModes) {
  BootstrapResult r = ensure();
  EXPECT_TRUE(r.createdCa);
  EXPECT_TRUE(r.createdCert);
  EXPECT_EQ(r.files.caCert, files_.caCert);
  EXPECT_EQ(r.files.key, files_.key);

  EXPECT_EQ(modeOf(dir_), 0700u);
  EXPECT_EQ(modeOf(files_.caKey), 0600u);
  EXPECT_EQ(modeOf(files_.key), 0600u);
  EXPECT_EQ(modeOf(files_.caCert), 0644u);
  EXPECT_EQ(modeOf(files_.cert), 0644u);

  // Nothing else is left behind (no temporary files).
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    names.insert(e.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"ca.crt", "ca.key", "hub.crt", "hub.key"}));

  EXPECT_THAT(r.caFingerprint, MatchesRegex("([0-9A-F]{2}:){31}[0-9A-F]{2}"));
  std::string err;
  auto fp = sha256Fingerprint(files_.caCert, err);
  ASSERT_TRUE(fp) << err;
  EXPECT_EQ(*fp, r.caFingerprint);
}

TEST_F(PkiTest, CaCertificateHasTheRequiredContents) {
  ensure();
  X509Ptr ca = readCert(files_.caCert);
  PkeyPtr caKey = readKey(files_.caKey);
  ASSERT_TRUE(ca && caKey);
  EXPECT_EQ(X509_check_private_key(ca.get(), caKey.get()), 1);
  EXPECT_THAT(commonName(ca.get()), MatchesRegex("devstreams hub CA [0-9a-f]{8}"));
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_get_issuer_name(ca.get())), 0);
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);

  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(caKey.get(), group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");

  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_TRUE(extensionCritical(ca.get(), NID_basic_constraints));
  EXPECT_EQ(X509_get_pathlen(ca.get()), 0);
  EXPECT_TRUE(extensionCritical(ca.get(), NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(ca.get()), nullptr);
  EXPECT_EQ(lifetime(ca.get()), std::make_pair(3650, 0));
}

TEST_F(PkiTest, ServerCertificateChainsToTheCaAndCoversTheNames) {
  ensure();
  std::string why;
  EXPECT_TRUE(chainVerifies(files_.caCert, files_.cert, why)) << why;

  X509Ptr ca = readCert(files_.caCert);
  X509Ptr cert = readCert(files_.cert);
  PkeyPtr key = readKey(files_.key);
  ASSERT_TRUE(ca && cert && key);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);

  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_NE(X509_check_host(cert.get(), "evil.example", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_ip_asc(cert.get(), "127.0.0.2", 0), 1);
  // IP literals are IP SANs, not DNS names.
  EXPECT_NE(
      X509_check_host(cert.get(), "127.0.0.1", 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr), 1);

  EXPECT_EQ(commonName(cert.get()), "localhost");
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE);
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert.get());
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca.get());
  ASSERT_TRUE(aki && ski);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, ski), 0);
  EXPECT_EQ(lifetime(cert.get()), std::make_pair(825, 0));

  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");

  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  ASSERT_TRUE(serial);
  EXPECT_GT(BN_num_bits(serial.get()), 64);
  EXPECT_LE(BN_num_bits(serial.get()), 128);
  EXPECT_FALSE(BN_is_negative(serial.get()));
}

TEST_F(PkiTest, SecondCallCreatesNothing) {
  BootstrapResult first = ensure();
  std::string caPem = slurp(files_.caCert), certPem = slurp(files_.cert);
  BootstrapResult second = ensure();
  EXPECT_FALSE(second.createdCa);
  EXPECT_FALSE(second.createdCert);
  EXPECT_EQ(second.caFingerprint, first.caFingerprint);
  EXPECT_EQ(slurp(files_.caCert), caPem);
  EXPECT_EQ(slurp(files_.cert), certPem);
}

TEST_F(PkiTest, EquivalentSpellingsOfTheNamesDoNotReissue) {
  ensure();
  BootstrapResult r = ensure({"LocalHost", "127.0.0.1", "0:0:0:0:0:0:0:1", "localhost"});
  EXPECT_FALSE(r.createdCa);
  EXPECT_FALSE(r.createdCert);
}

TEST_F(PkiTest, AddingANameReissuesTheCertificateButKeepsTheCa) {
  BootstrapResult first = ensure();
  std::string caPem = slurp(files_.caCert), caKeyPem = slurp(files_.caKey);
  BootstrapResult second = ensure({"localhost", "127.0.0.1", "::1", "hub.example", "10.1.2.3"});
  EXPECT_FALSE(second.createdCa);
  EXPECT_TRUE(second.createdCert);
  EXPECT_EQ(second.caFingerprint, first.caFingerprint);
  EXPECT_EQ(slurp(files_.caCert), caPem);
  EXPECT_EQ(slurp(files_.caKey), caKeyPem);

  X509Ptr cert = readCert(files_.cert);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_host(cert.get(), "hub.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  std::string why;
  EXPECT_TRUE(chainVerifies(files_.caCert, files_.cert, why)) << why;
  EXPECT_EQ(modeOf(files_.key), 0600u);
  EXPECT_EQ(modeOf(files_.cert), 0644u);
}

TEST_F(PkiTest, MissingServerKeyIsReissued) {
  BootstrapResult first = ensure();
  ASSERT_EQ(::unlink(files_.key.c_str()), 0);
  BootstrapResult second = ensure();
  EXPECT_FALSE(second.createdCa);
  EXPECT_TRUE(second.createdCert);
  EXPECT_EQ(second.caFingerprint, first.caFingerprint);
  std::string why;
  EXPECT_TRUE(handshake(files_, "localhost", why)) << why;
}

TEST_F(PkiTest, CertificateExpiringWithinThirtyDaysIsReissued) {
  ensure();
  // Replace hub.crt by one from the same CA and key that expires in 10 days.
  X509Ptr ca = readCert(files_.caCert);
  PkeyPtr caKey = readKey(files_.caKey);
  PkeyPtr key = readKey(files_.key);
  ASSERT_TRUE(ca && caKey && key);
  X509Ptr old(X509_new());
  ASSERT_TRUE(old);
  X509_set_version(old.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(old.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(old.get()), -3600);
  X509_time_adj_ex(X509_getm_notAfter(old.get()), 10, 0, nullptr);
  X509_set_pubkey(old.get(), key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(old.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(old.get(), X509_get_subject_name(ca.get()));
  X509V3_CTX v3{};
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, ca.get(), old.get(), nullptr, nullptr, 0);
  ExtPtr san(
      X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"));
  ASSERT_TRUE(san);
  ASSERT_EQ(X509_add_ext(old.get(), san.get(), -1), 1);
  ASSERT_GT(X509_sign(old.get(), caKey.get(), EVP_sha256()), 0);
  {
    BioPtr out(BIO_new_file(files_.cert.c_str(), "w"));
    ASSERT_TRUE(out);
    ASSERT_EQ(PEM_write_bio_X509(out.get(), old.get()), 1);
  }
  std::string why;
  ASSERT_TRUE(chainVerifies(files_.caCert, files_.cert, why)) << why;

  BootstrapResult r = ensure();
  EXPECT_FALSE(r.createdCa);
  EXPECT_TRUE(r.createdCert);
  X509Ptr fresh = readCert(files_.cert);
  ASSERT_TRUE(fresh);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(fresh.get())), 1);
  EXPECT_GT(days, 800);
}

TEST_F(PkiTest, FingerprintMatchesTheOpensslCommand) {
  BootstrapResult r = ensure();
  EXPECT_EQ(opensslCliFingerprint(files_.caCert), r.caFingerprint);
  std::string err;
  auto fp = sha256Fingerprint(files_.cert, err);
  ASSERT_TRUE(fp) << err;
  EXPECT_EQ(opensslCliFingerprint(files_.cert), *fp);
  EXPECT_NE(*fp, r.caFingerprint);
}

TEST_F(PkiTest, Tls13HandshakeWithTheHubCertificate) {
  ensure();
  std::string why;
  EXPECT_TRUE(handshake(files_, "localhost", why)) << why;

  long verify = X509_V_OK;
  EXPECT_FALSE(handshake(files_, "evil.example", why, &verify));
  EXPECT_EQ(verify, X509_V_ERR_HOSTNAME_MISMATCH) << X509_verify_cert_error_string(verify);
}

TEST_F(PkiTest, HandshakeFailsAgainstAnotherHubsCa) {
  ensure();
  // A second hub in another folder has its own CA; its ca.crt must not vouch for this hub.
  HubFiles other = hubFiles(root_ / "other");
  BootstrapResult r;
  std::string err;
  ASSERT_TRUE(ensureHubCertificates(root_ / "other", kNames, r, err)) << err;
  HubFiles mixed = files_;
  mixed.caCert = other.caCert;
  std::string why;
  long verify = X509_V_OK;
  EXPECT_FALSE(handshake(mixed, "localhost", why, &verify));
  EXPECT_NE(verify, X509_V_OK);
}

TEST_F(PkiTest, ANewCaReissuesTheServerCertificate) {
  BootstrapResult first = ensure();
  ASSERT_EQ(::unlink(files_.caCert.c_str()), 0);
  ASSERT_EQ(::unlink(files_.caKey.c_str()), 0);
  BootstrapResult second = ensure();
  EXPECT_TRUE(second.createdCa);
  EXPECT_TRUE(second.createdCert);
  EXPECT_NE(second.caFingerprint, first.caFingerprint);
  std::string why;
  EXPECT_TRUE(chainVerifies(files_.caCert, files_.cert, why)) << why;
}

TEST_F(PkiTest, CorruptCaCertificateIsAnErrorNamingTheFile) {
  ensure();
  std::string caKeyPem = slurp(files_.caKey);
  {
    std::ofstream out(files_.caCert, std::ios::trunc);
    out << "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
  }
  std::string err = refusal();
  EXPECT_THAT(err, HasSubstr(files_.caCert));
  EXPECT_EQ(slurp(files_.caKey), caKeyPem);  // the CA is left alone

  err.clear();
  EXPECT_FALSE(sha256Fingerprint(files_.caCert, err));
  EXPECT_THAT(err, HasSubstr(files_.caCert));
}

TEST_F(PkiTest, UnreadableCaCertificateIsAnErrorNamingTheFile) {
  ensure();
  ASSERT_EQ(::chmod(files_.caCert.c_str(), 0), 0);
  std::string err;
  if (::geteuid() != 0) {
    err = refusal();
  } else {
    // Root reads files whatever their mode: the check runs in a child that became nobody,
    // with the directories open to it for search (0711) and the file itself still mode 0.
    for (const std::string& d : {root_.path().string(), root_ / "state", dir_}) {
      ASSERT_EQ(::chmod(d.c_str(), 0711), 0) << d;
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
      BootstrapResult r;
      std::string e;
      bool ok = ensureHubCertificates(dir_, kNames, r, e);
      ssize_t n = ::write(fds[1], e.data(), e.size());
      ::_exit(ok || n != static_cast<ssize_t>(e.size()) ? 1 : 0);
    }
    ::close(fds[1]);
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, n);
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the check as nobody: status " << status << ", " << err;
  }
  EXPECT_THAT(err, HasSubstr(files_.caCert));
  EXPECT_THAT(err, HasSubstr("ermission"));
}

TEST_F(PkiTest, CaCertificatePathThatIsNotAFileIsAnError) {
  ensure();
  ASSERT_EQ(::unlink(files_.caCert.c_str()), 0);
  ASSERT_EQ(::mkdir(files_.caCert.c_str(), 0700), 0);
  std::string err = refusal();
  EXPECT_THAT(err, HasSubstr(files_.caCert));
}

TEST_F(PkiTest, EmptyServerCertificateIsAnErrorNamingTheFile) {
  ensure();
  { std::ofstream out(files_.cert, std::ios::trunc); }
  std::string err = refusal();
  EXPECT_THAT(err, HasSubstr(files_.cert));
}

TEST_F(PkiTest, LoneCaKeyIsNeverReplaced) {
  ensure();
  std::string caKeyPem = slurp(files_.caKey);
  ASSERT_EQ(::unlink(files_.caCert.c_str()), 0);
  std::string err = refusal();
  EXPECT_THAT(err, HasSubstr(files_.caCert));
  EXPECT_EQ(slurp(files_.caKey), caKeyPem);
  EXPECT_FALSE(std::filesystem::exists(files_.caCert));
}

TEST_F(PkiTest, CaKeyNotMatchingTheCertificateIsAnError) {
  ensure();
  std::filesystem::copy_file(files_.key, files_.caKey,
                             std::filesystem::copy_options::overwrite_existing);
  std::string err = refusal();
  EXPECT_THAT(err, HasSubstr(files_.caKey));
}

TEST_F(PkiTest, BadNamesAreRejected) {
  BootstrapResult r;
  std::string err;
  EXPECT_FALSE(ensureHubCertificates(dir_, {}, r, err));
  EXPECT_FALSE(err.empty());
  for (std::string bad : {"", "two words", "a,DNS:evil.example", "bad..dots", "[::1]"}) {
    err.clear();
    EXPECT_FALSE(ensureHubCertificates(dir_, {"localhost", bad}, r, err)) << bad;
    EXPECT_THAT(err, HasSubstr("\"" + bad + "\""));
  }
  EXPECT_FALSE(std::filesystem::exists(files_.caKey));  // nothing was created
}

TEST_F(PkiTest, PermissionsDoNotDependOnTheUmask) {
  mode_t old = ::umask(077);
  ensure();
  ::umask(old);
  EXPECT_EQ(modeOf(files_.caCert), 0644u);
  EXPECT_EQ(modeOf(files_.cert), 0644u);
  EXPECT_EQ(modeOf(files_.caKey), 0600u);
  EXPECT_EQ(modeOf(files_.key), 0600u);
}

TEST(PkiFingerprintTest, MissingFileIsAnError) {
  std::string err;
  EXPECT_FALSE(sha256Fingerprint("/nonexistent/devstreams/ca.crt", err));
  EXPECT_THAT(err, HasSubstr("/nonexistent/devstreams/ca.crt"));
}

}  // namespace
}  // namespace ds::pki
