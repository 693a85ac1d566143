#pragma once

// The scheduler's filters and per-node loads, shared by the placement loop
// (scheduler.cc) and Explain. Internal to the scheduler module.
//
// Filters come in two kinds, always tried in this order:
//   static   node state, availability, constraints: they depend on the node
//            and the task only, so a batch of like tasks checks them once;
//   dynamic  resources, host ports, max replicas per node: they depend on
//            what the node already holds, and only get harder as tasks are
//            added to it.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/scheduler/scheduler.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::scheduler::internal {

// What the scheduler tracks of a node while it places tasks: the caller's
// kept usage (`base`, may be null) and, on top of it, what this call added
// or removed. The scalars include the base's.
struct NodeLoad {
  const v1::Node* node = nullptr;
  const NodeUsage* base = nullptr;
  std::unordered_map<std::string, int> per_service;  // service id -> tasks, on top of base
  int total = 0;
  int64_t cpus = 0;                                 // reserved nano CPUs
  int64_t memory = 0;                               // reserved bytes
  std::unordered_map<std::string, int> host_ports;  // "8080/tcp" -> tasks, on top of base

  int Of(const std::string& service_id) const {
    int n = base != nullptr ? base->Of(service_id) : 0;
    if (!per_service.empty()) {
      auto it = per_service.find(service_id);
      if (it != per_service.end()) n += it->second;
    }
    return n;
  }
  bool AnyHostPorts() const {
    return !host_ports.empty() || (base != nullptr && !base->host_ports.empty());
  }
  bool HostPortInUse(const std::string& key) const;
};

std::string PortKey(const v1::PortConfig& p);
bool IsHostPort(const v1::PortConfig& p);
// Counts `t` on the node once more (sign 1) or once less (sign -1).
void AddTask(NodeLoad& load, const v1::Task& t, int sign = 1);
// One load per node, in the order of `nodes`, with the tasks of `load`
// whose node is among them.
std::vector<NodeLoad> Loads(const std::vector<const v1::Node*>& nodes, const Load& load);

// The value a constraint's or spread preference's left-hand side has on a
// node; false when the node has no such attribute.
bool Attribute(const v1::Node& n, const std::string& lhs, std::string* out);

// The first static / dynamic filter that refuses, in words; "" if none.
std::string StaticRefusal(const v1::Node& n, const v1::Task& task);
std::string DynamicRefusal(const NodeLoad& load, const v1::Task& task);
inline std::string Refusal(const NodeLoad& load, const v1::Task& task) {
  std::string why = StaticRefusal(*load.node, task);
  return why.empty() ? DynamicRefusal(load, task) : why;
}

// Whether every filter and the score treat `a` and `b` alike (same service,
// placement, reservations and host ports, neither bound to a node): such
// tasks are placed as one batch.
bool SameNeeds(const v1::Task& a, const v1::Task& b);

// "0/N nodes: 3 reason, 1 other", most common reason first.
std::string Message(const std::map<std::string, int>& reasons, size_t nodes);

}  // namespace shoal::scheduler::internal
