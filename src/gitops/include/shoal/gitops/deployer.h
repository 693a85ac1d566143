#pragma once

// What a sync needs from the cluster, as an interface so that the sync logic
// is tested without one. `shoal watch` implements it over the control API
// (src/cli/watch_deployer.cc); every call may block on the network, and all
// are made from the watcher's one thread.

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/objects.pb.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::gitops {

struct LiveStack {
  std::string name;
  uint64_t revision = 0;
  // The source recorded in the stack's latest revision.
  v1::Source source;
};

struct PlanResult {
  // The plan against the live cluster is not empty.
  bool changed = false;
  std::string plan_text;
  // Tasks the scheduler's dry run could not place, one line each
  // ("web slot 3: 0/2 nodes: 2 insufficient memory").
  std::vector<std::string> unplaced;
};

class Deployer {
 public:
  virtual ~Deployer() = default;

  // Every stack on the cluster. kUnavailable when no manager answers.
  virtual Result<std::vector<LiveStack>> ListStacks() = 0;

  // The plan of `spec` against the live cluster (a dry-run deploy); changes
  // nothing. Fails for a spec the managers refuse, with their message.
  virtual Result<PlanResult> Plan(const v1::StackSpec& spec) = 0;

  // Deploys `spec` as one new revision recording `source`, refused with
  // kFailedPrecondition when the stack's revision is no longer
  // `check_version` (another watcher or a user deployed meanwhile; 0: no
  // check, for a stack that does not exist yet).
  // Returns the new revision once accepted; does not wait for tasks.
  virtual Result<uint64_t> Deploy(const v1::StackSpec& spec, const v1::Source& source,
                                  uint64_t check_version) = 0;

  // Waits until revision `revision` of `stack` runs as declared. Fails with
  // the cause (a failed task, a paused or rolled back update, the timeout).
  virtual Status WaitConverged(const std::string& stack, uint64_t revision) = 0;

  // Restores `stack` to revision `to` as one new revision.
  virtual Status Rollback(const std::string& stack, uint64_t to) = 0;

  // Removes the stack and everything it declared.
  virtual Status Remove(const std::string& stack) = 0;
};

}  // namespace shoal::gitops
