#include "shoal/orchestrator/load_index.h"

#include <utility>

namespace shoal::orchestrator {

bool LoadIndex::Counts(const v1::Task& t) {
  // pass.h: IsLive, IsAssigned, and not finished (ScheduleAll's test).
  return t.desired_state() <= v1::TASK_COMPLETE && !t.node_id().empty() &&
         t.status().state() >= v1::TASK_ASSIGNED && t.status().state() < v1::TASK_COMPLETE;
}

void LoadIndex::Clear() {
  counted_.clear();
  usage_.clear();
  applied_index_ = 0;
  valid_ = false;
}

void LoadIndex::Rebuild(const store::State& state) {
  Clear();
  counted_.reserve(state.Count(store::Kind::kTask));
  for (const v1::Mutation* m : state.List(store::Kind::kTask)) {
    const v1::Task& t = m->task();
    if (!Counts(t)) continue;
    Counted c{t.node_id(), scheduler::TaskLoad::Of(t)};
    usage_[c.node_id].Add(c.load);
    counted_.emplace(t.meta().id(), std::move(c));
  }
  applied_index_ = state.applied_index();
  valid_ = true;
}

void LoadIndex::Set(const std::string& id, const v1::Task* task) {
  bool counts = task != nullptr && Counts(*task);
  auto it = counted_.find(id);
  if (it != counted_.end()) {
    // Unchanged in what the scheduler counts: the common case of a status
    // report (ASSIGNED to RUNNING) costs one lookup.
    if (counts && it->second.node_id == task->node_id() &&
        it->second.load.service_id == task->service_id() &&
        it->second.load.nano_cpus == task->resources().reservations().nano_cpus() &&
        it->second.load.memory_bytes == task->resources().reservations().memory_bytes() &&
        task->endpoint().ports().empty() && it->second.load.host_ports.empty()) {
      return;
    }
    auto node = usage_.find(it->second.node_id);
    node->second.Add(it->second.load, -1);
    if (node->second.total == 0) usage_.erase(node);
    counted_.erase(it);
  }
  if (!counts) return;
  Counted c{task->node_id(), scheduler::TaskLoad::Of(*task)};
  usage_[c.node_id].Add(c.load);
  counted_.emplace(id, std::move(c));
}

void LoadIndex::Update(const store::State& state, const std::vector<const store::Event*>& events) {
  if (!valid_) return Rebuild(state);
  // Each event holds the task as that change left it, so the last event of
  // a task leaves the index as the state now holds it, without a lookup.
  for (const store::Event* e : events) {
    const v1::Mutation& m = e->mutation;
    if (!m.has_task()) continue;
    Set(m.task().meta().id(), m.op() == v1::Mutation::OP_DELETE ? nullptr : &m.task());
  }
  applied_index_ = state.applied_index();
}

}  // namespace shoal::orchestrator
