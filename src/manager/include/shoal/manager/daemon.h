#pragma once

// `shoal daemon`: one process per node. It serves, on one TCP port, the
// cluster-facing gRPC services (Raft, Membership, Dispatcher, Control), and
// on a unix socket the Control service for the local CLI. Before the node is
// in a cluster it serves only Control's Init, Join and ClusterInfo. Once in
// one it runs a Manager (managers) and an Agent (every node), and after a
// restart it picks up where it was from <data-dir>/identity.

#include <memory>
#include <string>

#include "shoal/common/status.h"
#include "shoal/dispatcher/dispatcher.h"

namespace shoal::manager {

struct DaemonOptions {
  std::string data_dir;
  std::string listen = "0.0.0.0:7370";  // the cluster port; port 0 picks one
  std::string socket;                   // the CLI's unix socket; "" = <data_dir>/shoal.sock
  // process | docker | sim | auto: docker when an engine answers at
  // docker_host, process otherwise (what `--dev` uses unless told).
  std::string executor = "process";
  std::string docker_host = "unix:///var/run/docker.sock";
  // Where the docker executor serves `mode: ingress` ports (the routing mesh).
  std::string ingress_addr = "0.0.0.0";
  std::string hostname;  // "" = gethostname()
  dispatcher::Options dispatcher;
  // Stop this node's tasks at shutdown (the dev cluster, whose data dir goes
  // away with it). Otherwise tasks keep running and are adopted at restart.
  bool stop_tasks_on_exit = false;
  // Join and renewal requests allowed per peer address: `join_burst` at
  // once, then `join_rate` a second (0: no limit, for benchmarks that join
  // a thousand simulated nodes from one address).
  double join_rate = 5;
  double join_burst = 50;
  // Long-lived streams one node or client certificate may hold open at once
  // (dispatcher long polls, event and log streams); the local socket is not
  // counted. At least 1.
  size_t max_streams_per_node = 16;
};

class Daemon {
 public:
  // Opens the data dir, resumes a cluster membership found there, and starts
  // serving. kIo when the port or socket cannot be bound, kCorruption for an
  // unreadable identity or store, both naming the path.
  static Result<std::unique_ptr<Daemon>> Start(const DaemonOptions& options);
  ~Daemon();

  // The bound cluster port.
  int port() const;
  const std::string& socket_path() const;
  // The executor in use: "auto" resolved to docker or process.
  const std::string& executor() const;
  // Blocks until Shutdown() is called (from a signal-watching thread).
  void Wait();
  // Stops serving, then the agent (tasks keep running, to be adopted), then
  // the manager. Idempotent; any thread but the gRPC ones.
  void Shutdown();

  class Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::manager
