// The process executor's healthchecks against real probes (issue 5, item 2):
// Docker's rules for CMD, CMD-SHELL and NONE, retries, the start period and
// the timeout, and adoption by a new executor.

#include <algorithm>
#include <string>
#include <vector>

#include "executor_test_util.h"
#include "shoal/executor/process.h"

using namespace shoal::executor;
using namespace shoal::executor::testing;
namespace v1 = shoal::v1;
using Health = v1::TaskStatus;

namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// A task that sleeps, with a healthcheck of `test` probing every 50 ms.
v1::Task Checked(const std::string& id, std::vector<std::string> test, uint64_t retries = 3) {
  v1::Task t = ShellTask(id, "sleep 600");
  auto* hc = t.mutable_spec()->mutable_healthcheck();
  for (auto& s : test) hc->add_test(std::move(s));
  hc->set_interval_ns(nanoseconds(50ms).count());
  hc->set_start_interval_ns(nanoseconds(50ms).count());
  hc->set_timeout_ns(nanoseconds(2s).count());
  hc->set_retries(retries);
  return t;
}

Observed WaitHealth(Executor& ex, const std::string& id, Health::Health h,
                    milliseconds timeout = 10s) {
  auto o = WaitFor(
      ex, id, [h](const Observed& o) { return o.health == h; }, timeout);
  INFO("task " << id << " never reported health " << Health::Health_Name(h));
  REQUIRE(o.has_value());
  return *o;
}

// Lines in a file the probes append to: how many probes ran.
size_t Lines(const fs::path& p) {
  std::string text = ReadFile(p);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("health: a passing probe makes the task healthy; STARTING until then",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("healthy");
  REQUIRE(f.ex->Start(Checked(id, {"CMD-SHELL", "true"}), {}).ok());
  CHECK(f.ex->Poll().at(id).health == Health::HEALTH_STARTING);
  Observed o = WaitHealth(*f.ex, id, Health::HEALTH_HEALTHY);
  CHECK(o.state == v1::TASK_RUNNING);
  CHECK(o.health_message.empty());
}

TEST_CASE("health: `retries` failures in a row make it unhealthy, with the probe's output",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("sick");
  // Probes run in the task's working dir (the task dir by default).
  REQUIRE(
      f.ex->Start(Checked(id, {"CMD-SHELL", "echo run >> probes; echo nope; exit 1"}), {}).ok());
  Observed o = WaitHealth(*f.ex, id, Health::HEALTH_UNHEALTHY);
  CHECK(o.state == v1::TASK_RUNNING);  // the orchestrator decides what happens to it
  CHECK(o.health_message == "health check failed 3 times in a row: exit 1: nope");
  CHECK(Lines(f.ex->TaskDir(id) / "probes") == 3);

  // Stopped, it keeps UNHEALTHY in its final state, which says why it ended.
  REQUIRE(f.ex->Stop(id, 0ns).ok());
  o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.health == Health::HEALTH_UNHEALTHY);
}

TEST_CASE("health: during the start period failures do not count, one success does",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("period");
  v1::Task t = Checked(id, {"CMD-SHELL", "echo run >> probes; test -f ok"}, 1);
  t.mutable_spec()->mutable_healthcheck()->set_start_period_ns(nanoseconds(30s).count());
  REQUIRE(f.ex->Start(t, {}).ok());
  const fs::path dir = f.ex->TaskDir(id);
  // Several failed probes, each of which would be enough with retries 1.
  REQUIRE(WaitFor(*f.ex, id, [&](const Observed&) { return Lines(dir / "probes") >= 4; }));
  CHECK(f.ex->Poll().at(id).health == Health::HEALTH_STARTING);
  std::ofstream(dir / "ok") << "";
  WaitHealth(*f.ex, id, Health::HEALTH_HEALTHY);
  // Once healthy, a failure counts even within the start period (Docker).
  fs::remove(dir / "ok");
  Observed o = WaitHealth(*f.ex, id, Health::HEALTH_UNHEALTHY);
  CHECK(o.health_message == "health check failed 1 time in a row: exit 1");
}

TEST_CASE("health: after the start period failures count", "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("late");
  v1::Task t = Checked(id, {"CMD", "false"}, 2);
  t.mutable_spec()->mutable_healthcheck()->set_start_period_ns(nanoseconds(500ms).count());
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(f.ex->Start(t, {}).ok());
  WaitHealth(*f.ex, id, Health::HEALTH_UNHEALTHY);
  CHECK(std::chrono::steady_clock::now() - start >= 500ms);
}

TEST_CASE("health: a probe past its timeout is killed and counts as a failure",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("slow");
  v1::Task t = Checked(id, {"CMD-SHELL", "echo $$ > probe.pid; exec sleep 30"}, 1);
  t.mutable_spec()->mutable_healthcheck()->set_timeout_ns(nanoseconds(200ms).count());
  REQUIRE(f.ex->Start(t, {}).ok());
  const auto start = std::chrono::steady_clock::now();
  Observed o = WaitHealth(*f.ex, id, Health::HEALTH_UNHEALTHY);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(o.health_message == "health check failed 1 time in a row: timed out after 200ms");
  const pid_t probe = static_cast<pid_t>(std::stol(ReadFile(f.ex->TaskDir(id) / "probe.pid")));
  // Killed, and reaped by a later poll: no zombie is left behind.
  CHECK(WaitFor(*f.ex, id,
                [&](const Observed&) { return !fs::exists("/proc/" + std::to_string(probe)); }));
}

TEST_CASE("health: NONE, or no test, means no healthcheck; an unknown kind is rejected",
          "[process][health]") {
  ProcessFixture f;
  const std::string none = TaskId("none");
  const std::string empty = TaskId("empty");
  REQUIRE(f.ex->Start(Checked(none, {"NONE"}), {}).ok());
  REQUIRE(f.ex->Start(Checked(empty, {}), {}).ok());
  for (int i = 0; i < 20; ++i) {
    auto all = f.ex->Poll();
    CHECK(all.at(none).health == Health::HEALTH_NONE);
    CHECK(all.at(empty).health == Health::HEALTH_NONE);
    std::this_thread::sleep_for(10ms);
  }
  CHECK(!fs::exists(f.ex->TaskDir(none) / "health.log"));

  shoal::Status s = f.ex->Start(Checked(TaskId("bad"), {"HTTP", "/"}), {});
  CHECK(s.code() == shoal::Code::kInvalidArgument);
  CHECK(s.message() == "healthcheck: unknown test kind \"HTTP\" (use CMD, CMD-SHELL or NONE)");
  CHECK(!f.ex->Start(Checked(TaskId("cmd"), {"CMD"}), {}).ok());
}

TEST_CASE("health: CMD runs its args without a shell, CMD-SHELL through /bin/sh",
          "[process][health]") {
  ProcessFixture f;
  // No shell: "$NOPE" is a literal, non-empty argument.
  const std::string cmd = TaskId("cmd");
  REQUIRE(f.ex->Start(Checked(cmd, {"CMD", "test", "-n", "$NOPE"}), {}).ok());
  // A shell: "$NOPE" expands to nothing.
  const std::string shell = TaskId("shell");
  REQUIRE(f.ex->Start(Checked(shell, {"CMD-SHELL", "test -n \"$NOPE\""}), {}).ok());
  // The probe sees the task's env and working dir.
  const std::string env = TaskId("env");
  v1::Task t = Checked(
      env, {"CMD-SHELL", "test \"$FOO\" = bar && test \"$(pwd)\" = \"" + f.dir().string() + "\""});
  (*t.mutable_spec()->mutable_env())["FOO"] = "bar";
  t.mutable_spec()->set_working_dir(f.dir().string());
  REQUIRE(f.ex->Start(t, {}).ok());
  // An executable that is not there fails each probe.
  const std::string missing = TaskId("missing");
  REQUIRE(f.ex->Start(Checked(missing, {"CMD", "no-such-probe-binary"}, 1), {}).ok());

  WaitHealth(*f.ex, cmd, Health::HEALTH_HEALTHY);
  WaitHealth(*f.ex, shell, Health::HEALTH_UNHEALTHY);
  WaitHealth(*f.ex, env, Health::HEALTH_HEALTHY);
  Observed o = WaitHealth(*f.ex, missing, Health::HEALTH_UNHEALTHY);
  CHECK(o.health_message.find("executable file not found") != std::string::npos);
}

TEST_CASE("health: an adopted task keeps its health and is probed again once Start repeats",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("adopt");
  v1::Task t = Checked(id, {"CMD-SHELL", "test -f ok"}, 1);
  REQUIRE(f.ex->Start(t, {}).ok());
  std::ofstream(f.ex->TaskDir(id) / "ok") << "";
  WaitHealth(*f.ex, id, Health::HEALTH_HEALTHY);
  const std::string pid = f.ex->Poll().at(id).container_id;

  f.Reopen();
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_RUNNING);
  CHECK(o.health == Health::HEALTH_HEALTHY);
  // Without the spec no probe runs: a broken check goes unnoticed...
  fs::remove(f.ex->TaskDir(id) / "ok");
  for (int i = 0; i < 20; ++i) {
    CHECK(f.ex->Poll().at(id).health == Health::HEALTH_HEALTHY);
    std::this_thread::sleep_for(10ms);
  }
  // ...until the agent repeats Start, which starts no second process.
  REQUIRE(f.ex->Start(t, {}).ok());
  o = WaitHealth(*f.ex, id, Health::HEALTH_UNHEALTHY);
  CHECK(o.container_id == pid);
  CHECK(o.state == v1::TASK_RUNNING);
}

TEST_CASE("health: a stopped task runs no more probes and ends without a health",
          "[process][health]") {
  ProcessFixture f;
  const std::string id = TaskId("stop");
  v1::Task t = Checked(id, {"CMD-SHELL", "echo run >> probes"});
  REQUIRE(f.ex->Start(t, {}).ok());
  WaitHealth(*f.ex, id, Health::HEALTH_HEALTHY);
  REQUIRE(f.ex->Stop(id, 0ns).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.health == Health::HEALTH_NONE);
  const size_t probes = Lines(f.ex->TaskDir(id) / "probes");
  for (int i = 0; i < 20; ++i) {
    f.ex->Poll();
    std::this_thread::sleep_for(10ms);
  }
  CHECK(Lines(f.ex->TaskDir(id) / "probes") == probes);
}
