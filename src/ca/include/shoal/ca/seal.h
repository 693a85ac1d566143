#pragma once

// Authenticated encryption of small values at rest (issue 8, point 4): secret
// values in the replicated state, the CA key, the data key under an unlock key.
//
// A sealed value is `shoal-sealed:v1:` followed by the raw bytes nonce (12) ||
// ciphertext || GCM tag (16). The cipher is AES-256-GCM (OpenSSL EVP) with a
// fresh random nonce per call. The caller's `context` (for example
// "secret:<name>") is the additional authenticated data: a sealed value copied
// into another field or object fails to unseal. The version in the prefix lets
// the format change later without guessing.
//
// All functions are thread-safe (no shared state besides OpenSSL's RNG).

#include <array>
#include <string>
#include <string_view>

#include "shoal/common/status.h"

namespace shoal::ca {

// The cluster's symmetric data key. Copy it as little as possible; its bytes are
// wiped when the Keyring that owns it goes away.
struct DataKey {
  std::array<unsigned char, 32> bytes{};
};

inline bool operator==(const DataKey& a, const DataKey& b) { return a.bytes == b.bytes; }

// The prefix of every sealed value of the current format.
inline constexpr std::string_view kSealPrefix = "shoal-sealed:v1:";

// A fresh key from OpenSSL's CSPRNG. Aborts the process if the RNG fails: a
// node without randomness must not go on making keys.
DataKey NewDataKey();

// `plaintext` encrypted and authenticated under `key`, bound to `context`.
// Fails (kInternal) only if OpenSSL fails; the message never holds the plaintext.
Result<std::string> Seal(const DataKey& key, std::string_view plaintext, std::string_view context);

// The plaintext of a value made by Seal with the same key and context.
// kInvalidArgument when `sealed` is not a sealed value of a known version or is
// truncated; kCorruption when authentication fails (wrong key, wrong context or
// a changed byte: GCM cannot tell these apart). Messages never hold plaintext.
Result<std::string> Unseal(const DataKey& key, std::string_view sealed, std::string_view context);

// Whether `value` carries the prefix of a sealed value (any version). Says
// nothing about whether it would unseal.
bool IsSealed(std::string_view value);

// Overwrites `n` bytes at `p` in a way the compiler may not drop.
void Wipe(void* p, size_t n);

}  // namespace shoal::ca
