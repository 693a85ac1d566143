#include "shoal/executor/sim.h"

#include <charconv>

#include "shoal/executor/task_util.h"

namespace shoal::executor {
namespace {

using Health = v1::TaskStatus;

// An ended task has no health, except UNHEALTHY, which says why it stopped.
void EndHealth(Observed& o) {
  if (o.health == Health::HEALTH_UNHEALTHY) return;
  o.health = Health::HEALTH_NONE;
  o.health_message.clear();
}

}  // namespace

std::string SimExecutor::Name() const { return "sim"; }

void SimExecutor::SetWakeup(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(wake_mu_);
  wake_ = std::move(wake);
}

void SimExecutor::Wake() {
  std::lock_guard<std::mutex> lock(wake_mu_);
  if (wake_) wake_();
}

void SimExecutor::MarkChanged(const std::string& id, SimTask& t) {
  if (t.changed) return;
  t.changed = true;
  changed_.push_back(id);
}

Status SimExecutor::Start(const v1::Task& task, const std::vector<TaskFile>& /*files*/) {
  const std::string& id = task.meta().id();
  if (Status s = ValidateTaskId(id); !s.ok()) return s;
  if (tasks_.count(id) != 0) return Status::Ok();
  const auto& env = task.spec().env();
  if (auto it = env.find("SHOAL_SIM_REJECT"); it != env.end()) {
    return InvalidArgument(it->second.empty() ? "rejected by SHOAL_SIM_REJECT" : it->second);
  }
  SimTask t;
  if (auto it = env.find("SHOAL_SIM_EXIT"); it != env.end()) {
    const std::string& v = it->second;
    int32_t code = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), code);
    if (ec != std::errc() || end != v.data() + v.size()) {
      return InvalidArgument("SHOAL_SIM_EXIT=\"" + v + "\" is not an exit code");
    }
    t.exits = true;
    t.exit_code = code;
  }
  const auto& test = task.spec().healthcheck().test();
  if (auto it = env.find("SHOAL_SIM_UNHEALTHY"); it != env.end()) {
    t.unhealthy = !it->second.empty() && it->second != "0";
  }
  t.health_checked = t.unhealthy || (!test.empty() && test[0] != "NONE");
  if (t.health_checked) t.obs.health = Health::HEALTH_STARTING;
  t.obs.state = v1::TASK_STARTING;
  t.obs.message = "starting";
  t.obs.container_id = "sim-" + id;
  t.queued = true;
  auto [it, inserted] = tasks_.emplace(id, std::move(t));
  due_.push_back(id);
  MarkChanged(id, it->second);
  Wake();
  return Status::Ok();
}

Status SimExecutor::Stop(const std::string& task_id, std::chrono::nanoseconds /*grace*/) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || IsTerminal(it->second.obs.state)) return Status::Ok();
  SimTask& t = it->second;
  t.obs.state = v1::TASK_SHUTDOWN;
  t.obs.message = "stopped";
  EndHealth(t.obs);
  MarkChanged(task_id, t);
  return Status::Ok();
}

Status SimExecutor::Remove(const std::string& task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return Status::Ok();
  if (!IsTerminal(it->second.obs.state)) {
    return Status(Code::kFailedPrecondition, "task " + task_id + " is still running");
  }
  // Ids left in due_/changed_ are skipped when they are not found.
  tasks_.erase(it);
  return Status::Ok();
}

void SimExecutor::Advance() {
  // Only what was due before this poll moves, so each step takes one poll.
  std::vector<std::string> due;
  due.swap(due_);
  for (const std::string& id : due) {
    auto it = tasks_.find(id);
    // Not queued: an id left over from a removed task of the same name.
    if (it == tasks_.end() || !it->second.queued) continue;
    SimTask& t = it->second;
    t.queued = false;
    const auto requeue = [&] {
      t.queued = true;
      due_.push_back(id);
    };
    if (t.obs.state == v1::TASK_STARTING) {
      t.obs.state = v1::TASK_RUNNING;
      t.obs.message = "started";
      // A healthy task is healthy at once; an unhealthy one turns so next.
      if (t.health_checked && !t.unhealthy) t.obs.health = Health::HEALTH_HEALTHY;
      if (t.exits || t.unhealthy) requeue();
      MarkChanged(id, t);
    } else if (t.obs.state == v1::TASK_RUNNING && t.unhealthy &&
               t.obs.health != Health::HEALTH_UNHEALTHY) {
      t.obs.health = Health::HEALTH_UNHEALTHY;
      t.obs.health_message = "health check failed: simulated by SHOAL_SIM_UNHEALTHY";
      if (t.exits) requeue();
      MarkChanged(id, t);
    } else if (t.obs.state == v1::TASK_RUNNING && t.exits) {
      t.obs.state = t.exit_code == 0 ? v1::TASK_COMPLETE : v1::TASK_FAILED;
      t.obs.exit_code = t.exit_code;
      t.obs.message = ExitMessage(t.exit_code);
      if (t.exit_code != 0) t.obs.error = "simulated exit code " + std::to_string(t.exit_code);
      EndHealth(t.obs);
      MarkChanged(id, t);
    }
  }
}

std::map<std::string, Observed> SimExecutor::PollChanges() {
  Advance();
  if (!due_.empty()) Wake();
  std::map<std::string, Observed> out;
  for (const std::string& id : changed_) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    it->second.changed = false;
    out.emplace(id, it->second.obs);
  }
  changed_.clear();
  return out;
}

std::map<std::string, Observed> SimExecutor::Poll() {
  Advance();
  if (!due_.empty()) Wake();
  for (const std::string& id : changed_) {
    if (auto it = tasks_.find(id); it != tasks_.end()) it->second.changed = false;
  }
  changed_.clear();
  std::map<std::string, Observed> out;
  for (const auto& [id, t] : tasks_) out.emplace(id, t.obs);
  return out;
}

Result<std::string> SimExecutor::Logs(const std::string& task_id, uint64_t offset,
                                      size_t max_bytes) {
  if (tasks_.count(task_id) == 0) return NotFound("no task " + task_id + " on this executor");
  const std::string line = "sim: task " + task_id + " runs nothing\n";
  if (offset >= line.size()) return std::string();
  return line.substr(static_cast<size_t>(offset), max_bytes);
}

}  // namespace shoal::executor
