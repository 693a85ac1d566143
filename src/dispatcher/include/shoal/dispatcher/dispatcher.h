#pragma once

// The dispatcher (design.md section 6): the leader's side of every agent's
// session. Agents heartbeat with batched task status, and long-poll for their
// assignments (a full set first, then changes). The dispatcher turns what it
// hears into store mutations (task status merges, node up/down) that the
// manager proposes, and decides that a node is down when its heartbeats stop.
//
// Pure of I/O: the manager feeds it the applied State, the time and the
// requests, so the same logic runs in the deterministic simulation.
// Threads: not thread-safe; the manager's event loop owns it.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/store/state.h"
#include "shoal/v1/cluster.pb.h"

namespace shoal::dispatcher {

struct Options {
  // Visible settings (design.md: no hidden timing constants). The cluster
  // object's heartbeat_period_ns / node_down_grace_ns override them when set.
  int64_t heartbeat_period_ns = 1'000'000'000;
  int64_t node_down_after_ns = 5'000'000'000;
};

class Dispatcher {
 public:
  // Called exactly once with the reply, or with an error status.
  using AssignmentsDone = std::function<void(Status, v1::AssignmentsReply)>;

  explicit Dispatcher(Options options) : options_(options) {}

  // Starts a term of leadership at `now_ns`: every known node gets a full
  // grace period before it can be declared down, since this leader has not
  // heard from anyone yet.
  void BecomeLeader(const store::State& state, int64_t now_ns);
  // Leadership lost: every waiting Assignments call fails with kUnavailable
  // (the agent finds the new leader), sessions are forgotten.
  void StepDown();

  // A heartbeat. kNotFound for a node that is not in the cluster. Queues the
  // status updates that belong to the node's own tasks; others are ignored.
  Result<v1::HeartbeatReply> Heartbeat(const store::State& state, const v1::HeartbeatRequest& req,
                                       int64_t now_ns);
  // Answers now when there is something new for the node (or the agent asks
  // for a full set), otherwise parks the call until Changed() finds something
  // or a heartbeat period passes (then an empty incremental reply).
  void Assignments(const store::State& state, const v1::AssignmentsRequest& req, int64_t now_ns,
                   AssignmentsDone done);

  // After the state changed: answers parked calls whose node has changes.
  void Changed(const store::State& state);
  // Periodic: answers parked calls that waited a heartbeat period.
  void Tick(const store::State& state, int64_t now_ns);

  // Mutations to propose now: queued status reports (OP_TASK_STATUS, only
  // those that differ from the state) and node state changes (READY on a
  // heartbeat, DOWN after node_down_after without one). Taking them clears
  // the status queue; node changes are recomputed from the state each time,
  // so a lost proposal is simply made again.
  std::vector<v1::Mutation> TakeMutations(const store::State& state, int64_t now_ns);

  int64_t heartbeat_period_ns(const store::State& state) const;
  int64_t node_down_after_ns(const store::State& state) const;
  size_t waiting() const { return waiters_.size(); }

 private:
  struct Session {
    std::string id;
    int64_t last_heartbeat_ns = 0;
    v1::NodeDescription description;
    bool description_dirty = false;
    std::string addr;
    uint64_t generation = 0;
    // What the agent holds: task id -> version sent.
    std::map<std::string, uint64_t> sent;
  };
  struct Waiter {
    std::string node_id;
    uint64_t known_generation = 0;  // what this caller holds
    int64_t since_ns = 0;
    AssignmentsDone done;
  };

  // Fills `reply` with the node's changes since `s.sent` (all when `full`);
  // false when there is nothing to say.
  bool Diff(const store::State& state, const std::string& node_id, bool full, Session& s,
            v1::AssignmentsReply* reply);

  Options options_;
  bool leader_ = false;
  int64_t leader_since_ns_ = 0;
  uint64_t next_session_ = 1;
  std::map<std::string, Session> sessions_;         // node id ->
  std::map<std::string, v1::TaskStatus> statuses_;  // task id -> latest report
  std::vector<Waiter> waiters_;
};

}  // namespace shoal::dispatcher
