// The process executor against real processes (/bin/sh, sleep).

#include "shoal/executor/process.h"

#include <sys/stat.h>

#include "executor_test_util.h"

using namespace shoal::executor;
using namespace shoal::executor::testing;
namespace v1 = shoal::v1;
using shoal::Code;

TEST_CASE("process: exit 0 completes, exit 3 fails with its code", "[process]") {
  ProcessFixture f;
  REQUIRE(f.ex->Name() == "process");
  const std::string ok = TaskId("ok");
  const std::string bad = TaskId("bad");
  REQUIRE(f.ex->Start(ShellTask(ok, "exit 0"), {}).ok());
  REQUIRE(f.ex->Start(ShellTask(bad, "exit 3"), {}).ok());
  Observed o = WaitEnded(*f.ex, ok);
  CHECK(o.state == v1::TASK_COMPLETE);
  CHECK(o.exit_code == 0);
  CHECK(o.message == "exit 0");
  CHECK(o.error.empty());
  CHECK(!o.container_id.empty());
  o = WaitEnded(*f.ex, bad);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.exit_code == 3);
  CHECK(o.message == "exit 3");
  CHECK(o.error == "the process exited with code 3");
}

TEST_CASE("process: a process killed by a signal fails with 128+signal", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("sig");
  REQUIRE(f.ex->Start(ShellTask(id, "kill -9 $$"), {}).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_FAILED);
  CHECK(o.exit_code == 137);
  CHECK(o.message == "killed by signal 9");
  CHECK(o.error == "the process was killed by signal 9 (SIGKILL)");
}

TEST_CASE("process: env is exactly the task's, working dir honoured", "[process]") {
  ProcessFixture f;
  setenv("SHOAL_EXECUTOR_TEST_LEAK", "1", 1);
  const std::string id = TaskId("env");
  v1::Task t = ShellTask(id, "pwd; env | sort");
  (*t.mutable_spec()->mutable_env())["FOO"] = "bar baz";
  fs::path wd = f.dir() / "wd";
  fs::create_directories(wd);
  t.mutable_spec()->set_working_dir(wd.string());
  REQUIRE(f.ex->Start(t, {}).ok());
  REQUIRE(WaitEnded(*f.ex, id).state == v1::TASK_COMPLETE);
  std::string log = *f.ex->Logs(id, 0, 1 << 20);
  INFO(log);
  CHECK(log.rfind(wd.string() + "\n", 0) == 0);
  CHECK(LineValue(log, "FOO") == "bar baz");
  CHECK(LineValue(log, "SHOAL_TASK_ID") == id);
  CHECK(LineValue(log, "SHOAL_TASK_SLOT") == "3");
  CHECK(LineValue(log, "SHOAL_SERVICE_NAME") == "svc");
  CHECK(LineValue(log, "SHOAL_FILES_DIR") == (f.ex->TaskDir(id) / "files").string());
  CHECK(LineValue(log, "PATH") == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  CHECK(!LineValue(log, "HOME").empty());
  CHECK(log.find("SHOAL_EXECUTOR_TEST_LEAK") == std::string::npos);
  unsetenv("SHOAL_EXECUTOR_TEST_LEAK");

  // Without working_dir the process runs in its task dir; its own PATH wins.
  const std::string id2 = TaskId("env2");
  v1::Task t2 = ShellTask(id2, "pwd; echo PATH=$PATH");
  (*t2.mutable_spec()->mutable_env())["PATH"] = "/bin:/usr/bin";
  REQUIRE(f.ex->Start(t2, {}).ok());
  REQUIRE(WaitEnded(*f.ex, id2).state == v1::TASK_COMPLETE);
  std::string log2 = *f.ex->Logs(id2, 0, 1 << 20);
  CHECK(log2.rfind(f.ex->TaskDir(id2).string() + "\n", 0) == 0);
  CHECK(LineValue(log2, "PATH") == "/bin:/usr/bin");
}

TEST_CASE("process: Stop with a SIGTERM trap ends as SHUTDOWN before the grace", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("term");
  REQUIRE(f.ex->Start(ShellTask(id,
                                "trap 'echo got-term; exit 0' TERM; echo ready; "
                                "sleep 1000 & wait"),
                      {})
              .ok());
  CHECK(f.ex->Poll().at(id).state == v1::TASK_RUNNING);
  WaitForLog(*f.ex, id, "ready");
  const auto begin = std::chrono::steady_clock::now();
  REQUIRE(f.ex->Stop(id, 30s).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(std::chrono::steady_clock::now() - begin < 10s);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.exit_code == 0);
  CHECK(o.message == "stopped: exit 0");
  CHECK(o.error.empty());
  CHECK(f.ex->Logs(id, 0, 1 << 20)->find("got-term") != std::string::npos);
  // Stopping again, or an unknown task, is fine.
  CHECK(f.ex->Stop(id, 1s).ok());
  CHECK(f.ex->Stop(TaskId("nope"), 1s).ok());
}

TEST_CASE("process: a process ignoring SIGTERM is killed after the grace", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("stubborn");
  REQUIRE(f.ex->Start(ShellTask(id, "trap '' TERM; echo ready; sleep 1000 & wait"), {}).ok());
  WaitForLog(*f.ex, id, "ready");
  const auto begin = std::chrono::steady_clock::now();
  REQUIRE(f.ex->Stop(id, 300ms).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(std::chrono::steady_clock::now() - begin >= 300ms);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.exit_code == 137);
  CHECK(o.message == "stopped: killed by signal 9 after the grace period");
}

TEST_CASE("process: stop_signal SIGINT is the signal sent", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("int");
  v1::Task t = ShellTask(id,
                         "trap 'echo got-int; exit 0' INT; trap 'echo got-term; exit 1' TERM; "
                         "echo ready; sleep 1000 & wait");
  t.mutable_spec()->set_stop_signal("SIGINT");
  REQUIRE(f.ex->Start(t, {}).ok());
  WaitForLog(*f.ex, id, "ready");
  REQUIRE(f.ex->Stop(id, 30s).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.exit_code == 0);
  std::string log = *f.ex->Logs(id, 0, 1 << 20);
  CHECK(log.find("got-int") != std::string::npos);
  CHECK(log.find("got-term") == std::string::npos);
}

TEST_CASE("process: the task's children are stopped with it", "[process]") {
  ProcessFixture f;
  SECTION("by Stop, through the process group") {
    const std::string id = TaskId("group");
    REQUIRE(f.ex->Start(ShellTask(id, "sleep 1000 & echo child=$!; wait"), {}).ok());
    std::string log = WaitForLog(*f.ex, id, "\n");
    pid_t child = std::stoi(LineValue(log, "child"));
    REQUIRE(!ProcessGone(child));
    REQUIRE(f.ex->Stop(id, 5s).ok());
    CHECK(WaitEnded(*f.ex, id).state == v1::TASK_SHUTDOWN);
    CHECK(WaitGone(child));
  }
  SECTION("when the main process exits and leaves them behind") {
    const std::string id = TaskId("orphan");
    REQUIRE(f.ex->Start(ShellTask(id, "sleep 1000 & echo child=$!; exit 0"), {}).ok());
    std::string log = WaitForLog(*f.ex, id, "\n");
    pid_t child = std::stoi(LineValue(log, "child"));
    CHECK(WaitEnded(*f.ex, id).state == v1::TASK_COMPLETE);
    CHECK(WaitGone(child));
  }
}

TEST_CASE("process: secrets and configs are files with their content and mode", "[process]") {
  ProcessFixture f;
  // Secrets on a tmpfs stand-in, on the real /dev/shm, and on the task's disk.
  const std::string where = GENERATE("tmpfs", "dev-shm", "disk");
  fs::path shm = f.shm();
  if (where == "dev-shm") {
    if (access("/dev/shm", W_OK) != 0) return;
    shm = f.options.secrets_tmpfs = "/dev/shm";
    f.Reopen();
  } else if (where == "disk") {
    f.options.secrets_tmpfs.clear();
    f.Reopen();
  }
  const bool on_tmpfs = where != "disk";
  const std::string id = TaskId("files-" + where);
  std::vector<TaskFile> files(2);
  files[0].target = "/run/secrets/db_password";
  files[0].data = "s3cret";
  files[0].mode = 0400;
  files[0].secret = true;
  files[1].target = "app/config.yml";
  files[1].data = "a: 1\n";
  files[1].mode = 0444;
  v1::Task t = ShellTask(id,
                         "cd \"$SHOAL_FILES_DIR\"; cat run/secrets/db_password; echo; "
                         "stat -L -c %a run/secrets/db_password; cat app/config.yml; "
                         "stat -c %a app/config.yml");
  REQUIRE(f.ex->Start(t, files).ok());
  REQUIRE(WaitEnded(*f.ex, id).state == v1::TASK_COMPLETE);
  CHECK(*f.ex->Logs(id, 0, 1 << 20) == "s3cret\n400\na: 1\n444\n");

  const fs::path visible = f.ex->TaskDir(id) / "files/run/secrets/db_password";
  const fs::path on_shm = shm / ("shoal-" + id) / "run/secrets/db_password";
  CHECK(fs::is_symlink(visible) == on_tmpfs);
  CHECK(fs::exists(on_shm) == on_tmpfs);
  CHECK(ReadFile(f.ex->TaskDir(id) / "state").find("s3cret") == std::string::npos);

  REQUIRE(f.ex->Remove(id).ok());
  CHECK(!fs::exists(f.ex->TaskDir(id)));
  CHECK(!fs::exists(shm / ("shoal-" + id)));
  CHECK(f.ex->Poll().count(id) == 0);
}

TEST_CASE("process: Logs returns the output in order, by offset", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("logs");
  REQUIRE(f.ex->Start(ShellTask(id, "echo one; echo two >&2; echo three"), {}).ok());
  REQUIRE(WaitEnded(*f.ex, id).state == v1::TASK_COMPLETE);
  CHECK(*f.ex->Logs(id, 0, 1 << 20) == "one\ntwo\nthree\n");
  CHECK(*f.ex->Logs(id, 4, 3) == "two");
  CHECK(f.ex->Logs(id, 14, 100)->empty());
  CHECK(f.ex->Logs(id, 1000, 100)->empty());
  auto missing = f.ex->Logs(TaskId("unknown"), 0, 10);
  REQUIRE(!missing.ok());
  CHECK(missing.error().code() == Code::kNotFound);
}

TEST_CASE("process: Start rejects what can never run", "[process]") {
  ProcessFixture f;
  const auto rejected = [&](v1::Task t, const std::string& text, std::vector<TaskFile> files = {}) {
    shoal::Status s = f.ex->Start(t, files);
    INFO(s.ToString());
    CHECK(!s.ok());
    CHECK(s.message().find(text) != std::string::npos);
    CHECK(f.ex->Poll().count(t.meta().id()) == 0);
    CHECK(!fs::exists(f.ex->TaskDir(t.meta().id())));
  };
  v1::Task none;
  none.mutable_meta()->set_id(TaskId("none"));
  none.mutable_spec()->set_image("alpine");
  rejected(none, "no command: the process executor needs command or entrypoint");

  v1::Task bad_id = ShellTask("../escape", "true");
  rejected(bad_id, "invalid task id");

  v1::Task missing = ShellTask(TaskId("missing"), "true");
  missing.mutable_spec()->clear_entrypoint();
  missing.mutable_spec()->clear_command();
  missing.mutable_spec()->add_command("no-such-binary-anywhere");
  rejected(missing, "executable file not found in $PATH");

  v1::Task sig = ShellTask(TaskId("sig"), "true");
  sig.mutable_spec()->set_stop_signal("SIGNOPE");
  rejected(sig, "invalid signal \"SIGNOPE\"");

  v1::Task wd = ShellTask(TaskId("wd"), "true");
  wd.mutable_spec()->set_working_dir("/no/such/dir");
  rejected(wd, "is not a directory");

  v1::Task user = ShellTask(TaskId("user"), "true");
  user.mutable_spec()->set_user("no-such-user-here");
  rejected(user, "unknown user \"no-such-user-here\"");

  std::vector<TaskFile> escape(1);
  escape[0].target = "/run/../../etc/passwd";
  rejected(ShellTask(TaskId("escape"), "true"), "'..' is not allowed", escape);
}

TEST_CASE("process: without root only the agent's own user is possible", "[process]") {
  if (geteuid() == 0) {
    // Covered when the tests run unprivileged (setpriv --reuid=65534 ...).
    return;
  }
  ProcessFixture f;
  const std::string self = TaskId("self");
  v1::Task t = ShellTask(self, "id -u");
  t.mutable_spec()->set_user(std::to_string(geteuid()));
  REQUIRE(f.ex->Start(t, {}).ok());
  REQUIRE(WaitEnded(*f.ex, self).state == v1::TASK_COMPLETE);
  CHECK(*f.ex->Logs(self, 0, 100) == std::to_string(geteuid()) + "\n");

  v1::Task root = ShellTask(TaskId("root"), "id -u");
  root.mutable_spec()->set_user("0");
  shoal::Status s = f.ex->Start(root, {});
  CHECK(s.code() == shoal::Code::kInvalidArgument);
  CHECK(s.message().find("not root, so the process executor can only run tasks as that user") !=
        std::string::npos);
}

TEST_CASE("process: runs as the task's user when the agent is root", "[process]") {
  if (geteuid() != 0) {
    WARN("not root: skipping the user switch test");
    return;
  }
  ProcessFixture f;
  const std::string id = TaskId("nobody");
  v1::Task t = ShellTask(id, "id -u; id -g; id -G");
  t.mutable_spec()->set_user("65534:65534");
  shoal::Status s = f.ex->Start(t, {});
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(WaitEnded(*f.ex, id).state == v1::TASK_COMPLETE);
  CHECK(*f.ex->Logs(id, 0, 1 << 20) == "65534\n65534\n65534\n");

  // A working dir that user cannot enter fails the start, and says why.
  fs::path closed = f.dir() / "closed";
  fs::create_directories(closed);
  fs::permissions(closed, fs::perms::owner_all);
  const std::string id2 = TaskId("closed");
  v1::Task t2 = ShellTask(id2, "true");
  t2.mutable_spec()->set_user("nobody");
  t2.mutable_spec()->set_working_dir(closed.string());
  s = f.ex->Start(t2, {});
  CHECK(s.code() == shoal::Code::kInvalidArgument);
  CHECK(s.message() ==
        "cannot change to working dir \"" + closed.string() + "\": Permission denied");
  CHECK(f.ex->Poll().count(id2) == 0);
}

TEST_CASE("process: Start is idempotent, Remove waits for the exit", "[process]") {
  ProcessFixture f;
  const std::string id = TaskId("idem");
  v1::Task t = ShellTask(id, "sleep 1000");
  REQUIRE(f.ex->Start(t, {}).ok());
  const std::string pid = f.ex->Poll().at(id).container_id;
  REQUIRE(f.ex->Start(t, {}).ok());
  CHECK(f.ex->Poll().at(id).container_id == pid);
  shoal::Status s = f.ex->Remove(id);
  CHECK(s.code() == Code::kFailedPrecondition);
  REQUIRE(f.ex->Stop(id, 0ns).ok());
  Observed o = WaitEnded(*f.ex, id);
  CHECK(o.state == v1::TASK_SHUTDOWN);
  CHECK(o.exit_code == 137);
  REQUIRE(f.ex->Remove(id).ok());
  CHECK(!fs::exists(f.ex->TaskDir(id)));
  CHECK(f.ex->Remove(id).ok());
}
