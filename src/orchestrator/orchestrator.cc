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
  for (const v1::Mutation* m : state.List(store::Kind::kTask)) {
    tasks.push_back(&m->task());
    p.tasks_by_service[m->task().service_id()].push_back(&m->task());
  }
  for (const v1::Mutation* m : state.List(store::Kind::kService)) {
    p.services_by_name.emplace(m->service().spec().name(), &m->service());
  }
  std::map<std::string, std::vector<const v1::Task*>> by_service = p.tasks_by_service;

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
    // depends_on: no new tasks until the dependencies are satisfied; the
    // reason is kept on the service for `service ls` and deploy.
    std::string wait = internal::DependencyWait(p, *st.service);
    st.hold = !wait.empty();
    if (wait != st.service->waiting_message()) {
      v1::Service* w = internal::EditService(p, *st.service);
      if (w == nullptr) break;
      w->set_waiting_message(wait);
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
  // Services first (in id order), then the tasks: one transaction either way.
  for (auto& [id, svc] : p.service_writes) {
    v1::Mutation m;
    m.set_op(v1::Mutation::OP_PUT);
    m.set_expected_version(svc.meta().version());
    *m.mutable_service() = std::move(svc);
    out.mutations.push_back(std::move(m));
    out.services_written++;
  }
  for (v1::Mutation& m : std::move(p.changes).Take()) out.mutations.push_back(std::move(m));
  return out;
}

}  // namespace shoal::orchestrator
