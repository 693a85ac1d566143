#pragma once

// What the process executor keeps on disk per task (`<task dir>/state`), so
// that an executor opened after an agent crash can adopt the processes the
// previous one started, and what it reads from /proc to recognise them.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "shoal/common/status.h"

namespace shoal::executor::process {

struct TaskRecord {
  std::string id;
  std::string image;  // recorded only: a host process has no image
  pid_t pid = 0;      // 0 while the start is under way
  // The process's start time in clock ticks since boot (/proc/<pid>/stat field
  // 22) and the boot it belongs to: together with the pid they name one
  // process, so a recycled pid is never mistaken for the task.
  uint64_t start_ticks = 0;
  std::string boot_id;
  int stop_signal = 0;
  bool stop_requested = false;
  int64_t kill_at_unix_ns = 0;  // when the SIGKILL is due after a stop
  int64_t started_unix_ns = 0;
  std::string secrets_dir;  // tmpfs dir to delete on Remove; "" when none
  // The last health a healthcheck decided (v1::TaskStatus::Health) and why
  // it is unhealthy, so that an adopted task does not fall back to STARTING.
  int health = 0;
  std::string health_message;
  // Set once the exit was observed, with what Poll reports from then on.
  bool finished = false;
  int state = 0;  // v1::TaskState
  int32_t exit_code = 0;
  std::string message;
  std::string error;
};

// Writes `record` to `file` through a temporary file and a rename, so a crash
// leaves the old or the new record, never half of one.
Status WriteRecord(const std::filesystem::path& file, const TaskRecord& record);

// Reads a record WriteRecord wrote. kNotFound when there is none, kCorruption
// when it cannot be parsed.
Result<TaskRecord> ReadRecord(const std::filesystem::path& file);

// The fields of /proc/<pid>/stat the executor needs.
struct ProcStat {
  char state = '?';  // 'Z' zombie, 'X' dead
  uint64_t start_ticks = 0;
};

// nullopt when no process has that pid (or /proc cannot be read).
std::optional<ProcStat> ReadProcStat(pid_t pid);

// This boot's id (/proc/sys/kernel/random/boot_id); "" when unreadable.
std::string BootId();

}  // namespace shoal::executor::process
