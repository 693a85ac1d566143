#pragma once

// ReplicatedStore: one manager's copy of the cluster state, kept identical on
// every manager by Raft (design.md sections 3 and 4). It owns the Raft member,
// the applied State, the WatchLog, and drives them from one event loop:
//
//   inputs  Tick() every raft tick_interval, Step() each received message,
//           Propose() writes, Read() linearizable reads
//   then    Process(): for each Ready, in order
//             0. a leader sends its AppendEntries (in parallel with step 1)
//             1. persist raft entries and hard state (fsync when Ready says)
//             2. send the other messages through the Transport
//             3. install a received snapshot (State::Restore, PersistentState::Reset)
//             4. apply committed entries (State::Apply), collecting events
//             5. note the changed objects for PersistentState::Flush (when
//                due, see flush_objects), WatchLog::Append
//             6. Advance, then complete callbacks of local proposals and reads
//
// Inputs only queue work; Process() turns everything queued since the last
// call into one Ready, which is what batches many proposals into one fsync. A
// production loop calls Process() after each batch of posted work. Proposals
// queued between two Process() calls are also packed into one Raft entry (a
// v1::CommandBatch), so that many clients' independent commands cost one entry
// rather than one each; each still applies on its own and completes its own
// callback.
//
// A leader's Ready that only commits (nothing to persist durably) runs step 6
// before step 2: clients hear back before the followers hear the new commit
// index.
//
// Threads: not thread-safe and owns no thread. Every method, and every
// callback it runs, is called by one thread at a time: the caller's loop
// (see EventLoop, whose turns may run on the posting thread).

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/raft/config.h"
#include "shoal/raft/node.h"
#include "shoal/raft/storage.h"
#include "shoal/raft/transport.h"
#include "shoal/store/persistent_state.h"
#include "shoal/store/state.h"
#include "shoal/store/watch.h"

namespace shoal::store {

struct ReplicatedStoreOptions {
  // Raft settings; `applied` is set by the store from its persisted state.
  raft::Config raft;
  // Take a snapshot (and compact the log) every this many applied entries.
  uint64_t snapshot_every = 10000;
  // When > 0, a snapshot also waits until the command bytes applied since the
  // last one reach this multiple of that snapshot's size, so that serialising
  // a large state costs O(1) per byte written instead of growing with the
  // state (LogCabin's rule). More log is then kept between snapshots.
  double snapshot_log_ratio = 0;
  // Proposals made between two Process() calls are packed into one Raft entry
  // (a v1::CommandBatch) of up to about this many bytes; a proposal that
  // changes an object already changed by one in the batch starts a new entry
  // (so that an object's version, the entry's index, still names one state of
  // it). 0: every proposal is an entry of its own, as before batching.
  size_t batch_max_bytes = 256 << 10;
  // Entries kept below a snapshot, so a follower slightly behind needs no snapshot.
  uint64_t snapshot_keep = 1000;
  // Events kept for watchers that fall behind.
  size_t watch_capacity = 10000;
  // Of the events every registered reader has read (WatchLog::AddReader),
  // only this many are kept; the default keeps them all, up to capacity.
  size_t watch_keep = SIZE_MAX;
  // Fsync the applied-state batch. Off by default: a lost batch is replayed
  // from the Raft log (which is synced) at restart, so syncing buys nothing.
  // On, the applied state is written (and synced) after every Ready, as
  // before the flush policy below existed.
  bool sync_applied = false;
  // By default (flush_objects 0) the applied state is written after every
  // Ready that applied entries, from that Ready's events, while the objects
  // are still in the cache. With all three thresholds set, the state on disk
  // (PersistentState) may lag the State instead: the store remembers which
  // objects changed (kind and id) and writes them, each once however often it
  // changed, with the applied index, when one of these is reached: this many
  // distinct objects changed (which bounds the pause of one write), this many
  // entries applied (which bounds what a restart replays), or this much time
  // passed (in ticks of raft.tick_interval) with changes pending; also before
  // each local snapshot and when the store is destroyed. Raft's log and
  // snapshot cover whatever has not been written (see Load), so a crash costs
  // only a longer replay. Measured in session 8 (docs/store.md "What is
  // written when"), batching lost on both benchmarks: the objects are cold by
  // the time they are written, which cost more than the coalescing saved.
  size_t flush_objects = 0;
  uint64_t flush_entries = 20000;
  std::chrono::milliseconds flush_interval{5000};
  // A leader sends its AppendEntries before persisting the same entries, so
  // its fsync and the followers' overlap (raft::Ready::MaySendBeforePersist).
  bool leader_appends_before_persist = true;
  // A proposal or read still pending after this many ticks fails with
  // kUnavailable (its message to the leader may have been lost). 0: 3 election
  // timeouts.
  int request_timeout_ticks = 0;
};

// How one voter looks from this member (ReplicatedStore::voter_status()), for
// "leader / reachable / unreachable" in `shoal node ls`.
struct VoterStatus {
  enum class Reachability { kUnknown, kReachable, kUnreachable };
  uint64_t id = 0;
  bool leader = false;  // the leader this member currently knows
  // On the leader: whether the voter answered within an election timeout.
  // On a follower: itself and its leader are reachable, the rest unknown (ask
  // the leader).
  Reachability reachability = Reachability::kUnknown;
  // Leader only: the highest log index known to be stored on that voter.
  uint64_t match = 0;
};

// What the store borrows; every pointer must outlive it.
struct ReplicatedStoreDeps {
  raft::Storage* raft_storage = nullptr;  // required: LevelDbStorage or MemoryStorage
  PersistentState* applied = nullptr;     // optional: without it State lives in memory only
  raft::Transport* transport = nullptr;   // required
  raft::RandomSource* random = nullptr;   // required
};

class ReplicatedStore {
 public:
  // status: Ok with the Raft index that applied the command (a transaction
  // refused by State::Apply reports its error, e.g. kFailedPrecondition for a
  // stale version, with that index; the commands of one batch entry all report
  // its index); kUnavailable when there is no leader, the
  // leadership changed before the command was applied (its outcome is then
  // unknown: it may still commit), the request timed out, or the store stopped.
  using ProposeCallback = std::function<void(Status status, uint64_t index)>;
  // Ok once state() reflects every write committed before Read() was called;
  // `index` is the read index. kUnavailable as for proposals.
  using ReadCallback = std::function<void(Status status, uint64_t index)>;

  // Loads the applied state (from deps.applied, or from Raft's snapshot when
  // that is newer) and creates the Raft member so that only entries after the
  // applied index are replayed. A group of one campaigns at once. kCorruption
  // or kIo from the storages; InvalidArgument for bad options or missing deps.
  static Result<std::unique_ptr<ReplicatedStore>> Open(const ReplicatedStoreOptions& options,
                                                       const ReplicatedStoreDeps& deps);
  // Fails every pending callback with kUnavailable.
  ~ReplicatedStore();
  ReplicatedStore(const ReplicatedStore&) = delete;
  ReplicatedStore& operator=(const ReplicatedStore&) = delete;

  // One Raft tick (elections, heartbeats) and request timeouts.
  void Tick();
  // Feeds a message from a peer; malformed or misaddressed ones are dropped
  // with the returned error.
  Status Step(const v1::Message& message);
  // Proposes `command` (its request_id is overwritten). `done` runs exactly
  // once, always from Process() (or the destructor), never from Propose()
  // itself, so a callback may propose again. The command reaches Raft at the
  // next Process(), packed with the other proposals of this turn (those of
  // one entry apply in the order they were proposed).
  // InvalidArgument for a command holding a CommandBatch (propose its commands).
  void Propose(v1::Command command, ProposeCallback done);
  // Starts a linearizable read; `done` runs exactly once, from Process(), as
  // for Propose. Read state() in the callback.
  void Read(ReadCallback done);
  // Transport feedback, e.g. from a sender thread through the loop.
  void ReportUnreachable(uint64_t peer);
  void ReportSnapshot(uint64_t peer, bool ok);
  // Hands leadership to `peer` (before this member is removed or stops).
  // Ok means the transfer started: the peer is brought up to date and then
  // campaigns; proposals are refused meanwhile, and the transfer is abandoned
  // after an election timeout. kFailedPrecondition when not the leader or
  // `peer` is not a voter.
  Status TransferLeadership(uint64_t peer);
  // Hands leadership to the voter with the highest match index among those
  // that answered within an election timeout (ties: the lowest id), for a
  // clean shutdown; then wait until is_leader() turns false (about one round
  // trip, at most an election timeout). kFailedPrecondition when this member
  // is not the leader or is the only voter; kUnavailable when no other voter
  // answered lately.
  Status StepDown();

  // Proposes adding or removing one voter (change.context is opaque, e.g. the
  // new member's address). `done` runs exactly once from Process() (or the
  // destructor): Ok with the entry's index once the change is applied here,
  // so voters() already shows it; kFailedPrecondition while another change
  // is pending or before a new leader's first entry is applied (retry both
  // later), for an id that is already a voter, is not a voter, or was removed
  // before (ids are never reused), or when this member was removed;
  // kUnavailable when this member is not the leader, leadership moved before
  // the change was applied (its outcome is then unknown), a leadership
  // transfer is in progress, the request timed out, or the store stopped.
  //
  // Adding: commit a record of the new member first, propose, and only on Ok
  // start the new member with an empty data directory, raft.id = its id and
  // raft.peers empty: it learns everything from the leader (log or
  // snapshot). The group counts it in its quorum at once, so growing from
  // one member to two stalls writes until the new one has caught up.
  // Removing the leader itself: it keeps leading only until its most
  // up-to-date voter has the whole log, then hands over and steps down, so
  // `done` is its last success as leader.
  void ProposeConfChange(const raft::ConfChange& change, ProposeCallback done);

  // Runs every Ready that the inputs since the last call produced. Returns the
  // first storage error, after which the store is stopped for good (its
  // acknowledgements could otherwise outrun its disk): every pending and later
  // request fails with that error.
  Status Process();

  const State& state() const { return state_; }
  const WatchLog& watch() const { return watch_; }
  // For readers to register (WatchLog::AddReader); on the loop only.
  WatchLog& watch() { return watch_; }
  raft::NodeStatus raft_status() const { return node_->status(); }
  bool is_leader() const { return node_->status().role == raft::Role::kLeader; }
  // The voters of the configuration this member applied, ascending. Empty on a
  // member that joined and has not yet learned the configuration.
  std::vector<uint64_t> voters() const;
  // Every voter with its role and reachability as this member sees them.
  std::vector<VoterStatus> voter_status() const;
  // True once this member applied a configuration change removing itself, or
  // a member that applied one refused its vote (it missed the change while
  // cut off). A removed member never campaigns again and refuses Propose,
  // Read and ProposeConfChange; the daemon should stop it. A member that
  // joined but was never added is not "removed": it is simply absent from
  // voters() and never campaigns either.
  bool removed() const;
  uint64_t snapshot_index() const { return snapshot_index_; }
  // The applied index of the state last written to PersistentState (the
  // state's own applied index when there is none).
  uint64_t flushed_index() const;
  // Forgets the changes not yet written to PersistentState, so that
  // destroying the store afterwards leaves its disk as a crash (kill -9)
  // would. For tests.
  void DiscardUnwritten();
  // Ok while running; the storage error that stopped it otherwise.
  const Status& health() const { return fatal_; }

 private:
  struct PendingProposal {
    ProposeCallback done;
    uint64_t deadline = 0;  // in ticks
  };
  struct PendingRead {
    ReadCallback done;
    uint64_t deadline = 0;
    uint64_t index = 0;
    bool has_index = false;
  };
  struct PendingConfChange {
    ProposeCallback done;
    uint64_t term = 0;  // of the entry: another term at that index means it was overwritten
    uint64_t deadline = 0;
  };
  struct Completion {
    std::function<void(Status, uint64_t)> done;
    Status status;
    uint64_t index = 0;
  };

  // The proposals of this turn not yet handed to Raft, serialised as the body
  // of a v1::CommandBatch (each command as its field 1).
  struct ProposalBatch {
    std::string body;
    size_t first_header = 0;               // tag and length bytes before the first command
    std::vector<uint64_t> seqs;            // the commands' sequence numbers, in order
    std::vector<v1::Command> commands;     // the commands themselves (see Kept)
    std::unordered_set<uint64_t> objects;  // hashes of (kind, id) of the objects they change
    void Clear() {
      body.clear();
      first_header = 0;
      seqs.clear();
      commands.clear();
      objects.clear();
    }
  };
  // A leader's own entry, kept as the command it serialised so that applying
  // it needs no parse: the entry at (index, term) can only be that one.
  struct Kept {
    uint64_t index = 0;
    uint64_t term = 0;
    size_t bytes = 0;  // of the entry's data, checked too
    v1::Command command;
  };

  ReplicatedStore(const ReplicatedStoreOptions& options, const ReplicatedStoreDeps& deps);
  Status Load(raft::PersistentState* raft_state);
  Status ProcessReady(raft::Ready& rd, bool* sends_deferred);
  void Send(const v1::Message& m);
  // Feedback for the sends that failed since the last call (between Readies).
  void ReportSendFailures();
  Status InstallSnapshot(const raft::Snapshot& snapshot);
  // Adds a stamped command to batch_, first proposing the batch when the
  // command changes an object that it already changes.
  void AddToBatch(v1::Command command, uint64_t seq);
  // Proposes batch_ as one entry (a plain Command when it holds one); the
  // commands fail with Raft's error when it refuses.
  void FlushProposals();
  void ApplyEntry(const raft::Entry& entry, std::vector<Event>* events);
  // Queues the callback of one of this member's commands, if still pending.
  void CompleteProposal(const std::string& request_id, Status status, uint64_t index);
  void ApplyConfChangeEntry(const raft::Entry& entry);
  Status Refusal() const;
  void ServeReads();
  void CheckLeadership();
  void MaybeCampaignAlone();
  Status MaybeSnapshot();
  // Whether the applied state is written after every Ready (sync_applied,
  // or one of the flush thresholds 0) rather than in batches.
  bool WritesEveryReady() const {
    return options_.sync_applied || options_.flush_objects == 0 || options_.flush_entries == 0 ||
           flush_ticks_ == 0;
  }
  // Writes the changed objects to PersistentState (see flush_objects) when
  // due, or at once with `force`.
  Status FlushApplied(bool force);
  void FailAll(const Status& status);
  void ExpireRequests();
  void RunCompletions();
  // A fresh request id: id_prefix_ and the next sequence number, returned in *seq.
  std::string NextRequestId(uint64_t* seq);
  // The sequence number of one of this member's request ids, or 0 for another's.
  uint64_t OwnSequence(const std::string& request_id) const;

  ReplicatedStoreOptions options_;
  ReplicatedStoreDeps deps_;
  std::unique_ptr<raft::RaftNode> node_;
  State state_;
  WatchLog watch_;
  Status fatal_;

  uint64_t ticks_ = 0;
  uint64_t request_timeout_ = 0;
  uint64_t snapshot_index_ = 0;
  DirtyObjects dirty_;                // changed since the last PersistentState write
  uint64_t flushed_index_ = 0;        // the applied index of that write
  uint64_t pending_since_ = 0;        // ticks_ when the first unwritten change was applied
  uint64_t flush_ticks_ = 0;          // flush_interval in ticks
  uint64_t snapshot_bytes_ = 0;       // size of the last snapshot's data
  uint64_t applied_since_bytes_ = 0;  // entry bytes applied since that snapshot
  uint64_t last_term_ = 0;
  uint64_t last_leader_ = 0;
  std::string id_prefix_;  // "<member>-<random>-": unique across restarts
  uint64_t next_request_ = 0;
  std::map<uint64_t, PendingProposal> proposals_;  // by the request id's sequence number
  std::map<std::string, PendingRead> reads_;
  std::map<uint64_t, PendingConfChange> conf_changes_;  // by entry index
  ProposalBatch batch_;
  std::deque<Kept> kept_;        // ascending index
  std::vector<Status> results_;  // ApplyEntry's scratch space
  std::vector<Completion> completions_;
  std::vector<uint64_t> unreachable_;
  std::vector<uint64_t> failed_snapshots_;
  bool processing_ = false;
};

}  // namespace shoal::store
