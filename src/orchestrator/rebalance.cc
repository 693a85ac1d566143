// `service rebalance` (issue 5): spread a replicated service's tasks again
// over the nodes that can take them, for example after nodes joined or came
// back. Swarm never moves a running task for balance; here the operator
// asks, and the move is paced as an update is.

#include <algorithm>
#include <map>
#include <set>

#include "pass.h"

namespace shoal::orchestrator::internal {

bool Rebalance(Pass& p, ServiceTasks& st, const std::map<uint64_t, const v1::Task*>& slots,
               const std::vector<const v1::Task*>& live) {
  const v1::Service& svc = *st.service;
  if (svc.rebalance_requested() == svc.rebalanced()) return true;
  // Wait for anything on its way (an update, a restart, the last moves).
  for (const v1::Task* t : live) {
    if (IsStale(svc, *t) || !IsUp(*t)) return true;
  }
  if (slots.size() != svc.spec().replicas()) return true;

  // Tasks per node that may take a task of the service now.
  const v1::Task probe = PlacementProbe(TaskTemplate(svc));
  std::map<std::string, std::vector<const v1::Task*>> on;
  for (const auto& [id, node] : p.nodes) {
    if (CanStart(*node, probe)) on[id];
  }
  if (on.empty()) return true;
  for (const auto& [slot, t] : slots) {
    auto it = on.find(t->node_id());
    if (it != on.end()) it->second.push_back(t);
  }
  // Move from the busiest node to the idlest while they differ by more than
  // one, `parallelism` moves per batch (0: all).
  const v1::UpdateConfig& uc = svc.spec().update_config();
  size_t limit = uc.parallelism() == 0 ? slots.size() : uc.parallelism();
  std::map<std::string, size_t> count;
  for (const auto& [id, tasks] : on) count[id] = tasks.size();
  std::vector<const v1::Task*> moves;
  while (moves.size() < limit) {
    auto busiest = std::max_element(count.begin(), count.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    auto idlest = std::min_element(count.begin(), count.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    if (busiest->second <= idlest->second + 1) break;
    // The highest slot of the busiest node, so that moves are deterministic.
    std::vector<const v1::Task*>& tasks = on[busiest->first];
    moves.push_back(tasks.back());
    tasks.pop_back();
    busiest->second--;
    idlest->second++;
  }
  if (moves.empty()) {
    EditService(p, svc)->set_rebalanced(svc.rebalance_requested());
    return true;
  }
  for (const v1::Task* t : moves) {
    // A move is not a failure: the restart count carries over.
    if (IsStartFirst(svc)) {
      if (!CreateUnit(p, st, t->slot(), "", t->restart_attempt())) return false;
    } else if (!ReplaceUnit(p, st, *t, t->restart_attempt())) {
      return false;
    }
  }
  return true;
}

}  // namespace shoal::orchestrator::internal
