#include "changes.h"

#include <cassert>
#include <utility>

namespace shoal::orchestrator::internal {

bool Changes::Reserve(size_t n) {
  if (exhausted_) return false;
  if (used_ > 0 && n > 0 && used_ + n > budget_) {
    exhausted_ = true;
    return false;
  }
  used_ += n;
  return true;
}

const v1::Task* Changes::View(const v1::Task& read) const {
  if (index_.empty()) return &read;  // most passes over a settled service change nothing
  auto it = index_.find(read.meta().id());
  if (it == index_.end()) return &read;
  const Entry& e = entries_[it->second];
  return e.op == v1::Mutation::OP_DELETE ? nullptr : &e.task;
}

v1::Task& Changes::Edit(const v1::Task& read) {
  auto [it, inserted] = index_.try_emplace(read.meta().id(), entries_.size());
  if (inserted) {
    entries_.push_back(Entry{v1::Mutation::OP_PUT, read.meta().version(), false, &read, read});
  }
  return entries_[it->second].task;
}

v1::Task& Changes::Create(v1::Task task) {
  index_[task.meta().id()] = entries_.size();
  entries_.push_back(Entry{v1::Mutation::OP_PUT, 0, true, nullptr, std::move(task)});
  return entries_.back().task;
}

void Changes::Delete(const v1::Task& read) {
  auto [it, inserted] = index_.try_emplace(read.meta().id(), entries_.size());
  if (inserted) entries_.push_back(Entry{});
  Entry& e = entries_[it->second];
  assert(!e.created);  // a pass never deletes what it creates
  e.op = v1::Mutation::OP_DELETE;
  e.expected_version = read.meta().version();
  e.read = &read;
  e.task = read;
}

std::vector<v1::Task*> Changes::Created() {
  std::vector<v1::Task*> out;
  for (Entry& e : entries_) {
    if (e.created) out.push_back(&e.task);
  }
  return out;
}

std::vector<v1::Mutation> Changes::Take() && {
  std::vector<v1::Mutation> out;
  out.reserve(entries_.size());
  for (Entry& e : entries_) {
    v1::Mutation m;
    m.set_op(e.op);
    m.set_expected_version(e.expected_version);
    *m.mutable_task() = std::move(e.task);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace shoal::orchestrator::internal
