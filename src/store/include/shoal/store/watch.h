#pragma once

// The change stream of the store: the last N events, so that a watcher that
// fell behind (a slow CLI, a restarted orchestrator) resumes from the version
// it saw last, and learns plainly when it is too far behind to resume.
// Threads: not thread-safe; owned by the store's event loop.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/store/state.h"

namespace shoal::store {

class WatchLog {
 public:
  // Keeps at most `capacity` events (> 0), and of the events every reader
  // has read (all of them when there is no reader) only the last `keep`.
  explicit WatchLog(size_t capacity, size_t keep = SIZE_MAX)
      : capacity_(capacity == 0 ? 1 : capacity), keep_(keep) {}

  // Readers: a consumer on the loop (the control loops, an events stream)
  // registers how far it has read, so the log keeps what it has not read yet
  // (up to capacity) and lets the rest go early. An event shares its object
  // with the State, and the State copies a shared object on its next change:
  // a task's status report would copy the whole task while the event of its
  // creation is kept. A reader is a number; it reads through `version`.
  uint64_t AddReader(uint64_t version);
  // Moves a reader on (or back); events all readers have read may be dropped.
  void SetRead(uint64_t reader, uint64_t version);
  void RemoveReader(uint64_t reader);

  // Appends events in version order (as State::Apply produced them).
  void Append(const std::vector<Event>& events);
  // The same, moving the events in (no copy of their objects); `events` is
  // left empty, its capacity kept for the next batch.
  void Append(std::vector<Event>&& events);

  // Events with version > `from`, oldest first, at most `max` except that the
  // last version returned is always whole (a watcher resumes from it; one
  // version may hold many events: a transaction, or a batch entry of many
  // commands). FailedPrecondition
  // when some of them were already dropped: the watcher must reload the state
  // (a snapshot) and watch from its applied index.
  Result<std::vector<Event>> Since(uint64_t from, size_t max = SIZE_MAX) const;
  // The same events (all of them) in place, without copying their objects:
  // the pointers stay valid until the next Append, Reset or reader call. For
  // the leader's control loops, which read every event once right after it
  // is appended.
  Result<std::vector<const Event*>> SinceInPlace(uint64_t from) const;

  // Forgets every event and treats everything up to `version` as dropped: the
  // store was replaced by a snapshot (or rebuilt at start), so a watcher older
  // than `version` must reload rather than miss changes silently.
  void Reset(uint64_t version) {
    events_.clear();
    dropped_through_ = version;
    last_version_ = version;
  }

  // The newest version seen (0 before any event).
  uint64_t last_version() const { return last_version_; }

 private:
  void Trim();  // drops the oldest events beyond capacity_
  // FailedPrecondition when events after `from` were already dropped.
  Status CheckFrom(uint64_t from) const;

  size_t capacity_;
  size_t keep_;
  std::map<uint64_t, uint64_t> readers_;  // reader -> version read through
  uint64_t next_reader_ = 1;
  std::deque<Event> events_;
  uint64_t dropped_through_ = 0;  // every event with version <= this is gone
  uint64_t last_version_ = 0;
};

}  // namespace shoal::store
