#include "pass.h"

#include <tuple>

#include "shoal/scheduler/scheduler.h"

namespace shoal::orchestrator::internal {

bool BetterToKeep(const v1::Service& s, const v1::Task& a, const v1::Task& b, bool incoming_first) {
  // (current spec, not ended, then furthest along and newest, or, start-first,
  // newest and furthest along): the larger key is kept.
  auto key = [&](const v1::Task& t) {
    int64_t state = t.status().state();
    int64_t created = t.meta().created_at_ns();
    return std::make_tuple(!IsStale(s, t), state <= v1::TASK_RUNNING,
                           incoming_first ? created : state, incoming_first ? state : created,
                           t.meta().id());
  };
  return key(a) > key(b);
}

const v1::Task* KeepShadow(const Pass& p, const v1::Task& keeper,
                           const std::vector<const v1::Task*>& others) {
  if (IsUp(keeper)) return nullptr;
  for (const v1::Task* t : others) {
    if (t->status().state() != v1::TASK_RUNNING) continue;
    if (IsLost(FindNode(p, t->node_id()))) continue;
    return t;
  }
  return nullptr;
}

v1::Service* EditService(Pass& p, const v1::Service& read) {
  auto it = p.service_writes.find(read.meta().id());
  if (it != p.service_writes.end()) return &it->second;
  // Not counted against max_mutations, which bounds task changes: a service
  // is written at most once per pass, and what it records (a status, a
  // message) was decided from the state read, whatever the budget cut.
  return &p.service_writes.emplace(read.meta().id(), read).first->second;
}

bool WriteRollout(Pass& p, const v1::Service& read, const Rollout& r) {
  if (!r.write) return true;
  v1::Service* w = EditService(p, read);
  if (w == nullptr) return false;
  *w->mutable_spec() = r.write->spec();
  *w->mutable_previous_spec() = r.write->previous_spec();
  w->set_spec_version(r.write->spec_version());
  *w->mutable_update_status() = r.write->update_status();
  return true;
}

bool NoteRestart(Pass& p, const v1::Task& t, const RestartDecision& d) {
  WakeAt(p, d.restart_at_ns);
  if (t.restart_message() == d.reason && t.restart_at_ns() == d.restart_at_ns) return true;
  if (!p.changes.Reserve(p.changes.CostOf(t))) return false;
  v1::Task& e = p.changes.Edit(t);
  e.set_restart_message(d.reason);
  e.set_restart_at_ns(d.restart_at_ns);
  return true;
}

RestartDecision DecideReplacement(const v1::Service& service, const v1::Task& t, bool node_lost,
                                  int64_t now_ns) {
  if (node_lost || HasEnded(t, IsJob(service.spec().mode())) ||
      t.status().health() != v1::TaskStatus::HEALTH_UNHEALTHY) {
    return DecideRestart(service, t, node_lost, now_ns);
  }
  // Still running: its status time is when it turned unhealthy, from which
  // the restart delay counts.
  v1::Task failed = t;
  failed.mutable_status()->set_state(v1::TASK_FAILED);
  return DecideRestart(service, failed, node_lost, now_ns);
}

const v1::Node* FindNode(const Pass& p, const std::string& id) {
  auto it = p.node_index.find(id);
  return it == p.node_index.end() ? nullptr : it->second;
}

bool IsLost(const v1::Node* node) {
  return node == nullptr || node->status().state() == v1::NodeStatus::STATE_DOWN;
}

bool IsFinished(const Pass& p, const v1::Task& t) {
  if (t.status().state() >= v1::TASK_COMPLETE) return true;
  if (!IsAssigned(t)) return true;  // no agent ever received it
  // Nobody will report on a task whose node was removed; a DOWN node may
  // still come back and report, so its tasks wait (the dispatcher will mark
  // them ORPHANED after a grace period).
  return FindNode(p, t.node_id()) == nullptr;
}

v1::Task TaskTemplate(const v1::Service& service) {
  const v1::ServiceSpec& spec = service.spec();
  v1::Task t;
  t.set_service_id(service.meta().id());
  t.set_service_name(spec.name());
  t.set_stack(spec.stack());
  *t.mutable_spec() = spec.container();
  *t.mutable_resources() = spec.resources();
  *t.mutable_placement() = spec.placement();
  *t.mutable_networks() = spec.networks();
  *t.mutable_endpoint() = spec.endpoint();
  *t.mutable_restart_policy() = spec.restart_policy();
  t.set_service_spec_version(service.spec_version());
  t.set_desired_state(IsJob(spec.mode()) ? v1::TASK_COMPLETE : v1::TASK_RUNNING);
  return t;
}

v1::Task PlacementProbe(const v1::Task& task) {
  v1::Task probe;
  probe.set_service_id(task.service_id());
  *probe.mutable_placement()->mutable_constraints() = task.placement().constraints();
  return probe;
}

bool CanStart(const v1::Node& node, const v1::Task& probe) {
  return scheduler::Explain(node, {}, probe).empty();
}

bool CanStay(const v1::Node& node, const v1::Task& probe) {
  if (node.status().state() == v1::NodeStatus::STATE_DOWN) return false;
  if (node.spec().availability() == v1::NodeSpec::AVAILABILITY_DRAIN) return false;
  // The probe carries only constraints: without any, nothing else can refuse.
  if (probe.placement().constraints().empty()) return true;
  if (CanStart(node, probe)) return true;
  if (node.status().state() == v1::NodeStatus::STATE_READY &&
      node.spec().availability() == v1::NodeSpec::AVAILABILITY_ACTIVE) {
    return false;  // the scheduler refused it for a constraint
  }
  // Not ready or paused: ask the scheduler about the constraints alone, so
  // that their meaning lives in one place.
  v1::Node as_ready = node;
  as_ready.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
  as_ready.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
  return CanStart(as_ready, probe);
}

namespace {

void Retire(Pass& p, const v1::Task& t) {
  p.changes.Edit(t).set_desired_state(v1::TASK_SHUTDOWN);
  p.counters.shut_down++;
}

void Create(Pass& p, ServiceTasks& st, uint64_t slot, const std::string& node_id,
            uint64_t restart_attempt) {
  v1::Task t = TaskTemplate(*st.service);
  for (v1::NetworkAttachment& a : *t.mutable_networks()) {
    auto net = p.state.Find(store::Kind::kNetwork, "name", a.target());
    if (!net.empty()) a.set_subnet(net.front()->network().subnet());
  }
  t.mutable_meta()->set_id(p.ids.NewTaskId());
  t.set_slot(slot);
  t.set_node_id(node_id);
  t.set_restart_attempt(restart_attempt);
  t.mutable_status()->set_state(v1::TASK_NEW);
  t.mutable_status()->set_timestamp_ns(p.now_ns);
  t.mutable_status()->set_message("created");
  st.created.push_back(&p.changes.Create(std::move(t)));
  p.counters.created++;
}

}  // namespace

bool RetireUnit(Pass& p, const v1::Task& t) {
  if (!p.changes.Reserve(p.changes.CostOf(t))) return false;
  Retire(p, t);
  return true;
}

bool CreateUnit(Pass& p, ServiceTasks& st, uint64_t slot, const std::string& node_id,
                uint64_t restart_attempt) {
  if (!p.changes.Reserve(1)) return false;
  Create(p, st, slot, node_id, restart_attempt);
  return true;
}

bool ReplaceUnit(Pass& p, ServiceTasks& st, const v1::Task& old, uint64_t restart_attempt) {
  if (!p.changes.Reserve(p.changes.CostOf(old) + 1)) return false;
  Retire(p, old);
  bool global = IsGlobal(st.service->spec().mode());
  Create(p, st, global ? 0 : old.slot(), global ? old.node_id() : "", restart_attempt);
  return true;
}

}  // namespace shoal::orchestrator::internal
