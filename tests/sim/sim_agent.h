#pragma once

// A single-threaded agent for the cluster simulation: the protocol of
// src/agent/agent.cc (and of GrpcDispatcherClient's choice of manager), with
// the two agent threads turned into two state machines that the simulation
// steps every simulated millisecond, and the blocking calls turned into
// messages over the simulated network.
//
//   poll "thread"   waits for a session, long-polls Assignments with the
//                   generation it knows (0: a full set), and queues replies;
//   work "thread"   applies queued replies, reconciles the executor against
//                   the assignments every poll interval, and heartbeats (with
//                   the statuses not yet carried by an answered heartbeat of
//                   the session, all of them in a new session) every period,
//                   or at once when something changed. While its heartbeat is in flight it is
//                   blocked, as agent.cc's work thread is.
//
// The agent's LevelDB (its tasks) is a map owned by the simulation's host, so
// it survives a restart of the agent; the executor too, unless the host
// "crashed" (then the simulation gives the new agent an empty executor).

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/executor/sim.h"
#include "shoal/v1/cluster.pb.h"

namespace shoal::sim {

// How the agent's calls leave it: the simulation carries them to the manager
// at `addr` and answers with SimAgent::OnHeartbeatReply / OnAssignmentsReply
// (or never: the agent gives up at the call's deadline, as gRPC does).
class AgentNetwork {
 public:
  virtual ~AgentNetwork() = default;
  virtual void SendHeartbeat(uint64_t call, const std::string& addr,
                             const v1::HeartbeatRequest& req) = 0;
  virtual void SendAssignments(uint64_t call, const std::string& addr,
                               const v1::AssignmentsRequest& req) = 0;
  // Call ids unique across every agent and restart, so that a late reply to
  // an agent's previous life is recognised as stale.
  virtual uint64_t NextCallId() = 0;
};

struct SimAgentOptions {
  std::string node_id;
  v1::NodeDescription description;
  std::vector<std::string> managers;  // addresses known at join
  // agent.cc: AgentOptions defaults, until a heartbeat reply says otherwise.
  int64_t heartbeat_period_ns = 1'000'000'000;
  int64_t poll_interval_ns = 100'000'000;
  // GrpcDispatcherClient's deadlines and agent.cc's retry wait.
  int64_t heartbeat_deadline_ns = 2'000'000'000;
  int64_t assignments_deadline_ns = 15'000'000'000;
  int64_t retry_wait_ns = 200'000'000;
  // Not in agent.cc: report SHUTDOWN for an assigned task that should not run
  // and does not run here (never started, or died with the host), so that the
  // managers see it finished. The fix proposed for agent.cc.
  bool report_unstarted = false;
};

class SimAgent {
 public:
  // `executor`, `db` and `net` are borrowed. `db` is the agent's persistent
  // task store (what agent.cc keeps in LevelDB); it is read at construction.
  SimAgent(const SimAgentOptions& options, executor::SimExecutor* executor,
           std::map<std::string, v1::Task>* db, AgentNetwork* net,
           std::function<void(const std::string&)> trace);

  // One step of both "threads" at `now_ns`; call every simulated millisecond.
  void Step(int64_t now_ns);

  // Replies (or errors) to earlier calls; stale call ids are ignored.
  void OnHeartbeatReply(uint64_t call, Result<v1::HeartbeatReply> reply, int64_t now_ns);
  void OnAssignmentsReply(uint64_t call, Result<v1::AssignmentsReply> reply, int64_t now_ns);

  struct Call {
    enum Kind { kHeartbeat, kAssignments };
    Kind kind = kHeartbeat;
    uint64_t id = 0;
    std::string addr;
    int64_t deadline_ns = 0;
  };
  // The calls in flight (to fail them when their manager's process dies).
  std::vector<Call> Outstanding() const;

  // What the executor reported at the last reconcile: task id -> observed.
  const std::map<std::string, executor::Observed>& seen() const { return seen_; }
  const std::map<std::string, v1::Task>& tasks() const { return tasks_; }
  bool connected() const { return connected_; }
  bool have_full_set() const { return have_full_set_; }
  const std::string& session() const { return session_id_; }

 private:
  // GrpcDispatcherClient: which manager to call, and what a failure teaches.
  const std::string& CurrentManager() const;
  void Failed(const std::string& addr, const Status& status);
  Status FromServer(const std::string& addr, const Status& s) const;
  void LearnManagers(const v1::HeartbeatReply& reply);

  void PollStep(int64_t now_ns);
  void WorkStep(int64_t now_ns);
  void StartHeartbeat(int64_t now_ns);
  // Records a status to report (agent.cc: Agent::Observe).
  void Observe(const std::string& id, const v1::TaskStatus& st);
  void FinishHeartbeat(Result<v1::HeartbeatReply> reply, int64_t now_ns);
  void FinishAssignments(Result<v1::AssignmentsReply> reply, int64_t now_ns);
  void Apply(const v1::AssignmentsReply& reply);
  void Reconcile(int64_t now_ns);
  void Persist(const v1::Task& task) { (*db_)[task.meta().id()] = task; }
  void Forget(const std::string& id) { db_->erase(id); }
  void Trace(const std::string& line) {
    if (trace_) trace_(options_.node_id + ": " + line);
  }

  SimAgentOptions options_;
  executor::SimExecutor* executor_;
  std::map<std::string, v1::Task>* db_;
  AgentNetwork* net_;
  std::function<void(const std::string&)> trace_;

  // Client.
  std::vector<std::string> managers_;
  size_t current_ = 0;

  // Shared between the "threads" (agent.cc: under mu_).
  std::string session_id_;
  std::vector<v1::AssignmentsReply> inbox_;
  int64_t period_ns_;
  bool connected_ = false;

  // Poll "thread".
  std::string poll_session_;
  uint64_t generation_ = 0;
  std::optional<Call> assign_call_;
  int64_t poll_wait_until_ = 0;

  // Work "thread".
  std::optional<Call> hb_call_;
  int64_t next_poll_ = 0;
  int64_t next_heartbeat_ = 0;
  std::map<std::string, v1::Task> tasks_;
  std::map<std::string, v1::TaskStatus> observed_;
  std::map<std::string, bool> started_;
  std::map<std::string, executor::Observed> seen_;
  bool have_full_set_ = false;
  bool report_now_ = false;
  // agent.cc's heartbeat deltas: statuses not yet carried by an answered
  // heartbeat of the current session, all of them after a new session.
  std::set<std::string> unreported_;
  bool report_all_ = true;
  bool described_ = false;
  // The heartbeat in flight: its session, the ids it carries, and the ids
  // observed again meanwhile (agent.cc's work thread cannot observe while
  // its heartbeat is out; here the work "thread" is blocked too, but keep
  // the rule explicit).
  std::string hb_session_;
  std::vector<std::string> hb_sent_;
  std::set<std::string> changed_in_flight_;
};

}  // namespace shoal::sim
