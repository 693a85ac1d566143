#pragma once

// What a watcher remembers between runs, in `<data dir>/watch-state.json`:
// per stack, what it last deployed and how that went. `shoal watch status`
// prints it; a restarted watcher resumes from it (a stack whose content hash
// is unchanged is not deployed again, only checked for drift).

#include <cstdint>
#include <map>
#include <string>

#include "shoal/common/status.h"

namespace shoal::gitops {

enum class SyncState {
  kInSync,     // the live stack matches the source
  kOutOfSync,  // drift seen and not corrected (no --self-heal, or --dry-run)
  kFailed,     // the last attempt failed; last_error says why
};
const char* SyncStateName(SyncState s);  // "in sync", "out of sync", "failed"

struct StackStatus {
  SyncState state = SyncState::kInSync;
  // SHA-256 of the stack spec last deployed (or found already live) from the
  // source; a new hash means the source changed for this stack.
  std::string content_hash;
  std::string commit;     // the source revision it came from
  uint64_t revision = 0;  // the stack revision on the cluster
  std::string last_error;
  int64_t time_ns = 0;  // when this status was set
};

struct WatchState {
  std::string source;         // Source::Describe() of the watcher that wrote it
  std::string last_revision;  // the source revision of the last full sync
  std::map<std::string, StackStatus> stacks;
};

// Reads `path`; a missing file is an empty state. A file that does not parse
// fails with kCorruption naming it (the watcher then starts afresh and says so).
Result<WatchState> LoadWatchState(const std::string& path);

// Writes `path` atomically (a temporary file, fsync, rename).
Status SaveWatchState(const std::string& path, const WatchState& state);

}  // namespace shoal::gitops
