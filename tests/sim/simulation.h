#pragma once

// A deterministic simulation of a Raft group (design.md section 4, issue 3):
// every member, the network, the disks and the clients run in one thread from
// one seed, so a failing seed replays exactly. Faults: dropped, delayed,
// duplicated and reordered messages; partitions of any subset; crashes with
// the disk kept or with its unsynced writes lost. Invariants are checked as
// the run goes and again after everything is healed.

#include <cstdint>
#include <string>

namespace shoal::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  // Simulated milliseconds of client load under faults, then of healing.
  int workload_ms = 6000;
  int heal_ms = 8000;
  // Print the event trace (crashes, partitions, leaders) as it happens.
  bool verbose = false;
};

struct SimStats {
  uint64_t writes_acked = 0;
  // Store simulation: writes proposed several to a turn (one batch entry or
  // a few), and those refused because an earlier one of the same turn took
  // their id or name.
  uint64_t burst_writes = 0;
  uint64_t writes_refused = 0;
  uint64_t reads_served = 0;
  uint64_t messages = 0;
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t elections = 0;  // distinct terms that had a leader
  uint64_t snapshots_installed = 0;
  uint64_t membership_changes = 0;  // proposed and accepted by a leader
  uint64_t final_index = 0;
};

struct SimResult {
  bool ok = true;
  std::string error;  // the first invariant violated, with the recent trace
  SimStats stats;
};

SimResult RunSimulation(const SimOptions& options);
// The same over whole ReplicatedStores (store_simulation.cc): membership
// changes through the store's API in most seeds, stopped removed members,
// joiners started with empty disks once their addition is applied.
SimResult RunStoreSimulation(const SimOptions& options);

}  // namespace shoal::sim
