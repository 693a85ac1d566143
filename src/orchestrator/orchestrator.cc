#include "shoal/orchestrator/orchestrator.h"

#include <map>
#include <set>
#include <utility>

#include "pass.h"

namespace shoal::orchestrator {

namespace internal {

const std::vector<const v1::Task*>& TasksRead(const Pass& p, const std::string& service_id) {
  static const std::vector<const v1::Task*> kNone;
  auto it = p.tasks_by_service.find(service_id);
  if (it != p.tasks_by_service.end()) return it->second;
  if (p.all_tasks_read) return kNone;
  std::vector<const v1::Task*> read;
  for (const v1::Mutation* m : p.state.Find(store::Kind::kTask, "service", service_id)) {
    read.push_back(&m->task());
  }
  return p.tasks_by_service.emplace(service_id, std::move(read)).first->second;
}

}  // namespace internal

Outcome Reconcile(const store::State& state, int64_t now_ns, IdSource& ids,
                  const Options& options) {
  internal::Pass p(state, now_ns, ids, options.max_mutations);
  p.history_limit = options.task_history_per_slot;
  if (options.loads != nullptr && options.loads->Matches(state)) p.loads = options.loads;
  for (const v1::Mutation* m : state.List(store::Kind::kCluster)) {
    if (m->cluster().task_history_per_slot() != 0) {
      p.history_limit = m->cluster().task_history_per_slot();
    }
    break;  // one Cluster object per cluster
  }
  p.node_index.reserve(state.Count(store::Kind::kNode));
  for (const v1::Mutation* m : state.List(store::Kind::kNode)) {
    p.nodes.emplace_hint(p.nodes.end(), m->node().meta().id(), &m->node());
    p.node_index.emplace(m->node().meta().id(), &m->node());
  }
  for (const v1::Mutation* m : state.List(store::Kind::kService)) {
    p.services_by_name.emplace(m->service().spec().name(), &m->service());
  }
  // The services to look at, in id order, and their tasks as read.
  std::vector<const v1::Task*> tasks;
  std::set<std::string> look;
  if (options.services == nullptr) {
    for (const v1::Mutation* m : state.List(store::Kind::kTask)) {
      tasks.push_back(&m->task());
      p.tasks_by_service[m->task().service_id()].push_back(&m->task());
    }
    for (const v1::Mutation* m : state.List(store::Kind::kService)) {
      look.insert(m->service().meta().id());
    }
  } else {
    p.all_tasks_read = false;
    look = *options.services;
    // depends_on is decided from other services' tasks: always looked at.
    for (const auto& [name, svc] : p.services_by_name) {
      if (!svc->spec().depends_on().empty()) look.insert(svc->meta().id());
    }
    for (const std::string& id : look) {
      const std::vector<const v1::Task*>& read = internal::TasksRead(p, id);
      tasks.insert(tasks.end(), read.begin(), read.end());
    }
  }
  // Emptied as services are reconciled: what is left has no service.
  std::map<std::string, std::vector<const v1::Task*>> by_service;
  if (p.all_tasks_read) {
    by_service = p.tasks_by_service;
  } else {
    for (const std::string& id : look) {
      const std::vector<const v1::Task*>& read = internal::TasksRead(p, id);
      if (!read.empty()) by_service[id] = read;
    }
  }

  // Services in id order, each as a whole: its slots or nodes, then its
  // history, so that the history sees this pass's decisions.
  const std::string* previous = nullptr;  // the service looked at last
  for (const std::string& id : look) {
    if (p.changes.exhausted()) {
      // The budget ran out in the previous service (or its history): it
      // and every later one wait for the next pass.
      if (previous != nullptr) p.counters.unfinished_services.push_back(*previous);
      for (auto it = look.find(id); it != look.end(); ++it) {
        p.counters.unfinished_services.push_back(*it);
      }
      previous = nullptr;
      break;
    }
    previous = &id;
    const v1::Service* svc = state.Get<v1::Service>(id);
    if (svc == nullptr) continue;
    p.counters.services_seen++;
    internal::ServiceTasks st;
    st.service = svc;
    auto it = by_service.find(id);
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
  if (previous != nullptr && p.changes.exhausted()) {
    p.counters.unfinished_services.push_back(*previous);
  }
  // What is left belongs to services that no longer exist.
  for (const auto& [service_id, orphans] : by_service) {
    if (p.changes.exhausted()) {
      // Orphans left (or cut short): they wait for the next pass.
      p.counters.unfinished_services.push_back(service_id);
      continue;
    }
    internal::ReconcileOrphans(p, orphans);
    if (p.changes.exhausted()) p.counters.unfinished_services.push_back(service_id);
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
