#pragma once

// `mode: ingress` ports for the docker executor: the routing mesh
// (docs/executors.md, "Ingress ports"). A TCP listener in the agent per
// published port, on every node, forwarding each connection round robin to
// a running task of the service: this node's own tasks at the container's
// address and target port, other nodes' tasks at the node's address and the
// host port its engine bound for the task (from the cluster's ingress
// table, which the dispatcher sends to every agent).
//
// A port listens while a task of this node claims it or the table lists it.
//
// Threads: one io thread inside, started by the constructor; every method
// may be called from any thread.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/cluster.pb.h"

namespace shoal::executor::docker {

class IngressProxy {
 public:
  // Listens on `listen_addr` (an IPv4 or IPv6 address; 0.0.0.0 for all).
  explicit IngressProxy(std::string listen_addr = "0.0.0.0");
  // Closes every listener and connection.
  ~IngressProxy();
  IngressProxy(const IngressProxy&) = delete;
  IngressProxy& operator=(const IngressProxy&) = delete;

  // Registers this node's `task_id` of `service_id` as a user of published
  // `port` (forwarding to `target`), listening if nothing did yet.
  // kFailedPrecondition when another service has the port here, or
  // kUnavailable when the port cannot be bound (another program has it, or
  // the listen address is not this host's). The listener sets SO_REUSEPORT,
  // so several nodes that share one host (and engine) can each serve it.
  Status Claim(uint16_t port, uint16_t target, const std::string& service_id,
               const std::string& task_id);
  // The running task's address: connections may go to it now.
  void SetBackend(const std::string& task_id, const std::string& ip);
  // The task stopped: no new connection goes to it (open ones stay).
  void DropBackend(const std::string& task_id);
  // Forgets the task; a port nothing claims or lists any more stops listening.
  void Release(const std::string& task_id);

  // The cluster's ingress table (replaces the previous one): listens on
  // every port it lists and forwards to its backends on other nodes (and to
  // this node's, `node_id`, that no Claim/SetBackend covers, through their
  // host ports). A port another program holds is retried at the next table
  // and reported on stderr once. Ports it no longer lists and no local task
  // claims stop listening.
  void SetTable(const v1::IngressTable& table, const std::string& node_id);

  // Published ports listening now (for tests).
  std::map<uint16_t, std::string> Listening() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The host ports the engine bound for the task's `ingress` ports' targets,
// from the container's inspect reply (target, protocol, published = the host
// port); none when it bound none. Every bound target when `ingress` is empty
// (an adopted container, whose spec is not known yet). ingress_ports.cc.
std::vector<v1::PortConfig> IngressHostPorts(const std::string& inspect_body,
                                             const std::vector<v1::PortConfig>& ingress);

}  // namespace shoal::executor::docker
