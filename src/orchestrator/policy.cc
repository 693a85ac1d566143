#include "policy.h"

namespace shoal::orchestrator::internal {

RestartDecision DecideRestart(const v1::Service& /*service*/, const v1::Task& /*ended*/,
                              int64_t /*now_ns*/) {
  // Restart policies arrive with the task-lifecycle issue; until then every
  // ended task is replaced at once, as Swarm's default policy (any, no limit)
  // does apart from its delay.
  return RestartDecision{};
}

std::vector<const v1::Task*> PickStaleToReplace(const v1::Service& /*service*/,
                                                const std::vector<const v1::Task*>& stale,
                                                const std::vector<const v1::Task*>& /*live*/,
                                                int64_t /*now_ns*/) {
  // No rolling updates yet: everything stale is replaced in one pass.
  return stale;
}

}  // namespace shoal::orchestrator::internal
