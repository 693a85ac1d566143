#include "shoal/manager/deploy.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <set>

#include "shoal/manager/manager.h"
#include "shoal/manager/secrets.h"
#include "shoal/manager/subnets.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/scheduler/scheduler.h"

namespace shoal::manager {
namespace {

using store::Kind;
using MD = google::protobuf::util::MessageDifferencer;

template <class T>
const T* ByName(const store::State& state, const std::string& name) {
  auto found = state.Find(store::KindTraits<T>::kKind, "name", name);
  return found.empty() ? nullptr : &store::KindTraits<T>::From(*found.front());
}

template <class T>
v1::Mutation Put(const T& object) {
  v1::Mutation m;
  m.set_op(v1::Mutation::OP_PUT);
  m.set_expected_version(object.meta().version());
  *store::KindTraits<T>::Mutable(&m) = object;
  return m;
}

template <class T>
v1::Mutation Delete(const T& object) {
  v1::Mutation m;
  m.set_op(v1::Mutation::OP_DELETE);
  m.set_expected_version(object.meta().version());
  *store::KindTraits<T>::Mutable(&m) = object;
  return m;
}

// Creates or updates the stack object of one kind named by `spec.name()`;
// `prune` deletes those of the stack that the new spec no longer has.
template <class T, class Spec>
Status SyncObjects(const store::State& state, const std::string& stack,
                   const google::protobuf::RepeatedPtrField<Spec>& specs, bool prune,
                   std::mt19937_64& rng, std::vector<v1::Mutation>* out) {
  std::set<std::string> declared;
  for (const Spec& spec : specs) {
    declared.insert(spec.name());
    if (spec.external()) continue;  // owned by the operator, not the stack
    const T* cur = ByName<T>(state, spec.name());
    if (cur && cur->stack() != stack) {
      return Status(Code::kAlreadyExists,
                    std::string(store::KindName(store::KindTraits<T>::kKind)) + " " + spec.name() +
                        " belongs to stack " + (cur->stack().empty() ? "(none)" : cur->stack()) +
                        ", not to " + stack);
    }
    if (cur && MD::Equals(cur->spec(), spec)) continue;
    T next;
    if (cur)
      next = *cur;
    else
      next.mutable_meta()->set_id(NewId(rng));
    *next.mutable_spec() = spec;
    next.set_stack(stack);
    out->push_back(Put(next));
  }
  if (!prune) return Status::Ok();
  for (const v1::Mutation* m : state.Find(store::KindTraits<T>::kKind, "stack", stack)) {
    const T& obj = store::KindTraits<T>::From(*m);
    if (!declared.count(obj.spec().name())) out->push_back(Delete(obj));
  }
  return Status::Ok();
}

class FakeIds : public orchestrator::IdSource {
 public:
  std::string NewTaskId() override { return "dry-run-" + std::to_string(++n_); }

 private:
  uint64_t n_ = 0;
};

}  // namespace

const v1::StackSpec* CurrentStackSpec(const store::State& state, const std::string& name,
                                      uint64_t* revision) {
  const v1::Stack* stack = ByName<v1::Stack>(state, name);
  *revision = stack ? stack->current_revision() : 0;
  if (!stack) return nullptr;
  for (const v1::Mutation* m : state.Find(Kind::kStackRevision, "stack", name)) {
    if (m->stack_revision().number() == stack->current_revision()) {
      return &m->stack_revision().spec();
    }
  }
  return nullptr;
}

namespace {

template <class T, class Spec>
void AddLive(const store::State& state, const std::string& stack,
             const google::protobuf::RepeatedPtrField<Spec>& desired,
             google::protobuf::RepeatedPtrField<Spec>* out) {
  for (const v1::Mutation* m : state.Find(store::KindTraits<T>::kKind, "stack", stack)) {
    *out->Add() = store::KindTraits<T>::From(*m).spec();
  }
  // External objects are the operator's, never the stack's: as declared.
  for (const Spec& d : desired) {
    if (d.external()) *out->Add() = d;
  }
  std::sort(out->begin(), out->end(),
            [](const Spec& a, const Spec& b) { return a.name() < b.name(); });
}

}  // namespace

v1::StackSpec LiveStackSpec(const store::State& state, const v1::StackSpec& desired) {
  v1::StackSpec live;
  live.set_name(desired.name());
  for (const v1::Mutation* m : state.Find(Kind::kService, "stack", desired.name())) {
    v1::ServiceSpec* s = live.add_services();
    *s = m->service().spec();
    // `service update --force` is the cluster's, not the file's: not a change.
    s->clear_force_update();
  }
  std::sort(live.mutable_services()->begin(), live.mutable_services()->end(),
            [](const v1::ServiceSpec& a, const v1::ServiceSpec& b) { return a.name() < b.name(); });
  AddLive<v1::Network>(state, desired.name(), desired.networks(), live.mutable_networks());
  AddLive<v1::Volume>(state, desired.name(), desired.volumes(), live.mutable_volumes());
  AddLive<v1::Secret>(state, desired.name(), desired.secrets(), live.mutable_secrets());
  AddLive<v1::Config>(state, desired.name(), desired.configs(), live.mutable_configs());
  return live;
}

const v1::StackRevision* FindRevision(const store::State& state, const std::string& stack,
                                      uint64_t number) {
  for (const v1::Mutation* m : state.Find(Kind::kStackRevision, "stack", stack)) {
    if (m->stack_revision().number() == number) return &m->stack_revision();
  }
  return nullptr;
}

Result<DeployChange> BuildDeploy(const store::State& state, const v1::DeployRequest& request,
                                 std::mt19937_64& rng, uint64_t restores,
                                 const SecretCodec* secrets) {
  // Secret values arrive plain (a deploy) or sealed (a rollback to a stored
  // revision); the plan compares plain values, the state stores sealed ones.
  v1::DeployRequest opened;
  auto plain_req = OpenRequest(request, secrets, &opened);
  if (!plain_req.ok()) return plain_req.error();
  const v1::DeployRequest& req = **plain_req;
  // Secret versions keyed under the data key before anything compares or
  // stores them: the loader's plain hash of a low-entropy value could be
  // checked against guesses by anyone who reads the state.
  v1::StackSpec keyed = req.spec();
  KeySecretVersions(secrets, &keyed);
  const v1::StackSpec& spec = keyed;
  const std::string& name = spec.name();
  if (name.empty()) return Status(Code::kInvalidArgument, "the stack has no name");
  uint64_t current = 0;
  const v1::StackSpec* before = CurrentStackSpec(state, name, &current);
  if (req.check_version() != 0 && req.check_version() != current) {
    return Status(Code::kFailedPrecondition,
                  "stack " + name + " is at revision " + std::to_string(current) + ", not " +
                      std::to_string(req.check_version()) + " (--check-version)");
  }
  // The plan compares with what runs, not with the last revision: a manual
  // `service scale` or `service update` since then shows, and is undone.
  v1::StackSpec live;
  if (before) live = LiveStackSpec(state, spec);
  if (Status s = OpenSecrets(secrets, live.mutable_secrets()); !s.ok()) return s;
  auto diff = plan::Diff(before ? &live : nullptr, spec);
  if (!diff.ok()) return diff.error();
  DeployChange change;
  change.plan = std::move(diff).value();
  // Objects the stack no longer declares are removed only with --prune, and
  // then listed first; without it they stay, as in Swarm, and are not shown.
  auto& changes = change.plan.changes;
  if (req.prune()) {
    std::stable_partition(changes.begin(), changes.end(), [](const plan::ObjectChange& c) {
      return c.action == plan::Action::kRemove;
    });
  } else {
    changes.erase(std::remove_if(changes.begin(), changes.end(),
                                 [](const plan::ObjectChange& c) {
                                   return c.action == plan::Action::kRemove;
                                 }),
                  changes.end());
  }
  plan::Summary sum = change.plan.Summarize();
  change.summary = std::to_string(sum.create) + " to create, " + std::to_string(sum.update) +
                   " to update, " + std::to_string(req.prune() ? sum.remove : 0) + " to remove";
  bool prune_something = req.prune() && sum.remove > 0;
  if (!change.plan.HasChanges() || (sum.create == 0 && sum.update == 0 && !prune_something)) {
    if (req.rebalance()) AddRebalance(state, name, &change.mutations);
    return change;
  }
  std::map<std::string, const plan::ObjectChange*> service_changes;
  for (const auto& c : change.plan.changes) {
    if (c.kind == plan::ObjectKind::kService) service_changes[c.name] = &c;
  }
  auto& out = change.mutations;
  // Stack and revision first: the whole deploy is one transaction.
  const v1::Stack* stack = ByName<v1::Stack>(state, name);
  v1::Stack next_stack;
  if (stack)
    next_stack = *stack;
  else
    next_stack.mutable_meta()->set_id(NewId(rng));
  next_stack.set_name(name);
  change.revision = current + 1;
  next_stack.set_current_revision(change.revision);
  out.push_back(Put(next_stack));
  v1::StackRevision rev;
  rev.mutable_meta()->set_id(NewId(rng));
  rev.set_stack(name);
  rev.set_number(change.revision);
  *rev.mutable_spec() = spec;
  auto sealed_secrets = SealedSecrets(state, spec.secrets(), secrets);
  if (!sealed_secrets.ok()) return sealed_secrets.error();
  *rev.mutable_spec()->mutable_secrets() = *sealed_secrets;
  *rev.mutable_source() = req.source();
  rev.set_created_by(req.created_by());
  rev.set_summary(restores
                      ? "rollback to revision " + std::to_string(restores) + ": " + change.summary
                      : change.summary);
  rev.set_rolled_back_from(restores);
  out.push_back(Put(rev));
  // Services.
  std::set<std::string> declared;
  for (v1::ServiceSpec s : spec.services()) {
    declared.insert(s.name());
    const v1::Service* cur = ByName<v1::Service>(state, s.name());
    // Names are cluster-wide: stack "evil" declaring a service "app_web"
    // must not take over stack "app"'s service.
    if (cur && cur->spec().stack() != name) {
      return Status(Code::kAlreadyExists, "service " + s.name() + " belongs to stack " +
                                              cur->spec().stack() + ", not to " + name);
    }
    if (cur) s.set_force_update(cur->spec().force_update());
    if (cur && MD::Equals(cur->spec(), s)) continue;
    v1::Service next;
    if (cur) {
      next = *cur;
      *next.mutable_previous_spec() = cur->spec();
      auto it = service_changes.find(s.name());
      if (it != service_changes.end() && it->second->replaces_tasks) {
        next.set_spec_version(cur->spec_version() + 1);
        change.rollouts[s.name()] = next.spec_version();
      }
    } else {
      next.mutable_meta()->set_id(NewId(rng));
      next.set_spec_version(1);
    }
    *next.mutable_spec() = s;
    out.push_back(Put(next));
  }
  if (req.prune()) {
    for (const v1::Mutation* m : state.Find(Kind::kService, "stack", name)) {
      if (!declared.count(m->service().spec().name())) out.push_back(Delete(m->service()));
    }
  }
  if (Status s = SyncObjects<v1::Network>(state, name, spec.networks(), req.prune(), rng, &out);
      !s.ok())
    return s;
  if (Status s = AllocateSubnets(state, &out); !s.ok()) return s;
  if (Status s = SyncObjects<v1::Volume>(state, name, spec.volumes(), req.prune(), rng, &out);
      !s.ok())
    return s;
  if (Status s = SyncObjects<v1::Secret>(state, name, *sealed_secrets, req.prune(), rng, &out);
      !s.ok())
    return s;
  if (Status s = SyncObjects<v1::Config>(state, name, spec.configs(), req.prune(), rng, &out);
      !s.ok())
    return s;
  if (req.rebalance()) AddRebalance(state, name, &out);
  return change;
}

void AddRebalance(const store::State& state, const std::string& stack,
                  std::vector<v1::Mutation>* out) {
  for (const v1::Mutation* m : state.Find(Kind::kService, "stack", stack)) {
    if (m->service().spec().mode() != v1::MODE_REPLICATED) continue;
    // The service may be written by this transaction already: ask there.
    v1::Service* s = nullptr;
    for (v1::Mutation& w : *out) {
      if (w.has_service() && w.service().meta().id() == m->service().meta().id()) {
        s = w.mutable_service();
      }
    }
    if (s == nullptr) {
      out->push_back(Put(m->service()));
      s = out->back().mutable_service();
    }
    s->set_rebalance_requested(s->rebalance_requested() + 1);
  }
}

std::vector<v1::UnplacedTask> DryRunPlacement(const store::State& state, const DeployChange& change,
                                              const std::string& stack) {
  std::vector<v1::UnplacedTask> out;
  store::State copy = state;
  uint64_t index = copy.applied_index();
  v1::Command cmd;
  for (const auto& m : change.mutations) *cmd.mutable_transaction()->add_mutations() = m;
  if (!change.mutations.empty() && !copy.Apply(++index, cmd, nullptr).ok()) return out;
  FakeIds ids;
  orchestrator::Options opts;
  opts.max_mutations = SIZE_MAX;
  for (int round = 0; round < 3; ++round) {
    auto pass = orchestrator::Reconcile(copy, Manager::NowNs(), ids, opts);
    if (pass.mutations.empty()) break;
    v1::Command c;
    for (auto& m : pass.mutations) *c.mutable_transaction()->add_mutations() = std::move(m);
    if (!copy.Apply(++index, c, nullptr).ok()) break;
  }
  for (const v1::Mutation* m : copy.List(Kind::kTask)) {
    const v1::Task& t = m->task();
    if (t.stack() != stack || t.desired_state() > v1::TASK_RUNNING) continue;
    if (!t.node_id().empty() && t.status().state() != v1::TASK_PENDING) continue;
    if (t.scheduling_message().empty() && t.status().state() != v1::TASK_PENDING) continue;
    v1::UnplacedTask u;
    u.set_service(t.service_name());
    u.set_slot(t.slot());
    u.set_node_id(t.node_id());
    u.set_message(t.scheduling_message());
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<v1::Mutation> RemoveStack(const store::State& state, const std::string& name,
                                      bool volumes) {
  std::vector<v1::Mutation> out;
  for (const v1::Mutation* m : state.Find(Kind::kService, "stack", name)) {
    out.push_back(Delete(m->service()));
    if (!volumes) continue;
    // The nodes learn it through the tasks they run (the volume objects are
    // gone with this transaction): each task is told to stop and to take its
    // volumes with it.
    for (const v1::Mutation* t : state.Find(Kind::kTask, "service", m->service().meta().id())) {
      v1::Task task = t->task();
      if (task.remove_volumes()) continue;
      task.set_remove_volumes(true);
      if (task.desired_state() < v1::TASK_SHUTDOWN) task.set_desired_state(v1::TASK_SHUTDOWN);
      out.push_back(Put(task));
    }
  }
  for (const v1::Mutation* m : state.Find(Kind::kNetwork, "stack", name)) {
    out.push_back(Delete(m->network()));
  }
  for (const v1::Mutation* m : state.Find(Kind::kVolume, "stack", name)) {
    out.push_back(Delete(m->volume()));
  }
  for (const v1::Mutation* m : state.Find(Kind::kSecret, "stack", name)) {
    out.push_back(Delete(m->secret()));
  }
  for (const v1::Mutation* m : state.Find(Kind::kConfig, "stack", name)) {
    out.push_back(Delete(m->config()));
  }
  // The stack and its history go too: `stack rm` is final, as in Swarm.
  for (const v1::Mutation* m : state.Find(Kind::kStackRevision, "stack", name)) {
    out.push_back(Delete(m->stack_revision()));
  }
  if (const v1::Stack* s = ByName<v1::Stack>(state, name)) out.push_back(Delete(*s));
  return out;
}

v1::ServiceSummary Summarize(const store::State& state, const v1::Service& service) {
  v1::ServiceSummary sum;
  *sum.mutable_service() = service;
  bool job = service.spec().mode() == v1::MODE_REPLICATED_JOB ||
             service.spec().mode() == v1::MODE_GLOBAL_JOB;
  bool global =
      service.spec().mode() == v1::MODE_GLOBAL || service.spec().mode() == v1::MODE_GLOBAL_JOB;
  // With a healthcheck a task counts as running once it is healthy, so that
  // deploy waits for health. A health other than NONE also comes from an
  // image's own healthcheck (Docker), which the spec does not show.
  const auto& test = service.spec().container().healthcheck().test();
  const bool checked = !test.empty() && test[0] != "NONE";
  const auto ready = [&](const v1::Task& t) {
    v1::TaskStatus::Health h = t.status().health();
    if (checked || h != v1::TaskStatus::HEALTH_NONE) return h == v1::TaskStatus::HEALTH_HEALTHY;
    return true;
  };
  uint64_t live = 0;
  for (const v1::Mutation* m : state.Find(Kind::kTask, "service", service.meta().id())) {
    const v1::Task& t = m->task();
    bool current = t.service_spec_version() == service.spec_version();
    if (t.desired_state() <= v1::TASK_RUNNING || (job && t.desired_state() == v1::TASK_COMPLETE)) {
      if (current) ++live;
      if (t.status().state() == v1::TASK_RUNNING && current && ready(t)) {
        sum.set_running(sum.running() + 1);
      }
      if (t.status().state() == v1::TASK_PENDING || t.node_id().empty()) {
        sum.set_pending(sum.pending() + 1);
        if (sum.pending_message().empty()) sum.set_pending_message(t.scheduling_message());
      } else if (current && t.status().state() >= v1::TASK_ASSIGNED) {
        sum.set_placed(sum.placed() + 1);
      }
    }
    if (job && current && t.status().state() == v1::TASK_COMPLETE) {
      sum.set_completed(sum.completed() + 1);
    }
  }
  if (global) {
    // Every node that could take a task counts, so a global service is not
    // "converged" before its tasks exist.
    v1::Task probe;
    *probe.mutable_placement() = service.spec().placement();
    *probe.mutable_resources() = service.spec().resources();
    std::vector<v1::Task> none;
    uint64_t eligible = 0;
    for (const v1::Mutation* n : state.List(Kind::kNode)) {
      const v1::Node& node = n->node();
      if (node.status().state() != v1::NodeStatus::STATE_READY ||
          node.spec().availability() != v1::NodeSpec::AVAILABILITY_ACTIVE) {
        continue;
      }
      if (scheduler::Explain(node, none, probe).empty()) ++eligible;
    }
    sum.set_desired(std::max(live, eligible));
  } else {
    sum.set_desired(service.spec().replicas());
  }
  return sum;
}

const v1::Service* FindService(const store::State& state, const std::string& name_or_id) {
  if (const v1::Service* s = state.Get<v1::Service>(name_or_id)) return s;
  return ByName<v1::Service>(state, name_or_id);
}

const v1::Node* FindNode(const store::State& state, const std::string& id_or_name) {
  if (const v1::Node* n = state.Get<v1::Node>(id_or_name)) return n;
  return ByName<v1::Node>(state, id_or_name);
}

v1::StackSpec Redacted(v1::StackSpec spec) {
  for (auto& s : *spec.mutable_secrets()) {
    s.clear_data();
  }
  return spec;
}

}  // namespace shoal::manager
