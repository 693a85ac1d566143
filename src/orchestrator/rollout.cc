#include "rollout.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <set>
#include <string>

#include "pass.h"

namespace shoal::orchestrator::internal {

namespace {

using US = v1::UpdateStatus;

bool RollingBack(const v1::Service& s) {
  const US& us = s.update_status();
  return us.spec_version() == s.spec_version() &&
         (us.state() == US::STATE_ROLLBACK_STARTED || us.state() == US::STATE_ROLLBACK_PAUSED ||
          us.state() == US::STATE_ROLLBACK_COMPLETED);
}

// A task of the new version that stopped or failed its healthcheck: for a
// service any end is a failure (it should run), as Swarm counts "failure or
// early termination". A task the managers stopped ends SHUTDOWN, which is not.
bool IsRolloutFailure(const v1::Task& t) {
  v1::TaskState s = t.status().state();
  return s == v1::TASK_FAILED || s == v1::TASK_REJECTED || s == v1::TASK_COMPLETE ||
         t.status().health() == v1::TaskStatus::HEALTH_UNHEALTHY;
}

std::string TaskName(const v1::Task& t) {
  return t.service_name() + (t.slot() ? "." + std::to_string(t.slot()) : "@" + t.node_id());
}

std::string FailureText(const v1::Task& t) {
  const v1::TaskStatus& st = t.status();
  std::string why = !st.error().empty() ? st.error() : st.message();
  if (why.empty()) why = "exit code " + std::to_string(st.exit_code());
  return "task " + TaskName(t) + " (" + t.meta().id() + ") failed: " + why;
}

// Pacing: at most `parallelism` new tasks on their way, and `delay` after a
// batch came up before the next one starts.
std::vector<const v1::Task*> Pace(const v1::Service& service, const v1::UpdateConfig& uc,
                                  const std::vector<const v1::Task*>& stale,
                                  const std::vector<const v1::Task*>& live, int64_t now_ns,
                                  int64_t* wake_at_ns) {
  if (uc.parallelism() == 0 || stale.empty()) return stale;
  uint64_t in_flight = 0;
  int64_t last_up_ns = 0;
  for (const v1::Task* t : live) {
    if (t->service_spec_version() != service.spec_version()) continue;
    if (IsUp(*t)) {
      last_up_ns = std::max(last_up_ns, t->status().timestamp_ns());
    } else if (t->status().state() < v1::TASK_COMPLETE) {
      // On its way. (One that ended waits for its restart policy: the
      // failure action, not the pacing, decides what follows.)
      ++in_flight;
    }
  }
  if (in_flight >= uc.parallelism()) return {};
  // The delay runs from the moment the previous batch was up. (The monitor
  // period does not hold the next batch back, as in Swarm: it is the window
  // in which a new task's failure counts against the update.)
  if (last_up_ns > 0 && in_flight == 0 && now_ns < last_up_ns + uc.delay_ns()) {
    *wake_at_ns = last_up_ns + uc.delay_ns();
    return {};
  }
  size_t n = std::min<size_t>(stale.size(), uc.parallelism() - in_flight);
  return std::vector<const v1::Task*>(stale.begin(), stale.begin() + n);
}

}  // namespace

const v1::UpdateConfig& ActiveUpdateConfig(const v1::Service& service) {
  return RollingBack(service) ? service.spec().rollback_config() : service.spec().update_config();
}

Rollout PlanRollout(const v1::Service& service, const std::vector<const v1::Task*>& read,
                    const std::vector<const v1::Task*>& stale,
                    const std::vector<const v1::Task*>& live, uint64_t total, int64_t now_ns) {
  Rollout out;
  const v1::ServiceSpec& spec = service.spec();
  if (IsJob(spec.mode())) {  // jobs re-run all at once and keep no status
    out.replace = stale;
    return out;
  }
  const bool rolling_back = RollingBack(service);
  const v1::UpdateConfig& uc = ActiveUpdateConfig(service);
  out.start_first = uc.order() == v1::UpdateConfig::ORDER_START_FIRST;

  const US& cur = service.update_status();
  US next = cur;
  if (cur.spec_version() != service.spec_version() || cur.state() == US::STATE_NONE) {
    // No rollout of this version yet: a first deploy or a scale has nothing
    // stale, and keeps no status.
    if (stale.empty()) return out;
    next.Clear();
    next.set_state(US::STATE_UPDATING);
    next.set_started_at_ns(now_ns);
    next.set_spec_version(service.spec_version());
    next.set_message("update in progress");
  }

  const bool running =
      next.state() == US::STATE_UPDATING || next.state() == US::STATE_ROLLBACK_STARTED;
  if (running) {
    // Failures of the new version, each counted once (by id, replicated).
    std::set<std::string> counted(next.failed_task_ids().begin(), next.failed_task_ids().end());
    const v1::Task* first_new = nullptr;
    for (const v1::Task* t : read) {
      if (t->service_spec_version() != service.spec_version() || !IsRolloutFailure(*t)) continue;
      if (!counted.insert(t->meta().id()).second) continue;
      next.add_failed_task_ids(t->meta().id());
      if (!first_new) first_new = t;
    }
    double failed = static_cast<double>(next.failed_task_ids_size());
    if (first_new && failed > uc.max_failure_ratio() * static_cast<double>(total)) {
      v1::UpdateConfig::FailureAction action = uc.failure_action();
      // A rollback that fails pauses: there is nothing further back to go to.
      if (rolling_back && action == v1::UpdateConfig::FAILURE_ROLLBACK) {
        action = v1::UpdateConfig::FAILURE_PAUSE;
      }
      bool can_roll_back = service.has_previous_spec() && !service.previous_spec().name().empty();
      if (action == v1::UpdateConfig::FAILURE_ROLLBACK && can_roll_back) {
        v1::Service back = service;
        *back.mutable_spec() = service.previous_spec();
        *back.mutable_previous_spec() = service.spec();
        // A forced update's counter stays: it is not part of what is undone.
        back.mutable_spec()->set_force_update(service.spec().force_update());
        back.set_spec_version(service.spec_version() + 1);
        US* rs = back.mutable_update_status();
        rs->Clear();
        rs->set_state(US::STATE_ROLLBACK_STARTED);
        rs->set_started_at_ns(now_ns);
        rs->set_spec_version(back.spec_version());
        rs->set_message("update rolled back: " + FailureText(*first_new));
        out.write = std::move(back);
        out.rolled_back = true;
        return out;
      }
      if (action != v1::UpdateConfig::FAILURE_CONTINUE) {
        next.set_state(rolling_back ? US::STATE_ROLLBACK_PAUSED : US::STATE_PAUSED);
        next.set_message(std::string(rolling_back ? "rollback" : "update") +
                         " paused: " + FailureText(*first_new) +
                         (action == v1::UpdateConfig::FAILURE_ROLLBACK
                              ? " (no previous spec to roll back to)"
                              : ""));
      }
    }
  }

  const bool paused = next.state() == US::STATE_PAUSED || next.state() == US::STATE_ROLLBACK_PAUSED;
  if (!paused) out.replace = Pace(service, uc, stale, live, now_ns, &out.wake_at_ns);

  // Complete once every task runs the new version, up, for `monitor`.
  if (!paused &&
      (next.state() == US::STATE_UPDATING || next.state() == US::STATE_ROLLBACK_STARTED) &&
      stale.empty() && out.replace.empty()) {
    uint64_t up = 0;
    int64_t last_up_ns = 0;
    bool all_current = true;
    for (const v1::Task* t : live) {
      if (t->service_spec_version() != service.spec_version()) {
        all_current = false;
        break;
      }
      if (!IsUp(*t)) continue;
      ++up;
      last_up_ns = std::max(last_up_ns, t->status().timestamp_ns());
    }
    const bool all_up = all_current && up >= total && up == live.size();
    if (all_up && now_ns < last_up_ns + uc.monitor_ns())
      out.wake_at_ns = last_up_ns + uc.monitor_ns();
    if (all_up && now_ns >= last_up_ns + uc.monitor_ns()) {
      bool back = next.state() == US::STATE_ROLLBACK_STARTED;
      next.set_state(back ? US::STATE_ROLLBACK_COMPLETED : US::STATE_COMPLETED);
      next.set_completed_at_ns(now_ns);
      if (!back) next.set_message("update completed");
      // A rollback keeps its message: why the update was rolled back.
    }
  }

  if (!google::protobuf::util::MessageDifferencer::Equals(next, cur)) {
    v1::Service w = service;
    *w.mutable_update_status() = std::move(next);
    out.write = std::move(w);
  }
  return out;
}

}  // namespace shoal::orchestrator::internal
