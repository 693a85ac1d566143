#pragma once

// A manager's keyring (issue 8, point 4): the cluster data key that seals
// secret values (and the CA key) in the replicated state, kept in one file,
// <data_dir>/keys/datakey, mode 0600.
//
// Unlocked mode (the default, as Swarm without autolock): the file holds the
// data key itself, so a restarted manager starts on its own; the state on disk
// is only as safe as that file. Autolock: the file holds the data key sealed
// under a key-encryption key derived (HKDF-SHA256, random salt) from the
// unlock key `SHOAL-KEY-1-<64 hex digits>` that the operator keeps; a restarted
// manager cannot read its state until it is given that key.
//
// Every write goes to a temporary file that is synced and renamed into place,
// so a crash leaves the old file or the new one, never a mix.
//
// A Keyring is not thread-safe; its owner serialises calls. Its key bytes are
// wiped when it is destroyed.

#include <memory>
#include <string>
#include <string_view>

#include "shoal/ca/seal.h"
#include "shoal/common/status.h"

namespace shoal::ca {

// The form of an unlock key, for messages.
inline constexpr std::string_view kUnlockKeyPrefix = "SHOAL-KEY-1-";

class Keyring {
 public:
  // A new cluster: a fresh data key, written unlocked. kAlreadyExists when
  // the file is there (never overwrite a key: the state would be lost), kIo.
  static Result<Keyring> Create(const std::string& data_dir);
  // A manager that joins: the cluster's data key as the leader sent it,
  // written unlocked, replacing any file there. kIo.
  static Result<Keyring> Adopt(const std::string& data_dir, const DataKey& key);
  // At start. kNotFound when there is no key file (a node that was never a
  // manager), kFailedPrecondition "locked: run shoal cluster unlock" when the
  // file is autolocked, kCorruption for an unreadable file, kIo.
  static Result<Keyring> Open(const std::string& data_dir);
  // Opens an autolocked file with the operator's unlock key. kInvalidArgument
  // for a key that is malformed or wrong (the message never repeats the key),
  // kFailedPrecondition when the file is not locked, plus Open's errors.
  static Result<Keyring> Unlock(const std::string& data_dir, std::string_view unlock_key);
  // Whether the key file exists and is autolocked; errors as Open's.
  static Result<bool> IsLocked(const std::string& data_dir);

  Keyring(Keyring&&) noexcept;
  Keyring& operator=(Keyring&&) noexcept;
  ~Keyring();

  // Turns autolock on (or rotates the unlock key if it is on) and returns the
  // new unlock key, to be shown once. kIo; on failure the file is unchanged.
  Result<std::string> EnableAutolock();
  // Writes the data key unlocked again. kIo.
  Status DisableAutolock();
  // Seals the file under `unlock_key` (autolock on, or a new key): what a
  // manager does when the cluster's autolock setting names a key other than
  // its own. Nothing to do when it is the key in use. kInvalidArgument for a
  // malformed key, kIo; on failure the file is unchanged.
  Status SealUnder(std::string_view unlock_key);
  // A new unlock key for an autolocked keyring; the old one stops working.
  // kFailedPrecondition when autolock is off, kIo.
  Result<std::string> RotateUnlockKey();
  // The unlock key in use ("" when autolock is off), for `unlock-key`.
  const std::string& unlock_key() const { return unlock_key_; }
  bool autolocked() const { return !unlock_key_.empty(); }

  const DataKey& data_key() const { return *key_; }
  const std::string& path() const { return path_; }

 private:
  Keyring(std::string path, const DataKey& key, std::string unlock_key);
  Status Write(const std::string& unlock_key);

  std::string path_;
  std::unique_ptr<DataKey> key_;  // stable address; wiped in the destructor
  std::string unlock_key_;
};

// A fresh unlock key, SHOAL-KEY-1- and 64 hex digits of 256 random bits.
std::string NewUnlockKey();

// The path of the key file under a data dir.
std::string KeyringPath(const std::string& data_dir);

}  // namespace shoal::ca
