// Placement in the same pass: every live task that has not been handed to an
// agent yet goes through the scheduler, new ones and those left pending by
// earlier passes alike.

#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>

#include "pass.h"
#include "shoal/scheduler/scheduler.h"

namespace shoal::orchestrator::internal {

namespace {

struct Pending {
  const v1::Task* read = nullptr;  // null for a task created in this pass
  v1::Task* created = nullptr;     // set for a task created in this pass
  const v1::Task* view = nullptr;  // the task as the pass leaves it so far
};

// The task to change: a new one as is, an existing one if the budget allows.
v1::Task* Writable(Pass& p, const Pending& pe) {
  if (pe.created) return pe.created;
  if (!p.changes.Reserve(p.changes.CostOf(*pe.read))) {
    p.counters.unfinished_services.push_back(pe.read->service_id());  // placed next pass
    return nullptr;
  }
  return &p.changes.Edit(*pe.read);
}

}  // namespace

void ScheduleAll(Pass& p, const std::vector<const v1::Task*>& tasks) {
  // The scheduler reads the tasks where they are: a large cluster's assigned
  // tasks are not copied on every pass.
  std::vector<Pending> pending;
  for (const v1::Task* read : tasks) {
    const v1::Task* t = p.changes.View(*read);
    if (t != nullptr && IsLive(*t) && !IsAssigned(*t)) pending.push_back({read, nullptr, t});
  }
  for (v1::Task* t : p.changes.Created()) pending.push_back({nullptr, t, t});
  if (pending.empty()) return;
  // The load: every assigned task, also of the services this pass did not
  // look at (then read from the state: the pass changed none of them).
  scheduler::Load load;
  if (p.loads != nullptr) {
    // Kept by the caller for the state as read: only what this pass
    // changed differs.
    load.base = &p.loads->usage();
    p.changes.ForEachChanged([&](const v1::Task& read, const v1::Task* view) {
      if (LoadIndex::Counts(read)) load.remove.push_back(&read);
      if (view != nullptr && LoadIndex::Counts(*view)) load.add.push_back(view);
    });
  } else {
    std::vector<const v1::Task*> all;
    if (!p.all_tasks_read) {
      all.reserve(p.state.Count(store::Kind::kTask));
      for (const v1::Mutation* m : p.state.List(store::Kind::kTask)) all.push_back(&m->task());
    }
    const std::vector<const v1::Task*>& every = p.all_tasks_read ? tasks : all;
    load.add.reserve(every.size());
    for (const v1::Task* read : every) {
      const v1::Task* t = p.changes.View(*read);
      if (t != nullptr && LoadIndex::Counts(*t)) load.add.push_back(t);
    }
  }

  // Tasks of one service version together, so the scheduler spreads them
  // as a batch; a stable order so that every manager decides alike.
  std::sort(pending.begin(), pending.end(), [](const Pending& pa, const Pending& pb) {
    const v1::Task& a = *pa.view;
    const v1::Task& b = *pb.view;
    if (int c = a.service_id().compare(b.service_id()); c != 0) return c < 0;
    if (a.service_spec_version() != b.service_spec_version()) {
      return a.service_spec_version() < b.service_spec_version();
    }
    if (a.slot() != b.slot()) return a.slot() < b.slot();
    if (int c = a.node_id().compare(b.node_id()); c != 0) return c < 0;
    return a.meta().id() < b.meta().id();
  });
  std::vector<const v1::Task*> batch;
  std::unordered_map<std::string_view, size_t> position;
  batch.reserve(pending.size());
  position.reserve(pending.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    batch.push_back(pending[i].view);
    position[pending[i].view->meta().id()] = i;
  }
  std::vector<const v1::Node*> nodes;
  nodes.reserve(p.nodes.size());
  for (const auto& [id, node] : p.nodes) nodes.push_back(node);

  scheduler::Decision decision = scheduler::Schedule(nodes, load, batch);
  // What the scheduler placed in this pass, as it would read it next pass
  // (only needed to explain the unplaced again, below).
  std::vector<v1::Task> placed;
  if (!decision.unplaced.empty()) placed.reserve(decision.assigned.size());
  for (const scheduler::Assignment& a : decision.assigned) {
    size_t i = position.at(a.task_id);
    if (!decision.unplaced.empty()) {
      v1::Task s;
      s.set_service_id(batch[i]->service_id());
      s.set_node_id(a.node_id);
      *s.mutable_resources()->mutable_reservations() = batch[i]->resources().reservations();
      *s.mutable_endpoint()->mutable_ports() = batch[i]->endpoint().ports();
      placed.push_back(std::move(s));
    }
    v1::Task* t = Writable(p, pending[i]);
    if (t == nullptr) continue;
    t->set_node_id(a.node_id);
    t->mutable_status()->set_state(v1::TASK_ASSIGNED);
    t->mutable_status()->set_timestamp_ns(p.now_ns);
    t->mutable_status()->set_message("assigned");
    t->clear_scheduling_message();
    p.counters.assigned++;
  }
  if (decision.unplaced.empty()) return;

  // Explain the unplaced tasks again against everything placed in this pass:
  // the next pass sees exactly those placements, so it computes the same
  // message and an idle cluster produces no mutations. (Placement only ever
  // gets harder as tasks are added, so this call places nothing.)
  for (const v1::Task& s : placed) load.add.push_back(&s);
  std::vector<const v1::Task*> unplaced;
  for (const scheduler::Unplaced& u : decision.unplaced) {
    unplaced.push_back(batch[position.at(u.task_id)]);
  }
  std::map<std::string, std::string> message;
  for (const scheduler::Unplaced& u : decision.unplaced) message[u.task_id] = u.message;
  for (const scheduler::Unplaced& u : scheduler::Schedule(nodes, load, unplaced).unplaced) {
    message[u.task_id] = u.message;
  }

  for (const scheduler::Unplaced& u : decision.unplaced) {
    const Pending& pe = pending[position.at(u.task_id)];
    const std::string& why = message[u.task_id];
    p.counters.pending++;
    if (pe.view->status().state() == v1::TASK_PENDING && pe.view->scheduling_message() == why) {
      continue;
    }
    v1::Task* t = Writable(p, pe);
    if (t == nullptr) continue;
    t->mutable_status()->set_state(v1::TASK_PENDING);
    t->mutable_status()->set_timestamp_ns(p.now_ns);
    t->mutable_status()->set_message("pending");
    t->set_scheduling_message(why);
  }
}

}  // namespace shoal::orchestrator::internal
