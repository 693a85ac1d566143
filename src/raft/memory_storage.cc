#include "shoal/raft/memory_storage.h"

namespace shoal::raft {

MemoryStorage::MemoryStorage() {
  current_.snapshot = std::make_shared<Snapshot>();
  durable_.snapshot = current_.snapshot;
}

Result<PersistentState> MemoryStorage::Load() {
  if (failing_) return IoError("memory storage: simulated disk failure");
  PersistentState s;
  s.hard_state = current_.hard_state;
  s.snapshot = current_.snapshot;
  s.entries.assign(current_.entries.begin(), current_.entries.end());
  return s;
}

void MemoryStorage::Apply(const Op& op, State* state) {
  if (op.install) {
    state->snapshot = op.install;
    state->entries.clear();
  }
  if (op.local) {
    state->snapshot = op.local;
    while (!state->entries.empty() && state->entries.front().index() < op.compact_index) {
      state->entries.pop_front();
    }
  }
  if (!op.entries.empty()) {
    uint64_t first = op.entries.front().index();
    while (!state->entries.empty() && state->entries.back().index() >= first) {
      state->entries.pop_back();
    }
    for (const auto& e : op.entries) state->entries.push_back(e);
  }
  if (op.has_hard_state) state->hard_state = op.hard_state;
}

void MemoryStorage::Record(Op op, bool sync) {
  Apply(op, &current_);
  if (!sync) {
    unsynced_.push_back(std::move(op));
    return;
  }
  for (const auto& earlier : unsynced_) Apply(earlier, &durable_);
  unsynced_.clear();
  Apply(op, &durable_);
}

Status MemoryStorage::Save(const StorageWrite& write) {
  if (failing_) return IoError("memory storage: simulated disk failure");
  Op op;
  if (write.snapshot) op.install = std::make_shared<Snapshot>(*write.snapshot);
  if (write.hard_state) {
    op.has_hard_state = true;
    op.hard_state = *write.hard_state;
  }
  op.entries.assign(write.entries.begin(), write.entries.end());
  Record(std::move(op), write.sync);
  return Status::Ok();
}

Status MemoryStorage::SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) {
  if (failing_) return IoError("memory storage: simulated disk failure");
  Op op;
  op.local = std::make_shared<Snapshot>(snapshot);
  op.compact_index = compact_index;
  Record(std::move(op), true);
  return Status::Ok();
}

void MemoryStorage::LoseUnsyncedWrites() {
  unsynced_.clear();
  current_ = durable_;
}

}  // namespace shoal::raft
