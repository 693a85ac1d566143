#include "shoal/manager/control_loops.h"

#include <memory>

namespace shoal::manager {

namespace {
constexpr size_t kMaxMutationsPerPass = 10'000;
}  // namespace

ControlLoops::ControlLoops(store::ReplicatedStore* store, dispatcher::Options options,
                           orchestrator::IdSource* ids)
    : store_(store), dispatcher_(options), ids_(ids) {}

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
    } else {
      dispatcher_.StepDown();
    }
  }
  if (!leader) return;
  uint64_t applied = store_->state().applied_index();
  if (applied != seen_index_) {
    // Only the nodes whose tasks the new entries touched can have news;
    // when the watch log no longer holds them all (a snapshot, a long
    // stall), every parked call is checked.
    auto events = store_->watch().Since(seen_index_);
    if (events.ok() && seen_index_ != 0) {
      dispatcher_.Changed(store_->state(), *events);
    } else {
      dispatcher_.Changed(store_->state());
    }
    seen_index_ = applied;
    orch_dirty_ = true;
  }
  RunDispatcher(now_ns, /*sweep=*/false);
  RunOrchestrator(now_ns);
}

void ControlLoops::Tick(int64_t now_ns) {
  if (!store_->is_leader()) return;
  dispatcher_.Tick(store_->state(), now_ns);
  // Timers need a pass even when nothing changed: the orchestrator says when
  // its next one ends (a restart or update delay, a monitor period), and a
  // pass every 10 ticks catches the rest (a node that went down).
  if (++ticks_ % 10 == 0 || (orch_wake_ns_ != 0 && now_ns >= orch_wake_ns_)) orch_dirty_ = true;
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
  orchestrator::Outcome out = orchestrator::Reconcile(store_->state(), now_ns, *ids_, opts);
  orch_wake_ns_ = out.wake_at_ns;
  if (out.mutations.empty()) return;
  orch_inflight_ = true;
  bool more = out.more_work;
  Propose(std::move(out.mutations), "orchestrator", now_ns, [this, more](Status s) {
    orch_inflight_ = false;
    // A conflict (an agent or the CLI wrote meanwhile) or a capped pass: go again.
    if (!s.ok() || more) orch_dirty_ = true;
  });
}

}  // namespace shoal::manager
