#pragma once

// The applied state on disk (LevelDB): every object and the applied index,
// written in one WriteBatch per write, so that a crash at any point leaves
// either the old or the new state, never half of one. At start the store is
// rebuilt from here, and Raft replays only the entries after the applied
// index. It may lag the State in memory (ReplicatedStore writes the objects
// changed since the last write, each once, see DirtyObjects and
// docs/store.md "What is written when").
//
// Threads: not thread-safe; owned by the store's event loop.

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <array>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/store/state.h"

namespace shoal::store {

// The objects changed since the applied state was last written, by kind and
// id only: holding the objects themselves would keep them shared, and the
// State would then copy each one on its next change (copy on write).
class DirtyObjects {
 public:
  // Records that the object (kind, id) changed (was put, merged or deleted).
  void Mark(Kind kind, const std::string& id) {
    if (ids_[static_cast<int>(kind)].insert(id).second) ++size_;
  }
  // The number of distinct objects marked since the last Clear().
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void Clear();
  const std::unordered_set<std::string>& ids(Kind kind) const {
    return ids_[static_cast<int>(kind)];
  }

 private:
  std::array<std::unordered_set<std::string>, kKindCount> ids_;
  size_t size_ = 0;
};

class PersistentState {
 public:
  // Opens (creating if absent) the database in `dir`. IoError when it cannot;
  // kCorruption when LevelDB finds its files damaged (the message names them).
  static Result<std::unique_ptr<PersistentState>> Open(const std::string& dir);
  ~PersistentState();

  // Reads every object and the applied index into `out`. kCorruption naming
  // the database and the key of any value that does not parse.
  Status Load(State* out) const;

  // Records the events of one applied batch and the new applied index
  // atomically. With `sync`, returns only once the write is on disk.
  Status Commit(uint64_t applied_index, const std::vector<Event>& events, bool sync);

  // Writes, atomically, each object of `dirty` as `state` now holds it (or
  // its deletion, when `state` no longer holds it) and state.applied_index():
  // the same result as Commit of every batch applied since the last write,
  // with each object serialised once. `dirty` must list every object changed
  // since that write. With `sync`, returns only once the write is on disk.
  // IoError (or kCorruption) from LevelDB.
  Status Flush(const State& state, const DirtyObjects& dirty, bool sync);

  // Replaces everything with a snapshot, atomically (InstallSnapshot).
  Status Reset(const v1::StoreSnapshot& snapshot);

 private:
  PersistentState(std::string dir, std::unique_ptr<leveldb::DB> db);
  // Adds the applied index to batch_ and writes it; the one write of Commit and Flush.
  Status WriteOut(uint64_t applied_index, bool sync);

  std::string dir_;
  std::unique_ptr<leveldb::DB> db_;
  // Commit's scratch space, reused.
  leveldb::WriteBatch batch_;
  std::string value_;
  std::string key_;
};

}  // namespace shoal::store
