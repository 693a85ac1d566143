// Replicated services and jobs: `replicas` slots, each with one live task.

#include <algorithm>
#include <map>
#include <tuple>

#include "pass.h"
#include "policy.h"

namespace shoal::orchestrator::internal {

namespace {

// The live slots in the order scale-down removes them. Swarm's rule: balance
// the nodes first (take from the nodes that run the most tasks of the
// service), and prefer tasks that are not running. So each task is ranked as
// the k-th copy of the service on its node, running copies counted first, and
// the highest k goes first; tasks that have no node go before all of them.
// Ties: not running first, then the busier node, then the higher slot, so
// the remaining slots stay low-numbered.
std::vector<uint64_t> ScaleDownOrder(const std::map<uint64_t, const v1::Task*>& slots, bool job) {
  std::map<std::string, std::vector<const v1::Task*>> by_node;
  for (const auto& [slot, t] : slots) {
    if (IsAssigned(*t)) by_node[t->node_id()].push_back(t);
  }
  // (placed, -ordinal, started, -tasks on node, -slot): ascending = removed first.
  using Rank = std::tuple<bool, int, bool, int, int64_t>;
  std::vector<std::pair<Rank, uint64_t>> ranked;
  for (auto& [node, tasks] : by_node) {
    std::stable_sort(tasks.begin(), tasks.end(), [&](const v1::Task* a, const v1::Task* b) {
      return HasStarted(*a, job) > HasStarted(*b, job);  // slot order kept within each
    });
    int count = static_cast<int>(tasks.size());
    for (int i = 0; i < count; ++i) {
      const v1::Task* t = tasks[i];
      ranked.push_back(
          {{true, -(i + 1), HasStarted(*t, job), -count, -static_cast<int64_t>(t->slot())},
           t->slot()});
    }
  }
  for (const auto& [slot, t] : slots) {
    if (!IsAssigned(*t))
      ranked.push_back({{false, 0, false, 0, -static_cast<int64_t>(slot)}, slot});
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<uint64_t> order;
  for (const auto& [rank, slot] : ranked) order.push_back(slot);
  return order;
}

enum class Health {
  kHealthy,    // leave it (a done job task is healthy too)
  kEnded,      // the agent reports it stopped: restart
  kUnhealthy,  // it runs but fails its healthcheck: restart, as if it had ended
  kLost,       // its node is down or gone: restart elsewhere
  kMisplaced,  // its node was drained or no longer meets its constraints: move
};

// Caches CanStay per (node, spec version): every task of one version of a
// service has the same constraints. Nodes by address: one pass, one state.
class StayCache {
 public:
  bool CanStay(const v1::Node& node, const v1::Task& t) {
    auto key = std::make_pair(&node, t.service_spec_version());
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      it = cache_.emplace(key, internal::CanStay(node, PlacementProbe(t))).first;
    }
    return it->second;
  }

 private:
  std::map<std::pair<const v1::Node*, uint64_t>, bool> cache_;
};

Health Check(const Pass& p, const v1::Task& t, bool job, StayCache& cache) {
  if (IsDone(t, job)) return Health::kHealthy;
  if (HasEnded(t, job)) return Health::kEnded;
  if (t.node_id().empty()) return Health::kHealthy;  // waiting for a node
  const v1::Node* node = FindNode(p, t.node_id());
  if (IsLost(node)) return Health::kLost;
  if (IsUnhealthy(t, job)) return Health::kUnhealthy;
  if (!cache.CanStay(*node, t)) return Health::kMisplaced;
  return Health::kHealthy;
}

}  // namespace

void ReconcileReplicated(Pass& p, ServiceTasks& st) {
  const v1::Service& svc = *st.service;
  const bool job = svc.spec().mode() == v1::MODE_REPLICATED_JOB;
  const uint64_t replicas = svc.spec().replicas();
  const bool start_first = IsStartFirst(svc);

  // One live task per slot. A live task without a slot (left from a global
  // mode before a mode change) has no place here. Grouped by sorting (slot,
  // read order) pairs: one allocation, not one per slot.
  std::vector<std::pair<uint64_t, const v1::Task*>> live_read;
  live_read.reserve(st.read.size());
  for (const v1::Task* t : st.read) {
    if (!IsLive(*t)) continue;
    if (t->slot() == 0) {
      if (!RetireUnit(p, *t)) return;
      continue;
    }
    live_read.emplace_back(t->slot(), t);
  }
  std::stable_sort(live_read.begin(), live_read.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::map<uint64_t, const v1::Task*> slots;    // slot -> its live task
  std::map<uint64_t, const v1::Task*> shadows;  // start-first: the task it replaces
  std::vector<const v1::Task*> tasks;           // the live tasks of one slot
  for (size_t i = 0; i < live_read.size();) {
    const uint64_t slot = live_read[i].first;
    tasks.clear();
    for (; i < live_read.size() && live_read[i].first == slot; ++i) {
      tasks.push_back(live_read[i].second);
    }
    std::sort(tasks.begin(), tasks.end(), [&](const v1::Task* a, const v1::Task* b) {
      return BetterToKeep(svc, *a, *b, start_first);
    });
    slots.emplace_hint(slots.end(), slot, tasks[0]);  // in slot order
    if (tasks.size() == 1) continue;                  // the common case: nothing to retire or keep
    std::vector<const v1::Task*> others(tasks.begin() + 1, tasks.end());
    std::sort(others.begin(), others.end(),
              [&](const v1::Task* a, const v1::Task* b) { return BetterToKeep(svc, *a, *b); });
    // Start-first: the task being replaced runs on until its replacement is up.
    const v1::Task* shadow = start_first ? KeepShadow(p, *tasks[0], others) : nullptr;
    if (shadow) shadows[slot] = shadow;
    for (const v1::Task* t : others) {
      if (t != shadow && !RetireUnit(p, *t)) return;
    }
  }

  // Scale down before anything else, so that a slot about to go is not
  // first restarted or updated.
  if (slots.size() > replicas) {
    std::vector<uint64_t> order = ScaleDownOrder(slots, job);
    for (size_t i = 0; i < order.size() && slots.size() > replicas; ++i) {
      if (!RetireUnit(p, *slots[order[i]])) return;
      if (shadows.count(order[i]) && !RetireUnit(p, *shadows[order[i]])) return;
      slots.erase(order[i]);
      shadows.erase(order[i]);
    }
  }

  // Restart what ended or lost its node; move what its node no longer wants.
  // Held by depends_on, nothing new starts: what ended waits.
  StayCache cache;
  std::vector<const v1::Task*> stale, live;
  for (const auto& [slot, shadow] : shadows) live.push_back(shadow);
  for (const auto& [slot, t] : slots) {
    Health health = Check(p, *t, job, cache);
    switch (health) {
      case Health::kEnded:
      case Health::kUnhealthy:
      case Health::kLost: {
        RestartDecision d = DecideReplacement(svc, *t, health == Health::kLost, p.now_ns);
        if (d.replace_now && st.hold) {
          d.replace_now = false;
          d.reason = "waiting for dependencies";
        }
        if (!d.replace_now) {
          if (health != Health::kLost && !NoteRestart(p, *t, d)) return;
          break;
        }
        if (!ReplaceUnit(p, st, *t, d.next_attempt)) return;
        live.push_back(st.created.back());
        continue;
      }
      case Health::kMisplaced:
        if (st.hold) break;
        // Not a failure of the task: its restart count carries over as is.
        // Start-first (a drain, say): the new task first, elsewhere; this
        // one stays as its shadow until it is up.
        if (start_first) {
          if (!CreateUnit(p, st, slot, "", t->restart_attempt())) return;
          live.push_back(t);
          live.push_back(st.created.back());
          continue;
        }
        if (!ReplaceUnit(p, st, *t, t->restart_attempt())) return;
        live.push_back(st.created.back());
        continue;
      case Health::kHealthy:
        break;
    }
    live.push_back(t);
    if (IsStale(svc, *t) && !st.hold) stale.push_back(t);
  }

  // Updates: a new spec_version replaces tasks (and re-runs a job), paced
  // and watched by the rolling updater.
  Rollout r = PlanRollout(svc, st.read, stale, live, replicas, p.now_ns);
  WakeAt(p, r.wake_at_ns);
  if (!WriteRollout(p, svc, r)) return;
  if (r.rolled_back) return;  // the next pass rolls the previous spec out
  for (const v1::Task* t : r.replace) {
    if (r.start_first) {
      if (!CreateUnit(p, st, t->slot(), "", 0)) return;
    } else if (!ReplaceUnit(p, st, *t, 0)) {
      return;
    }
  }

  if (st.hold) return;
  if (stale.empty() && !job && !Rebalance(p, st, slots, live)) return;

  // Scale up into the lowest free slots.
  for (uint64_t slot = 1; slots.size() < replicas; ++slot) {
    if (slots.count(slot)) continue;
    if (!CreateUnit(p, st, slot, "", 0)) return;
    slots[slot] = st.created.back();
  }
}

}  // namespace shoal::orchestrator::internal
