#pragma once

// The scheduler: a pure function from the cluster's nodes and tasks to
// placements (design.md section 5). No clock, no I/O, no randomness: the same
// input gives the same output on every manager and in `deploy --dry-run`.
//
// A node is tried by filters in a fixed order; the first that refuses it says
// why, so a task that fits nowhere carries a message such as
//   "0/4 nodes: 3 constraint node.labels.zone == eu, 1 insufficient memory".
// Among the nodes that pass, spread preferences pick the label group with the
// fewest tasks of the service, then the node with the fewest tasks of the
// service, then the fewest tasks overall, then the lowest node id.
//
// Thread-safe: no shared state.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "shoal/v1/objects.pb.h"

namespace shoal::scheduler {

struct Assignment {
  std::string task_id;
  std::string node_id;
};

struct Unplaced {
  std::string task_id;
  std::string message;  // "0/4 nodes: ..."
};

struct Decision {
  std::vector<Assignment> assigned;
  std::vector<Unplaced> unplaced;
};

// What one assigned task takes of its node, as the scheduler counts it.
struct TaskLoad {
  std::string service_id;
  int64_t nano_cpus = 0;                // reserved
  int64_t memory_bytes = 0;             // reserved
  std::vector<std::string> host_ports;  // "8080/tcp", published in host mode

  static TaskLoad Of(const v1::Task& task);
};

// What the tasks assigned to one node take of it: kept by a caller across
// calls (orchestrator::LoadIndex) so that a placement need not walk every
// assigned task of the cluster. Counts that reach 0 are dropped.
struct NodeUsage {
  int total = 0;
  int64_t nano_cpus = 0;
  int64_t memory_bytes = 0;
  std::unordered_map<std::string, int> per_service;  // service id -> tasks
  std::unordered_map<std::string, int> host_ports;   // "8080/tcp" -> tasks

  // Counts `load` once more (sign 1) or once less (sign -1).
  void Add(const TaskLoad& load, int sign = 1);
  int Of(const std::string& service_id) const;
};

// Usage by node id.
using Usage = std::unordered_map<std::string, NodeUsage>;

// The tasks already assigned, as Schedule counts them: `base` (may be null),
// plus the tasks of `add`, less those of `remove` (tasks `base` counts, as it
// counted them, that no longer count). Equivalent to listing every assigned
// task in `add`; the pointers are only read during the call.
struct Load {
  const Usage* base = nullptr;
  std::vector<const v1::Task*> add;
  std::vector<const v1::Task*> remove;
};

// Places `pending` (tasks without a node, in the order given; tasks of one
// service should come together so they are spread as a batch) on `nodes`,
// given the tasks already assigned (`assigned`: their node_id is set and their
// desired state is not past RUNNING). Global tasks name their node already and
// are only checked against it. Neither input is modified; the pointers are
// only read during the call.
//
// Consecutive pending tasks with the same needs (service, placement,
// reservations, host ports) form a batch: the static filters run once per
// node, the nodes that pass wait in a min-heap on their score (one heap per
// spread label group), and only the node at the top is checked against the
// dynamic filters. A node the dynamic filters refuse stays refused for the
// rest of the batch (its load does not change), so the result, messages
// included, is the same as trying every node for every task: O(N + T log N)
// per batch instead of O(N T).
Decision Schedule(const std::vector<const v1::Node*>& nodes,
                  const std::vector<const v1::Task*>& assigned,
                  const std::vector<const v1::Task*>& pending);
// The same, with the assigned tasks' load given as a kept Usage and its
// adjustments: O(nodes + adjustments + pending) instead of O(assigned).
Decision Schedule(const std::vector<const v1::Node*>& nodes, const Load& load,
                  const std::vector<const v1::Task*>& pending);
// The same, for callers that hold values.
Decision Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& assigned,
                  const std::vector<v1::Task>& pending);

// Why one task cannot run on one node, or "" when it can (for `node inspect`
// style explanations and tests). Counts come from `assigned`.
std::string Explain(const v1::Node& node, const std::vector<v1::Task>& assigned,
                    const v1::Task& task);

}  // namespace shoal::scheduler
