// Shared access signature tokens: encoding helpers, signing, parsing and verification.
#include "common/sas.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdlib>
#include <limits>
#include <vector>

namespace ds::sas {
namespace {

constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr char kBase64Std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string base64EncodeWith(const void* data, size_t len, const char* alphabet, bool pad) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  size_t rest = len - i;
  if (rest == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

// Strict decimal for se: digits only, no sign, no leading zeros, fits in int64_t.
std::optional<int64_t> parseExpiry(std::string_view s) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    int d = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

void fillRandom(std::vector<unsigned char>& buf) {
  if (buf.empty()) return;
  if (buf.size() > static_cast<size_t>(INT_MAX) ||
      RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    std::abort();
  }
}

}  // namespace

std::string urlEncode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (isUnreserved(c)) {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHexUpper[c >> 4];
      out += kHexUpper[c & 15];
    }
  }
  return out;
}

std::optional<std::string> urlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (s.size() - i < 3) return std::nullopt;
      int hi = hexValue(s[i + 1]);
      int lo = hexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>((hi << 4) | lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string base64Encode(const void* data, size_t len) {
  return base64EncodeWith(data, len, kBase64Std, true);
}

std::string base64UrlEncode(const void* data, size_t len) {
  return base64EncodeWith(data, len, kBase64Url, false);
}

std::optional<std::string> base64Decode(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    bool last = i + 4 == s.size();
    int v[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      char c = s[i + j];
      if (c == '=' && last && j >= 2) {
        v[j] = 0;
        ++padding;
        continue;
      }
      // Data after padding ("A=B=") or a character outside the alphabet.
      if (padding > 0) return std::nullopt;
      v[j] = base64Value(c);
      if (v[j] < 0) return std::nullopt;
    }
    uint32_t word =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    // Non-zero bits that the padding discards would make two encodings decode alike.
    if (padding == 1 && (word & 0xFF) != 0) return std::nullopt;
    if (padding == 2 && (word & 0xFFFF) != 0) return std::nullopt;
    out += static_cast<char>((word >> 16) & 0xFF);
    if (padding < 2) out += static_cast<char>((word >> 8) & 0xFF);
    if (padding < 1) out += static_cast<char>(word & 0xFF);
  }
  return out;
}

std::string stringToSign(std::string_view resource, int64_t expiry) {
  return urlEncode(resource) + "\n" + std::to_string(expiry);
}

std::optional<std::string> signature(std::string_view resource, std::string_view keyBase64,
                                     int64_t expiry) {
  if (expiry < 0) return std::nullopt;
  auto key = base64Decode(keyBase64);
  // An empty HMAC key would make every signature computable by anyone.
  if (!key || key->empty() || key->size() > static_cast<size_t>(INT_MAX)) return std::nullopt;
  std::string& keyBytes = *key;
  std::string message = stringToSign(resource, expiry);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int macLen = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), keyBytes.data(), static_cast<int>(keyBytes.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &macLen);
  OPENSSL_cleanse(keyBytes.data(), keyBytes.size());
  if (ok == nullptr) return std::nullopt;
  return base64Encode(mac, macLen);
}

std::optional<std::string> makeToken(std::string_view resource, std::string_view keyBase64,
                                     int64_t expiry, std::string_view policy) {
  auto sig = signature(resource, keyBase64, expiry);
  if (!sig) return std::nullopt;
  std::string token(kTokenPrefix);
  token += "sr=" + urlEncode(resource);
  token += "&sig=" + urlEncode(*sig);
  token += "&se=" + std::to_string(expiry);
  if (!policy.empty()) token += "&skn=" + urlEncode(policy);
  return token;
}

std::optional<Token> parseToken(std::string_view header) {
  if (!header.starts_with(kTokenPrefix)) return std::nullopt;
  std::string_view rest = header.substr(kTokenPrefix.size());
  Token t;
  bool haveSr = false, haveSig = false, haveSe = false, haveSkn = false;
  while (true) {
    size_t amp = rest.find('&');
    std::string_view field = rest.substr(0, amp);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = field.substr(0, eq);
    auto value = urlDecode(field.substr(eq + 1));
    if (!value || value->empty()) return std::nullopt;
    if (name == "sr") {
      if (haveSr) return std::nullopt;
      haveSr = true;
      t.resource = std::move(*value);
    } else if (name == "sig") {
      if (haveSig) return std::nullopt;
      haveSig = true;
      t.signature = std::move(*value);
    } else if (name == "se") {
      if (haveSe) return std::nullopt;
      haveSe = true;
      auto expiry = parseExpiry(*value);
      if (!expiry) return std::nullopt;
      t.expiry = *expiry;
    } else if (name == "skn") {
      if (haveSkn) return std::nullopt;
      haveSkn = true;
      t.policy = std::move(*value);
    } else {
      return std::nullopt;
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  if (!haveSr || !haveSig || !haveSe) return std::nullopt;
  return t;
}

Verdict verify(const Token& t, std::string_view expectedResource, std::string_view keyBase64,
               int64_t now, std::string_view expectedPolicy) {
  if (t.resource.empty() || t.signature.empty() || t.expiry < 0) return Verdict::Malformed;
  if (t.resource != expectedResource) return Verdict::WrongResource;
  if (!expectedPolicy.empty() && t.policy != expectedPolicy) return Verdict::WrongPolicy;
  auto expected = signature(t.resource, keyBase64, t.expiry);
  if (!expected || !constantTimeEquals(*expected, t.signature)) return Verdict::BadSignature;
  if (t.expiry <= now) return Verdict::Expired;
  return Verdict::Ok;
}

const char* verdictName(Verdict v) {
  switch (v) {
    case Verdict::Ok:
      return "ok";
    case Verdict::Malformed:
      return "malformed";
    case Verdict::Expired:
      return "expired";
    case Verdict::BadSignature:
      return "bad-signature";
    case Verdict::WrongResource:
      return "wrong-resource";
    case Verdict::WrongPolicy:
      return "wrong-policy";
  }
  return "unknown";
}

namespace {

// `bytes` random bytes as `encode(data, size)` writes them; the raw bytes are wiped after.
template <class Encode>
std::string randomEncoded(size_t bytes, Encode encode) {
  std::vector<unsigned char> buf(bytes);
  fillRandom(buf);
  std::string out = encode(buf.data(), buf.size());
  OPENSSL_cleanse(buf.data(), buf.size());
  return out;
}

std::string hexEncode(const unsigned char* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (size_t i = 0; i < len; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

}  // namespace

std::string randomKey(size_t bytes) {
  return randomEncoded(bytes, [](const unsigned char* p, size_t n) { return base64Encode(p, n); });
}

std::string randomToken(size_t bytes) {
  return randomEncoded(bytes,
                       [](const unsigned char* p, size_t n) { return base64UrlEncode(p, n); });
}

std::string randomHex(size_t bytes) { return randomEncoded(bytes, hexEncode); }

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace ds::sas
