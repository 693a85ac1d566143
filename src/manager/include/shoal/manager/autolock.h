#pragma once

// A daemon's side of encryption at rest and autolock (issue 8, point 4).
//
// AtRest owns the manager's keyring (<data_dir>/keys/datakey, shoal/ca/keyring.h)
// and the SecretCodec made from its data key. A daemon whose key file is
// autolocked starts locked: it runs no manager, no agent, no Raft and no
// dispatcher, every Control and Dispatcher call is refused with LockedStatus(),
// and the Security service (control.proto) on the local socket is the only
// thing it answers until `shoal cluster unlock` gives it the unlock key.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/ca/keyring.h"
#include "shoal/common/status.h"
#include "shoal/manager/secrets.h"
#include "shoal/v1/control.grpc.pb.h"

namespace shoal::manager {

class AtRest {
 public:
  // Reads the key file under `data_dir` if there is one: unlocked (the key
  // is loaded), autolocked (locked() is true) or absent (a node that has not
  // been a manager). kCorruption / kIo naming the file.
  static Result<std::unique_ptr<AtRest>> Open(const std::string& data_dir);

  // Whether the data key waits for the unlock key. Any thread.
  bool locked() const;
  // Whether the key file is sealed under an unlock key (locked or not).
  // Any thread.
  bool autolocked() const;
  // For a manager about to start: loads the key, or creates the cluster's
  // first one when there is none (cluster init, and, until joins carry the
  // key, a joining manager). kFailedPrecondition when locked; kIo. Any thread.
  Status EnsureKey();
  // A manager that joined: the cluster's key as the leader sent it (the 32
  // bytes of DataKeyForJoin), replacing any key of its own. kInvalidArgument
  // for another size; kFailedPrecondition when locked; kIo.
  Status Adopt(std::string_view key_bytes);

  // Any value sealed with / opened with the data key under `context` (the
  // CA key: context "shoal-ca-key"). Seal loads or creates the key first, as
  // EnsureKey. kFailedPrecondition when locked; Unseal's errors as ca::Unseal.
  Result<std::string> Seal(std::string_view plaintext, std::string_view context);
  Result<std::string> Unseal(std::string_view sealed, std::string_view context);
  // The data key's 32 bytes for a manager that joins or is promoted (a
  // `bytes` field of the reply, over mutual TLS only). kFailedPrecondition
  // when there is none loaded.
  Result<std::string> DataKeyForJoin() const;

  // The codec of the loaded key, or null before EnsureKey / while locked.
  // Every codec handed out lives as long as this AtRest. Any thread.
  const SecretCodec* codec() const;
  // For dispatcher::Options::secret_value: opens a Secret's stored value.
  std::function<Result<std::string>(const v1::Secret&)> SecretValueFn() const;

  // Opens the autolocked key file. kInvalidArgument for a wrong or malformed
  // key, kFailedPrecondition when not locked. Any thread.
  Status Unlock(const std::string& unlock_key);
  // Seals the key file under `unlock_key`, or stores it unsealed when it is
  // "": how a manager follows the cluster's autolock setting. Nothing to do
  // when the file is already so. kFailedPrecondition when locked or without
  // a key, kInvalidArgument for a malformed key, kIo. Any thread.
  Status FollowAutolock(std::string_view unlock_key);
  // The unlock key in use. kFailedPrecondition when autolock is off, locked,
  // or there is no loaded key.
  Result<std::string> UnlockKey() const;

 private:
  explicit AtRest(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  void Loaded(ca::Keyring keyring);  // mu_ held

  const std::string data_dir_;
  mutable std::mutex mu_;
  bool locked_ = false;
  std::optional<ca::Keyring> keyring_;
  std::unique_ptr<SecretCodec> codec_;
  // Codecs of keys this node replaced (Adopt): kept, since a caller may
  // still hold one.
  std::vector<std::unique_ptr<SecretCodec>> retired_;
};

// The refusal of every call to a locked manager.
grpc::Status LockedStatus();
// Whether a daemon in this process waits for its unlock key (the refusal of
// calls that find no manager says "locked" rather than "not a manager").
bool ManagerLocked();

// A change of the cluster's autolock setting, as proposed.
struct AutolockChange {
  bool changed = false;    // false: it already was so (nothing proposed)
  std::string unlock_key;  // the new key when turned on or rotated
};
// Proposes autolock on or off (`rotate`: a new key while on) to the cluster,
// and calls `done` once this manager's own key file follows it. Errors: not
// a manager, rotating while off, Raft's.
using ProposeAutolockFn =
    std::function<void(bool on, bool rotate, std::function<void(Result<AutolockChange>)> done)>;

// The Security service. `on_unlocked` starts the node's roles after a
// successful Unlock (its error is the call's); `propose` changes the
// cluster's autolock setting. Calls that do not come over a unix socket are
// refused: the local socket is the admin path, and the unlock key never
// travels over the network.
std::unique_ptr<v1::Security::CallbackService> MakeSecurityService(
    AtRest* at_rest, std::function<Status()> on_unlocked, ProposeAutolockFn propose);

}  // namespace shoal::manager
