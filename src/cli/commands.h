#pragma once

// Each group of verbs registers its subcommands on the root app. A subcommand's
// callback stores its exit code in *exit_code; main returns it. `host` is the
// global --host, filled in by the time a callback runs.

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "shoal/v1/specs.pb.h"

namespace shoal::cli {

void AddStackCommands(CLI::App& app, const std::string* host, int* exit_code);
void AddClusterCommands(CLI::App& app, const std::string* host, int* exit_code);
void AddWorkloadCommands(CLI::App& app, const std::string* host, int* exit_code);
// After AddWorkloadCommands: adds to its `stack` and `service` groups.
void AddLifecycleCommands(CLI::App& app, const std::string* host, int* exit_code);
// `shoal watch` (GitOps).
void AddWatchCommands(CLI::App& app, const std::string* host, int* exit_code);
// After AddClusterCommands: `cluster ca`, `cluster update --autolock`, `unlock`, `unlock-key`.
void AddSecurityCommands(CLI::App& app, const std::string* host, int* exit_code);

struct DeployFlags {
  bool dry_run = false;
  bool prune = false;
  bool detach = false;
  bool rebalance = false;  // also spread the replicated services again
  uint64_t check_version = 0;
  int timeout_s = 300;
  std::string format = "text";
};

// Deploys (or plans, with dry_run) `spec` on the cluster at `host`, then waits
// for convergence unless detached. Returns the exit code. Sets *unreachable
// (and prints nothing) when no daemon answers, so a dry run can fall back to
// an offline plan.
struct Client;

// Waits until every service of `stack` runs its current revision, printing
// progress; 0 when it does, else non-zero with the cause in *cause (may be
// null) and on stderr.
int WaitStackConverged(Client& c, const std::string& stack, int timeout_s, std::string* cause);

int DeployToCluster(const std::string& host, const v1::StackSpec& spec,
                    const std::vector<std::string>& files, const DeployFlags& flags,
                    bool* unreachable);

}  // namespace shoal::cli
