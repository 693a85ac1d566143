// When the agent reports what its executor observed: a status batches for
// report_delay (a quick STARTING -> RUNNING goes out once), but the exit of
// a task that should still run goes out at once, since the managers replace
// it (issue 6 (e): the restart of a killed container). An executor that
// wakes the agent (SetWakeup) has such an exit reported without waiting for
// the next poll, and exits that come together in one report.

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "shoal/agent/agent.h"

namespace v1 = shoal::v1;
using namespace std::chrono_literals;
using shoal::Code;
using shoal::Result;
using shoal::Status;

namespace {

using Clock = std::chrono::steady_clock;

// One session "s1"; the first Assignments call gets the full set (the
// tasks), later ones block until Cancel. Records the state of every reported
// update, and which heartbeat carried it.
class FakeDispatcher : public shoal::agent::DispatcherClient {
 public:
  explicit FakeDispatcher(std::vector<v1::Task> tasks) : tasks_(std::move(tasks)) {}

  Result<v1::HeartbeatReply> Heartbeat(const v1::HeartbeatRequest& req) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++heartbeats_;
    for (const auto& u : req.updates()) {
      reports_.push_back({Clock::now(), u.status().state()});
      carried_by_[u.task_id() + "/" + v1::TaskState_Name(u.status().state())] = heartbeats_;
    }
    cv_.notify_all();
    v1::HeartbeatReply r;
    r.set_session_id("s1");
    r.set_period_ns(60'000'000'000);  // no periodic heartbeat during the test
    return r;
  }
  Result<v1::AssignmentsReply> Assignments(const v1::AssignmentsRequest& req) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (req.known_generation() == 0 && !cancelled_) {
      v1::AssignmentsReply r;
      r.set_full(true);
      r.set_generation(1);
      for (const v1::Task& t : tasks_) *r.add_tasks() = t;
      return r;
    }
    cv_.wait(lock, [&] { return cancelled_; });
    return Status(Code::kUnavailable, "cancelled");
  }
  void Cancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  // Whether `n` heartbeats were made within `timeout`.
  bool WaitHeartbeats(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return heartbeats_ >= n; });
  }
  // When `state` was first reported, if it was within `timeout`.
  std::optional<Clock::time_point> WaitReported(v1::TaskState state,
                                                std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<Clock::time_point> at;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& [t, s] : reports_) {
        if (s == state) at = t;
      }
      return at.has_value();
    });
    return at;
  }
  // Which heartbeat (1, 2, ...) first carried `state` for task `id`, once
  // one did within `timeout`; 0 otherwise.
  int WaitCarried(const std::string& id, v1::TaskState state, std::chrono::milliseconds timeout) {
    const std::string key = id + "/" + v1::TaskState_Name(state);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return carried_by_.count(key) > 0; });
    auto it = carried_by_.find(key);
    return it == carried_by_.end() ? 0 : it->second;
  }

 private:
  std::vector<v1::Task> tasks_;
  std::map<std::string, int> carried_by_;  // "<task>/<state>" -> heartbeat
  int heartbeats_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::vector<std::pair<Clock::time_point, v1::TaskState>> reports_;
};

// Runs what it is told: the test sets each task's state.
class FakeExecutor : public shoal::executor::Executor {
 public:
  std::string Name() const override { return "fake"; }
  Status Start(const v1::Task& task, const std::vector<shoal::executor::TaskFile>&) override {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[task.meta().id()].state = v1::TASK_STARTING;
    return Status::Ok();
  }
  Status Stop(const std::string&, std::chrono::nanoseconds) override { return Status::Ok(); }
  Status Remove(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.erase(id);
    return Status::Ok();
  }
  std::map<std::string, shoal::executor::Observed> Poll() override {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_;
  }
  Result<std::string> Logs(const std::string&, uint64_t, size_t) override { return std::string(); }
  void SetWakeup(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lock(wake_mu_);
    wake_ = std::move(wake);
  }
  void Set(const std::string& id, v1::TaskState state) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_[id].state = state;
      if (state == v1::TASK_FAILED) tasks_[id].exit_code = 137;
    }
    if (wakes_) {
      std::lock_guard<std::mutex> lock(wake_mu_);
      if (wake_) wake_();
    }
  }
  bool HasWakeup() {
    std::lock_guard<std::mutex> lock(wake_mu_);
    return wake_ != nullptr;
  }
  // Whether Set() calls the agent's wake-up, as the docker executor does.
  bool wakes_ = false;
  bool Started(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.count(id) > 0;
  }

 private:
  std::mutex mu_;
  std::map<std::string, shoal::executor::Observed> tasks_;
  std::mutex wake_mu_;
  std::function<void()> wake_;
};

v1::Task RunningTask(const std::string& id) {
  v1::Task task;
  task.mutable_meta()->set_id(id);
  task.mutable_meta()->set_version(1);
  task.mutable_spec()->set_image("busybox");
  task.set_desired_state(v1::TASK_RUNNING);
  return task;
}

}  // namespace

TEST_CASE("agent: a task that should run and exits is reported at once", "[agent]") {
  FakeDispatcher dispatcher({RunningTask("t1")});
  FakeExecutor executor;
  shoal::agent::AgentOptions o;
  o.node_id = "n1";
  o.data_dir = (std::filesystem::temp_directory_path() / "shoal-agent-report-test").string();
  o.in_memory_store = true;
  o.poll_interval = 10ms;
  o.report_delay = 3s;  // long, so that batching shows
  auto agent = shoal::agent::Agent::Open(o, &executor, &dispatcher);
  REQUIRE(agent.ok());
  (*agent)->Start();
  const auto deadline = Clock::now() + 5s;
  while (!executor.Started("t1") && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(executor.Started("t1"));
  // The new session's second heartbeat (it carries everything) is behind us.
  REQUIRE(dispatcher.WaitHeartbeats(2, 5000ms));

  // RUNNING batches: not reported within a second of a 3 s report delay.
  executor.Set("t1", v1::TASK_RUNNING);
  CHECK_FALSE(dispatcher.WaitReported(v1::TASK_RUNNING, 1000ms).has_value());
  // Its death goes out at once (well before the 3 s of the pending batch).
  const auto died = Clock::now();
  executor.Set("t1", v1::TASK_FAILED);
  auto at = dispatcher.WaitReported(v1::TASK_FAILED, 1500ms);
  REQUIRE(at.has_value());
  CHECK(*at - died < 1000ms);
  (*agent)->Stop();
}

TEST_CASE("agent: an executor's wake-up reports exits without waiting for a poll", "[agent]") {
  std::vector<v1::Task> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back(RunningTask("t" + std::to_string(i)));
  FakeDispatcher dispatcher(tasks);
  FakeExecutor executor;
  executor.wakes_ = true;
  shoal::agent::AgentOptions o;
  o.node_id = "n1";
  o.data_dir = (std::filesystem::temp_directory_path() / "shoal-agent-wake-test").string();
  o.in_memory_store = true;
  // The periodic poll never comes within the test: the full set's arrival
  // starts the tasks, and after that only the executor's wake-ups poll.
  o.poll_interval = 60s;
  o.wake_coalesce = 100ms;  // long, so that the coalescing shows on a loaded machine
  o.report_delay = 1ms;
  auto agent = shoal::agent::Agent::Open(o, &executor, &dispatcher);
  REQUIRE(agent.ok());
  (*agent)->Start();
  REQUIRE(executor.HasWakeup());
  const auto deadline = Clock::now() + 5s;
  auto all_started = [&] {
    for (const auto& t : tasks) {
      if (!executor.Started(t.meta().id())) return false;
    }
    return true;
  };
  while (!all_started() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(all_started());
  for (const auto& t : tasks) executor.Set(t.meta().id(), v1::TASK_RUNNING);
  for (const auto& t : tasks) {
    REQUIRE(dispatcher.WaitCarried(t.meta().id(), v1::TASK_RUNNING, 5000ms) > 0);
  }
  // Ten deaths within the coalescing window: one heartbeat carries them.
  for (const auto& t : tasks) executor.Set(t.meta().id(), v1::TASK_FAILED);
  const int first = dispatcher.WaitCarried("t0", v1::TASK_FAILED, 5000ms);
  REQUIRE(first > 0);
  for (const auto& t : tasks) {
    CHECK(dispatcher.WaitCarried(t.meta().id(), v1::TASK_FAILED, 1000ms) == first);
  }
  (*agent)->Stop();
  CHECK_FALSE(executor.HasWakeup());  // unregistered: the executor outlives the agent
}

TEST_CASE("agent: its assigned tasks are in its database after a restart", "[agent]") {
  // On disk, as on a real node: Apply writes a reply's tasks in one batch.
  const auto dir = std::filesystem::temp_directory_path() / "shoal-agent-persist-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<v1::Task> tasks;
  for (int i = 0; i < 3; ++i) tasks.push_back(RunningTask("t" + std::to_string(i)));
  shoal::agent::AgentOptions o;
  o.node_id = "n1";
  o.data_dir = dir.string();
  o.poll_interval = 10ms;
  {
    FakeDispatcher dispatcher(tasks);
    FakeExecutor executor;
    auto agent = shoal::agent::Agent::Open(o, &executor, &dispatcher);
    REQUIRE(agent.ok());
    (*agent)->Start();
    const auto deadline = Clock::now() + 5s;
    while (!executor.Started("t2") && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    REQUIRE(executor.Started("t2"));
    (*agent)->Stop();
  }
  FakeDispatcher dispatcher({});
  FakeExecutor executor;
  auto again = shoal::agent::Agent::Open(o, &executor, &dispatcher);
  REQUIRE(again.ok());
  CHECK((*again)->task_count() == 3);  // loaded before any manager answers
  again->reset();
  std::filesystem::remove_all(dir);
}
