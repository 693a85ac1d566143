#pragma once

// `mode: ingress` ports for the docker executor: a TCP listener in the agent
// per published port, forwarding each connection to one of this node's
// running tasks of the service (round robin), at the container's address on
// its network. This is a per-node stand-in for Swarm's routing mesh: the
// port answers on the nodes that run a task of the service (docs/executors.md).
//
// Threads: one io thread inside, started by the constructor; every method
// may be called from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "shoal/common/status.h"

namespace shoal::executor::docker {

class IngressProxy {
 public:
  IngressProxy();
  // Closes every listener and connection.
  ~IngressProxy();
  IngressProxy(const IngressProxy&) = delete;
  IngressProxy& operator=(const IngressProxy&) = delete;

  // Registers `task_id` of `service_id` as a user of published `port`
  // (forwarding to `target`), listening on 0.0.0.0:port if no task did yet.
  // kFailedPrecondition when another service of this node has the port, or
  // kUnavailable when the port cannot be bound (another program has it).
  // The listener sets SO_REUSEPORT, so several nodes that share one host
  // (and engine) can each serve the port for their own tasks.
  Status Claim(uint16_t port, uint16_t target, const std::string& service_id,
               const std::string& task_id);
  // The running task's address: connections may go to it now.
  void SetBackend(const std::string& task_id, const std::string& ip);
  // The task stopped: no new connection goes to it (open ones stay).
  void DropBackend(const std::string& task_id);
  // Forgets the task; a port no task claims any more stops listening.
  void Release(const std::string& task_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::executor::docker
