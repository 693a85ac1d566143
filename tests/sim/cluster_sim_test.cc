// Runs the cluster simulation (cluster_simulation.h) over many seeds. To
// replay one seed:
//   SHOAL_SIM_SEED=<seed> shoal_cluster_sim      (trace: SHOAL_SIM_VERBOSE=1)
// SHOAL_SIM_SEEDS=<n> runs n seeds from the first one instead of the default.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>

#include "cluster_simulation.h"

namespace shoal::sim {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST_CASE("Cluster simulation: managers, orchestrator, dispatcher and agents", "[cluster]") {
  uint64_t first = 1;
  uint64_t count = EnvOr("SHOAL_SIM_SEEDS", 250);
  if (std::getenv("SHOAL_SIM_SEED")) {
    first = EnvOr("SHOAL_SIM_SEED", 0);
    count = 1;
  }
  bool verbose = std::getenv("SHOAL_SIM_VERBOSE") != nullptr;
  auto start = std::chrono::steady_clock::now();
  ClusterSimStats total;
  uint64_t max_converge = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    ClusterSimOptions o;
    o.seed = seed;
    o.verbose = verbose;
    o.dangling_polls = std::getenv("SHOAL_SIM_DANGLING_POLLS") != nullptr;
    o.agent_reports_unstarted = std::getenv("SHOAL_SIM_AGENT_FIX") != nullptr;
    ClusterSimResult r = RunClusterSimulation(o);
    if (!r.ok) {
      FAIL("seed " << seed << " failed; rerun with SHOAL_SIM_SEED=" << seed
                   << " shoal_cluster_sim (SHOAL_SIM_VERBOSE=1 for the whole trace)\n"
                   << r.error);
    }
    total.managers += r.stats.managers;
    total.workers += r.stats.workers;
    total.raft_messages += r.stats.raft_messages;
    total.rpcs += r.stats.rpcs;
    total.elections += r.stats.elections;
    total.manager_crashes += r.stats.manager_crashes;
    total.agent_crashes += r.stats.agent_crashes;
    total.host_crashes += r.stats.host_crashes;
    total.partitions += r.stats.partitions;
    total.client_writes += r.stats.client_writes;
    total.tasks_created += r.stats.tasks_created;
    total.node_downs += r.stats.node_downs;
    total.converge_ms += r.stats.converge_ms;
    total.stuck_retired += r.stats.stuck_retired;
    total.simulated_ms += r.stats.simulated_ms;
    max_converge = std::max(max_converge, r.stats.converge_ms);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("cluster: " << count << " seeds in " << secs << " s (" << total.simulated_ms / 1000
                   << " simulated s): " << total.managers << " managers, " << total.workers
                   << " workers, " << total.elections << " leaders, " << total.manager_crashes
                   << " manager crashes, " << total.agent_crashes << " agent crashes, "
                   << total.host_crashes << " host crashes, " << total.partitions << " partitions, "
                   << total.node_downs << " nodes marked down, " << total.client_writes
                   << " client writes, " << total.tasks_created << " tasks, " << total.raft_messages
                   << " raft messages, " << total.rpcs << " agent RPCs; " << total.stuck_retired
                   << " retired tasks left non-terminal; converged " << total.converge_ms / count
                   << " ms after healing on average, " << max_converge << " ms at most");
}

}  // namespace
}  // namespace shoal::sim
