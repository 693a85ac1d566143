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
  }
  return d;
}

std::vector<const v1::Task*> PickStaleToReplace(const v1::Service& service,
                                                const std::vector<const v1::Task*>& stale,
                                                const std::vector<const v1::Task*>& live,
                                                int64_t now_ns) {
  const v1::ServiceSpec& spec = service.spec();
  const v1::UpdateConfig& uc = spec.update_config();
  // Jobs re-run all at once; parallelism 0 means everything at once too.
  bool job = spec.mode() == v1::MODE_REPLICATED_JOB || spec.mode() == v1::MODE_GLOBAL_JOB;
  if (job || uc.parallelism() == 0 || stale.empty()) return stale;
  // A batch is done when each of its tasks runs (and is healthy, where the
  // service checks health): count those still on their way.
  const auto& test = spec.container().healthcheck().test();
  bool checked = !test.empty() && test[0] != "NONE";
  uint64_t in_flight = 0;
  int64_t last_up_ns = 0;
  for (const v1::Task* t : live) {
    if (t->service_spec_version() != service.spec_version()) continue;
    bool up = t->status().state() == v1::TASK_RUNNING &&
              (!checked || t->status().health() == v1::TaskStatus::HEALTH_HEALTHY);
    if (!up) {
      ++in_flight;
    } else {
      last_up_ns = std::max(last_up_ns, t->status().timestamp_ns());
    }
  }
  if (in_flight >= uc.parallelism()) return {};
  // The delay runs from the moment the previous batch was up. (The monitor
  // period does not hold the next batch back, as in Swarm: it is the window
  // in which a new task's failure counts against the update.)
  if (last_up_ns > 0 && in_flight == 0 && now_ns < last_up_ns + uc.delay_ns()) return {};
  size_t n = std::min<size_t>(stale.size(), uc.parallelism() - in_flight);
  return std::vector<const v1::Task*>(stale.begin(), stale.begin() + n);
}

}  // namespace shoal::orchestrator::internal
