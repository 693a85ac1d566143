#include "progress.h"

#include <algorithm>

namespace shoal::raft {

void Inflights::FreeLE(uint64_t index) {
  while (!queue_.empty() && queue_.front() <= index) queue_.pop_front();
}

void Inflights::FreeFirstOne() {
  if (!queue_.empty()) queue_.pop_front();
}

void Progress::BecomeProbe() {
  if (state == ProgressState::kSnapshot) {
    // The snapshot may have arrived; probe just past it.
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  pending_snapshot = 0;
  probe_sent = false;
  snapshot_ticks = 0;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  pending_snapshot = 0;
  probe_sent = false;
  inflights.Reset();
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot = snapshot_index;
  probe_sent = false;
  snapshot_ticks = 0;
  inflights.Reset();
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t match_hint) {
  if (state == ProgressState::kReplicate) {
    if (rejected <= match) return false;  // stale
    next = match + 1;
    return true;
  }
  if (next == 0 || next - 1 != rejected) return false;  // not our latest probe
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  probe_sent = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return probe_sent;
    case ProgressState::kReplicate:
      return inflights.Full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

void ReadOnly::Add(Request request, uint64_t self) {
  if (pending_.count(request.context)) return;  // a retry of a request in flight
  std::string ctx = request.context;
  pending_.emplace(ctx, std::make_pair(std::move(request), std::vector<uint64_t>{self}));
  queue_.push_back(std::move(ctx));
}

size_t ReadOnly::Ack(uint64_t from, const std::string& context) {
  auto it = pending_.find(context);
  if (it == pending_.end()) return 0;
  auto& acks = it->second.second;
  if (std::find(acks.begin(), acks.end(), from) == acks.end()) acks.push_back(from);
  return acks.size();
}

std::vector<ReadOnly::Request> ReadOnly::Advance(const std::string& context) {
  std::vector<Request> out;
  if (!pending_.count(context)) return out;
  while (!queue_.empty()) {
    std::string ctx = std::move(queue_.front());
    queue_.pop_front();
    auto it = pending_.find(ctx);
    out.push_back(std::move(it->second.first));
    pending_.erase(it);
    if (ctx == context) break;
  }
  return out;
}

const std::string* ReadOnly::LastContext() const {
  return queue_.empty() ? nullptr : &queue_.back();
}

void ReadOnly::Reset() {
  pending_.clear();
  queue_.clear();
}

}  // namespace shoal::raft
