#pragma once

// The restart policy: when an ended task is restarted, kept in one pure
// function so that the reconcilers share it. (Rolling updates: rollout.h.)

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/v1/objects.pb.h"

namespace shoal::orchestrator::internal {

struct RestartDecision {
  // Shut the ended task down and start its replacement in this pass. When
  // false the ended task is left as it is (still live, so its slot or node is
  // not refilled) and the decision is asked again on the next pass.
  bool replace_now = true;
  // The replacement's Task.restart_attempt: the ended task's + 1, or 1 when
  // the ended task ran longer than the policy's window (the count restarts).
  uint64_t next_attempt = 1;
  // Why it is not replaced (yet), for `service ps`: "restart in 3s",
  // "restart policy: on-failure, exit 0", "5 of 5 attempts made".
  std::string reason;
  // For a delayed restart: when it will be replaced (the end + delay).
  int64_t restart_at_ns = 0;
};

// Whether `ended` is replaced now, by the service's restart policy (the
// compose spec's deploy.restart_policy):
//   - a task whose node is down or gone (`node_lost`) is replaced at once:
//     that is not the task failing, and waiting only leaves a replica short;
//   - condition none never restarts; on-failure restarts a task that failed
//     (non-zero exit, rejected), not one that completed; any restarts both;
//   - not before the task's end (status.timestamp_ns) + delay_ns;
//   - at most max_attempts restarts (0: no limit), counted by
//     Task.restart_attempt, which the replicated state carries across
//     failovers; a task that ran longer than window_ns (when set) starts the
//     count again.
// Pure.
RestartDecision DecideRestart(const v1::Service& service, const v1::Task& ended, bool node_lost,
                              int64_t now_ns);

}  // namespace shoal::orchestrator::internal
