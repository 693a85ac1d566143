// The Raft fault simulation (tests/sim/simulation.cc) as a class, so that its
// end-of-run checks (raft_sim_checks.cc) live in a file of their own.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "kv_machine.h"
#include "shoal/raft/memory_storage.h"
#include "shoal/raft/node.h"
#include "simulation.h"

namespace shoal::sim::raft_sim {

using raft::Entry;
using raft::Message;
using raft::Ready;
using raft::Role;

constexpr int kTickMs = 10;
constexpr int kKeys = 5;

class SimRandom : public raft::RandomSource {
 public:
  explicit SimRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

struct ReadOp {
  std::string key;
  uint64_t floor = 0;  // every write acked or read served before issue is at or below
  uint64_t index = 0;  // the read index, once known
  bool has_index = false;
};

struct SimNode {
  uint64_t id = 0;
  std::unique_ptr<raft::MemoryStorage> disk;  // survives crashes
  std::unique_ptr<SimRandom> random;
  std::unique_ptr<raft::RaftNode> raft;  // null while crashed
  KvMachine sm;
  bool founder = false;  // bootstraps the group; later members join empty
  int tick_phase = 0;
  uint64_t restart_at = 0;
  bool lose_unsynced = false;
  std::map<std::string, ReadOp> reads;  // by context
};

struct InFlight {
  uint64_t at;
  uint64_t seq;
  Message msg;
  bool operator>(const InFlight& o) const { return std::tie(at, seq) > std::tie(o.at, o.seq); }
};

struct EntryRef {
  uint64_t term;
  std::string data;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : opts_(o), rng_(o.seed) {}

  SimResult Run();

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  void Trace(const std::string& line);
  void Fail(const std::string& why);

  void ChooseProfile();
  raft::Config NodeConfig(uint64_t id) const;
  void Start(SimNode& n);
  void Crash(SimNode& n);
  void Drive(SimNode& n);
  void Apply(SimNode& n, const Entry& e);
  void ServeReads(SimNode& n);
  void Send(const Message& m);
  void Deliver();
  void InjectFaults();
  void ClientOps();
  void ChangeMembership();
  SimNode& NewNode(uint64_t id, bool founder);
  std::vector<uint64_t> Voters() const;
  void CheckLeaders();
  void CheckLogs();
  void CheckEntry(uint64_t node, const Entry& e);
  bool Converged();
  void FinalChecks();
  std::vector<uint64_t> LiveIds() const;
  uint64_t LeaderId() const;
  bool Connected(uint64_t a, uint64_t b) const { return group_.at(a) == group_.at(b); }

  SimOptions opts_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0;
  bool healing_ = false;

  // The fault profile of this seed.
  double drop_ = 0;
  double dup_ = 0;
  uint64_t max_delay_ = 1;
  double partition_rate_ = 0;
  double crash_rate_ = 0;
  double membership_rate_ = 0;
  uint64_t next_id_ = 0;

  std::map<uint64_t, SimNode> nodes_;
  std::map<uint64_t, int> group_;  // partition: members talk only within a group
  uint64_t heal_partition_at_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> net_;
  uint64_t seq_ = 0;

  // Invariant state.
  std::map<uint64_t, uint64_t> leader_of_term_;
  std::map<uint64_t, EntryRef> committed_;          // the one entry each index may hold
  std::map<uint64_t, uint64_t> hash_at_;            // state machine hash after each index
  std::map<std::string, uint64_t> pending_writes_;  // write id -> member it was sent to
  std::map<std::string, uint64_t> acked_;           // write id -> index
  std::set<uint64_t> removed_ids_;                  // every id some member applied as removed
  uint64_t max_observed_ = 0;
  uint64_t next_write_ = 0;
  uint64_t next_read_ = 0;
  std::string final_write_;
  uint64_t final_write_at_ = 0;

  std::deque<std::string> trace_;
  std::string error_;
  SimStats stats_;
};

}  // namespace shoal::sim::raft_sim
