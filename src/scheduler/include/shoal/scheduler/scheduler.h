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
// The same, for callers that hold values.
Decision Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& assigned,
                  const std::vector<v1::Task>& pending);

// Why one task cannot run on one node, or "" when it can (for `node inspect`
// style explanations and tests). Counts come from `assigned`.
std::string Explain(const v1::Node& node, const std::vector<v1::Task>& assigned,
                    const v1::Task& task);

}  // namespace shoal::scheduler
