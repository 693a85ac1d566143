#pragma once

// What a leader knows about each follower's log, and the flow control that
// lets it pipeline AppendEntries without flooding a slow follower.

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace shoal::raft {

// Last indexes of the AppendEntries messages sent but not yet acknowledged.
class Inflights {
 public:
  explicit Inflights(size_t capacity) : capacity_(capacity) {}
  bool Full() const { return queue_.size() >= capacity_; }
  size_t Count() const { return queue_.size(); }
  void Add(uint64_t last_index) { queue_.push_back(last_index); }
  // An acknowledgement of `index` covers every message ending at or before it.
  void FreeLE(uint64_t index);
  void FreeFirstOne();
  void Reset() { queue_.clear(); }

 private:
  size_t capacity_;
  std::deque<uint64_t> queue_;
};

enum class ProgressState {
  kProbe,      // one message per heartbeat until we find where the logs match
  kReplicate,  // logs match: stream entries optimistically, up to the inflight limit
  kSnapshot,   // the follower needs a snapshot; wait until it reports back
};

struct Progress {
  explicit Progress(size_t max_inflight) : inflights(max_inflight) {}

  uint64_t match = 0;
  uint64_t next = 1;
  ProgressState state = ProgressState::kProbe;
  uint64_t pending_snapshot = 0;
  // Heard from since the last check-quorum round.
  bool recent_active = false;
  // Ticks since the last reply; unlike recent_active it is not cleared by
  // each check-quorum round, so it can be reported at any time.
  int inactive_ticks = 0;
  // Probe state: a probe is outstanding, wait for a reply or the next heartbeat.
  bool probe_sent = false;
  // Ticks spent in kSnapshot; a lost snapshot message is retried after a timeout.
  int snapshot_ticks = 0;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // An acknowledgement up to n; false if it tells us nothing new.
  bool MaybeUpdate(uint64_t n);
  // Replicate state: assume a message ending at n will arrive.
  void OptimisticUpdate(uint64_t n) { next = n + 1; }
  // A rejection of the append at `rejected`; false if it is stale.
  bool MaybeDecrTo(uint64_t rejected, uint64_t match_hint);
  bool IsPaused() const;
};

// ReadIndex requests waiting for a quorum of heartbeat acknowledgements
// (dissertation 6.4). Requests complete in the order they were made.
class ReadOnly {
 public:
  struct Request {
    uint64_t index = 0;  // the commit index when the request arrived
    uint64_t from = 0;   // who asked; the leader itself or a follower
    std::string context;
  };

  void Add(Request request, uint64_t self);
  // Counts an acknowledgement; returns the number of acks for context (0 if unknown).
  size_t Ack(uint64_t from, const std::string& context);
  // Removes and returns every request up to and including context.
  std::vector<Request> Advance(const std::string& context);
  const std::string* LastContext() const;
  void Reset();

 private:
  std::map<std::string, std::pair<Request, std::vector<uint64_t>>> pending_;
  std::deque<std::string> queue_;
};

}  // namespace shoal::raft
