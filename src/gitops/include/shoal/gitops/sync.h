#pragma once

// One sync of a source snapshot against the cluster (issue 7, "Sync" and
// "Drift"): load every stack of the snapshot, plan it against the live
// cluster, deploy those whose source changed (or all drifted ones with
// self_heal), prune stacks that vanished from the source, and say per stack
// what happened. A failure of one stack never blocks the others.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "shoal/gitops/deployer.h"
#include "shoal/gitops/source.h"
#include "shoal/gitops/state.h"

namespace shoal::gitops {

struct SyncOptions {
  // Plan only: nothing is deployed or removed.
  bool dry_run = false;
  // Remove stacks whose latest revision came from this source and that the
  // source no longer holds.
  bool prune = false;
  // Also deploy stacks whose source did not change but whose live state
  // drifted from it (a manual `service scale`).
  bool self_heal = false;
  // Variables for interpolation (the watcher's environment); `.env` beside
  // each stack file still applies.
  std::map<std::string, std::string> environment;
  // Progress lines for the log: one per decision.
  std::function<void(const std::string&)> log;
  // Asked between the drift checks of stacks whose content did not change
  // (after every changed one was synced): true ends the sync there, so that
  // a new trigger (a webhook for the next commit) is served at once. The
  // stacks not checked keep their status.
  std::function<bool()> interrupted;
};

enum class Outcome {
  kInSync,       // nothing to do
  kDeployed,     // a new revision runs
  kDrift,        // the live stack differs (reported, not corrected)
  kFailed,       // invalid files, unplaceable tasks, a refused or failed deploy
  kRemoved,      // pruned
  kWouldRemove,  // gone from the source; kept (no --prune, or --dry-run)
};
const char* OutcomeName(Outcome o);

struct StackReport {
  std::string name;
  Outcome outcome = Outcome::kInSync;
  std::string plan_text;  // for drift and deploys
  std::string error;      // for kFailed: the cause, with file:line:column for bad files
  uint64_t revision = 0;  // for kDeployed
};

struct SyncReport {
  std::vector<StackReport> stacks;  // sorted by name
  // A failure before any stack could be looked at (the cluster unreachable).
  std::string error;
  // SyncOptions::interrupted ended it before every stack was checked.
  bool interrupted = false;

  bool Failed() const;   // error set, or any stack kFailed
  bool Drifted() const;  // any kDrift or kWouldRemove: the cluster still differs
  // `watch --once` exit codes: 1 on a failure, else 2 on drift, else 0.
  int ExitCode() const;
};

// Syncs `snapshot` and updates `state` (statuses per stack, removed stacks
// dropped). Uses `deployer` from this thread only.
SyncReport Sync(const Snapshot& snapshot, Deployer& deployer, const SyncOptions& options,
                WatchState& state);

// SHA-256 (hex) of the deterministic encoding of `spec`.
std::string SpecHash(const v1::StackSpec& spec);

}  // namespace shoal::gitops
