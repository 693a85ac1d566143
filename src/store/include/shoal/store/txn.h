#pragma once

// Builds the one Command that a store transaction becomes. Optimistic
// concurrency: each write carries the version of the object as the writer
// read it (its meta.version; 0 for a new object), and State::Apply refuses
// the whole transaction if any object changed in between.
//
//   Txn txn;
//   v1::Service svc = *state.Get<v1::Service>(id);   // read
//   svc.mutable_spec()->set_replicas(5);              // change
//   txn.Put(svc);                                     // expects svc.meta().version()
//   propose(std::move(txn).Build("cli", now_ns));

#include <cstdint>
#include <string>

#include "shoal/store/state.h"

namespace shoal::store {

class Txn {
 public:
  // Creates or updates `object`, expecting the version it carries.
  template <class T>
  void Put(const T& object) {
    v1::Mutation* m = command_.mutable_transaction()->add_mutations();
    m->set_op(v1::Mutation::OP_PUT);
    m->set_expected_version(object.meta().version());
    *KindTraits<T>::Mutable(m) = object;
  }

  // Deletes `object`, expecting the version it carries.
  template <class T>
  void Delete(const T& object) {
    v1::Mutation* m = command_.mutable_transaction()->add_mutations();
    m->set_op(v1::Mutation::OP_DELETE);
    m->set_expected_version(object.meta().version());
    *KindTraits<T>::Mutable(m) = object;
  }

  // Records an agent's report on a task: merged by State::Apply only if it
  // moves the task's state forward (Mutation::OP_TASK_STATUS), never a conflict.
  void SetTaskStatus(const std::string& task_id, const v1::TaskStatus& status) {
    v1::Mutation* m = command_.mutable_transaction()->add_mutations();
    m->set_op(v1::Mutation::OP_TASK_STATUS);
    m->mutable_task()->mutable_meta()->set_id(task_id);
    *m->mutable_task()->mutable_status() = status;
  }
  bool empty() const { return command_.transaction().mutations_size() == 0; }
  size_t size() const { return command_.transaction().mutations_size(); }

  // The command to propose; `proposed_at_ns` is the proposer's clock, which
  // becomes the objects' created/updated time on every manager alike.
  v1::Command Build(std::string proposer, int64_t proposed_at_ns) &&;

 private:
  v1::Command command_;
};

}  // namespace shoal::store
