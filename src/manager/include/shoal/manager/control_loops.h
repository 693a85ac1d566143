#pragma once

// The leader's control loops over the replicated store: the orchestrator
// (which also schedules) and the dispatcher, driven after every applied batch
// and on ticks. No threads, no clock of its own: the Manager drives it on its
// event loop with the wall clock, the deterministic simulation with its own.

#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "shoal/dispatcher/dispatcher.h"
#include "shoal/orchestrator/load_index.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/store/replicated_store.h"

namespace shoal::manager {

class ControlLoops {
 public:
  // `store` and `ids` are borrowed; `ids` names new tasks.
  ControlLoops(store::ReplicatedStore* store, dispatcher::Options options,
               orchestrator::IdSource* ids);

  // After store->Process(): notices leadership changes, wakes the
  // dispatcher's parked calls, proposes status reports, node changes and one
  // orchestrator pass when the state moved.
  void AfterBatch(int64_t now_ns);
  // Every 100 ms or so: the dispatcher's timers, and now and then a pass of
  // the orchestrator even when nothing changed (its timers).
  void Tick(int64_t now_ns);

  dispatcher::Dispatcher& dispatcher() { return dispatcher_; }

 private:
  // `sweep`: every node's timers too (ticks), not only the nodes that asked.
  void RunDispatcher(int64_t now_ns, bool sweep);
  void RunOrchestrator(int64_t now_ns);
  // Records which services the applied `events` touched for the next pass.
  void NoteChanges(const std::vector<const store::Event*>& events);
  void Propose(std::vector<v1::Mutation> mutations, const char* who, int64_t now_ns,
               std::function<void(Status)> done);

  store::ReplicatedStore* store_;
  dispatcher::Dispatcher dispatcher_;
  orchestrator::IdSource* ids_;
  bool was_leader_ = false;
  uint64_t seen_index_ = 0;
  // This object's reader of the store's watch log: it reads every batch
  // right after it is applied, so the log need not keep events for it. Never
  // removed: the loops live as long as the store (which owners may destroy
  // first, so the loops' destructor must not touch it).
  uint64_t watch_reader_ = 0;
  bool orch_inflight_ = false;
  bool orch_dirty_ = true;
  bool node_inflight_ = false;
  uint64_t ticks_ = 0;
  // The orchestrator's next timer (Outcome::wake_at_ns), 0 for none.
  int64_t orch_wake_ns_ = 0;
  // The next pass looks at every service, or only at orch_services_ (those
  // whose objects or tasks changed since the last pass began).
  bool orch_full_ = true;
  std::set<std::string> orch_services_;
  // A pass left tasks unplaced: full passes retry them every 10 ticks.
  bool orch_pending_ = false;
  // The scheduler's load of the assigned tasks, kept from the applied
  // events while leader, so that a pass need not walk every task.
  orchestrator::LoadIndex loads_;
};

}  // namespace shoal::manager
