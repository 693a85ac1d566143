#include "shoal/executor/sim.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <iostream>

using namespace shoal::executor;
namespace v1 = shoal::v1;
using shoal::Code;

namespace {

v1::Task SimTask(const std::string& id, std::map<std::string, std::string> env = {}) {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.mutable_spec()->set_image("nginx");
  for (auto& [k, v] : env) (*t.mutable_spec()->mutable_env())[k] = v;
  return t;
}

}  // namespace

TEST_CASE("sim: start, run, stop, remove", "[sim]") {
  SimExecutor ex;
  CHECK(ex.Name() == "sim");
  REQUIRE(ex.Start(SimTask("a"), {}).ok());
  CHECK(ex.Start(SimTask("a"), {}).ok());  // idempotent
  auto all = ex.Poll();
  REQUIRE(all.count("a") == 1);
  CHECK(all["a"].state == v1::TASK_RUNNING);
  CHECK(ex.Poll()["a"].state == v1::TASK_RUNNING);
  CHECK(ex.Remove("a").code() == Code::kFailedPrecondition);
  REQUIRE(ex.Stop("a", std::chrono::seconds(10)).ok());
  CHECK(ex.Poll()["a"].state == v1::TASK_SHUTDOWN);
  CHECK(ex.Stop("a", {}).ok());
  CHECK(ex.Stop("unknown", {}).ok());
  REQUIRE(ex.Remove("a").ok());
  CHECK(ex.Poll().empty());
  CHECK(ex.Remove("a").ok());
}

TEST_CASE("sim: a task stopped before the first poll never runs", "[sim]") {
  SimExecutor ex;
  REQUIRE(ex.Start(SimTask("a"), {}).ok());
  REQUIRE(ex.Stop("a", {}).ok());  // stopped before it ever ran
  CHECK(ex.Poll()["a"].state == v1::TASK_SHUTDOWN);
  SimExecutor ex2;
  REQUIRE(ex2.Start(SimTask("b"), {}).ok());
  auto changes = ex2.PollChanges();
  CHECK(changes["b"].state == v1::TASK_RUNNING);
}

TEST_CASE("sim: a healthcheck reports HEALTHY with RUNNING; SHOAL_SIM_UNHEALTHY turns it unhealthy",
          "[sim][health]") {
  using Health = v1::TaskStatus;
  SimExecutor ex;
  v1::Task checked = SimTask("checked");
  checked.mutable_spec()->mutable_healthcheck()->add_test("CMD-SHELL");
  checked.mutable_spec()->mutable_healthcheck()->add_test("true");
  v1::Task disabled = SimTask("disabled");
  disabled.mutable_spec()->mutable_healthcheck()->add_test("NONE");
  REQUIRE(ex.Start(checked, {}).ok());
  REQUIRE(ex.Start(disabled, {}).ok());
  REQUIRE(ex.Start(SimTask("sick", {{"SHOAL_SIM_UNHEALTHY", "1"}}), {}).ok());
  REQUIRE(
      ex.Start(SimTask("sick_exit", {{"SHOAL_SIM_UNHEALTHY", "1"}, {"SHOAL_SIM_EXIT", "0"}}), {})
          .ok());
  auto first = ex.PollChanges();
  CHECK(first["checked"].health == Health::HEALTH_HEALTHY);
  CHECK(first["disabled"].health == Health::HEALTH_NONE);
  CHECK(first["sick"].state == v1::TASK_RUNNING);
  CHECK(first["sick"].health == Health::HEALTH_STARTING);
  auto second = ex.PollChanges();
  CHECK(second.count("checked") == 0);
  CHECK(second["sick"].health == Health::HEALTH_UNHEALTHY);
  CHECK(!second["sick"].health_message.empty());
  CHECK(second["sick_exit"].state == v1::TASK_RUNNING);
  auto third = ex.PollChanges();
  CHECK(third["sick_exit"].state == v1::TASK_COMPLETE);
  CHECK(third["sick_exit"].health == Health::HEALTH_UNHEALTHY);
  // Stopped: a healthy task ends without a health, an unhealthy one keeps it.
  REQUIRE(ex.Stop("checked", {}).ok());
  REQUIRE(ex.Stop("sick", {}).ok());
  auto all = ex.Poll();
  CHECK(all["checked"].health == Health::HEALTH_NONE);
  CHECK(all["sick"].health == Health::HEALTH_UNHEALTHY);
}

TEST_CASE("sim: SHOAL_SIM_EXIT ends the task on the poll after it ran", "[sim]") {
  SimExecutor ex;
  REQUIRE(ex.Start(SimTask("ok", {{"SHOAL_SIM_EXIT", "0"}}), {}).ok());
  REQUIRE(ex.Start(SimTask("bad", {{"SHOAL_SIM_EXIT", "3"}}), {}).ok());
  auto first = ex.Poll();
  CHECK(first["ok"].state == v1::TASK_RUNNING);
  CHECK(first["bad"].state == v1::TASK_RUNNING);
  auto second = ex.Poll();
  CHECK(second["ok"].state == v1::TASK_COMPLETE);
  CHECK(second["ok"].exit_code == 0);
  CHECK(second["bad"].state == v1::TASK_FAILED);
  CHECK(second["bad"].exit_code == 3);
  CHECK(second["bad"].message == "exit 3");
  CHECK(!ex.Start(SimTask("junk", {{"SHOAL_SIM_EXIT", "x"}}), {}).ok());
}

TEST_CASE("sim: SHOAL_SIM_REJECT rejects at Start", "[sim]") {
  SimExecutor ex;
  shoal::Status s = ex.Start(SimTask("r", {{"SHOAL_SIM_REJECT", "no such image"}}), {});
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "no such image");
  CHECK(ex.Poll().empty());
  CHECK(!ex.Start(SimTask("../x"), {}).ok());
}

TEST_CASE("sim: PollChanges returns only what changed", "[sim]") {
  SimExecutor ex;
  REQUIRE(ex.Start(SimTask("a"), {}).ok());
  REQUIRE(ex.Start(SimTask("b", {{"SHOAL_SIM_EXIT", "0"}}), {}).ok());
  auto c1 = ex.PollChanges();
  CHECK(c1.size() == 2);
  auto c2 = ex.PollChanges();
  REQUIRE(c2.size() == 1);
  CHECK(c2["b"].state == v1::TASK_COMPLETE);
  CHECK(ex.PollChanges().empty());
  REQUIRE(ex.Stop("a", {}).ok());
  auto c3 = ex.PollChanges();
  REQUIRE(c3.size() == 1);
  CHECK(c3["a"].state == v1::TASK_SHUTDOWN);
  // A removed and restarted id starts over.
  REQUIRE(ex.Remove("b").ok());
  REQUIRE(ex.Start(SimTask("b", {{"SHOAL_SIM_EXIT", "0"}}), {}).ok());
  CHECK(ex.PollChanges()["b"].state == v1::TASK_RUNNING);
  CHECK(ex.PollChanges()["b"].state == v1::TASK_COMPLETE);
}

TEST_CASE("sim: Logs returns a fixed line", "[sim]") {
  SimExecutor ex;
  REQUIRE(ex.Start(SimTask("a"), {}).ok());
  std::string all = *ex.Logs("a", 0, 1000);
  CHECK(all == "sim: task a runs nothing\n");
  CHECK(*ex.Logs("a", 5, 4) == "task");
  CHECK(ex.Logs("a", all.size(), 10)->empty());
  CHECK(ex.Logs("zz", 0, 10).error().code() == Code::kNotFound);
}

TEST_CASE("sim: 100,000 tasks", "[.bench][sim]") {
  using Clock = std::chrono::steady_clock;
  const auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  constexpr int kTasks = 100000;
  std::vector<v1::Task> tasks;
  tasks.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) tasks.push_back(SimTask("task-" + std::to_string(i)));

  SimExecutor ex;
  auto t0 = Clock::now();
  // Counted, not REQUIREd per call: Catch's assertion costs more than a call.
  int errors = 0;
  for (const v1::Task& t : tasks) errors += ex.Start(t, {}).ok() ? 0 : 1;
  auto t1 = Clock::now();
  auto changes = ex.PollChanges();
  auto t2 = Clock::now();
  REQUIRE(changes.size() == kTasks);
  auto quiet = ex.PollChanges();
  auto t3 = Clock::now();
  REQUIRE(quiet.empty());
  auto all = ex.Poll();
  auto t4 = Clock::now();
  REQUIRE(all.size() == kTasks);
  for (const v1::Task& t : tasks) errors += ex.Stop(t.meta().id(), {}).ok() ? 0 : 1;
  for (const v1::Task& t : tasks) errors += ex.Remove(t.meta().id()).ok() ? 0 : 1;
  auto t5 = Clock::now();
  REQUIRE(errors == 0);
  REQUIRE(ex.size() == 0);
  std::cout << "sim executor, " << kTasks << " tasks: start " << ms(t1 - t0)
            << " ms, first PollChanges " << ms(t2 - t1) << " ms, idle PollChanges " << ms(t3 - t2)
            << " ms, full Poll " << ms(t4 - t3) << " ms, stop+remove " << ms(t5 - t4) << " ms\n";
}

TEST_CASE("sim: a due step wakes the agent, so it need not poll often", "[sim]") {
  SimExecutor ex;
  int wakes = 0;
  ex.SetWakeup([&] { ++wakes; });
  REQUIRE(ex.Start(SimTask("a"), {}).ok());
  CHECK(wakes == 1);  // its start is due at the next poll
  CHECK(ex.PollChanges()["a"].state == v1::TASK_RUNNING);
  CHECK(wakes == 1);  // nothing left due
  REQUIRE(ex.Start(SimTask("b", {{"SHOAL_SIM_EXIT", "3"}}), {}).ok());
  CHECK(wakes == 2);
  CHECK(ex.Poll()["b"].state == v1::TASK_RUNNING);
  CHECK(wakes == 3);  // its exit is due next
  CHECK(ex.Poll()["b"].state == v1::TASK_FAILED);
  CHECK(wakes == 3);
  ex.SetWakeup(nullptr);
  REQUIRE(ex.Start(SimTask("c"), {}).ok());
  CHECK(wakes == 3);
}
