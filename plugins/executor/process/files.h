#pragma once

// Puts a task's secrets and configs (TaskFiles) where its process finds them.

#include <sys/types.h>

#include <filesystem>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/executor/executor.h"

namespace shoal::executor::process {

// Writes each file at `files_dir`/<target relative path> with its mode (and
// its uid/gid when `chown` is set, i.e. when the agent is root). A secret is
// written below `secrets_dir` instead, when that is not empty, and
// `files_dir`/<path> becomes a symlink to it: the process finds every file
// under one directory while secret bytes stay on a tmpfs. Directories made on
// the way are 0755 under `files_dir` and 0711 under `secrets_dir` (reachable,
// not listable). Validate the targets with FileTargetRelativePath first.
Status WriteTaskFiles(const std::filesystem::path& files_dir,
                      const std::filesystem::path& secrets_dir, const std::vector<TaskFile>& files,
                      bool chown);

// Makes `dir` (one level) with mode 0750 and group `gid`: only the agent and
// the task's group may enter it. Used for the task dir and for the secrets dir
// on a shared tmpfs, where it fails when `dir` exists and is not a directory
// of ours, so that a symlink planted in /dev/shm cannot redirect secrets.
Status MakePrivateDir(const std::filesystem::path& dir, gid_t gid);

}  // namespace shoal::executor::process
