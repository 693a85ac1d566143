#include "log.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace shoal::raft {

void RaftBug(const char* what) {
  std::fprintf(stderr, "shoal raft: internal invariant violated: %s\n", what);
  std::abort();
}

RaftLog::RaftLog(std::shared_ptr<const Snapshot> snapshot, std::vector<Entry> entries,
                 uint64_t commit, uint64_t applied)
    : snapshot_(std::move(snapshot)) {
  const auto& meta = snapshot_->metadata();
  size_t skip = 0;
  if (!entries.empty() && entries.front().index() <= meta.index()) {
    // The first stored entry is the compaction boundary.
    ents_.push_back(entries.front());
    ents_.front().clear_data();
    skip = 1;
  } else {
    Entry dummy;
    dummy.set_index(meta.index());
    dummy.set_term(meta.term());
    ents_.push_back(std::move(dummy));
  }
  for (size_t i = skip; i < entries.size(); ++i) ents_.push_back(std::move(entries[i]));
  stable_ = LastIndex();
  applied_ = std::max(applied, meta.index());
  committed_ = std::min(std::max(commit, applied_), LastIndex());
}

std::optional<uint64_t> RaftLog::Term(uint64_t i) const {
  if (i < DummyIndex() || i > LastIndex()) return std::nullopt;
  return At(i).term();
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t last_term) const {
  return last_term > LastTerm() || (last_term == LastTerm() && last_index >= LastIndex());
}

uint64_t RaftLog::FindConflict(const std::vector<Entry>& entries) const {
  for (const auto& e : entries) {
    if (!MatchTerm(e.index(), e.term())) return e.index();
  }
  return 0;
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, LastIndex());
  while (index > DummyIndex() && At(index).term() > term) --index;
  return index;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                             const std::vector<Entry>& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  uint64_t last_new = index + entries.size();
  uint64_t ci = FindConflict(entries);
  if (ci != 0) {
    if (ci <= committed_) RaftBug("follower asked to overwrite a committed entry");
    std::vector<Entry> rest(entries.begin() + static_cast<long>(ci - index - 1), entries.end());
    Append(rest);
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

uint64_t RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return LastIndex();
  uint64_t after = entries.front().index();
  if (after <= committed_) RaftBug("append would truncate committed entries");
  if (after > LastIndex() + 1) RaftBug("append leaves a gap in the log");
  while (LastIndex() >= after) ents_.pop_back();
  stable_ = std::min(stable_, after - 1);
  for (const auto& e : entries) ents_.push_back(e);
  return LastIndex();
}

std::vector<Entry> RaftLog::Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes) const {
  std::vector<Entry> out;
  lo = std::max(lo, FirstIndex());
  hi = std::min(hi, LastIndex() + 1);
  uint64_t size = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = At(i);
    size += e.ByteSizeLong();
    if (!out.empty() && size > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

std::vector<Entry> RaftLog::UnstableEntries() const {
  return Slice(stable_ + 1, LastIndex() + 1, UINT64_MAX);
}

bool RaftLog::HasNextCommitted() const {
  return !snapshot_pending_ && committed_ > applied_ && applied_ + 1 >= FirstIndex();
}

std::vector<Entry> RaftLog::NextCommitted(uint64_t max_bytes) const {
  if (!HasNextCommitted()) return {};
  return Slice(applied_ + 1, committed_ + 1, max_bytes);
}

bool RaftLog::MaybeCommit(uint64_t index, uint64_t term) {
  if (index > committed_ && Term(index) == term) {
    CommitTo(index);
    return true;
  }
  return false;
}

void RaftLog::CommitTo(uint64_t index) {
  // Never beyond what we hold: a commit index only promises a matching prefix.
  index = std::min(index, LastIndex());
  if (index > committed_) committed_ = index;
}

void RaftLog::AppliedTo(uint64_t index) {
  if (index > committed_) RaftBug("applied beyond the commit index");
  applied_ = std::max(applied_, index);
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  // A truncation between Ready and Advance makes the old promise void.
  if (index > stable_ && Term(index) == term) stable_ = index;
}

void RaftLog::Restore(std::shared_ptr<const Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  ents_.clear();
  Entry dummy;
  dummy.set_index(snapshot_->metadata().index());
  dummy.set_term(snapshot_->metadata().term());
  ents_.push_back(std::move(dummy));
  committed_ = LastIndex();
  stable_ = LastIndex();
  snapshot_pending_ = true;
}

void RaftLog::Compact(std::shared_ptr<const Snapshot> snapshot, uint64_t compact_index) {
  snapshot_ = std::move(snapshot);
  while (DummyIndex() < compact_index) ents_.pop_front();
  ents_.front().clear_data();
}

}  // namespace shoal::raft
