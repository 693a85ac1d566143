#pragma once

// What the steps of one Reconcile pass share: the read state, the changes
// made so far, and the predicates every step agrees on. Internal to the
// orchestrator module.
//
// Vocabulary (docs/orchestrator.md):
//   live      desired_state <= COMPLETE: the task is meant to run (or, for a
//             job, to run to completion). A slot or node wants exactly one.
//   retired   desired_state >= SHUTDOWN: told to stop; history once finished.
//   finished  nothing of the task runs anywhere: its status is terminal, it
//             was never handed to an agent, or its node no longer exists.
//   stale     made from an older service.spec_version than the service's.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "changes.h"
#include "policy.h"
#include "rollout.h"
#include "shoal/orchestrator/load_index.h"
#include "shoal/orchestrator/orchestrator.h"

namespace shoal::orchestrator::internal {

struct Pass {
  Pass(const store::State& s, int64_t now, IdSource& id_source, size_t budget)
      : state(s), now_ns(now), ids(id_source), changes(budget) {}

  const store::State& state;
  int64_t now_ns;
  IdSource& ids;
  uint64_t history_limit = 0;
  std::map<std::string, const v1::Node*> nodes;  // by id
  // The same, hashed: FindNode runs once or twice per task looked at.
  std::unordered_map<std::string_view, const v1::Node*> node_index;
  // Services by full name (spec.name), for depends_on.
  std::map<std::string, const v1::Service*> services_by_name;
  // Tasks by service id, as read: every service's when `all_tasks_read`,
  // else filled as asked (TasksRead).
  mutable std::map<std::string, std::vector<const v1::Task*>> tasks_by_service;
  bool all_tasks_read = true;
  // The caller's load index, when it matches the state (else null).
  const LoadIndex* loads = nullptr;
  Changes changes;
  // Service objects this pass writes (update status, a rollback's spec swap,
  // depends_on's waiting message), by id; each reserved as one mutation.
  std::map<std::string, v1::Service> service_writes;
  Outcome counters;  // the counters only; mutations come from `changes`
};

// A service and its tasks: those read from the store (id order) and those
// created for it in this pass.
struct ServiceTasks {
  const v1::Service* service = nullptr;
  std::vector<const v1::Task*> read;
  std::vector<const v1::Task*> created;
  // depends_on not satisfied: the service gets no new task in this pass (no
  // scale-up, restart or update); what runs is left alone.
  bool hold = false;
};

inline bool IsJob(v1::ServiceMode m) {
  return m == v1::MODE_REPLICATED_JOB || m == v1::MODE_GLOBAL_JOB;
}
inline bool IsGlobal(v1::ServiceMode m) { return m == v1::MODE_GLOBAL || m == v1::MODE_GLOBAL_JOB; }

inline bool IsLive(const v1::Task& t) { return t.desired_state() <= v1::TASK_COMPLETE; }
inline bool IsStale(const v1::Service& s, const v1::Task& t) {
  return t.service_spec_version() < s.spec_version();
}
// A job task that ran to completion: its slot or node is done.
inline bool IsDone(const v1::Task& t, bool job) {
  return job && t.status().state() == v1::TASK_COMPLETE;
}
// The agent reports that the task stopped although nobody asked it to: any
// terminal state for a service, any but COMPLETE for a job.
inline bool HasEnded(const v1::Task& t, bool job) {
  return t.status().state() >= (job ? v1::TASK_SHUTDOWN : v1::TASK_COMPLETE);
}
// The agent reports that the task runs but fails its healthcheck: replaced
// as an ended task is (issue 5). Jobs are not judged by their health.
inline bool IsUnhealthy(const v1::Task& t, bool job) {
  return !job && t.status().health() == v1::TaskStatus::HEALTH_UNHEALTHY;
}
// Running now, or (a job) ran successfully: what scale-down removes last.
inline bool HasStarted(const v1::Task& t, bool job) {
  return t.status().state() == v1::TASK_RUNNING || IsDone(t, job);
}
// The task declares a healthcheck (its own copy of the spec's).
inline bool IsChecked(const v1::Task& t) {
  const auto& test = t.spec().healthcheck().test();
  return !test.empty() && test[0] != "NONE";
}
// Runs and, where it declares a healthcheck, is healthy: what a rolling
// update and start-first wait for before going on.
inline bool IsUp(const v1::Task& t) {
  return t.status().state() == v1::TASK_RUNNING &&
         (!IsChecked(t) || t.status().health() == v1::TaskStatus::HEALTH_HEALTHY);
}
// The service replaces tasks start-first (update_config, or rollback_config
// while it rolls back): the new task runs before the old one stops.
inline bool IsStartFirst(const v1::Service& s) {
  return !IsJob(s.spec().mode()) &&
         ActiveUpdateConfig(s).order() == v1::UpdateConfig::ORDER_START_FIRST;
}
// Handed to an agent: it names a node and the scheduler admitted it there.
inline bool IsAssigned(const v1::Task& t) {
  return !t.node_id().empty() && t.status().state() >= v1::TASK_ASSIGNED;
}

// The restart policy's decision for a task that ended, or is unhealthy,
// which DecideRestart is asked about as a task that failed: an unhealthy
// task is stopped for failing, so `on-failure` restarts it too.
RestartDecision DecideReplacement(const v1::Service& service, const v1::Task& t, bool node_lost,
                                  int64_t now_ns);

// Of two live tasks of one slot or node, whether `a` is the one to keep: the
// current spec first, then the one not ended, then the furthest along, then
// the newest. With start-first order (`incoming_first`) the newest comes
// before the furthest along: the task started to replace another is kept,
// and the other may stay as its shadow until it is up (KeepShadow).
bool BetterToKeep(const v1::Service& s, const v1::Task& a, const v1::Task& b,
                  bool incoming_first = false);

// Start-first: of the other live tasks of a slot or node (sorted by
// BetterToKeep), the one that keeps running while `keeper` comes up, or null
// (the keeper is up, or none of them runs on a node that still reports).
const v1::Task* KeepShadow(const Pass& p, const v1::Task& keeper,
                           const std::vector<const v1::Task*>& others);

// The service as this pass writes it: a copy made on the first call, shared
// by later ones; never null (service writes are outside the task budget).
v1::Service* EditService(Pass& p, const v1::Service& read);

// Writes what the rolling updater decided about the service (its status, or
// a rollback's spec). False when the budget refused it.
bool WriteRollout(Pass& p, const v1::Service& read, const Rollout& r);

// Records on an ended task why it is not replaced (yet), for `service ps`,
// when that changed. False when the budget refused it.
bool NoteRestart(Pass& p, const v1::Task& t, const RestartDecision& d);

// A timer of the state ends at `at_ns`: the pass's Outcome asks to be run
// again then (the earliest such time wins). Times not after now are ignored.
inline void WakeAt(Pass& p, int64_t at_ns) {
  int64_t& wake = p.counters.wake_at_ns;
  if (at_ns > p.now_ns && (wake == 0 || at_ns < wake)) wake = at_ns;
}

// depends_on: "" when every dependency of `service` is satisfied, else why
// it waits ("waiting for db (service_healthy)").
std::string DependencyWait(const Pass& p, const v1::Service& service);

// The tasks of a service as read, in id order (empty for none).
const std::vector<const v1::Task*>& TasksRead(const Pass& p, const std::string& service_id);

const v1::Node* FindNode(const Pass& p, const std::string& id);
// A node that will not report on its tasks: deleted, or DOWN.
bool IsLost(const v1::Node* node);
bool IsFinished(const Pass& p, const v1::Task& t);

// A task as the service would make it now, without id, slot or node: the
// template for new tasks and the probe for placement checks.
v1::Task TaskTemplate(const v1::Service& service);
// `task` with only what placement depends on (constraints and readiness,
// not resources, ports or replica limits, which make a task pending, not
// misplaced).
v1::Task PlacementProbe(const v1::Task& task);
// The node may receive a new task like `probe`: READY, ACTIVE, constraints
// hold (scheduler::Explain says nothing against it).
bool CanStart(const v1::Node& node, const v1::Task& probe);
// A task like `probe` may keep running on the node: it is not down or
// drained and the constraints still hold (a paused or disconnected node
// keeps its tasks).
bool CanStay(const v1::Node& node, const v1::Task& probe);

// The units of change, each admitted whole against the budget or not at all.
// False when the budget refused it.
//
// Gives `t` desired state SHUTDOWN.
bool RetireUnit(Pass& p, const v1::Task& t);
// A new task of `st` in `slot` (replicated) or on `node_id` (global).
bool CreateUnit(Pass& p, ServiceTasks& st, uint64_t slot, const std::string& node_id,
                uint64_t restart_attempt);
// RetireUnit and CreateUnit in the same slot or on the same node, as one unit.
bool ReplaceUnit(Pass& p, ServiceTasks& st, const v1::Task& old, uint64_t restart_attempt);

// The steps of a pass, in order.
void ReconcileReplicated(Pass& p, ServiceTasks& st);  // MODE_REPLICATED(_JOB)
void ReconcileGlobal(Pass& p, ServiceTasks& st);      // MODE_GLOBAL(_JOB)
void ReapHistory(Pass& p, const ServiceTasks& st);
// `service rebalance`: while Service.rebalance_requested is ahead of
// rebalanced and nothing is on its way, moves tasks (`slots`: the live task
// of each slot; `live`: every live task) from the busiest eligible node to
// the idlest, update_config.parallelism at a time, then records it done.
// False when the budget refused a move.
bool Rebalance(Pass& p, ServiceTasks& st, const std::map<uint64_t, const v1::Task*>& slots,
               const std::vector<const v1::Task*>& live);
void ReconcileOrphans(Pass& p, const std::vector<const v1::Task*>& tasks);
// Places the pending tasks among `tasks` and those created in the pass,
// against the load of every assigned task of the state.
void ScheduleAll(Pass& p, const std::vector<const v1::Task*>& tasks);

}  // namespace shoal::orchestrator::internal
