#include "shoal/manager/control_loops.h"

namespace shoal::manager {

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
    seen_index_ = applied;
    orch_dirty_ = true;
    dispatcher_.Changed(store_->state());
  }
  RunDispatcher(now_ns);
  RunOrchestrator(now_ns);
}

void ControlLoops::Tick(int64_t now_ns) {
  if (!store_->is_leader()) return;
  dispatcher_.Tick(store_->state(), now_ns);
  // Timers (node down, restart delays) need a pass even when nothing changed.
  if (++ticks_ % 10 == 0) orch_dirty_ = true;
  RunDispatcher(now_ns);
  RunOrchestrator(now_ns);
}

void ControlLoops::RunDispatcher(int64_t now_ns) {
  std::vector<v1::Mutation> muts = dispatcher_.TakeMutations(store_->state(), now_ns);
  std::vector<v1::Mutation> statuses, nodes;
  for (auto& m : muts) {
    (m.op() == v1::Mutation::OP_TASK_STATUS ? statuses : nodes).push_back(std::move(m));
  }
  if (!statuses.empty()) {
    // Status merges never conflict, so one transaction carries them all.
    Propose(std::move(statuses), "dispatcher", now_ns, [](Status) {});
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
  orchestrator::Outcome out = orchestrator::Reconcile(store_->state(), now_ns, *ids_, opts);
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
