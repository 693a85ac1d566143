#include "shoal/manager/control_loops.h"

#include <memory>

namespace shoal::manager {

namespace {
constexpr size_t kMaxMutationsPerPass = 10'000;
// Events of one turn beyond which the orchestrator's pass waits for the next.
constexpr size_t kHeavyTurnEvents = 2'000;
}  // namespace

ControlLoops::ControlLoops(store::ReplicatedStore* store, dispatcher::Options options,
                           orchestrator::IdSource* ids)
    : store_(store), dispatcher_(options), ids_(ids) {
  watch_reader_ = store_->watch().AddReader(store_->state().applied_index());
}

void ControlLoops::Propose(std::vector<v1::Mutation> mutations, const char* who, int64_t now_ns,
                           std::function<void(Status)> done) {
  v1::Command cmd;
  for (auto& m : mutations) *cmd.mutable_transaction()->add_mutations() = std::move(m);
  cmd.set_proposer(who);
  cmd.set_proposed_at_ns(now_ns);
  store_->Propose(std::move(cmd), [done = std::move(done)](Status s, uint64_t) { done(s); });
}

void ControlLoops::AfterBatch(int64_t now_ns) {
  bool leader = store_->is_leader();
  if (leader != was_leader_) {
    was_leader_ = leader;
    seen_index_ = 0;  // the first batch of a term wakes every parked call
    if (leader) {
      dispatcher_.BecomeLeader(store_->state(), now_ns);
      orch_dirty_ = true;  // a full pass after failover
      orch_full_ = true;
    } else {
      dispatcher_.StepDown();
      loads_.Clear();
    }
  }
  uint64_t applied = store_->state().applied_index();
  if (!leader) {
    store_->watch().SetRead(watch_reader_, applied);
    return;
  }
  bool heavy = false;
  if (applied != seen_index_) {
    // Only the nodes whose tasks the new entries touched can have news, and
    // only the services they touched need a look; when the watch log no
    // longer holds them all (a snapshot, a long stall), every parked call is
    // checked and the orchestrator looks at everything.
    auto events = store_->watch().SinceInPlace(seen_index_);
    if (events.ok() && seen_index_ != 0) {
      dispatcher_.Changed(store_->state(), *events);
      NoteChanges(*events);
      loads_.Update(store_->state(), *events);
      heavy = events->size() >= kHeavyTurnEvents;
    } else {
      dispatcher_.Changed(store_->state());
      orch_full_ = true;
      orch_dirty_ = true;
      loads_.Rebuild(store_->state());
    }
    seen_index_ = applied;
    store_->watch().SetRead(watch_reader_, applied);
  }
  RunDispatcher(now_ns, /*sweep=*/false);
  // After a large batch (its apply and the agents it woke already took this
  // turn), the pass waits for the next turn: the loop then sends Raft's
  // heartbeats in between, so no single turn outlasts an election timeout on
  // a loaded machine.
  if (!heavy) RunOrchestrator(now_ns);
}

void ControlLoops::NoteChanges(const std::vector<const store::Event*>& events) {
  for (const store::Event* e : events) {
    const v1::Mutation& m = e->mutation;
    if (m.has_task()) {
      orch_services_.insert(m.task().service_id());
    } else if (m.has_service()) {
      orch_services_.insert(m.service().meta().id());
    } else {
      // Nodes, networks, the cluster object, stacks...: rare, and any
      // service may depend on them.
      orch_full_ = true;
    }
  }
  if (orch_full_ || !orch_services_.empty()) orch_dirty_ = true;
}

void ControlLoops::Tick(int64_t now_ns) {
  if (!store_->is_leader()) return;
  dispatcher_.Tick(store_->state(), now_ns);
  // Timers need a full pass even when nothing changed: the orchestrator says
  // when its next one ends (a restart or update delay, a monitor period).
  // Tasks left pending are tried again every 10 ticks (another service's
  // task may have ended and freed room), and every 100 ticks a full pass
  // catches anything else.
  ++ticks_;
  bool full = (orch_wake_ns_ != 0 && now_ns >= orch_wake_ns_) ||
              (orch_pending_ && ticks_ % 10 == 0) || ticks_ % 100 == 0;
  if (full) {
    orch_wake_ns_ = 0;  // the full pass sets it again
    orch_full_ = true;
    orch_dirty_ = true;
  }
  RunDispatcher(now_ns, /*sweep=*/true);
  RunOrchestrator(now_ns);
}

void ControlLoops::RunDispatcher(int64_t now_ns, bool sweep) {
  std::vector<v1::Mutation> muts = dispatcher_.TakeMutations(store_->state(), now_ns, sweep);
  std::vector<v1::Mutation> statuses, nodes;
  for (auto& m : muts) {
    (m.op() == v1::Mutation::OP_TASK_STATUS ? statuses : nodes).push_back(std::move(m));
  }
  if (!statuses.empty()) {
    // Status merges never conflict, so one transaction carries them all.
    // Agents stop reporting a status once a heartbeat carried it, so a
    // failed proposal hands its reports back to the dispatcher.
    auto copy = std::make_shared<std::vector<v1::Mutation>>(statuses);
    Propose(std::move(statuses), "dispatcher", now_ns, [this, copy](Status s) {
      if (!s.ok()) dispatcher_.Requeue(*copy);
    });
  }
  if (!nodes.empty() && !node_inflight_) {
    node_inflight_ = true;
    Propose(std::move(nodes), "dispatcher", now_ns, [this](Status) { node_inflight_ = false; });
  }
}

void ControlLoops::RunOrchestrator(int64_t now_ns) {
  if (!orch_dirty_ || orch_inflight_) return;
  orch_dirty_ = false;
  orchestrator::Options opts;
  // One pass is in flight at a time, so the budget sets the pace of a large
  // deploy: a pass and its commit take about the same time for 2,000 tasks
  // as for 10,000 (the pass walks every task either way), and a 10,000-task
  // transaction is a few MB, well within a Raft message.
  opts.max_mutations = kMaxMutationsPerPass;
  // Incremental unless something other than tasks and services changed:
  // only the services whose objects or tasks changed since the last pass.
  bool full = orch_full_;
  opts.services = full ? nullptr : &orch_services_;
  opts.loads = &loads_;
  orchestrator::Outcome out = orchestrator::Reconcile(store_->state(), now_ns, *ids_, opts);
  orch_full_ = false;
  orch_services_.clear();
  if (full) {
    orch_wake_ns_ = out.wake_at_ns;
    orch_pending_ = out.pending > 0;
  } else {
    // Other services' timers and pending tasks still stand.
    if (out.wake_at_ns != 0 && (orch_wake_ns_ == 0 || out.wake_at_ns < orch_wake_ns_)) {
      orch_wake_ns_ = out.wake_at_ns;
    }
    orch_pending_ = orch_pending_ || out.pending > 0;
  }
  if (out.mutations.empty()) return;
  orch_inflight_ = true;
  bool more = out.more_work;
  auto unfinished = std::make_shared<std::vector<std::string>>(std::move(out.unfinished_services));
  Propose(std::move(out.mutations), "orchestrator", now_ns, [this, more, unfinished](Status s) {
    orch_inflight_ = false;
    if (!s.ok() || (more && unfinished->empty())) {
      // A conflict (an agent or the CLI wrote meanwhile): which services
      // it concerns is not known, so everything is looked at again.
      orch_dirty_ = true;
      orch_full_ = true;
    } else if (more) {
      // A capped pass goes on where it stopped.
      orch_services_.insert(unfinished->begin(), unfinished->end());
      orch_dirty_ = true;
    }
  });
}

}  // namespace shoal::manager
