#pragma once

// Raft's durable state in a LevelDB database (design.md section 4):
//   raft/hs             HardState
//   raft/snap           Snapshot (metadata and state machine data), when small
//   raft/snapfile       "<file> <size> <checksum>": a snapshot of 1 MiB or more,
//                       kept in <file> beside the database (the serialised
//                       Snapshot, XXH64-checked); exactly one of the two is set
//   raft/e/<index>      Entry, the index as 8 big-endian bytes so keys sort by index
// Every Save is one WriteBatch, so a crash leaves either the old or the new
// state; log appends, terms and votes are written with sync=true before the
// driver sends the messages that depend on them. A snapshot file is written
// and synced (with the directory) before the batch that refers to it, and the
// file it replaces is removed only after that batch; Open removes files that
// no batch refers to.
//
// Threads: not thread-safe; used from the member's event loop only.

#include <leveldb/write_batch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "shoal/raft/storage.h"

namespace leveldb {
class DB;
}

namespace shoal::raft {

class LevelDbStorage : public Storage {
 public:
  // Opens (creating it and its parents if missing) the database in directory `path`.
  // kCorruption naming the path when LevelDB finds damaged files (checksums
  // are verified); kIo when the directory cannot be used (e.g. locked by
  // another process).
  static Result<std::unique_ptr<LevelDbStorage>> Open(const std::string& path);
  ~LevelDbStorage() override;

  Result<PersistentState> Load() override;
  Status Save(const StorageWrite& write) override;
  Status SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) override;

  const std::string& path() const { return path_; }

 private:
  LevelDbStorage(std::string path, std::unique_ptr<leveldb::DB> db);
  Status ScanBounds();
  Status ScanSnapshotFiles();
  Status LoadSnapshotFile(const std::string& ref, Snapshot* out) const;
  Status WriteSnapshotFile(const Snapshot& snapshot, std::string* name, std::string* ref);
  Status PutSnapshot(const Snapshot& snapshot, leveldb::WriteBatch* batch, std::string* new_file);
  void FinishSnapshot(bool committed, const std::string& new_file);
  // Drops the scratch buffers after an unusually large write (a snapshot).
  void ShrinkScratch();

  std::string path_;
  std::unique_ptr<leveldb::DB> db_;
  // The stored entries are [first_, last_]; both 0 when there are none.
  uint64_t first_ = 0;
  uint64_t last_ = 0;
  // The snapshot file the database refers to ("" when none), and the number
  // of the next one.
  std::string snapshot_file_;
  uint64_t next_snapshot_file_ = 0;
  // Reused by every Save, so that a steady stream of writes allocates nothing.
  leveldb::WriteBatch batch_;
  std::string value_;
};

}  // namespace shoal::raft
