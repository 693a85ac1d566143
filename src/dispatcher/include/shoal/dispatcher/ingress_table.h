#pragma once

// The cluster's ingress table for the routing mesh (docs/executors.md,
// "Ingress ports"): every service that publishes a `mode: ingress` port, with
// its RUNNING tasks and where other nodes reach them (the node's address and
// the host port its engine bound for the task). The dispatcher sends it to
// every agent when it changes, so that each node's ingress proxy answers on
// every published port and forwards to any node's task.
//
// Pure: built from the applied State. Threads: not thread-safe; the
// dispatcher (the manager's event loop) owns it.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "shoal/store/state.h"
#include "shoal/v1/cluster.pb.h"

namespace shoal::dispatcher {

// The service's ingress ports the mesh serves: mode ingress, a published
// port, TCP (the proxy forwards TCP only). Empty for most services.
std::vector<v1::PortConfig> MeshPorts(const v1::ServiceSpec& spec);

// The host part of a node address "host:port" or "[v6]:port"; the address
// itself when it has no port.
std::string AddrHost(const std::string& addr);

// The table from the state: services by id; their backends are the tasks
// RUNNING (and meant to run) on a node that is not DOWN, by task id.
v1::IngressTable BuildIngressTable(const store::State& state);
// One service's entry of that table; false when it has no ingress port.
bool BuildIngressService(const store::State& state, const v1::Service& svc,
                         v1::IngressService* out);

// The table as the dispatcher last built it, rebuilt only after an event
// that may change it, and only for the services such events touched (a
// node's change rebuilds it all), and versioned so that each agent session
// is sent a table once per change.
class IngressTracker {
 public:
  // Something changed in ways unknown (a snapshot, a new term): the next
  // Refresh rebuilds.
  void Invalidate() { all_dirty_ = true; }
  // An applied event: marks the table for a rebuild when it may change it
  // (a service that has or had ingress ports, a task of one, a node while
  // any service has ingress ports). Costs nothing while no service has one.
  void Observe(const v1::Mutation& m);
  // Rebuilds if marked; true when the table differs from the previous one
  // (its version is then one higher).
  bool Refresh(const store::State& state);

  // 0 until the first non-empty table; each change adds one.
  uint64_t version() const { return version_; }
  const v1::IngressTable& table() const { return table_; }

 private:
  bool all_dirty_ = true;
  std::set<std::string> dirty_;  // service ids to rebuild
  uint64_t version_ = 0;
  v1::IngressTable table_;
  // table_'s entries by service id, each with its bytes to compare rebuilds.
  std::map<std::string, std::pair<v1::IngressService, std::string>> services_;
};

}  // namespace shoal::dispatcher
