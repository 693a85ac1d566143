#pragma once

// RaftNode: one Raft member as a deterministic state machine (design.md
// section 4). It owns no thread, clock, disk or socket. The driver:
//
//   loop:
//     Tick() every Config::tick_interval; Step() each received message;
//     Propose()/ReadIndex()/... on behalf of clients;
//     if (HasReady()) {
//       Ready rd = GetReady();
//       storage.Save(rd.ToWrite());        // 1. persist (sync if rd.must_sync)
//       send rd.messages;                  // 2. only after step 1 (a leader's
//                                          //    appends may go first: see
//                                          //    Ready::MaySendBeforePersist)
//       install rd.snapshot, apply rd.committed_entries, serve rd.read_states;
//       Advance(rd);                       // 3.
//     }
//
// Persisting before sending is what makes a vote or an append acknowledgement
// a promise that survives a crash. Lifecycle: created from the storage's
// PersistentState, destroyed at any time (a crash). Threads: not thread-safe;
// call every method from the one thread that drives the member.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/raft/config.h"
#include "shoal/raft/storage.h"
#include "shoal/v1/raft.pb.h"

namespace shoal::raft {

using shoal::v1::ConfChange;
using shoal::v1::Message;

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader };
const char* RoleName(Role role);

// A linearizable read may be served once the state machine has applied `index`.
struct ReadState {
  uint64_t index = 0;
  std::string context;  // as given to ReadIndex
};

struct Ready {
  // Set when term, vote or commit changed since the last Ready.
  std::optional<HardState> hard_state;
  // A snapshot from the leader: persist it, then restore the state machine
  // from it before applying committed_entries.
  std::shared_ptr<const Snapshot> snapshot;
  // New or rewritten log entries to persist.
  std::vector<Entry> entries;
  // Persist with fsync: entries, a term or a vote are promises to peers. A
  // commit index alone is not: it can be relearned from the leader.
  bool must_sync = false;
  // Entries to apply to the state machine, in order.
  std::vector<Entry> committed_entries;
  // Send after persisting, except those for which MaySendBeforePersist holds.
  std::vector<Message> messages;
  // Set when this member leads and the Ready changes neither term nor vote
  // (nor carries a received snapshot).
  bool leader_appends_early = false;
  // Completed ReadIndex requests.
  std::vector<ReadState> read_states;

  StorageWrite ToWrite() const;

  // True for a leader's AppendEntries when leader_appends_early: the driver may
  // send it before (in parallel with) persisting this Ready. Safe because the
  // leader counts its own entries toward the commit quorum only in Advance,
  // once they are persisted, and its term and vote are already durable (Ongaro's
  // thesis 10.2.1; etcd does the same). Every other message (votes,
  // acknowledgements, read responses) must wait for the write.
  bool MaySendBeforePersist(const Message& m) const {
    return leader_appends_early && m.type() == shoal::v1::MSG_APP;
  }
};

struct NodeStatus {
  uint64_t id = 0;
  uint64_t term = 0;
  uint64_t vote = 0;
  uint64_t leader = 0;  // 0 when unknown
  Role role = Role::kFollower;
  uint64_t commit = 0;
  uint64_t applied = 0;
  uint64_t first_index = 0;
  uint64_t last_index = 0;
  // The applied configuration (voters and every removed id).
  ConfState conf_state;
  // This member was removed by a committed configuration change: it applied
  // the change, or a member that applied it refused its vote request. It
  // never campaigns again.
  bool removed = false;
  // Leader only: the member leadership is being handed to, 0 when none.
  uint64_t lead_transferee = 0;
};

// A leader's view of one other voter (RaftNode::Peers).
struct PeerProgress {
  uint64_t id = 0;
  // Highest index known to be stored there, and the next one to send.
  uint64_t match = 0;
  uint64_t next = 0;
  // Waiting for an InstallSnapshot to complete.
  bool snapshot = false;
  // Ticks since the leader last heard from it (any reply); compare with
  // Config::election_ticks to call it reachable.
  int inactive_ticks = 0;
};

class Raft;

class RaftNode {
 public:
  // InvalidArgument for a bad config; kCorruption when the persisted state is
  // inconsistent (a gap, or a commit index beyond the log). `random` is
  // borrowed and must outlive the node.
  static Result<std::unique_ptr<RaftNode>> Create(const Config& config, PersistentState state,
                                                  RandomSource* random);
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Advances logical time by one tick: elections, heartbeats, check-quorum.
  void Tick();
  // Starts an election now, as if the election timeout had elapsed (with
  // pre-vote when enabled). Ignored by a leader or a non-voter.
  void Campaign();
  // Feeds a message from a peer. Messages from older terms are dropped (Ok).
  // InvalidArgument for a message not addressed to this member.
  Status Step(const Message& message);
  // Appends a command (leader) or forwards it to the leader (follower). Ok
  // means accepted for replication, not committed: the entry shows up in
  // committed_entries once it is. kUnavailable without a known leader or
  // during a leadership transfer.
  Status Propose(std::string data);
  // Proposes adding or removing one voter; Ok means appended at
  // status().last_index (the change takes effect when that entry is applied).
  // kFailedPrecondition while another change is pending or before this
  // leader's no-op is applied (both pass: retry), for an id that is already
  // a voter, is not one, or was removed before, and on a member that is not
  // the leader; kUnavailable during a leadership transfer or once this leader
  // was removed. A leader that removes itself keeps leading only until its
  // most up-to-date voter has the whole log, then hands over
  // (MSG_TIMEOUT_NOW) and steps down.
  Status ProposeConfChange(const ConfChange& change);
  // Starts a linearizable read; `context` must be unique among outstanding
  // requests. Completion appears in Ready::read_states. kUnavailable without
  // a known leader.
  Status ReadIndex(std::string context);
  // Hands leadership to `to` once its log is up to date. Leader only.
  Status TransferLeadership(uint64_t to);
  // Transport feedback: a peer could not be reached / a snapshot send ended.
  void ReportUnreachable(uint64_t id);
  void ReportSnapshot(uint64_t id, bool ok);

  bool HasReady() const;
  // Everything to persist, send and apply. Call Advance(ready) before the next
  // GetReady().
  Ready GetReady();
  void Advance(const Ready& ready);

  // Takes a snapshot at the applied index with the state machine's `data` and
  // drops log entries below compact_index (<= applied; keep some entries below
  // the snapshot so that slightly lagging followers avoid a snapshot). Persist
  // the result with Storage::SaveSnapshot(snapshot, compact_index).
  // kFailedPrecondition when compact_index is beyond applied or not yet stable.
  Result<std::shared_ptr<const Snapshot>> CreateSnapshot(std::string data, uint64_t compact_index);

  NodeStatus status() const;
  // status().removed without copying the configuration; for per-request checks.
  bool removed() const;
  // Leader only (empty otherwise): every other voter's replication progress,
  // in id order.
  std::vector<PeerProgress> Peers() const;
  // Entries in [lo, hi) still in memory; for tests and the simulation's checks.
  std::vector<Entry> EntriesForTest(uint64_t lo, uint64_t hi) const;

 private:
  explicit RaftNode(std::unique_ptr<Raft> raft);
  std::unique_ptr<Raft> raft_;
};

}  // namespace shoal::raft
