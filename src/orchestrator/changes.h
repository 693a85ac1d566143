#pragma once

// The task changes one Reconcile pass decides, kept as an overlay on the read
// state: every later step of the pass (reaping, scheduling) sees the tasks as
// the earlier steps left them, which is what makes a pass idempotent (a task
// shut down in this pass already counts as history for the reaper).
//
// Changes are admitted in units (a replacement is one unit of two mutations)
// against the Options.max_mutations budget, so that a pass cut short leaves
// no half-made decision behind.
//
// Threads: one pass, one thread.

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/v1/commands.pb.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::orchestrator::internal {

class Changes {
 public:
  explicit Changes(size_t budget) : budget_(budget) {}

  // Admits a unit of `n` more mutations. False, and exhausted() from then on,
  // when it would exceed the budget; the first unit is always admitted so
  // that every call makes progress, however small the budget.
  bool Reserve(size_t n);
  bool exhausted() const { return exhausted_; }

  // Mutations a change to this existing task would add: 0 if the task was
  // already changed in this pass (the change joins its mutation), else 1.
  size_t CostOf(const v1::Task& read) const { return index_.count(read.meta().id()) ? 0 : 1; }

  // The task as this pass leaves it (the read one when unchanged), or null
  // when this pass deletes it.
  const v1::Task* View(const v1::Task& read) const;

  // A copy of `read` to change, made on the first call and shared by later
  // ones. The caller has reserved the cost. `read` must not be deleted.
  v1::Task& Edit(const v1::Task& read);
  // Adds a new task (its meta.id set by the caller). The caller has reserved
  // one mutation. The reference stays valid for the life of this object.
  v1::Task& Create(v1::Task task);
  // Deletes `read` (replacing any edit of it in this pass).
  void Delete(const v1::Task& read);

  // The tasks created in this pass, in creation order.
  std::vector<v1::Task*> Created();

  // Calls f(read, view) for each task of the state this pass changed, in
  // the order first changed: `view` as the pass leaves it, null if deleted.
  template <class F>
  void ForEachChanged(F&& f) const {
    for (const Entry& e : entries_) {
      if (e.read == nullptr) continue;
      f(*e.read, e.op == v1::Mutation::OP_DELETE ? nullptr : &e.task);
    }
  }

  // The mutations, in the order their tasks were first changed.
  std::vector<v1::Mutation> Take() &&;

 private:
  struct Entry {
    v1::Mutation::Op op = v1::Mutation::OP_PUT;
    uint64_t expected_version = 0;  // 0 for a new task
    bool created = false;
    const v1::Task* read = nullptr;  // the task of the state (null if created)
    v1::Task task;
  };

  size_t budget_;
  size_t used_ = 0;
  bool exhausted_ = false;
  std::deque<Entry> entries_;                      // stable references
  std::unordered_map<std::string, size_t> index_;  // task id -> entry
};

}  // namespace shoal::orchestrator::internal
