#pragma once

// The executor interface: how an agent runs a task (design.md section 6). The
// agent decides what should run; an executor only makes it so on this node and
// reports what it sees. Implementations: plugins/executor/process (host
// processes), plugins/executor/sim (pretends; for scale tests) and
// plugins/executor/docker (containers on a Docker Engine).
//
// Threads: every method is called from the agent's thread only (SetWakeup
// also from the agent's Start and Stop), and none may block for long (no
// waiting for a process to exit): Start and Stop begin an action, Poll
// reports where it got. Implementations that need threads keep them inside.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/cluster.pb.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::executor {

// A secret or config delivered to the task as a file. `data` is the plaintext
// value and must never be logged or written anywhere but the target.
struct TaskFile {
  std::string target;  // absolute path as the task sees it, or relative to its files dir
  std::string data;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0444;
  bool secret = false;  // secrets: tmpfs or memory-backed where the executor can
};

// What an executor observed of one task.
struct Observed {
  v1::TaskState state = v1::TASK_NEW;  // STARTING, RUNNING, COMPLETE, FAILED, REJECTED, SHUTDOWN
  int32_t exit_code = 0;               // set once the task exited
  std::string message;                 // short, for `service ps`: "started", "exit 3"
  std::string error;                   // why it failed, "" when it did not
  std::string container_id;            // pid for processes, engine id for containers
  // The task's healthcheck: NONE when it has none (or it is disabled),
  // STARTING until a probe first succeeds, then HEALTHY or UNHEALTHY. Kept
  // at UNHEALTHY once the task exited, so that the history shows why it was
  // stopped; otherwise NONE after the exit.
  v1::TaskStatus::Health health = v1::TaskStatus::HEALTH_NONE;
  // Why it is UNHEALTHY ("health check failed 3 times in a row: exit 1:
  // ..."), "" otherwise. Changes only when `health` does.
  std::string health_message;
  // Host ports the executor bound for the task's `mode: ingress` targets
  // (target, protocol, published = the host port), reported in the task's
  // status for other nodes' ingress proxies; empty for executors without.
  std::vector<v1::PortConfig> ports;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // "process", "sim", "docker": recorded in the node's description.
  virtual std::string Name() const = 0;

  // Begins running `task` (its spec is the immutable ContainerSpec copy) with
  // `files` in place. Ok when the start began or the task is already known
  // (idempotent: the agent calls it once per task per agent life, also for a
  // task adopted from a previous agent, whose spec the executor may need
  // again, e.g. for its healthcheck; for a known task the executor only
  // refreshes such things and starts nothing). An error here means the task
  // can never run as given (no command, unknown user): the agent reports it
  // REJECTED with this message. Later failures show in Poll().
  virtual Status Start(const v1::Task& task, const std::vector<TaskFile>& files) = 0;

  // Asks the task to stop: its stop signal (spec.stop_signal, default
  // SIGTERM), then a kill after `grace`. Ok when begun or when the task is
  // already gone or unknown. The task shows as SHUTDOWN (or COMPLETE/FAILED if
  // it exited by itself first) in Poll() once it has exited.
  virtual Status Stop(const std::string& task_id, std::chrono::nanoseconds grace) = 0;

  // Forgets an exited task and deletes what it left (files dir, logs). Ok for
  // an unknown task. kFailedPrecondition while it still runs.
  virtual Status Remove(const std::string& task_id) = 0;

  // Everything this executor knows, by task id: tasks started through it, and
  // after a restart of the agent, the tasks it found left over from its
  // previous life (adopted; their state as well as it can tell).
  virtual std::map<std::string, Observed> Poll() = 0;

  // At least the tasks whose Observed changed since the previous Poll() or
  // PollChanges() (a task that appears counts as changed; Remove() is the
  // only way a task disappears). The default returns everything, which is
  // always correct; an executor with many tasks (sim) returns only what
  // changed, so that an agent's periodic poll costs what happened, not what
  // it holds.
  virtual std::map<std::string, Observed> PollChanges() { return Poll(); }

  // Registers `wake`, which the executor calls whenever something it
  // observes changed on its own (a container's death on the engine's event
  // stream, a start completed), so that the agent polls at once instead of
  // at its next poll interval: a death reaches the managers without waiting
  // up to a poll_interval. `wake` only flags and returns (it must not call
  // back into the executor), and may be called from any executor thread,
  // more often than anything changed. Replaces the previous one; nullptr
  // unregisters, and once SetWakeup returns the previous function is
  // neither running nor called again (the agent unregisters before it goes
  // away). The default, for executors whose changes only show in Poll
  // (process, sim), ignores it: the agent's periodic poll finds them.
  virtual void SetWakeup(std::function<void()> wake) { (void)wake; }

  // Deletes named volumes that tasks of a removed stack mounted (`stack rm
  // --volumes`), once the agent has removed those tasks. Best effort and
  // quiet: a volume still in use by another container, one shoal did not
  // make (external), or an unknown one is left as it is. The default, for
  // executors without volumes, does nothing. Called on the agent's thread.
  virtual void RemoveVolumes(const std::vector<std::string>& names) { (void)names; }

  // The cluster's ingress table (every service with a `mode: ingress` port
  // and its running tasks on every node), each time the dispatcher sends a
  // new one: the whole table, which replaces the previous one. An executor
  // that publishes ingress ports serves each of them on this node and
  // forwards to any backend (the routing mesh); problems (a port another
  // program holds) are its own to report. The default, for executors
  // without ports (process, sim), ignores it. Called on the agent's thread.
  virtual void SetIngress(const v1::IngressTable& table) { (void)table; }

  // Up to `max_bytes` of the task's captured output (stdout and stderr, in
  // order) from byte `offset`; "" at the end. kNotFound for an unknown task.
  virtual Result<std::string> Logs(const std::string& task_id, uint64_t offset,
                                   size_t max_bytes) = 0;
};

}  // namespace shoal::executor
