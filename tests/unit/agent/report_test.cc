// When the agent reports what its executor observed: a status batches for
// report_delay (a quick STARTING -> RUNNING goes out once), but the exit of
// a task that should still run goes out at once, since the managers replace
// it (issue 6 (e): the restart of a killed container).

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

// One session "s1"; the first Assignments call gets the full set (one task),
// later ones block until Cancel. Records the state of every reported update.
class FakeDispatcher : public shoal::agent::DispatcherClient {
 public:
  explicit FakeDispatcher(v1::Task task) : task_(std::move(task)) {}

  Result<v1::HeartbeatReply> Heartbeat(const v1::HeartbeatRequest& req) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++heartbeats_;
    for (const auto& u : req.updates()) reports_.push_back({Clock::now(), u.status().state()});
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
      *r.add_tasks() = task_;
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

 private:
  v1::Task task_;
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
  void Set(const std::string& id, v1::TaskState state) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_[id].state = state;
    if (state == v1::TASK_FAILED) tasks_[id].exit_code = 137;
  }
  bool Started(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.count(id) > 0;
  }

 private:
  std::mutex mu_;
  std::map<std::string, shoal::executor::Observed> tasks_;
};

}  // namespace

TEST_CASE("agent: a task that should run and exits is reported at once", "[agent]") {
  v1::Task task;
  task.mutable_meta()->set_id("t1");
  task.mutable_meta()->set_version(1);
  task.mutable_spec()->set_image("busybox");
  task.set_desired_state(v1::TASK_RUNNING);
  FakeDispatcher dispatcher(task);
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
