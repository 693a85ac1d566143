// Global services and jobs: one live task on each eligible node, the node
// fixed when the task is made.

#include <algorithm>
#include <map>
#include <set>

#include "pass.h"
#include "policy.h"

namespace shoal::orchestrator::internal {

void ReconcileGlobal(Pass& p, ServiceTasks& st) {
  const v1::Service& svc = *st.service;
  const bool job = svc.spec().mode() == v1::MODE_GLOBAL_JOB;
  const v1::Task probe = PlacementProbe(TaskTemplate(svc));
  const bool start_first = IsStartFirst(svc);

  // Nodes that may receive a new task of the service now.
  std::set<std::string> eligible;
  for (const auto& [id, node] : p.nodes) {
    if (CanStart(*node, probe)) eligible.insert(id);
  }

  // One live task per node. A live task without a node (left from a
  // replicated mode before a mode change) has no place here.
  std::map<std::string, std::vector<const v1::Task*>> by_node;
  for (const v1::Task* t : st.read) {
    if (!IsLive(*t)) continue;
    if (t->node_id().empty()) {
      if (!RetireUnit(p, *t)) return;
      continue;
    }
    by_node[t->node_id()].push_back(t);
  }

  std::set<std::string> occupied;  // nodes left with a live task
  std::vector<const v1::Task*> stale, live;
  for (auto& [node_id, tasks] : by_node) {
    std::sort(tasks.begin(), tasks.end(), [&](const v1::Task* a, const v1::Task* b) {
      return BetterToKeep(svc, *a, *b, start_first);
    });
    std::vector<const v1::Task*> others(tasks.begin() + 1, tasks.end());
    std::sort(others.begin(), others.end(),
              [&](const v1::Task* a, const v1::Task* b) { return BetterToKeep(svc, *a, *b); });
    // Start-first: the old task runs on until its replacement here is up.
    const v1::Task* shadow = start_first ? KeepShadow(p, *tasks[0], others) : nullptr;
    for (const v1::Task* o : others) {
      if (o != shadow && !RetireUnit(p, *o)) return;
    }
    if (shadow) live.push_back(shadow);
    const v1::Task* t = tasks[0];
    const v1::Node* node = FindNode(p, node_id);
    const bool can_start = eligible.count(node_id) > 0;

    if (IsDone(*t, job)) {
      // The job ran here; it runs again only for a new spec_version, where
      // the node still qualifies. The record of a node that is gone, or of an
      // old version on a node the job left, becomes history.
      bool keep = node != nullptr && (!IsStale(svc, *t) || CanStay(*node, probe));
      if (!keep) {
        if (!RetireUnit(p, *t)) return;
        continue;
      }
      occupied.insert(node_id);
      live.push_back(t);
      if (IsStale(svc, *t) && can_start && !st.hold) stale.push_back(t);
      continue;
    }
    // Down, removed, drained, or no longer matching the constraints: the
    // node is not one of the service's, so its task goes and is not replaced
    // until the node qualifies again.
    if (IsLost(node) || !CanStay(*node, probe)) {
      if (!RetireUnit(p, *t)) return;
      continue;
    }
    if (HasEnded(*t, job) || IsUnhealthy(*t, job)) {
      RestartDecision d = DecideReplacement(svc, *t, /*node_lost=*/false, p.now_ns);
      if (d.replace_now && st.hold) {
        d.replace_now = false;
        d.reason = "waiting for dependencies";
      }
      if (!d.replace_now) {
        if (!NoteRestart(p, *t, d)) return;
        occupied.insert(node_id);
        live.push_back(t);
        continue;
      }
      if (can_start) {
        if (!ReplaceUnit(p, st, *t, d.next_attempt)) return;
        occupied.insert(node_id);
        live.push_back(st.created.back());
      } else if (!RetireUnit(p, *t)) {  // paused or not ready: refilled later
        return;
      }
      continue;
    }
    occupied.insert(node_id);
    live.push_back(t);
    // A stale task on a node that takes no new tasks now (paused, not ready)
    // keeps running until the node can take its replacement.
    if (IsStale(svc, *t) && can_start && !st.hold) stale.push_back(t);
  }

  Rollout r = PlanRollout(svc, st.read, stale, live, occupied.size(), p.now_ns);
  WakeAt(p, r.wake_at_ns);
  if (!WriteRollout(p, svc, r)) return;
  if (r.rolled_back) return;
  for (const v1::Task* t : r.replace) {
    if (r.start_first) {
      if (!CreateUnit(p, st, 0, t->node_id(), 0)) return;
    } else if (!ReplaceUnit(p, st, *t, 0)) {
      return;
    }
  }

  if (st.hold) return;
  for (const std::string& node_id : eligible) {
    if (occupied.count(node_id)) continue;
    if (!CreateUnit(p, st, 0, node_id, 0)) return;
  }
}

}  // namespace shoal::orchestrator::internal
