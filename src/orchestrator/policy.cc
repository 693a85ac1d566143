#include "policy.h"

#include <algorithm>

namespace shoal::orchestrator::internal {

RestartDecision DecideRestart(const v1::Service& service, const v1::Task& ended, bool node_lost,
                              int64_t now_ns) {
  RestartDecision d;
  d.next_attempt = ended.restart_attempt() + 1;
  if (node_lost) return d;
  const v1::RestartPolicy& rp = service.spec().restart_policy();
  const v1::TaskStatus& st = ended.status();
  bool failed =
      st.state() == v1::TASK_FAILED || st.state() == v1::TASK_REJECTED || st.exit_code() != 0;
  if (rp.condition() == v1::RestartPolicy::CONDITION_NONE) {
    d.replace_now = false;
    d.reason = "restart policy: none";
    return d;
  }
  if (rp.condition() == v1::RestartPolicy::CONDITION_ON_FAILURE && !failed) {
    d.replace_now = false;
    d.reason = "restart policy: on-failure, and the task completed";
    return d;
  }
  // A task that ran longer than the window was a success of sorts: the count
  // of attempts starts again.
  int64_t ran_ns = st.timestamp_ns() - ended.meta().created_at_ns();
  if (rp.window_ns() > 0 && ran_ns > rp.window_ns()) d.next_attempt = 1;
  if (rp.max_attempts() > 0 && d.next_attempt > rp.max_attempts()) {
    d.replace_now = false;
    d.reason = "restart policy: " + std::to_string(rp.max_attempts()) + " of " +
               std::to_string(rp.max_attempts()) + " attempts made";
    return d;
  }
  if (rp.delay_ns() > 0 && now_ns < st.timestamp_ns() + rp.delay_ns()) {
    d.replace_now = false;
    d.reason = "restart delayed";
    d.restart_at_ns = st.timestamp_ns() + rp.delay_ns();
  }
  return d;
}

}  // namespace shoal::orchestrator::internal
