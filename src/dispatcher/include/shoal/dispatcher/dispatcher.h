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

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/dispatcher/ingress_table.h"
#include "shoal/store/state.h"
#include "shoal/v1/cluster.pb.h"

namespace shoal::dispatcher {

struct Options {
  // Visible settings (design.md: no hidden timing constants). The cluster
  // object's heartbeat_period_ns / node_down_grace_ns override them when set.
  int64_t heartbeat_period_ns = 1'000'000'000;
  int64_t node_down_after_ns = 5'000'000'000;
  // A parked Assignments call with nothing new is answered (empty) after
  // this many heartbeat periods: each answer is a call more per node, and
  // agents' calls wait up to 15 s.
  int assignments_wait_periods = 5;
  // The plain value of a secret for an agent: the state holds it sealed
  // (issue 8). Unset: the stored bytes as they are. An error leaves the
  // secret out of the reply. Called on the dispatcher's thread.
  std::function<Result<std::string>(const v1::Secret&)> secret_value;
  // Bumped (on the dispatcher's thread) whenever a heartbeat reply may
  // change for the same session: a new term, sessions forgotten, a node or
  // cluster change. Lets a caller answer repeated heartbeats from a cache on
  // other threads (and report them through Heard). Unset: nothing is bumped.
  std::atomic<uint64_t>* reply_epoch = nullptr;
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
  // A heartbeat of `session_id` without statuses or description, answered
  // by the caller from an earlier reply of the same reply_epoch: only
  // records that the node was heard at `now_ns`. Ignored unless it names the
  // node's current session.
  void Heard(const std::string& node_id, const std::string& session_id, int64_t now_ns);
  // Answers now when there is something new for the node (or the agent asks
  // for a full set), otherwise parks the call until Changed() finds something
  // or assignments_wait_periods heartbeat periods pass (then an empty
  // incremental reply).
  void Assignments(const store::State& state, const v1::AssignmentsRequest& req, int64_t now_ns,
                   AssignmentsDone done);

  // After the state changed in unknown ways (a snapshot, a new term):
  // answers every parked call whose node has changes.
  void Changed(const store::State& state);
  // After the state changed by `events` (what the applied batches did, in
  // order): answers the parked calls of the nodes whose tasks they touched,
  // so a commit costs the tasks it changed, not every parked agent's diff.
  void Changed(const store::State& state, const std::vector<store::Event>& events);
  // The same, with the events where they are (WatchLog::SinceInPlace). Only a
  // change of what the agent acts on (Sent: a new or removed task, a desired
  // state, a final status) marks its node as changed: the agent's own status
  // reports make no diff at all.
  void Changed(const store::State& state, const std::vector<const store::Event*>& events);
  // Periodic: answers parked calls that waited long enough.
  void Tick(const store::State& state, int64_t now_ns);

  // Mutations to propose now: queued status reports (OP_TASK_STATUS, only
  // those that differ from the state) and node state changes (READY on a
  // heartbeat, DOWN after node_down_after without one, a new description).
  // Taking them clears the status queue: a caller whose proposal of them
  // failed hands them back through Requeue, since agents report a status
  // only until a heartbeat carrying it is answered. Node changes are
  // recomputed from the state each time, so a lost proposal is simply made
  // again.
  //
  // `sweep`: look at every node (for the timers: a node goes down without
  // any call). Without it only the nodes whose heartbeat asked for a change
  // (not READY in the state, a new description) are looked at, so that
  // taking the status reports after each applied batch costs no walk over
  // every node.
  std::vector<v1::Mutation> TakeMutations(const store::State& state, int64_t now_ns,
                                          bool sweep = true);
  // OP_TASK_STATUS mutations from TakeMutations whose proposal failed: queued
  // again unless a newer report arrived meanwhile. Others are ignored.
  void Requeue(const std::vector<v1::Mutation>& statuses);

  int64_t heartbeat_period_ns(const store::State& state) const;
  int64_t node_down_after_ns(const store::State& state) const;
  size_t waiting() const { return waiters_.size(); }

 private:
  // What an agent acts on of a task it holds; a change of anything else
  // (its status, as the agent itself reported it) is not sent again.
  struct Sent {
    int desired = 0;
    bool terminal = false;  // status COMPLETE or later
  };
  struct Session {
    std::string id;
    int64_t last_heartbeat_ns = 0;
    v1::NodeDescription description;
    bool description_dirty = false;
    std::string addr;
    uint64_t generation = 0;
    // The node's tasks may have changed since the last Diff: an Assignments
    // call that finds this false parks without diffing.
    bool stale = true;
    // What the agent holds: task id -> what of it was sent.
    std::unordered_map<std::string, Sent> sent;
    // The tasks whose events since the last Diff may change what the agent
    // holds (ids, repeats allowed), so that a Diff costs the change, not
    // every task of the node; walk_all when the state changed in unknown
    // ways (then every task is looked at). Empty whenever `stale` is false.
    std::vector<std::string> changed;
    bool walk_all = true;
    // The ingress table version this session was sent (IngressTracker).
    uint64_t ingress_sent = 0;
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
  // Diff's tasks: every task of the node, or only those in `s.changed`. Both
  // update `s.sent` and clear `s.changed`; true when they added anything.
  bool DiffAll(const store::State& state, const std::string& node_id, bool full, Session& s,
               v1::AssignmentsReply* reply, std::set<std::string>* secrets,
               std::set<std::string>* configs);
  bool DiffChanged(const store::State& state, const std::string& node_id, Session& s,
                   v1::AssignmentsReply* reply, std::set<std::string>* secrets,
                   std::set<std::string>* configs);
  // Answers the parked calls of the nodes `wake(node_id, session)` lets
  // through (session null when the node has none; such a call fails).
  template <class Pred>
  void Wake(const store::State& state, Pred wake);
  // The managers, as every heartbeat reply lists them (cached until a node
  // changes: walking every node per heartbeat costs nodes² a period).
  const std::vector<v1::ManagerAddr>& Managers(const store::State& state);
  // Heartbeat replies may differ from now on: the managers are listed anew
  // and options_.reply_epoch moves.
  void RepliesChanged();

  Options options_;
  bool leader_ = false;
  int64_t leader_since_ns_ = 0;
  uint64_t next_session_ = 1;
  std::unordered_map<std::string, Session> sessions_;  // node id ->
  // A status report waiting for TakeMutations: from the node `node_id`
  // (not yet checked to be that node's task), or "" once checked (requeued).
  struct Report {
    v1::TaskStatus status;
    std::string node_id;
  };
  std::map<std::string, Report> statuses_;  // task id -> latest report
  std::vector<Waiter> waiters_;
  std::set<std::string> attention_;  // nodes whose heartbeat wants a node change
  std::vector<v1::ManagerAddr> managers_;
  bool managers_valid_ = false;
  IngressTracker ingress_;  // the routing mesh's table, sent with assignments
};

}  // namespace shoal::dispatcher
