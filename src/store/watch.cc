#include "shoal/store/watch.h"

#include <algorithm>
#include <cstdint>

namespace shoal::store {

void WatchLog::Append(const std::vector<Event>& events) {
  for (const auto& e : events) {
    events_.push_back(e);
    last_version_ = std::max(last_version_, e.version);
  }
  Trim();
}

void WatchLog::Trim() {
  uint64_t read_by_all = UINT64_MAX;
  for (const auto& [reader, version] : readers_) read_by_all = std::min(read_by_all, version);
  while (events_.size() > capacity_ ||
         (events_.size() > keep_ && events_.front().version <= read_by_all)) {
    dropped_through_ = events_.front().version;
    events_.pop_front();
  }
}

uint64_t WatchLog::AddReader(uint64_t version) {
  uint64_t reader = next_reader_++;
  readers_[reader] = version;
  return reader;
}

void WatchLog::SetRead(uint64_t reader, uint64_t version) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  it->second = version;
  Trim();
}

void WatchLog::RemoveReader(uint64_t reader) {
  readers_.erase(reader);
  Trim();
}

void WatchLog::Append(std::vector<Event>&& events) {
  for (auto& e : events) {
    last_version_ = std::max(last_version_, e.version);
    events_.push_back(std::move(e));
  }
  events.clear();
  Trim();
}

Status WatchLog::CheckFrom(uint64_t from) const {
  if (from >= dropped_through_) return Status::Ok();
  return Status(Code::kFailedPrecondition,
                "watch from version " + std::to_string(from) + " is too old: events up to " +
                    std::to_string(dropped_through_) +
                    " were compacted; reload the state and watch from its version");
}

Result<std::vector<const Event*>> WatchLog::SinceInPlace(uint64_t from) const {
  if (Status s = CheckFrom(from); !s.ok()) return s;
  std::vector<const Event*> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), from,
                             [](uint64_t v, const Event& e) { return v < e.version; });
  out.reserve(static_cast<size_t>(events_.end() - it));
  for (; it != events_.end(); ++it) out.push_back(&*it);
  return out;
}

Result<std::vector<Event>> WatchLog::Since(uint64_t from, size_t max) const {
  // Several events share a version (one transaction); dropping part of one
  // version's events counts as dropping it.
  if (Status s = CheckFrom(from); !s.ok()) return s;
  std::vector<Event> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), from,
                             [](uint64_t v, const Event& e) { return v < e.version; });
  for (; it != events_.end() && out.size() < max; ++it) out.push_back(*it);
  // Never part of a version: a watcher resumes from the last version it saw,
  // so the rest of that version's events would be lost. A batch entry can
  // hold more events than `max`.
  for (; it != events_.end() && !out.empty() && it->version == out.back().version; ++it) {
    out.push_back(*it);
  }
  return out;
}

}  // namespace shoal::store
