// Shared access signature (SAS) tokens in the IoT Hub style: how services prove to the hub that
// they hold a key for a resource, plus the encoding and random-token helpers the scheme needs.
//
// Recipe: string_to_sign = urlEncode(resource) + "\n" + expiry;
//         signature = base64(HMAC-SHA256(base64Decode(key), string_to_sign));
//         token = "SharedAccessSignature sr=" + urlEncode(resource) + "&sig=" +
//                 urlEncode(signature) + "&se=" + expiry [+ "&skn=" + urlEncode(policy)].
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ds::sas {

// The scheme word that starts every token, including the separating space.
inline constexpr std::string_view kTokenPrefix = "SharedAccessSignature ";

// Form encoding: A-Z a-z 0-9 - _ . ~ pass through, space becomes '+', every other byte becomes
// %XX with uppercase hex.
std::string urlEncode(std::string_view s);
// Inverse of urlEncode: '+' becomes a space; %XX accepts either hex case. nullopt when a '%' is
// not followed by two hex digits.
std::optional<std::string> urlDecode(std::string_view s);

// Standard base64 with padding.
std::string base64Encode(const void* data, size_t len);
inline std::string base64Encode(std::string_view s) { return base64Encode(s.data(), s.size()); }
// Strict: length must be a multiple of 4, only the standard alphabet, '=' only as final padding,
// and the unused bits of the last group must be zero, so every accepted input is the one
// base64Encode would produce. The empty string decodes to the empty string.
std::optional<std::string> base64Decode(std::string_view s);
// base64url (RFC 4648 section 5) without padding.
std::string base64UrlEncode(const void* data, size_t len);

// The string that is signed for a resource and expiry.
std::string stringToSign(std::string_view resource, int64_t expiry);
// base64 signature; nullopt if the key is not strict base64, decodes to zero bytes, or the expiry
// is negative (a negative expiry could not be carried through parseToken).
std::optional<std::string> signature(std::string_view resource, std::string_view keyBase64,
                                     int64_t expiry);
// Full token string, "SharedAccessSignature sr=...". nullopt in the same cases as signature().
std::optional<std::string> makeToken(std::string_view resource, std::string_view keyBase64,
                                     int64_t expiry, std::string_view policy = {});

// A parsed token; all fields hold decoded values.
struct Token {
  std::string resource;
  std::string signature;
  int64_t expiry = 0;
  std::string policy;  // empty when the token has no skn field
};

// Accepts exactly "SharedAccessSignature " followed by '&'-separated key=value fields sr, sig,
// se and optionally skn, in any order, each at most once. sr, sig and se are required and must
// be non-empty after decoding, as must skn when present; se is a decimal integer without sign or
// leading zeros that fits in int64_t. Unknown or empty fields make the token malformed, so
// parsing is canonical: makeToken() of the parsed fields reproduces an equivalent token.
std::optional<Token> parseToken(std::string_view header);

enum class Verdict { Ok, Malformed, Expired, BadSignature, WrongResource, WrongPolicy };

// Checks, in this order: Malformed (empty resource or signature), WrongResource (exact
// comparison of decoded resources), WrongPolicy (only when expectedPolicy is non-empty),
// BadSignature (also when the key itself is unusable), Expired (expiry <= now). The signature is
// checked before the expiry so a forged token never learns more than "bad signature".
Verdict verify(const Token& t, std::string_view expectedResource, std::string_view keyBase64,
               int64_t now, std::string_view expectedPolicy = {});
// Stable lowercase names for logs and error bodies, e.g. "bad-signature".
const char* verdictName(Verdict v);

// base64 of `bytes` random bytes from RAND_bytes; aborts if the random generator fails, since a
// predictable key is worse than no key.
std::string randomKey(size_t bytes = 32);
// base64url without padding of `bytes` random bytes, safe to place in URLs and paths as-is;
// aborts like randomKey when the generator fails.
std::string randomToken(size_t bytes = 24);
// Lowercase hex of `bytes` random bytes (ids, file name suffixes); aborts like randomKey.
std::string randomHex(size_t bytes);

// Equality without data-dependent early exit (CRYPTO_memcmp); only the lengths may leak.
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace ds::sas
