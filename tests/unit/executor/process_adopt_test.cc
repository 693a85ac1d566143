// The process executor across agent restarts: a new executor over the same
// root adopts what the previous one left running, and reports what ended.

#include <sys/wait.h>

#include <regex>

#include "executor_test_util.h"
#include "shoal/executor/process.h"

using namespace shoal::executor;
using namespace shoal::executor::testing;
namespace v1 = shoal::v1;

namespace {

pid_t PidOf(Executor& ex, const std::string& id) {
  return static_cast<pid_t>(std::stoi(ex.Poll().at(id).container_id));
}

// What happens to a process when the agent that started it has died: it is
// killed (or exits) and init, not the agent, reaps it. The test process is
// its parent here, so it reaps it itself. `group`: its children go too (else
// the new executor has to find them).
void KillAndReap(pid_t pid, bool group) {
  REQUIRE(kill(group ? -pid : pid, SIGKILL) == 0);
  REQUIRE(waitpid(pid, nullptr, 0) == pid);
}

}  // namespace

TEST_CASE("process adoption: a running process is adopted and can be stopped", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("adopt");
  REQUIRE(f.ex->Start(ShellTask(id, "trap 'exit 0' TERM; echo ready; sleep 1000 & wait"), {}).ok());
  WaitForLog(*f.ex, id, "ready");
  const pid_t pid = PidOf(*f.ex, id);

  f.Reopen();  // executor A goes away without stopping anything
  CHECK(!ProcessGone(pid));
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_RUNNING);
  CHECK(o.message == "adopted");
  CHECK(o.container_id == std::to_string(pid));
  CHECK(*f.ex->Logs(id, 0, 100) == "ready\n");

  REQUIRE(f.ex->Stop(id, 30s).ok());
  o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(WaitGone(pid));
  REQUIRE(f.ex->Remove(id).ok());
}

TEST_CASE("process adoption: a task that died while no executor watched is reported", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("died");
  REQUIRE(f.ex->Start(ShellTask(id, "sleep 1000 & echo child=$!; wait"), {}).ok());
  const pid_t child = std::stoi(LineValue(WaitForLog(*f.ex, id, "\n"), "child"));
  const pid_t pid = PidOf(*f.ex, id);
  f.ex.reset();
  KillAndReap(pid, false);  // the leader only: its child is left behind

  f.Reopen();
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.exit_code == -1);
  CHECK(o.message == "exited while the agent was down; exit code unknown");
  CHECK(WaitGone(child));  // the leftover in the task's group was killed
  CHECK(o.error == o.message);
  // The verdict is recorded: a third executor reports the same.
  f.Reopen();
  CHECK(f.ex->Poll().at(id).message == o.message);
}

TEST_CASE("process adoption: an unreaped exit keeps its exit code", "[process]") {
  // The agent restarted inside the same process (a new executor, same
  // parent): the exit status is still there to be collected.
  ProcessFixture f;
  const std::string id = TaskId("zombie");
  REQUIRE(f.ex->Start(ShellTask(id, "exit 3"), {}).ok());
  // From the record, not Poll(), which could already reap the exit.
  const pid_t pid = std::stoi(LineValue(ReadFile(f.root() / id / "state"), "pid"));
  f.ex.reset();
  siginfo_t info{};
  REQUIRE(waitid(P_PID, pid, &info, WEXITED | WNOWAIT) == 0);  // exited, not reaped

  f.Reopen();
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.exit_code == 3);
  CHECK(o.message == "exit 3");
}

TEST_CASE("process adoption: a recycled pid is not mistaken for the task", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("recycled");
  REQUIRE(f.ex->Start(ShellTask(id, "sleep 1000"), {}).ok());
  const pid_t pid = PidOf(*f.ex, id);
  f.ex.reset();
  KillAndReap(pid, true);  // the record will not lead to its children any more
  // Point the record at a live process that is not the task: this test.
  const fs::path state = f.root() / id / "state";
  std::string text = ReadFile(state);
  text = std::regex_replace(text, std::regex("\npid=[0-9]+\n"),
                            "\npid=" + std::to_string(getpid()) + "\n");
  std::ofstream(state, std::ios::trunc) << text;

  f.Reopen();
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.message == "exited while the agent was down; exit code unknown");
  CHECK(f.ex->Stop(id, 0ns).ok());  // must not signal this test process
}

TEST_CASE("process adoption: a stop in progress survives the restart", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("stopping");
  REQUIRE(f.ex->Start(ShellTask(id, "trap '' TERM; echo ready; sleep 1000 & wait"), {}).ok());
  WaitForLog(*f.ex, id, "ready");
  const pid_t pid = PidOf(*f.ex, id);
  REQUIRE(f.ex->Stop(id, 300ms).ok());

  f.Reopen();  // before the grace ended: the new executor must finish the stop
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_RUNNING);
  CHECK(o.message == "stopping");
  o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.exit_code == 137);
  CHECK(WaitGone(pid));
}

TEST_CASE("process adoption: a dir without a usable record is reported failed", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("halfway");
  fs::create_directories(f.root() / id);
  f.Reopen();
  Observed o = f.ex->Poll().at(id);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.message == "the agent stopped while starting this task");
  REQUIRE(f.ex->Remove(id).ok());
  CHECK(!fs::exists(f.root() / id));
}
