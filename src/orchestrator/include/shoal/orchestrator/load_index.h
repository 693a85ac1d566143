#pragma once

// The scheduler's per-node load of a state's assigned tasks, kept up to date
// from the applied events, so that an orchestrator pass places tasks without
// walking every task of the cluster (Options::loads). The leader's control
// loops keep one; the decisions are the same with it as without it.
//
// Counted, as Reconcile counts them: tasks that are live (desired state up to
// COMPLETE), assigned (a node and a status of at least ASSIGNED) and not yet
// finished (status before COMPLETE).
//
// Threads: not thread-safe; the thread that applies the state owns it.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/scheduler/scheduler.h"
#include "shoal/store/state.h"

namespace shoal::orchestrator {

class LoadIndex {
 public:
  // Whether Reconcile counts `task` in the scheduler's load.
  static bool Counts(const v1::Task& task);

  // Recomputes the index from every task of `state`: O(tasks).
  void Rebuild(const store::State& state);
  // After `state` applied `events` (every event since the state this index
  // matches, in order, each with the task as its change left it, or as it
  // was for a delete): O(events).
  void Update(const store::State& state, const std::vector<const store::Event*>& events);
  // Forgets everything: nothing matches until the next Rebuild.
  void Clear();

  // The index matches `state` (the state's applied index when it was last
  // rebuilt or updated); an index that does not is ignored by Reconcile.
  bool Matches(const store::State& state) const {
    return valid_ && applied_index_ == state.applied_index();
  }
  const scheduler::Usage& usage() const { return usage_; }
  // Tasks counted.
  size_t size() const { return counted_.size(); }

 private:
  struct Counted {
    std::string node_id;
    scheduler::TaskLoad load;
  };
  // The task `id` is now `task` (null: deleted).
  void Set(const std::string& id, const v1::Task* task);

  std::unordered_map<std::string, Counted> counted_;  // task id ->
  scheduler::Usage usage_;
  uint64_t applied_index_ = 0;
  bool valid_ = false;
};

}  // namespace shoal::orchestrator
