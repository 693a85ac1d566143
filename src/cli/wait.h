#pragma once

// Waiting for a deploy (or a `service update`/`rollback`) to take effect,
// with progress lines and an honest exit code (design.md section 8): a
// rollout that paused or rolled back, a job that failed for good, a task
// rejected or given up by its restart policy all end the wait with 1.

#include <cstdint>
#include <map>
#include <string>

#include "client.h"

namespace shoal::cli {

struct WaitTarget {
  std::string stack;    // every service of the stack, or
  std::string service;  // one service (full name)
  // Service name -> the spec_version whose rollout is waited for
  // (DeployReply.rollouts): it must complete; paused or rolled back fails.
  std::map<std::string, uint64_t> rollouts;
  // The wait is for a rollback (`service rollback`): its completion is
  // success, not a failure.
  bool rollback = false;
};

// Polls (every 50 ms for the first second, then every 300 ms) until every
// service of the target runs its current spec (replicas running and healthy
// where checked, jobs completed, rollouts completed), a failure ends it, or
// `timeout_s` passes. Prints a line per change of a service and each task
// failure once. Returns 0 or 1; on 1 the cause is in *cause (may be null)
// and on stderr. A manager failing over is waited out.
int WaitConverged(Client& c, const WaitTarget& target, int timeout_s, std::string* cause);

// "healthy", "starting", "unhealthy"; "" for no healthcheck.
std::string HealthName(int health);
// "updating", "paused", "completed", "rolling back", "rollback paused",
// "rolled back"; "" for none.
std::string UpdateStateName(int state);
// "1/2", or "3/3 completed" for a job.
std::string ServiceState(const v1::ServiceSummary& s);
// What `service ps` says of a task the restart policy does not replace
// (yet): "restart in 3s", "restart policy: 5 of 5 attempts made"; "" if none.
std::string RestartNote(const v1::Task& t);

}  // namespace shoal::cli
