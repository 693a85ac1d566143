#pragma once

// Starting a task's process: who it runs as, where its executable is, and the
// fork/exec itself (boost.process) with its own process group.

#include <sys/types.h>

#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::executor::process {

// Who a task's process runs as. `change` is false when it runs as the agent's
// own user, which needs no privileges.
struct Identity {
  bool change = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, replacing the agent's
  std::string home;           // HOME when the task sets none
};

// Resolves `user` ("", "name", "uid", "name:group", "uid:gid") and the extra
// `groups` (group_add) against this host's user database. InvalidArgument for
// an unknown name, or when running as another user needs root and the agent
// is not root.
Result<Identity> ResolveIdentity(const std::string& user,
                                 const google::protobuf::RepeatedPtrField<std::string>& groups);

// The file `name` names: itself when it holds a '/', otherwise the first
// executable match in the colon-separated `path` (as execvp would search the
// task's PATH, not the agent's). InvalidArgument when there is none.
Result<std::string> FindExecutable(const std::string& name, const std::string& path);

struct SpawnRequest {
  std::string executable;         // absolute or relative to the agent's cwd
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "K=V", exactly the task's environment
  std::string working_dir;
  std::string log_path;  // stdout and stderr are appended here; stdin is /dev/null
  Identity identity;
};

// The value of `key` in an env of "K=V" strings; "" when it is not set.
std::string EnvValue(const std::vector<std::string>& env, const std::string& key);

// Forks and execs the process, in a new process group led by itself so that
// signals sent to -pid reach everything it starts. Returns once exec
// succeeded; kInvalidArgument when it failed for a reason the task's spec
// controls (missing working dir, exec error), kUnavailable when the host
// refused (fork, file descriptors).
Result<pid_t> Spawn(const SpawnRequest& request);

}  // namespace shoal::executor::process
