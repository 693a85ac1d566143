#include "shoal/ca/seal.h"

#include <catch2/catch.hpp>

namespace shoal::ca {
namespace {

TEST_CASE("seal: a sealed value unseals with the same key and context") {
  DataKey key = NewDataKey();
  auto sealed = Seal(key, "hunter2", "secret:app_db");
  REQUIRE(sealed.ok());
  CHECK(IsSealed(*sealed));
  CHECK(sealed->starts_with(kSealPrefix));
  CHECK(sealed->find("hunter2") == std::string::npos);
  auto plain = Unseal(key, *sealed, "secret:app_db");
  REQUIRE(plain.ok());
  CHECK(*plain == "hunter2");
}

TEST_CASE("seal: empty and binary values round-trip") {
  DataKey key = NewDataKey();
  std::string binary("\0\x01\xff zero\0", 10);
  for (const std::string& v : {std::string(), binary, std::string(100000, 'x')}) {
    auto sealed = Seal(key, v, "c");
    REQUIRE(sealed.ok());
    auto plain = Unseal(key, *sealed, "c");
    REQUIRE(plain.ok());
    CHECK(*plain == v);
  }
}

TEST_CASE("seal: two seals of one value differ (fresh nonce)") {
  DataKey key = NewDataKey();
  auto a = Seal(key, "same", "c");
  auto b = Seal(key, "same", "c");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
}

TEST_CASE("seal: a wrong key fails with an error that holds no plaintext") {
  DataKey key = NewDataKey();
  DataKey other = NewDataKey();
  auto sealed = Seal(key, "planted-value-123", "c");
  REQUIRE(sealed.ok());
  auto plain = Unseal(other, *sealed, "c");
  REQUIRE(!plain.ok());
  CHECK(plain.error().code() == Code::kCorruption);
  CHECK(plain.error().message().find("planted") == std::string::npos);
}

TEST_CASE("seal: a value moved to another context fails") {
  DataKey key = NewDataKey();
  auto sealed = Seal(key, "v", "secret:a");
  REQUIRE(sealed.ok());
  CHECK(Unseal(key, *sealed, "secret:b").error().code() == Code::kCorruption);
  CHECK(Unseal(key, *sealed, "").error().code() == Code::kCorruption);
}

TEST_CASE("seal: any changed byte fails") {
  DataKey key = NewDataKey();
  auto sealed = Seal(key, "some secret value", "c");
  REQUIRE(sealed.ok());
  // Every byte after the prefix: nonce, ciphertext and tag.
  for (size_t i = kSealPrefix.size(); i < sealed->size(); ++i) {
    std::string bad = *sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = Unseal(key, bad, "c");
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kCorruption);
  }
}

TEST_CASE("seal: malformed input is refused, not decrypted") {
  DataKey key = NewDataKey();
  CHECK(Unseal(key, "plain text", "c").error().code() == Code::kInvalidArgument);
  CHECK(Unseal(key, std::string(kSealPrefix) + "short", "c").error().code() ==
        Code::kInvalidArgument);
  CHECK(Unseal(key, "shoal-sealed:v9:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "c").error().message() ==
        "unseal: unknown sealed-value version");
  CHECK(!IsSealed("hello"));
  CHECK(IsSealed("shoal-sealed:v9:"));
  auto sealed = Seal(key, "value", "c");
  REQUIRE(sealed.ok());
  // Truncated by one byte: the tag no longer matches.
  CHECK(!Unseal(key, sealed->substr(0, sealed->size() - 1), "c").ok());
}

TEST_CASE("seal: new data keys differ") { CHECK(!(NewDataKey() == NewDataKey())); }

}  // namespace
}  // namespace shoal::ca
