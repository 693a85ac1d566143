#pragma once

// A task's secrets and configs as host files that the container gets as
// read-only bind mounts at their targets, as Swarm does. Secrets live on a
// tmpfs, so their bytes never reach a disk; the engine's archive API cannot
// write into a container's tmpfs (it writes the layer underneath, moby#22020),
// and a file put in the container's layer would be on disk.

#include <filesystem>
#include <string>
#include <vector>

#include "create.h"
#include "shoal/executor/executor.h"

namespace shoal::executor::docker {

// Where a TaskFile goes inside the container: an absolute target as is; a
// relative one under /run/secrets/ (secrets) or / (configs), as Swarm does.
// InvalidArgument for an empty target or one with a ".." part.
Result<std::string> ContainerTarget(const TaskFile& file);

// Checks every file's target, and that `secrets_tmpfs` is a writable tmpfs
// when there are secrets. InvalidArgument / FailedPrecondition (-> REJECTED).
Status CheckFiles(const std::vector<TaskFile>& files, const std::filesystem::path& secrets_tmpfs);

// Writes the files: secrets in `secrets_dir` (made 0700 on the tmpfs),
// configs in `configs_dir` (made 0700), each as `<n>` with its mode, and its
// uid/gid when the agent is root. Returns the binds. On error, what was
// written is deleted again.
Result<std::vector<FileBind>> WriteFiles(const std::vector<TaskFile>& files,
                                         const std::filesystem::path& secrets_dir,
                                         const std::filesystem::path& configs_dir);

}  // namespace shoal::executor::docker
