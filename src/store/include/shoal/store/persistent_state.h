#pragma once

// The applied state on disk (LevelDB): every object and the applied index,
// written in one WriteBatch per applied batch, so that a crash at any point
// leaves either the old or the new state, never half of one. At start the
// store is rebuilt from here, and Raft replays only the entries after the
// applied index.
//
// Threads: not thread-safe; owned by the store's event loop.

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <memory>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/store/state.h"

namespace shoal::store {

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

  // Replaces everything with a snapshot, atomically (InstallSnapshot).
  Status Reset(const v1::StoreSnapshot& snapshot);

 private:
  PersistentState(std::string dir, std::unique_ptr<leveldb::DB> db);

  std::string dir_;
  std::unique_ptr<leveldb::DB> db_;
  // Commit's scratch space, reused.
  leveldb::WriteBatch batch_;
  std::string value_;
  std::string key_;
};

}  // namespace shoal::store
