#pragma once

// The in-memory Raft log of one node. The core never reads storage: the whole
// log since the last compaction lives here, loaded once at start, and the
// driver persists what Ready hands it. Index arithmetic follows the Raft paper:
// entries start at 1, index 0 with term 0 is the empty prefix.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "shoal/v1/raft.pb.h"

namespace shoal::raft {

using shoal::v1::Entry;
using shoal::v1::Snapshot;

class RaftLog {
 public:
  // `entries` must be contiguous. If they start at or below the snapshot's
  // index, the first one is kept only as the compaction boundary (its index and
  // term are known, its data is not used).
  RaftLog(std::shared_ptr<const Snapshot> snapshot, std::vector<Entry> entries, uint64_t commit,
          uint64_t applied);

  // The boundary: the last compacted index, whose term is still known.
  uint64_t DummyIndex() const { return ents_.front().index(); }
  uint64_t FirstIndex() const { return DummyIndex() + 1; }
  uint64_t LastIndex() const { return ents_.back().index(); }
  uint64_t LastTerm() const { return ents_.back().term(); }
  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }
  uint64_t stable() const { return stable_; }
  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  bool snapshot_pending() const { return snapshot_pending_; }

  // Term of entry i, or nullopt when i is compacted away or not yet written.
  std::optional<uint64_t> Term(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const { return Term(i) == term; }
  // Raft's election restriction (paper 5.4.1).
  bool IsUpToDate(uint64_t last_index, uint64_t last_term) const;
  // First index whose entry conflicts with (or extends) ours; 0 if all match.
  uint64_t FindConflict(const std::vector<Entry>& entries) const;
  // The largest index <= index whose term is <= term (fast log backtracking).
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  // AppendEntries on a follower: nullopt if (index, log_term) does not match.
  // Never rewrites committed entries: the caller answers requests below the
  // commit index before calling this.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                      const std::vector<Entry>& entries);
  // Appends, truncating a conflicting uncommitted suffix. Returns the last index.
  uint64_t Append(const std::vector<Entry>& entries);

  // Entries in [lo, hi), at least one if any, then up to max_bytes in total.
  std::vector<Entry> Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes) const;
  std::vector<Entry> UnstableEntries() const;
  // Committed entries not yet handed to the application.
  std::vector<Entry> NextCommitted(uint64_t max_bytes) const;
  bool HasNextCommitted() const;

  // Commit only entries of the current term by counting (paper 5.4.2).
  bool MaybeCommit(uint64_t index, uint64_t term);
  void CommitTo(uint64_t index);
  void AppliedTo(uint64_t index);
  void StableTo(uint64_t index, uint64_t term);
  void SnapshotPersisted() { snapshot_pending_ = false; }

  // Replaces the whole log with a received snapshot.
  void Restore(std::shared_ptr<const Snapshot> snapshot);
  // Records a locally taken snapshot and drops entries below compact_index.
  void Compact(std::shared_ptr<const Snapshot> snapshot, uint64_t compact_index);

 private:
  const Entry& At(uint64_t i) const { return ents_[i - DummyIndex()]; }

  // ents_[0] is the compaction boundary; real entries follow.
  std::deque<Entry> ents_;
  std::shared_ptr<const Snapshot> snapshot_;
  bool snapshot_pending_ = false;  // received, not yet persisted and applied
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
  uint64_t stable_ = 0;  // last index the driver has persisted
};

// Aborts: reserved for states that only a bug in this module can produce.
[[noreturn]] void RaftBug(const char* what);

}  // namespace shoal::raft
