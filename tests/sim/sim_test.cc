// Runs the Raft simulation over many seeds. To replay one seed:
//   SHOAL_SIM_SEED=<seed> shoal_raft_sim            (verbose trace: SHOAL_SIM_VERBOSE=1)
// SHOAL_SIM_SEEDS=<n> changes how many seeds each group size runs.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>

#include "simulation.h"

namespace shoal::sim {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

void RunSeeds(int nodes, uint64_t first_seed, uint64_t default_count, bool store = false) {
  uint64_t count = EnvOr("SHOAL_SIM_SEEDS", default_count);
  if (std::getenv("SHOAL_SIM_SEED")) {
    first_seed = EnvOr("SHOAL_SIM_SEED", 0);
    count = 1;
  }
  bool verbose = std::getenv("SHOAL_SIM_VERBOSE") != nullptr;
  auto start = std::chrono::steady_clock::now();
  SimStats total;
  for (uint64_t seed = first_seed; seed < first_seed + count; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.nodes = nodes;
    o.verbose = verbose;
    SimResult r = store ? RunStoreSimulation(o) : RunSimulation(o);
    if (!r.ok) {
      FAIL("seed " << seed << " with " << nodes
                   << " members failed; rerun with SHOAL_SIM_SEED=" << seed << " shoal_raft_sim \"["
                   << (store ? "store" : "members") << nodes << "]\"\n"
                   << r.error);
    }
    total.writes_acked += r.stats.writes_acked;
    total.reads_served += r.stats.reads_served;
    total.messages += r.stats.messages;
    total.crashes += r.stats.crashes;
    total.partitions += r.stats.partitions;
    total.elections += r.stats.elections;
    total.snapshots_installed += r.stats.snapshots_installed;
    total.membership_changes += r.stats.membership_changes;
    total.burst_writes += r.stats.burst_writes;
    total.writes_refused += r.stats.writes_refused;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN((store ? "stores: " : "") << nodes << " members, " << count << " seeds in " << secs << " s: "
                                 << total.writes_acked << " writes acked, " << total.reads_served
                                 << " reads, " << total.messages << " messages, " << total.crashes
                                 << " crashes, " << total.partitions << " partitions, "
                                 << total.elections << " leaders, " << total.snapshots_installed
                                 << " snapshots installed, " << total.membership_changes
                                 << " membership changes, " << total.burst_writes
                                 << " writes several to a turn, " << total.writes_refused
                                 << " refused as repeats");
  // The store's batch entries must have been exercised, repeats included.
  if (store && count >= 20) {
    CHECK(total.burst_writes > 0);
    CHECK(total.writes_refused > 0);
  }
}

TEST_CASE("Raft simulation, 3 members", "[members3]") { RunSeeds(3, 1, 600); }

TEST_CASE("Raft simulation, 5 members", "[members5]") { RunSeeds(5, 100001, 400); }

TEST_CASE("Store simulation, 3 members", "[store3]") { RunSeeds(3, 200001, 200, true); }

}  // namespace
}  // namespace shoal::sim
