#pragma once

// The orchestrator: a pure reconciler from the cluster state to the task
// changes that bring it closer to what the services declare (design.md
// section 5). The manager's leader calls Reconcile after every batch of
// applied changes and proposes the returned mutations as one store
// transaction; each mutation carries the version it was computed from, so a
// transaction built on a stale read is refused by the store and the manager
// simply calls Reconcile again on the newer state.
//
// Pure: no I/O, no clock (the caller passes `now_ns`), no randomness (task ids
// come from the caller's IdSource). The same State, time and id sequence give
// the same Outcome on every manager and in tests. Reconcile on the state after
// its own Outcome was applied returns no mutations, unless more_work was set.
//
// What it does, per service (see docs/orchestrator.md for the details):
//   - replicated services and jobs keep `replicas` slots, each with one live
//     task; global services and jobs keep one live task per eligible node;
//   - tasks that ended, whose node is down or gone, or whose node can no
//     longer host them are shut down and replaced (same slot, or same node);
//   - scale-down shuts down the tasks of the busiest nodes, not-running first;
//   - tasks made from an older spec_version are replaced by the rolling
//     updater (update_config: parallelism, delay, order, monitor, failure
//     ratio and action), whose progress is kept in Service.update_status;
//   - depends_on holds a service's new tasks until its dependencies are
//     started, healthy or completed;
//   - terminal tasks beyond the history limit, and the tasks of deleted
//     services, are deleted;
//   - tasks without a node are placed by the scheduler in the same pass.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "shoal/store/state.h"
#include "shoal/v1/commands.pb.h"

namespace shoal::orchestrator {

class LoadIndex;

// Where new task ids come from: injected so that tests are deterministic and
// the manager can choose its id scheme.
class IdSource {
 public:
  virtual ~IdSource() = default;
  // A fresh id, never returned before and not used by any object in the
  // store. Called once per task created, in a deterministic order; must not
  // fail. Called only on the thread that runs Reconcile.
  virtual std::string NewTaskId() = 0;
};

struct Options {
  // Terminal tasks kept per slot (per node for global services) as history;
  // Cluster.task_history_per_slot overrides this when it is non-zero.
  uint64_t task_history_per_slot = 5;
  // Mutations returned per call at most (the first change of a pass is always
  // returned whole, even if it alone is larger). When more were needed,
  // Outcome.more_work is set and the caller calls again after the transaction
  // has applied.
  size_t max_mutations = 2000;
  // When set, the pass looks only at these services (by id; the id of a
  // deleted service cleans up its tasks), at every service with depends_on
  // (which hangs on the others' tasks), and places only their pending tasks;
  // the scheduler still counts every assigned task. For a caller that knows
  // from the applied events that nothing else changed: what such a pass
  // decides for those services equals a full pass's. Null: every service.
  const std::set<std::string>* services = nullptr;
  // The scheduler's load of every assigned task, kept by the caller
  // (load_index.h); used only when it matches `state`, else the pass counts
  // every task itself. The decisions are the same either way: this only
  // spares a walk over every task of the cluster per pass.
  const LoadIndex* loads = nullptr;
};

struct Outcome {
  // OP_PUT (create: expected_version 0; update: the version read) and
  // OP_DELETE, each object at most once, in a deterministic order: the
  // services whose rollout status, spec (an automatic rollback) or
  // depends_on message changed first, then the tasks.
  std::vector<v1::Mutation> mutations;
  // max_mutations was reached: call again once these mutations applied.
  bool more_work = false;
  // With more_work: the services (ids, in order; also ids of deleted
  // services whose tasks remain) that the pass did not finish. A next pass
  // over these and the services changed since (Options::services) picks up
  // where this one stopped.
  std::vector<std::string> unfinished_services;
  // The earliest time at which a timer in the state (a restart delay, an
  // update's delay or monitor period) changes the outcome: call again then,
  // even if nothing else changed. 0 when no timer is pending.
  int64_t wake_at_ns = 0;

  // Counters for logs and tests; a task may count in several.
  size_t created = 0;           // new tasks
  size_t shut_down = 0;         // live tasks given desired state SHUTDOWN
  size_t deleted = 0;           // tasks deleted (history reaped, removed services)
  size_t assigned = 0;          // tasks given a node by the scheduler
  size_t pending = 0;           // tasks the scheduler could not place (changed or not)
  size_t services_written = 0;  // update status, rollback, depends_on message
  size_t services_seen = 0;     // services the pass looked at
};

// Computes the task changes that move `state` towards its services' specs.
// `now_ns` is the caller's clock, used only for the status timestamps of tasks
// the orchestrator creates or schedules. Never fails: an object it cannot
// make sense of (a task without a service) is cleaned up, not reported.
// Not thread-safe with respect to `ids`; `state` is only read.
Outcome Reconcile(const store::State& state, int64_t now_ns, IdSource& ids,
                  const Options& options = {});

}  // namespace shoal::orchestrator
