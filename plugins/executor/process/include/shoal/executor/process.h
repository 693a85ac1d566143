#pragma once

// The process executor: runs each task as a host process (design.md section
// 5), the embedded default of `shoal daemon --dev`. docs/executors.md
// describes what a task sees and the limits of running without containers.
//
// Per task it keeps `<root>/<task id>/` with:
//   state       what a later executor needs to adopt the process (pid, start time, stop)
//   output.log  the process's stdout and stderr, appended in order
//   health.log  the output of the last healthcheck probe
//   files/      secrets and configs at their target paths (SHOAL_FILES_DIR)
//
// Threads: like every Executor, one caller thread; it starts none of its own.
// Stop escalation (SIGKILL after the grace period), reaping and healthcheck
// probes happen in Poll(), so the kill lands at the first Poll after the
// grace ends, and probe intervals and timeouts are as precise as the polls.

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "shoal/executor/executor.h"

namespace shoal::executor {

struct ProcessOptions {
  // A tmpfs on which each task's secrets get a dir `shoal-<task id>`, so they
  // never reach a disk. Empty, or not writable: secrets stay in the task's
  // files dir on the root's file system (docs/executors.md).
  std::filesystem::path secrets_tmpfs = "/dev/shm";
};

class ProcessExecutor final : public Executor {
 public:
  // Opens (creating it if needed) the executor's `root`, e.g.
  // <data-dir>/tasks, and adopts what a previous executor over the same root
  // left: processes still running are watched again, those that exited in
  // the meantime are reported. Errors when `root` cannot be made or listed.
  static Result<std::unique_ptr<ProcessExecutor>> Open(std::filesystem::path root,
                                                       ProcessOptions options = {});

  // Leaves every process running, by design: the agent going away (restart,
  // upgrade, crash) must not take its tasks down. A later Open over the same
  // root adopts them; to end them, Stop each task and Poll until it exited.
  ~ProcessExecutor() override;

  ProcessExecutor(const ProcessExecutor&) = delete;
  ProcessExecutor& operator=(const ProcessExecutor&) = delete;

  // "process".
  std::string Name() const override;

  // Runs entrypoint + command with exactly the task's env (plus PATH, HOME
  // and SHOAL_* defaults) in its working_dir (default: the task dir), as its
  // user when set, and its healthcheck's probes with the same. Errors (->
  // REJECTED): no command, unknown user, another user while the agent is not
  // root, bad stop_signal, missing working dir or executable, a file target
  // with "..", a healthcheck test that is not CMD, CMD-SHELL or NONE. For a
  // known task it starts nothing and only resumes the healthcheck of an
  // adopted one, whose spec the executor did not have.
  Status Start(const v1::Task& task, const std::vector<TaskFile>& files) override;

  // Sends the task's stop signal to its process group now, SIGKILL to the
  // group at the first Poll after `grace` (at once when grace <= 0). A second
  // Stop may only shorten the grace.
  Status Stop(const std::string& task_id, std::chrono::nanoseconds grace) override;

  // Deletes the task dir and its tmpfs secrets dir once the task exited.
  Status Remove(const std::string& task_id) override;

  // Reaps exited processes, escalates due stops, runs due healthcheck probes
  // (and kills those past their timeout), and reports every task.
  std::map<std::string, Observed> Poll() override;

  // Reads output.log.
  Result<std::string> Logs(const std::string& task_id, uint64_t offset, size_t max_bytes) override;

  // `<root>/<task_id>`: where the task's state, log and files live.
  std::filesystem::path TaskDir(const std::string& task_id) const;

 private:
  struct Proc;

  ProcessExecutor(std::filesystem::path root, ProcessOptions options);
  void Load();
  void Check(Proc& p);
  void Finish(Proc& p, bool known, int wait_status);
  void Persist(Proc& p);
  Status StartProcess(const v1::Task& task, const std::vector<TaskFile>& files, Proc& p);
  void RefreshHealth(const v1::Task& task, Proc& p);
  void SyncHealth(Proc& p);

  std::filesystem::path root_;
  ProcessOptions options_;
  std::string boot_id_;
  std::map<std::string, std::unique_ptr<Proc>> procs_;
};

}  // namespace shoal::executor
