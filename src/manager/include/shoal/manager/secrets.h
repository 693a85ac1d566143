#pragma once

// Secret values at rest (issue 8, point 4). A deploy brings secret values in
// plain text; they enter the replicated state (Secret objects and the stack
// revision's spec) sealed with the cluster data key, so the Raft log, LevelDB
// and snapshots hold only ciphertext. Each value is bound to its secret's
// name ("secret:<name>"), so a sealed value cannot be moved to another secret.
// The plan compares plain values (it never prints them); the dispatcher hands
// an agent the plain value.

#include <google/protobuf/repeated_field.h>

#include <string>

#include "shoal/ca/seal.h"
#include "shoal/common/status.h"
#include "shoal/store/state.h"
#include "shoal/v1/control.pb.h"

namespace shoal::manager {

// Seals and opens secret values with one data key. Immutable after
// construction, so any thread may use it.
class SecretCodec {
 public:
  explicit SecretCodec(const ca::DataKey& key) : key_(key) {}
  ~SecretCodec() { ca::Wipe(key_.bytes.data(), key_.bytes.size()); }
  SecretCodec(const SecretCodec&) = delete;
  SecretCodec& operator=(const SecretCodec&) = delete;

  // spec.data sealed for the secret spec.name(). kInternal from OpenSSL.
  Result<std::string> Seal(const v1::SecretSpec& spec) const;
  // The plain value of spec.data: unsealed when sealed, as is otherwise (a
  // value written before encryption at rest). kCorruption naming the secret
  // (never its value) when it does not unseal.
  Result<std::string> Open(const v1::SecretSpec& spec) const;
  // The version of a plain value: HMAC-SHA256 under the data key of the
  // secret's name and value, hex. Unlike the loader's plain SHA-256 it
  // cannot be checked against guessed values without the key.
  std::string Version(const v1::SecretSpec& spec) const;

 private:
  ca::DataKey key_;
};

// In place: every sealed value in `secrets` made plain. With a null codec
// plain values pass and a sealed one is kFailedPrecondition.
Status OpenSecrets(const SecretCodec* codec,
                   google::protobuf::RepeatedPtrField<v1::SecretSpec>* secrets);

// `desired` (plain values) as the state stores it: sealed. A secret equal to
// the live one of the same name (value and every other field) keeps the live
// ciphertext, so that an unchanged redeploy writes nothing. A null codec
// returns `desired` unchanged (the unit tests' state without a keyring).
Result<google::protobuf::RepeatedPtrField<v1::SecretSpec>> SealedSecrets(
    const store::State& state, const google::protobuf::RepeatedPtrField<v1::SecretSpec>& desired,
    const SecretCodec* codec);

// In place, for a spec with plain values: each secret's data_hash becomes
// its keyed Version, and every service's reference to it carries the first
// 12 digits, as the loader's hash did, so that a new value still rolls the
// tasks. A null codec leaves the spec as it is.
void KeySecretVersions(const SecretCodec* codec, v1::StackSpec* spec);

// The request with plain secret values: `req` itself when it holds no sealed
// value (a deploy from a stack file), otherwise a copy in `*holder` (a rollback
// to a stored revision). Errors as OpenSecrets.
Result<const v1::DeployRequest*> OpenRequest(const v1::DeployRequest& req, const SecretCodec* codec,
                                             v1::DeployRequest* holder);

}  // namespace shoal::manager
