#pragma once

// The sim executor (design.md section 5): runs nothing and only walks each
// task through the states a real executor would report, so that one process
// can host a thousand simulated nodes with a hundred tasks each. No threads,
// no files; every call is O(1) per task it touches, except Poll(), which has
// to return every task (PollChanges() returns only what changed).
//
// Behaviour, driven by the task's env so that a stack file can script it:
//   Start                    -> STARTING; RUNNING at the next poll
//   spec.healthcheck (not NONE) -> health STARTING, HEALTHY with RUNNING
//   SHOAL_SIM_UNHEALTHY=1    -> health STARTING, UNHEALTHY at the poll after RUNNING
//   SHOAL_SIM_EXIT=<code>    -> at the poll after RUNNING (after UNHEALTHY, if
//                               that is set too): COMPLETE (0) or FAILED (code)
//   SHOAL_SIM_REJECT=<msg>   -> Start fails with <msg> (the agent reports REJECTED)
//   Stop                     -> SHUTDOWN at once (grace is ignored)
//   Remove                   -> forgotten
//
// Threads: one caller thread, like every Executor.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/executor/executor.h"

namespace shoal::executor {

class SimExecutor final : public Executor {
 public:
  SimExecutor() = default;

  // "sim".
  std::string Name() const override;

  // Records the task as STARTING. Errors: an invalid task id, SHOAL_SIM_REJECT
  // set, or a SHOAL_SIM_EXIT that is not an integer.
  Status Start(const v1::Task& task, const std::vector<TaskFile>& files) override;

  // SHUTDOWN at once unless the task already ended.
  Status Stop(const std::string& task_id, std::chrono::nanoseconds grace) override;

  // Forgets an ended task; kFailedPrecondition while it "runs".
  Status Remove(const std::string& task_id) override;

  // Advances due tasks one step and reports every task.
  std::map<std::string, Observed> Poll() override;

  // Like Poll(), but returns only the tasks whose Observed changed since the
  // previous Poll() or PollChanges(): what a scale test's agent loop wants.
  std::map<std::string, Observed> PollChanges() override;

  // Keeps `wake` and calls it whenever a task has a step due at the next
  // poll (after Start, and after a poll that left a step queued), so an
  // agent that polls rarely still moves each task on within its wake-up's
  // coalescing delay. Called from the agent's thread; `wake` runs under a
  // lock of this executor's own, so once SetWakeup(nullptr) returns it is
  // neither running nor called again.
  void SetWakeup(std::function<void()> wake) override;

  // A fixed line per task, sliced from `offset`.
  Result<std::string> Logs(const std::string& task_id, uint64_t offset, size_t max_bytes) override;

  // How many tasks it knows; for tests and scale checks.
  size_t size() const { return tasks_.size(); }

 private:
  struct SimTask {
    Observed obs;
    bool exits = false;           // SHOAL_SIM_EXIT was set
    bool health_checked = false;  // reports a health
    bool unhealthy = false;       // SHOAL_SIM_UNHEALTHY was set
    int32_t exit_code = 0;
    bool queued = false;   // in due_: advances at the next poll
    bool changed = false;  // in changed_: reported by the next PollChanges
  };

  void Advance();
  void Wake();
  void MarkChanged(const std::string& id, SimTask& t);

  std::unordered_map<std::string, SimTask> tasks_;
  // Tasks that move at the next poll, and tasks that moved since the last
  // one; both keep Poll work proportional to what happens, not to the total.
  std::vector<std::string> due_;
  std::vector<std::string> changed_;
  std::mutex wake_mu_;
  std::function<void()> wake_;  // under wake_mu_
};

}  // namespace shoal::executor
