#include "shoal/orchestrator/orchestrator.h"

#include <map>
#include <utility>

#include "pass.h"

namespace shoal::orchestrator {

Outcome Reconcile(const store::State& state, int64_t now_ns, IdSource& ids,
                  const Options& options) {
  internal::Pass p(state, now_ns, ids, options.max_mutations);
  p.history_limit = options.task_history_per_slot;
  for (const v1::Mutation* m : state.List(store::Kind::kCluster)) {
    if (m->cluster().task_history_per_slot() != 0) {
      p.history_limit = m->cluster().task_history_per_slot();
    }
    break;  // one Cluster object per cluster
  }
  for (const v1::Mutation* m : state.List(store::Kind::kNode)) {
    p.nodes.emplace(m->node().meta().id(), &m->node());
  }
  std::vector<const v1::Task*> tasks;
  std::map<std::string, std::vector<const v1::Task*>> by_service;  // in id order
  for (const v1::Mutation* m : state.List(store::Kind::kTask)) {
    tasks.push_back(&m->task());
    by_service[m->task().service_id()].push_back(&m->task());
  }

  // Services in id order, each as a whole: its slots or nodes, then its
  // history, so that the history sees this pass's decisions.
  for (const v1::Mutation* m : state.List(store::Kind::kService)) {
    if (p.changes.exhausted()) break;
    internal::ServiceTasks st;
    st.service = &m->service();
    auto it = by_service.find(st.service->meta().id());
    if (it != by_service.end()) {
      st.read = std::move(it->second);
      by_service.erase(it);
    }
    if (internal::IsGlobal(st.service->spec().mode())) {
      internal::ReconcileGlobal(p, st);
    } else {
      internal::ReconcileReplicated(p, st);
    }
    internal::ReapHistory(p, st);
  }
  // What is left belongs to services that no longer exist.
  for (const auto& [service_id, orphans] : by_service) {
    if (p.changes.exhausted()) break;
    internal::ReconcileOrphans(p, orphans);
  }
  internal::ScheduleAll(p, tasks);

  Outcome out = std::move(p.counters);
  out.more_work = p.changes.exhausted();
  out.mutations = std::move(p.changes).Take();
  return out;
}

}  // namespace shoal::orchestrator
