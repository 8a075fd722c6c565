// Tests for SAS tokens: the independently computed vectors, round trips, malformed tokens and the
// encoding helpers the scheme relies on.
#include "common/sas.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace ds::sas {
namespace {

nlohmann::json loadVectors() {
  std::ifstream in(std::string(DS_TEST_DATA_DIR) + "/sas-vectors.json");
  EXPECT_TRUE(in.good()) << "cannot open sas-vectors.json";
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "sas-vectors.json is not JSON";
  return j;
}

TEST(SasVectors, EveryVectorMatchesAndVerifies) {
  nlohmann::json doc = loadVectors();
  ASSERT_TRUE(doc.contains("vectors"));
  const auto& vectors = doc["vectors"];
  ASSERT_FALSE(vectors.empty());
  for (const auto& v : vectors) {
    const auto resource = v["resource"].get<std::string>();
    const auto key = v["key_base64"].get<std::string>();
    const auto expiry = v["expiry"].get<int64_t>();
    const std::string policy = v["policy"].is_null() ? "" : v["policy"].get<std::string>();
    SCOPED_TRACE(resource);

    EXPECT_EQ(stringToSign(resource, expiry), v["string_to_sign"].get<std::string>());
    auto sig = signature(resource, key, expiry);
    ASSERT_TRUE(sig);
    EXPECT_EQ(*sig, v["signature_base64"].get<std::string>());
    auto token = makeToken(resource, key, expiry, policy);
    ASSERT_TRUE(token);
    EXPECT_EQ(*token, v["token"].get<std::string>());

    auto parsed = parseToken(v["token"].get<std::string>());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->resource, resource);
    EXPECT_EQ(parsed->signature, *sig);
    EXPECT_EQ(parsed->expiry, expiry);
    EXPECT_EQ(parsed->policy, policy);

    EXPECT_EQ(verify(*parsed, resource, key, expiry - 1, policy), Verdict::Ok);
    EXPECT_EQ(verify(*parsed, resource, key, 0), Verdict::Ok);
    EXPECT_EQ(verify(*parsed, resource, key, expiry, policy), Verdict::Expired);
    EXPECT_EQ(verify(*parsed, resource, key, expiry + 3600, policy), Verdict::Expired);
    EXPECT_EQ(verify(*parsed, resource, randomKey(), expiry - 1, policy), Verdict::BadSignature);
    EXPECT_EQ(verify(*parsed, resource + "x", key, expiry - 1, policy), Verdict::WrongResource);
    EXPECT_EQ(verify(*parsed, "other.example.net", key, expiry - 1, policy),
              Verdict::WrongResource);
    EXPECT_EQ(verify(*parsed, resource, key, expiry - 1, "someone-else"), Verdict::WrongPolicy);
  }
}

TEST(SasToken, RoundTripWithAndWithoutPolicy) {
  const std::string key = randomKey();
  for (std::string policy : {"", "registryRead", "a policy/with:odd+chars"}) {
    auto token = makeToken("hub.example.net/devices/d 1?x=y&z", key, 1234, policy);
    ASSERT_TRUE(token);
    auto t = parseToken(*token);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->resource, "hub.example.net/devices/d 1?x=y&z");
    EXPECT_EQ(t->expiry, 1234);
    EXPECT_EQ(t->policy, policy);
    EXPECT_EQ(verify(*t, "hub.example.net/devices/d 1?x=y&z", key, 1000, policy), Verdict::Ok);
    EXPECT_EQ(verify(*t, "hub.example.net/devices/d 1?x=y&z", key, 1000), Verdict::Ok);
  }
}

TEST(SasToken, FieldsInAnyOrder) {
  auto t = parseToken("SharedAccessSignature skn=p&se=10&sig=abc%3D&sr=hub");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->resource, "hub");
  EXPECT_EQ(t->signature, "abc=");
  EXPECT_EQ(t->expiry, 10);
  EXPECT_EQ(t->policy, "p");
}

TEST(SasToken, RejectsMalformed) {
  const char* bad[] = {
      "",
      "SharedAccessSignature",
      "SharedAccessSignature ",
      "sr=hub&sig=abc&se=10",
      "sharedaccesssignature sr=hub&sig=abc&se=10",
      "SharedAccessSignature  sr=hub&sig=abc&se=10",
      "Bearer sr=hub&sig=abc&se=10",
      // missing fields
      "SharedAccessSignature sig=abc&se=10",
      "SharedAccessSignature sr=hub&se=10",
      "SharedAccessSignature sr=hub&sig=abc",
      // duplicate fields
      "SharedAccessSignature sr=hub&sr=hub&sig=abc&se=10",
      "SharedAccessSignature sr=hub&sig=abc&sig=abc&se=10",
      "SharedAccessSignature sr=hub&sig=abc&se=10&se=10",
      "SharedAccessSignature sr=hub&sig=abc&se=10&skn=a&skn=a",
      // empty values or fields
      "SharedAccessSignature sr=&sig=abc&se=10",
      "SharedAccessSignature sr=hub&sig=&se=10",
      "SharedAccessSignature sr=hub&sig=abc&se=",
      "SharedAccessSignature sr=hub&sig=abc&se=10&skn=",
      "SharedAccessSignature sr=hub&sig=abc&se=10&",
      "SharedAccessSignature sr=hub&&sig=abc&se=10",
      "SharedAccessSignature sr=hub&sig=abc&se=10&skn",
      // unknown field
      "SharedAccessSignature sr=hub&sig=abc&se=10&foo=bar",
      // bad se
      "SharedAccessSignature sr=hub&sig=abc&se=-10",
      "SharedAccessSignature sr=hub&sig=abc&se=+10",
      "SharedAccessSignature sr=hub&sig=abc&se=010",
      "SharedAccessSignature sr=hub&sig=abc&se=10x",
      "SharedAccessSignature sr=hub&sig=abc&se=1.5",
      "SharedAccessSignature sr=hub&sig=abc&se= 10",
      "SharedAccessSignature sr=hub&sig=abc&se=9223372036854775808",
      "SharedAccessSignature sr=hub&sig=abc&se=99999999999999999999",
      // bad % escapes
      "SharedAccessSignature sr=hub%2&sig=abc&se=10",
      "SharedAccessSignature sr=hub%&sig=abc&se=10",
      "SharedAccessSignature sr=hub&sig=abc%G0&se=10",
      "SharedAccessSignature sr=hub&sig=abc&se=10&skn=%zz",
  };
  for (const char* s : bad) EXPECT_FALSE(parseToken(s)) << s;
}

TEST(SasToken, ExpiryLimits) {
  auto t = parseToken("SharedAccessSignature sr=hub&sig=abc&se=9223372036854775807");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->expiry, INT64_MAX);
  t = parseToken("SharedAccessSignature sr=hub&sig=abc&se=0");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->expiry, 0);
}

TEST(SasVerify, MalformedAndBadKeys) {
  const std::string key = randomKey();
  auto token = makeToken("hub", key, 100);
  ASSERT_TRUE(token);
  auto t = parseToken(*token);
  ASSERT_TRUE(t);

  Token empty = *t;
  empty.signature.clear();
  EXPECT_EQ(verify(empty, "hub", key, 50), Verdict::Malformed);
  empty = *t;
  empty.resource.clear();
  EXPECT_EQ(verify(empty, "", key, 50), Verdict::Malformed);
  Token negative = *t;
  negative.expiry = -1;
  EXPECT_EQ(verify(negative, "hub", key, -5), Verdict::Malformed);

  // An unusable verification key refuses every token.
  EXPECT_EQ(verify(*t, "hub", "not base64!", 50), Verdict::BadSignature);
  EXPECT_EQ(verify(*t, "hub", "", 50), Verdict::BadSignature);

  // Tampering with any signed field breaks the signature.
  Token later = *t;
  later.expiry = 200;
  EXPECT_EQ(verify(later, "hub", key, 50), Verdict::BadSignature);
  Token flipped = *t;
  flipped.signature[0] = flipped.signature[0] == 'A' ? 'B' : 'A';
  EXPECT_EQ(verify(flipped, "hub", key, 50), Verdict::BadSignature);
  // A forged token that is also expired reports the signature, not the expiry.
  EXPECT_EQ(verify(flipped, "hub", key, 500), Verdict::BadSignature);
}

TEST(SasVerify, ResourceComparisonIsExact) {
  const std::string key = randomKey();
  auto t = parseToken(*makeToken("Hub.Example.net/devices/a", key, 100));
  ASSERT_TRUE(t);
  EXPECT_EQ(verify(*t, "hub.example.net/devices/a", key, 50), Verdict::WrongResource);
  EXPECT_EQ(verify(*t, "Hub.Example.net/devices/a", key, 50), Verdict::Ok);
}

TEST(SasVerify, PolicyRequiredOnlyWhenExpected) {
  const std::string key = randomKey();
  auto noPolicy = parseToken(*makeToken("hub", key, 100));
  ASSERT_TRUE(noPolicy);
  EXPECT_EQ(verify(*noPolicy, "hub", key, 50, "service"), Verdict::WrongPolicy);
  auto withPolicy = parseToken(*makeToken("hub", key, 100, "service"));
  ASSERT_TRUE(withPolicy);
  EXPECT_EQ(verify(*withPolicy, "hub", key, 50, "service"), Verdict::Ok);
  EXPECT_EQ(verify(*withPolicy, "hub", key, 50, "Service"), Verdict::WrongPolicy);
}

TEST(SasSign, RejectsUnusableKeysAndNegativeExpiry) {
  EXPECT_FALSE(signature("hub", "", 10));
  EXPECT_FALSE(signature("hub", "abc", 10));
  EXPECT_FALSE(signature("hub", "ab$=", 10));
  EXPECT_FALSE(signature("hub", randomKey(), -1));
  EXPECT_FALSE(makeToken("hub", "", 10));
  EXPECT_TRUE(signature("hub", "AA==", 10));
}

TEST(SasVerdict, Names) {
  const std::pair<Verdict, std::string_view> names[] = {{Verdict::Ok, "ok"},
                                                        {Verdict::Malformed, "malformed"},
                                                        {Verdict::Expired, "expired"},
                                                        {Verdict::BadSignature, "bad-signature"},
                                                        {Verdict::WrongResource, "wrong-resource"},
                                                        {Verdict::WrongPolicy, "wrong-policy"}};
  for (const auto& [verdict, name] : names) EXPECT_EQ(verdictName(verdict), name);
}

TEST(UrlEncoding, EncodesLikeFormEncoding) {
  const std::pair<std::string, std::string> cases[] = {{"", ""},
                                                       {"AZaz09-_.~", "AZaz09-_.~"},
                                                       {"a b", "a+b"},
                                                       {"/:+=&%?#", "%2F%3A%2B%3D%26%25%3F%23"},
                                                       {std::string("\x00\xff\n", 3), "%00%FF%0A"},
                                                       {"héllo", "h%C3%A9llo"}};
  for (const auto& [in, out] : cases) EXPECT_EQ(urlEncode(in), out) << in;
}

TEST(UrlEncoding, Decodes) {
  const std::pair<std::string, std::string> cases[] = {{"", ""},
                                                       {"a+b", "a b"},
                                                       {"%2f%2F%3a", "//:"},
                                                       {"%00", std::string(1, '\0')},
                                                       {"100%25", "100%"}};
  for (const auto& [in, out] : cases) EXPECT_EQ(urlDecode(in), out) << in;
  for (std::string_view bad : {"%", "%2", "ab%", "%G1", "%1G", "%-1"}) {
    EXPECT_FALSE(urlDecode(bad)) << bad;
  }
}

const std::string kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

TEST(UrlEncoding, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(urlDecode(urlEncode(all)), all);
  // Character sets rather than MatchesRegex: GoogleTest on Windows has only simple regexes.
  EXPECT_EQ(urlEncode(all).find_first_not_of(kAlnum + "_.~%+-"), std::string::npos);
}

TEST(Base64, KnownAnswers) {
  // RFC 4648 section 10.
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(base64Encode(plain), encoded);
    EXPECT_EQ(base64Decode(encoded), plain);
  }
  EXPECT_EQ(base64Encode(std::string("\xfb\xff", 2)), "+/8=");
  EXPECT_EQ(base64UrlEncode("\xfb\xff", 2), "-_8");
}

TEST(Base64, DecodeIsStrict) {
  const char* bad[] = {
      "Zg",        // missing padding
      "Zg=",       // short padding
      "Zm9",       // length not a multiple of 4
      "Z===",      // too much padding
      "====",      // padding only
      "Zg==Zg==",  // padding in the middle
      "Z=g=",      // data after padding
      "Zh==",      // non-zero discarded bits
      "Zm9=",      // non-zero discarded bits
      "Zm 9v",     // whitespace
      "Zm9v\n",    // newline
      "-_8=",      // url alphabet
      "Zm9v!A==",  // bad char
  };
  for (const char* s : bad) EXPECT_FALSE(base64Decode(s)) << s;
  EXPECT_FALSE(base64Decode(std::string("Zm\0v", 4)));
}

TEST(Base64, RoundTripsRandomData) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (size_t n = 0; n <= all.size(); n += 7) {
    std::string s = all.substr(0, n);
    EXPECT_EQ(base64Decode(base64Encode(s)), s);
  }
}

TEST(RandomValues, KeysAndTokens) {
  std::string key = randomKey();
  auto raw = base64Decode(key);
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->size(), 32u);
  EXPECT_EQ(base64Decode(randomKey(16))->size(), 16u);

  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string t = randomToken();
    EXPECT_EQ(t.size(), 32u);  // 24 bytes, no padding
    EXPECT_EQ(t.find_first_not_of(kAlnum + "_-"), std::string::npos) << t;
    EXPECT_EQ(urlEncode(t), t);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(randomToken(1).size(), 2u);
  EXPECT_EQ(randomToken(0), "");
}

TEST(ConstantTime, Equality) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("abc", "abc"));
  EXPECT_FALSE(constantTimeEquals("abc", "abd"));
  EXPECT_FALSE(constantTimeEquals("abc", "ab"));
  EXPECT_FALSE(constantTimeEquals("", "a"));
  EXPECT_FALSE(constantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

}  // namespace
}  // namespace ds::sas
