#include "wait.h"

#include <chrono>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <vector>

namespace shoal::cli {

namespace {

using US = v1::UpdateStatus;

bool IsJob(const v1::Service& s) {
  return s.spec().mode() == v1::MODE_REPLICATED_JOB || s.spec().mode() == v1::MODE_GLOBAL_JOB;
}

// Tasks running (healthy where checked) or completed, as many as desired.
bool CountsConverged(const v1::ServiceSummary& s) {
  if (IsJob(s.service())) return s.completed() >= s.desired();
  return s.running() == s.desired() && s.pending() == 0;
}

std::string TaskName(const v1::Task& t) {
  return t.service_name() + (t.slot() ? "." + std::to_string(t.slot()) : "@" + t.node_id());
}

std::string Why(const v1::Task& t) {
  const v1::TaskStatus& st = t.status();
  std::string why = st.error().empty() ? st.message() : st.error();
  if (st.exit_code() != 0 && why.find("code") == std::string::npos) {
    why += " (exit code " + std::to_string(st.exit_code()) + ")";
  }
  return why;
}

// The restart policy gave up on a live task of the current spec: it will
// not run again without a new spec.
bool GivenUp(const v1::Task& t) {
  return t.desired_state() <= v1::TASK_COMPLETE && t.status().state() >= v1::TASK_COMPLETE &&
         !(t.status().state() == v1::TASK_COMPLETE && t.desired_state() == v1::TASK_COMPLETE) &&
         !t.restart_message().empty() && t.restart_at_ns() == 0 &&
         t.restart_message() != "waiting for dependencies";
}

struct Poll {
  v1::ListServicesReply services;
  v1::ListTasksReply tasks;
};

}  // namespace

std::string HealthName(int health) {
  switch (health) {
    case v1::TaskStatus::HEALTH_STARTING:
      return "starting";
    case v1::TaskStatus::HEALTH_HEALTHY:
      return "healthy";
    case v1::TaskStatus::HEALTH_UNHEALTHY:
      return "unhealthy";
    default:
      return "";
  }
}

std::string UpdateStateName(int state) {
  switch (state) {
    case US::STATE_UPDATING:
      return "updating";
    case US::STATE_PAUSED:
      return "update paused";
    case US::STATE_COMPLETED:
      return "update completed";
    case US::STATE_ROLLBACK_STARTED:
      return "rolling back";
    case US::STATE_ROLLBACK_PAUSED:
      return "rollback paused";
    case US::STATE_ROLLBACK_COMPLETED:
      return "rolled back";
    default:
      return "";
  }
}

std::string ServiceState(const v1::ServiceSummary& s) {
  if (IsJob(s.service())) {
    return std::to_string(s.completed()) + "/" + std::to_string(s.desired()) + " completed";
  }
  return std::to_string(s.running()) + "/" + std::to_string(s.desired());
}

std::string RestartNote(const v1::Task& t) {
  if (t.restart_message().empty() || t.desired_state() > v1::TASK_COMPLETE) return "";
  if (t.restart_at_ns() > 0) {
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    int64_t left_s = (t.restart_at_ns() - now + 999'999'999) / 1'000'000'000;
    return "restart in " + std::to_string(left_s > 0 ? left_s : 0) + "s";
  }
  return t.restart_message();
}

int WaitConverged(Client& c, const WaitTarget& target, int timeout_s, std::string* cause) {
  const auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::seconds(timeout_s);
  std::map<std::string, std::string> shown;
  std::set<std::string> failures;
  const std::string what = target.service.empty() ? "stack " + target.stack : target.service;
  auto fail = [&](const std::string& why) {
    std::cerr << "error: " << why << "\n";
    if (cause) *cause = why;
    return 1;
  };
  while (true) {
    Poll poll;
    v1::ListServicesRequest req;
    req.set_stack(target.stack);
    req.set_name(target.service);
    grpc::Status s = c.stub->ListServices(Context(10).get(), req, &poll.services);
    if (!s.ok()) {
      // A manager failing over is not the deploy failing: wait for the next leader.
      bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (!transient || std::chrono::steady_clock::now() > deadline) {
        Fail(c, s);
        if (cause) *cause = s.error_message();
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    v1::ListTasksRequest treq;
    treq.set_stack(target.stack);
    treq.set_service(target.service);
    treq.set_live_only(false);
    std::map<std::string, uint64_t> versions;  // service id -> current spec version
    for (const auto& svc : poll.services.services()) {
      versions[svc.service().meta().id()] = svc.service().spec_version();
    }
    // Running tasks of the current spec not yet (or no longer) healthy, by
    // service id: what a healthcheck keeps out of the running count.
    std::map<std::string, std::map<int, uint64_t>> health;
    std::vector<std::string> events;
    if (c.stub->ListTasks(Context(10).get(), treq, &poll.tasks).ok()) {
      for (const auto& t : poll.tasks.tasks()) {
        // Only the current spec's tasks: an earlier one's failures are history.
        auto v = versions.find(t.service_id());
        if (v == versions.end() || v->second != t.service_spec_version()) continue;
        if (t.status().state() == v1::TASK_REJECTED) {
          return fail("task " + TaskName(t) + " was rejected: " + t.status().error());
        }
        if (GivenUp(t)) {
          return fail("task " + TaskName(t) + " failed: " + Why(t) + "; " + t.restart_message());
        }
        const bool unhealthy = t.status().health() == v1::TaskStatus::HEALTH_UNHEALTHY;
        if (t.desired_state() <= v1::TASK_RUNNING && t.status().state() == v1::TASK_RUNNING &&
            (unhealthy || t.status().health() == v1::TaskStatus::HEALTH_STARTING)) {
          health[t.service_id()][t.status().health()]++;
        }
        if (t.status().state() == v1::TASK_FAILED && failures.insert(t.meta().id()).second) {
          events.push_back("  " + TaskName(t) + " failed: " + Why(t) +
                           (t.desired_state() >= v1::TASK_SHUTDOWN ? " (replaced)" : ""));
        } else if (unhealthy && t.desired_state() >= v1::TASK_SHUTDOWN &&
                   failures.insert(t.meta().id()).second) {
          events.push_back("  " + TaskName(t) + " unhealthy: " + t.status().error() +
                           " (replaced)");
        }
      }
    }
    // A stack may have no services (networks only); a service must exist.
    bool all = target.service.empty() || !poll.services.services().empty();
    std::string failed;
    for (const auto& svc : poll.services.services()) {
      const v1::Service& sv = svc.service();
      const std::string& name = sv.spec().name();
      const US& us = sv.update_status();
      std::string line = ServiceState(svc);
      // "1/2 (1 starting)": running but not yet healthy.
      std::string waiting;
      for (const auto& [h, n] : health[sv.meta().id()]) {
        waiting += (waiting.empty() ? "" : ", ") + std::to_string(n) + " " + HealthName(h);
      }
      if (!waiting.empty()) line += " (" + waiting + ")";
      if (svc.pending() > 0 && !svc.pending_message().empty()) {
        line += ", " + std::to_string(svc.pending()) + " pending: " + svc.pending_message();
      }
      if (!sv.waiting_message().empty()) line += ", " + sv.waiting_message();
      // The rollout this wait is about, once the orchestrator started it.
      auto r = target.rollouts.find(name);
      bool ours = r != target.rollouts.end() && us.spec_version() >= r->second;
      bool current = us.spec_version() == sv.spec_version() && us.state() != US::STATE_NONE;
      if ((ours || current) && us.state() != US::STATE_COMPLETED) {
        line += " [" + UpdateStateName(us.state()) + "]";
      }
      if (shown[name] != line) {
        shown[name] = line;
        std::cout << "  " << name << ": " << line << "\n" << std::flush;
      }
      bool done = CountsConverged(svc);
      if (ours) {
        switch (us.state()) {
          case US::STATE_PAUSED:
          case US::STATE_ROLLBACK_PAUSED:
            failed = "the " + UpdateStateName(us.state()) + " for " + name + ": " + us.message();
            break;
          case US::STATE_ROLLBACK_COMPLETED:
            if (!target.rollback) {
              failed = "the update of " + name + " was rolled back: " + us.message();
            }
            break;
          case US::STATE_ROLLBACK_STARTED:
            done = false;
            break;
          default:
            break;
        }
      }
      // A rollout in progress is done once the orchestrator says so (after
      // its monitor period), not when the counts first match.
      if (current &&
          (us.state() == US::STATE_UPDATING || us.state() == US::STATE_ROLLBACK_STARTED)) {
        done = false;
      }
      all = all && done;
    }
    for (const std::string& e : events) std::cout << e << "\n" << std::flush;
    if (!failed.empty()) return fail(failed);
    if (all) {
      std::cout << what << " converged\n";
      return 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(
          what + " did not converge within " + std::to_string(timeout_s) + " s; see `shoal " +
          (target.service.empty() ? "stack ps " + target.stack : "service ps " + target.service) +
          "`");
    }
    // Quick looks first: a small deploy runs within a second, and its
    // command should end soon after (issue 6 (g)); then every 300 ms.
    const bool early = std::chrono::steady_clock::now() < start + std::chrono::seconds(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(early ? 50 : 300));
  }
}

}  // namespace shoal::cli
