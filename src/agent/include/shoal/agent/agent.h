#pragma once

// The agent (design.md section 6): runs on every node, holds a session with
// the leader's dispatcher, receives its node's tasks, makes the executor run
// what should run and stop what should not, and reports what it observes.
// It keeps its tasks in a local LevelDB so that after a restart it knows what
// it ran (the executor adopts the processes) before a manager answers.
//
// Threads: Start() spawns two: one long-polls for assignments, one runs the
// executor and heartbeats. The executor is touched only by the second (and
// by Logs, Start and Stop, under the same lock); its wake-up, called from
// the executor's threads, only flags the second.

#include <absl/synchronization/mutex.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/executor/executor.h"
#include "shoal/v1/cluster.pb.h"

namespace leveldb {
class DB;
class Env;
class WriteBatch;
}  // namespace leveldb

namespace shoal::agent {

// How the agent reaches the dispatcher. Both calls block (Assignments for up
// to a heartbeat period or so) and are made from different agent threads, so
// implementations must be thread-safe.
class DispatcherClient {
 public:
  virtual ~DispatcherClient() = default;
  // kUnavailable when no manager answers; kNotFound when this node was
  // removed from the cluster.
  virtual Result<v1::HeartbeatReply> Heartbeat(const v1::HeartbeatRequest& req) = 0;
  virtual Result<v1::AssignmentsReply> Assignments(const v1::AssignmentsRequest& req) = 0;
  // Makes a blocked call return soon (at stop).
  virtual void Cancel() = 0;
};

struct AgentOptions {
  std::string node_id;
  std::string data_dir;  // the agent's LevelDB lives in <data_dir>/agent
  v1::NodeDescription description;
  // Until a heartbeat reply says otherwise.
  std::chrono::milliseconds heartbeat_period{1000};
  // How often the executor is polled. An executor that wakes the agent
  // (Executor::SetWakeup: docker) is also polled soon after each wake-up.
  std::chrono::milliseconds poll_interval{100};
  // How long the agent waits after an executor's wake-up before it polls, so
  // that changes arriving together (containers killed at once) go out in
  // one report and the managers replace them in one pass. Not extended by
  // later wake-ups: the engine spreads ten deaths over 40-250 ms, and a
  // window that long would hold back the first one's replacement.
  std::chrono::milliseconds wake_coalesce{5};
  // How long a new status waits for the heartbeat that reports it (others
  // observed meanwhile go with it). Not the exit of a task that should still
  // run: it goes at once, for the managers to replace it.
  std::chrono::milliseconds report_delay{150};
  // Every this many polls, every task is reconciled, not only those whose
  // assignment or observation changed (a safety net for a Stop the executor
  // did not act on). An executor without incremental polls (PollChanges
  // returns everything) has every task reconciled at every poll anyway.
  int full_reconcile_every = 100;
  // Keeps the agent's database in memory (LevelDB on a memory Env): nothing
  // survives a restart, so tasks are not adopted. For simulated nodes and
  // tests, where a thousand on-disk databases cost seconds and descriptors.
  bool in_memory_store = false;
};

// Turns off Abseil's mutex deadlock detection for the whole process. Debian
// builds Abseil without NDEBUG, so every absl::Mutex (gRPC's locks) otherwise
// records each acquisition in one global graph under one global lock: about
// 1 us per lock and a point of contention for every gRPC thread. Release
// builds of Abseil never check; neither do we. Safe to call from any thread,
// any number of times. Agent::Open and the manager call it.
void DisableMutexDeadlockDetection();

class Agent {
 public:
  // Opens the local database (kIo / kCorruption naming it). Borrowed pointers
  // must outlive the agent.
  static Result<std::unique_ptr<Agent>> Open(const AgentOptions& options,
                                             executor::Executor* executor,
                                             DispatcherClient* client);
  // Stops the threads; tasks keep running (they are adopted at the next start).
  ~Agent();

  void Start();
  void Stop();

  // Stops every task this node runs and waits (up to `timeout`) until they
  // exited; for a dev cluster, whose tasks must not outlive it. Call after
  // Stop().
  void StopAllTasks(std::chrono::milliseconds timeout);

  // For `cluster info` and tests.
  size_t task_count() const;
  bool connected() const { return connected_.load(); }
  // The role the cluster last gave this node (0 raft id: none known yet).
  v1::HeartbeatReply last_heartbeat() const {
    absl::MutexLock lock(&mu_);
    return last_reply_;
  }
  // Set once a manager said this node is not in the cluster.
  bool removed() const { return removed_.load(); }

  // The executor's captured output of a task this node runs.
  Result<std::string> Logs(const std::string& task_id, uint64_t offset, size_t max_bytes);

 private:
  Agent(const AgentOptions& options, executor::Executor* executor, DispatcherClient* client);
  Status Load();
  void PollLoop();
  void WorkLoop();
  void Apply(v1::AssignmentsReply&& reply);
  void Reconcile();
  // Reconcile's work for one task id (assigned, or only known to the executor).
  void ReconcileOne(const std::string& id);
  // Records a status to report; sent with the next heartbeat.
  void Observe(const std::string& id, v1::TaskStatus st);
  // The secrets and configs `task` needs, from what the dispatcher sent.
  std::vector<executor::TaskFile> TaskFiles(const v1::Task& task);
  void SendHeartbeat();
  // Add a task's record, or its removal, to `batch`; Write applies it.
  void Persist(const v1::Task& task, leveldb::WriteBatch* batch);
  void Forget(const std::string& task_id, leveldb::WriteBatch* batch);
  void Write(leveldb::WriteBatch* batch);

  AgentOptions options_;
  executor::Executor* executor_;
  DispatcherClient* client_;
  std::unique_ptr<leveldb::Env> mem_env_;  // in_memory_store only; outlives db_
  std::unique_ptr<leveldb::DB> db_;

  // The executor's contract is one caller at a time; Logs() comes from gRPC.
  std::mutex exec_mu_;
  // absl's, not std::: a thread woken from std::condition_variable takes
  // its mutex back marked contended, so its next unlock is a futex wake
  // whether or not anyone waits (glibc), and each of a thousand agents does
  // that several times a second. absl's Mutex wakes only real waiters.
  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // the work thread waits on it
  absl::CondVar poll_cv_;  // the poll thread waits on it (for a session)
  bool stopping_ = false;
  // Set by the executor's wake-up (from its threads): poll it soon.
  bool exec_woken_ = false;
  std::vector<v1::AssignmentsReply> inbox_;  // from the poll thread
  std::string session_id_;
  v1::HeartbeatReply last_reply_;
  std::chrono::milliseconds period_;

  // Work-thread state.
  std::map<std::string, v1::Task> tasks_;                 // assigned, by id
  std::map<std::string, std::string> secrets_, configs_;  // name -> value, memory only
  std::map<std::string, v1::TaskStatus> observed_;        // last seen, by task id
  // What the executor reported last, by task id (PollChanges merged in).
  std::map<std::string, executor::Observed> seen_;
  // Task ids to reconcile at the next poll: their assignment or observation
  // changed. All of them after a full set and every full_reconcile_every polls.
  std::set<std::string> dirty_;
  bool all_dirty_ = true;
  int polls_ = 0;
  // Statuses in observed_ not yet carried by an answered heartbeat of the
  // current session; all of them after a new session (report_all_).
  std::set<std::string> unreported_;
  bool report_all_ = true;
  bool described_ = false;  // the current session has this node's description
  // Tasks handed to executor_->Start in this agent's life, adopted ones too.
  std::map<std::string, bool> started_;
  // Named volumes to delete once a task's container is removed, by task id
  // (tasks of a stack removed with --volumes). Memory only: an agent that
  // restarts in between keeps the volumes, the safe side.
  std::map<std::string, std::vector<std::string>> volumes_on_remove_;
  bool have_full_set_ = false;
  bool report_now_ = false;
  std::chrono::steady_clock::time_point report_at_{};
  std::chrono::steady_clock::time_point next_heartbeat_{};

  std::atomic<bool> connected_{false};
  std::atomic<bool> removed_{false};
  std::thread poll_thread_, work_thread_;
};

}  // namespace shoal::agent
