#pragma once

// Durable state of one Raft member. The core never calls a Storage: the driver
// loads the state once, hands it to RaftNode::Create, then persists what each
// Ready asks for before sending that Ready's messages. Keeping I/O out of the
// core is what lets the simulation run a whole cluster in one thread.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/raft.pb.h"

namespace shoal::raft {

using shoal::v1::ConfState;
using shoal::v1::Entry;
using shoal::v1::HardState;
using shoal::v1::Snapshot;

// Everything a member persisted: the input of RaftNode::Create.
struct PersistentState {
  HardState hard_state;
  // Index 0 and no data when no snapshot has been taken yet.
  std::shared_ptr<const Snapshot> snapshot = std::make_shared<Snapshot>();
  // Contiguous. The first one may sit at or below the snapshot index: it is then
  // only the compaction boundary.
  std::vector<Entry> entries;

  bool empty() const {
    return hard_state.term() == 0 && entries.empty() && snapshot->metadata().index() == 0;
  }
};

// One atomic write, made from a Ready (Ready::ToWrite). Pointers borrow from
// the Ready and are valid only during the call.
struct StorageWrite {
  // A snapshot received from the leader: replaces the stored snapshot and drops
  // every stored entry, before `entries` are applied.
  const Snapshot* snapshot = nullptr;
  // Replaces the stored hard state when set.
  const HardState* hard_state = nullptr;
  // Replace every stored entry with index >= entries.front().index.
  std::span<const Entry> entries;
  // Durable before the call returns (fsync). A write without sync may be lost
  // in a crash, but never reordered after a later synced write.
  bool sync = false;
};

// Threads: implementations need not be thread-safe; the driver calls them
// from the member's event loop only. Nothing returned borrows from the storage.
class Storage {
 public:
  virtual ~Storage() = default;

  // Reads the persisted state. Ok with an empty state for a new member.
  // kCorruption naming the file or key when stored data fails a check (bad
  // encoding, a gap in the log, a key that does not match its entry); the
  // member must then not start, rather than diverge. kIo when the OS fails.
  // Called once, before the member starts.
  virtual Result<PersistentState> Load() = 0;

  // Applies `write` atomically: after a crash either all of it or none of it is
  // stored (none only if !write.sync). kIo on failure, after which the member
  // must stop: its acknowledgements could otherwise outrun its disk.
  virtual Status Save(const StorageWrite& write) = 0;

  // Stores a snapshot taken locally (RaftNode::CreateSnapshot) and drops the
  // entries below compact_index, atomically and synced. compact_index <=
  // snapshot.metadata().index(). kIo on failure; the old snapshot stays valid.
  virtual Status SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) = 0;
};

}  // namespace shoal::raft
