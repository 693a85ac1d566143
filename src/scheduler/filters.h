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

#include "shoal/v1/objects.pb.h"

namespace shoal::scheduler::internal {

// What the scheduler tracks of a node while it places tasks.
struct NodeLoad {
  const v1::Node* node = nullptr;
  std::unordered_map<std::string, int> per_service;  // service id -> tasks
  int total = 0;
  int64_t cpus = 0;                  // reserved nano CPUs
  int64_t memory = 0;                // reserved bytes
  std::set<std::string> host_ports;  // "8080/tcp"

  int Of(const std::string& service_id) const {
    auto it = per_service.find(service_id);
    return it == per_service.end() ? 0 : it->second;
  }
};

std::string PortKey(const v1::PortConfig& p);
void AddTask(NodeLoad& load, const v1::Task& t);
// One load per node, in the order of `nodes`, with the tasks of `assigned`
// whose node is among them.
std::vector<NodeLoad> Loads(const std::vector<const v1::Node*>& nodes,
                            const std::vector<const v1::Task*>& assigned);

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
