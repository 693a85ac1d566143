#pragma once

// The two decisions the task-lifecycle issue will make richer, each kept in
// one function so that it can be replaced without touching the reconcilers:
// when an ended task is restarted (restart policy), and which stale tasks are
// replaced now (rolling updates).

#include <cstdint>
#include <vector>

#include "shoal/v1/objects.pb.h"

namespace shoal::orchestrator::internal {

struct RestartDecision {
  // Shut the ended task down and start its replacement in this pass. When
  // false the ended task is left as it is (still live, so its slot or node is
  // not refilled) and the decision is asked again on the next pass.
  bool replace_now = true;
};

// Whether `ended` (a live task whose status says it stopped, or whose node is
// down or gone) is replaced now. Today: always. The restart supervisor will
// apply service.spec().restart_policy() here: condition (none, on-failure,
// any), delay (not before status.timestamp_ns + delay_ns; the manager then
// needs a wake-up time in the Outcome), and max_attempts within window_ns
// (Task.restart_attempt carries the count across failovers). Pure.
RestartDecision DecideRestart(const v1::Service& service, const v1::Task& ended, int64_t now_ns);

// Which of `stale` (healthy live tasks made from an older spec_version, in
// slot or node order) are shut down and replaced in this pass; `live` holds
// every live task of the service, stale or not, so that the updater can count
// what is already in flight. Today: all of them at once. The rolling updater
// will apply service.spec().update_config() here (parallelism, delay, order,
// monitor, failure action) and record its progress in service.update_status.
// Pure; returns a subset of `stale`, in its order.
std::vector<const v1::Task*> PickStaleToReplace(const v1::Service& service,
                                                const std::vector<const v1::Task*>& stale,
                                                const std::vector<const v1::Task*>& live,
                                                int64_t now_ns);

}  // namespace shoal::orchestrator::internal
