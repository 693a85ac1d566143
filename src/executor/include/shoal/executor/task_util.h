#pragma once

// Helpers that every executor plugin needs so that they agree on the details
// the agent and `service ps` show: which argv a task runs, how an exit is
// worded, which task ids are safe to use as file names.

#include <string>
#include <string_view>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::executor {

// Ok when `id` can name a directory on its own: 1..128 characters of
// [A-Za-z0-9_.-], not starting with '.'. Executors keep per-task state under
// the id, so an id such as "../x" must never reach the file system.
Status ValidateTaskId(std::string_view id);

// The argv a task runs: entrypoint followed by command, as Docker does when
// there is no image default to merge. Empty when both are empty.
std::vector<std::string> TaskArgv(const v1::ContainerSpec& spec);

// True for the states after which a task never changes again (COMPLETE,
// SHUTDOWN, FAILED, REJECTED and later): executors stop watching such a task.
bool IsTerminal(v1::TaskState state);

// "exit 3": the short message for a process that returned `code`.
std::string ExitMessage(int code);

// "killed by signal 9": the short message for a process a signal ended.
std::string SignalMessage(int signal);

// Where a TaskFile's target lives below a task's files dir: "/run/secrets/db"
// and "run/secrets/db" both give "run/secrets/db". InvalidArgument for an
// empty target, one that only names a directory, or one with a ".." part
// (which would let a stack write outside the task's files).
Result<std::string> FileTargetRelativePath(std::string_view target);

}  // namespace shoal::executor
