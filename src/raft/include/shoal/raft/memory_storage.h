#pragma once

// A Storage in memory, for tests and the deterministic simulation. It models
// a disk cache: writes without sync are visible at once but a simulated crash
// (LoseUnsyncedWrites) forgets them, while a synced write makes every earlier
// write durable too, as fsync on one log file does.

#include <deque>
#include <memory>
#include <vector>

#include "shoal/raft/storage.h"

namespace shoal::raft {

class MemoryStorage : public Storage {
 public:
  MemoryStorage();

  Result<PersistentState> Load() override;
  Status Save(const StorageWrite& write) override;
  Status SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) override;

  // A power loss: everything written since the last synced write is gone.
  void LoseUnsyncedWrites();
  // Number of writes that would be lost by LoseUnsyncedWrites.
  size_t unsynced_writes() const { return unsynced_.size(); }
  // Every later call fails with kIo until cleared; models a failing disk.
  void SetFailing(bool failing) { failing_ = failing; }

 private:
  struct State {
    HardState hard_state;
    std::shared_ptr<const Snapshot> snapshot;
    std::deque<Entry> entries;
  };
  struct Op {
    std::shared_ptr<const Snapshot> install;  // StorageWrite::snapshot
    std::shared_ptr<const Snapshot> local;    // SaveSnapshot
    uint64_t compact_index = 0;
    bool has_hard_state = false;
    HardState hard_state;
    std::vector<Entry> entries;
  };
  static void Apply(const Op& op, State* state);
  void Record(Op op, bool sync);

  State current_;
  State durable_;
  std::vector<Op> unsynced_;
  bool failing_ = false;
};

}  // namespace shoal::raft
