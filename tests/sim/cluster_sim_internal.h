#pragma once

// Internal to the cluster simulation (cluster_simulation.h): the simulated
// hosts, network packets and client operations, and the ClusterSim class,
// whose methods live in three files:
//   cluster_simulation.cc  hosts (managers, agents), the network, the run loop
//   cluster_workload.cc    setup (cluster, nodes, services), faults, the client
//   cluster_checks.cc      invariants and the failure dump

#include <google/protobuf/message.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster_simulation.h"
#include "shoal/executor/sim.h"
#include "shoal/manager/control_loops.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/raft/memory_storage.h"
#include "shoal/store/replicated_store.h"
#include "shoal/store/txn.h"
#include "sim_agent.h"

namespace shoal::sim::cluster {

using raft::Message;
using raft::Role;
using store::Kind;
using store::ReplicatedStore;

inline constexpr int kTickMs = 10;
inline constexpr int64_t kMs = 1'000'000;
// Simulated wall clock at time 0 (any value; far from 0 so skews stay positive).
inline constexpr int64_t kEpochNs = 1'700'000'000'000'000'000;

class Random : public raft::RandomSource {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

// Task ids as Manager's TaskIds makes them (25 base-36 characters), from a
// seeded generator.
class TaskIds : public orchestrator::IdSource {
 public:
  explicit TaskIds(uint64_t seed) : rng_(seed) {}
  std::string NewTaskId() override {
    static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string id(25, '0');
    for (char& c : id) c = kAlphabet[rng_() % 36];
    return id;
  }

 private:
  std::mt19937_64 rng_;
};

// Protobuf maps serialise in an unspecified order unless asked otherwise:
// the deterministic serialisation, to compare states byte for byte.
std::string Canonical(const google::protobuf::Message& m);
uint64_t Fnv(const std::string& s);
std::string StateName(v1::TaskState s);  // "RUNNING", without "TASK_"
// In an executor: started and not exited.
inline bool Running(v1::TaskState s) { return s < v1::TASK_COMPLETE; }

class ClusterSim;

class SimTransport : public raft::Transport {
 public:
  SimTransport(ClusterSim* sim, int host) : sim_(sim), host_(host) {}
  Status Send(const Message& m) override;

 private:
  ClusterSim* sim_;
  int host_;
};

// One machine: a manager (raft id != 0) and/or an agent; every host runs an
// agent, as every shoal daemon does.
struct Host {
  int index = 0;
  std::string node_id;
  std::string hostname;
  std::string zone;
  uint64_t raft_id = 0;  // 0: a worker
  bool drained = false;  // its Node is created with availability DRAIN

  // Manager.
  std::unique_ptr<raft::MemoryStorage> disk;
  std::unique_ptr<Random> random;
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<TaskIds> ids;
  std::unique_ptr<ReplicatedStore> store;  // null while down
  std::unique_ptr<manager::ControlLoops> loops;
  int tick_phase = 0;
  uint64_t ticks = 0;
  int64_t clock_skew_ns = 0;
  bool lose_unsynced = false;

  // Agent.
  std::map<std::string, v1::Task> agent_db;  // survives restarts (its LevelDB)
  std::unique_ptr<executor::SimExecutor> executor;
  std::unique_ptr<SimAgent> agent;  // null while down or not yet joined
  bool joined = false;              // its Node is committed: the agent runs

  bool up = true;
  uint64_t restart_at = 0;
  int group = 0;  // partition: hosts talk only within their group
};

struct Packet {
  enum Kind { kRaft, kHeartbeat, kHeartbeatReply, kAssignments, kAssignmentsReply };
  Kind kind = kRaft;
  int from = 0;  // host indexes
  int to = 0;
  Message raft;
  uint64_t call = 0;
  v1::HeartbeatRequest hb_req;
  v1::AssignmentsRequest as_req;
  Status status;
  v1::HeartbeatReply hb_reply;
  v1::AssignmentsReply as_reply;
};

struct ServiceDef {
  std::string id;
  std::string name;
  v1::ServiceMode mode = v1::MODE_REPLICATED;
  uint64_t replicas = 1;
  std::vector<std::string> constraints;
  std::map<std::string, std::string> env;
  bool temporary = false;           // deleted at some point during the faults
  uint64_t update_parallelism = 0;  // rolling updates (0: all at once)
  int64_t update_delay_ns = 0;
  bool healthcheck = false;  // the sim executor reports HEALTHY once RUNNING
  int64_t restart_delay_ns = 0;
};

// A client transaction: built from a manager's state (nullopt: nothing left
// to do), proposed there, retried on failure.
struct ClientOp {
  std::string what;
  std::function<std::optional<store::Txn>(const store::State&)> build;
  bool required = false;  // setup: retried until done
  int attempts = 0;
  uint64_t next_at = 0;
  bool in_flight = false;
  bool done = false;
};

class ClusterSim : public AgentNetwork {
 public:
  explicit ClusterSim(const ClusterSimOptions& o)
      : opts_(o), rng_(o.seed * 0x9e3779b97f4a7c15ULL) {}
  ClusterSimResult Run();

  void SendRaft(int from, const Message& m);
  // AgentNetwork: the agent of the host being stepped calls.
  void SendHeartbeat(uint64_t call, const std::string& addr,
                     const v1::HeartbeatRequest& req) override;
  void SendAssignments(uint64_t call, const std::string& addr,
                       const v1::AssignmentsRequest& req) override;
  uint64_t NextCallId() override { return ++next_call_; }

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  int64_t NowNs() const { return kEpochNs + static_cast<int64_t>(now_) * kMs; }
  int64_t ManagerNow(const Host& h) const { return NowNs() + h.clock_skew_ns; }
  void Trace(const std::string& line);
  void Fail(const std::string& why);
  std::string Dump();

  // Setup.
  void ChooseProfile();
  void MakeHosts();
  void DefineServices();
  void SetupOps();
  v1::Node NodeObject(const Host& h) const;
  v1::Service ServiceObject(const ServiceDef& d) const;

  // Hosts.
  std::vector<int> ManagerHosts() const;
  Host* HostOfRaft(uint64_t raft_id);
  Host* HostOfAddr(const std::string& addr);
  static std::string AddrOf(uint64_t raft_id) { return "m" + std::to_string(raft_id); }
  void StartManager(Host& h);
  void StartAgent(Host& h);
  void Crash(Host& h, bool lose_tasks);
  void Restart(Host& h);
  void Turn(Host& h);
  const Host* Leader() const;

  // Network.
  void Push(Packet p, bool droppable, bool duplicable);
  void Reply(const Packet& req, Status status);
  void Deliver();
  void DeliverRpc(const Packet& p);
  bool Connected(int a, int b) const { return hosts_[a].group == hosts_[b].group; }

  // Faults and the client.
  void InjectFaults();
  void Heal();
  void RandomSpecChange();
  void AddOp(std::string what, std::function<std::optional<store::Txn>(const store::State&)> build,
             bool required);
  void RunClient();

  // Invariants.
  void CheckLeaders();
  void CheckStores();
  void CheckAgents();
  std::string CheckFinal();
  using RunningMap = std::map<std::string, std::vector<std::string>>;  // task id -> node ids
  std::string CheckManagersEqual(const Host& leader);
  std::string CheckNodesAndAgents(const store::State& s);
  std::string CheckService(const store::State& s, const v1::Service& svc, const RunningMap& running,
                           std::set<std::string>* expected);
  std::string CountStuckRetired(const store::State& s);

  ClusterSimOptions opts_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0;
  bool healing_ = false;
  uint64_t heal_at_ = 0;

  // Profile.
  int heartbeat_ticks_ = 10;
  int election_ticks_ = 100;
  double drop_ = 0;
  double dup_ = 0;
  uint64_t max_delay_ = 2;
  double partition_rate_ = 0;
  double crash_rate_ = 0;
  double change_rate_ = 0;
  double poll_reset_rate_ = 0;
  bool skew_ = false;
  bool managers_drained_ = false;
  dispatcher::Options dispatcher_options_;

  std::vector<Host> hosts_;
  std::vector<ServiceDef> services_;
  uint64_t heal_partition_at_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, Packet> net_;  // (deliver at, seq) ->
  uint64_t seq_ = 0;
  uint64_t next_call_ = 0;
  int stepping_host_ = -1;  // whose agent is calling
  std::map<uint64_t, ClientOp> ops_;
  uint64_t next_op_ = 0;
  uint64_t next_version_ = 1;

  // Invariant state.
  std::map<uint64_t, uint64_t> leader_of_term_;
  std::map<uint64_t, std::pair<uint64_t, std::string>> committed_;  // index -> term, data
  std::map<uint64_t, uint64_t> state_hash_at_;                      // applied index -> hash
  std::map<std::string, v1::NodeStatus::State> node_state_seen_;
  std::set<std::string> task_ids_seen_;
  uint64_t stuck_retired_ = 0;

  std::deque<std::string> trace_;
  std::string error_;
  ClusterSimStats stats_;
};

}  // namespace shoal::sim::cluster
