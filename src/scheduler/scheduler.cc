#include "shoal/scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <tuple>

namespace shoal::scheduler {

namespace {

// What the scheduler tracks of a node while it places a batch.
struct NodeLoad {
  const v1::Node* node = nullptr;
  std::map<std::string, int> per_service;  // service id -> tasks
  int total = 0;
  int64_t cpus = 0;                  // reserved nano CPUs
  int64_t memory = 0;                // reserved bytes
  std::set<std::string> host_ports;  // "8080/tcp"
};

std::string PortKey(const v1::PortConfig& p) {
  return std::to_string(p.published()) + "/" + (p.protocol().empty() ? "tcp" : p.protocol());
}

void AddTask(NodeLoad& load, const v1::Task& t) {
  load.per_service[t.service_id()]++;
  load.total++;
  load.cpus += t.resources().reservations().nano_cpus();
  load.memory += t.resources().reservations().memory_bytes();
  for (const auto& p : t.endpoint().ports()) {
    if (p.mode() == v1::PortConfig::PUBLISH_HOST && p.published() != 0)
      load.host_ports.insert(PortKey(p));
  }
}

// The value a constraint's left-hand side has on a node; false when the node
// has no such attribute (a missing label never equals anything).
bool Attribute(const v1::Node& n, const std::string& lhs, std::string* out) {
  auto label = [&](std::string_view prefix, const auto& labels) {
    auto it = labels.find(lhs.substr(prefix.size()));
    if (it == labels.end()) return false;
    *out = it->second;
    return true;
  };
  if (lhs.rfind("node.labels.", 0) == 0) return label("node.labels.", n.spec().labels());
  if (lhs.rfind("engine.labels.", 0) == 0) {
    return label("engine.labels.", n.description().engine_labels());
  }
  if (lhs == "node.id") {
    *out = n.meta().id();
  } else if (lhs == "node.hostname") {
    *out = n.description().hostname();
  } else if (lhs == "node.role") {
    *out = n.spec().desired_role() == v1::NodeSpec::ROLE_MANAGER ? "manager" : "worker";
  } else if (lhs == "node.platform.os") {
    *out = n.description().os();
  } else if (lhs == "node.platform.arch") {
    *out = n.description().arch();
  } else {
    return false;
  }
  return true;
}

// "lhs == rhs" / "lhs != rhs" as the stack loader normalised them.
bool Satisfies(const v1::Node& n, const std::string& constraint) {
  size_t pos = constraint.find("==");
  bool eq = true;
  if (pos == std::string::npos) {
    pos = constraint.find("!=");
    eq = false;
  }
  if (pos == std::string::npos) return false;
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    return s;
  };
  std::string lhs = trim(constraint.substr(0, pos)), rhs = trim(constraint.substr(pos + 2));
  std::string value;
  bool has = Attribute(n, lhs, &value);
  // Labels compare case-sensitively, as in Swarm; names and roles too.
  return eq ? (has && value == rhs) : (!has || value != rhs);
}

// The first filter that refuses the node, as the words of a message; "" if none.
std::string Refusal(const NodeLoad& load, const v1::Task& task) {
  const v1::Node& n = *load.node;
  if (n.status().state() != v1::NodeStatus::STATE_READY) return "not ready";
  switch (n.spec().availability()) {
    case v1::NodeSpec::AVAILABILITY_PAUSE:
      return "paused";
    case v1::NodeSpec::AVAILABILITY_DRAIN:
      return "drained";
    default:
      break;
  }
  for (const auto& c : task.placement().constraints()) {
    if (!Satisfies(n, c)) return "constraint " + c;
  }
  const auto& want = task.resources().reservations();
  if (want.nano_cpus() > 0 && load.cpus + want.nano_cpus() > n.description().nano_cpus()) {
    return "insufficient CPU";
  }
  if (want.memory_bytes() > 0 &&
      load.memory + want.memory_bytes() > n.description().memory_bytes()) {
    return "insufficient memory";
  }
  for (const auto& p : task.endpoint().ports()) {
    if (p.mode() == v1::PortConfig::PUBLISH_HOST && p.published() != 0 &&
        load.host_ports.count(PortKey(p))) {
      return "host port " + PortKey(p) + " in use";
    }
  }
  uint64_t max = task.placement().max_replicas_per_node();
  if (max > 0) {
    auto it = load.per_service.find(task.service_id());
    if (it != load.per_service.end() && static_cast<uint64_t>(it->second) >= max) {
      return "max replicas per node (" + std::to_string(max) + ")";
    }
  }
  return "";
}

std::string Message(const std::map<std::string, int>& reasons, size_t nodes) {
  // Most common reason first, then by name, so the message is stable.
  std::vector<std::pair<int, std::string>> sorted;
  for (const auto& [r, c] : reasons) sorted.push_back({-c, r});
  std::sort(sorted.begin(), sorted.end());
  std::string msg = "0/" + std::to_string(nodes) + " nodes";
  if (nodes == 0) return msg + ": the cluster has no nodes";
  for (size_t i = 0; i < sorted.size(); ++i) {
    msg += i == 0 ? ": " : ", ";
    msg += std::to_string(-sorted[i].first) + " " + sorted[i].second;
  }
  return msg;
}

// Tasks of the service in each label group of each spread preference
// (`without`: the group of nodes that lack the label). Counted once per task,
// not once per candidate node, so that spreading costs nodes, not nodes².
struct SpreadCounts {
  std::vector<std::map<std::string, int>> with;
  std::vector<int> without;
};

SpreadCounts CountSpread(const std::vector<NodeLoad>& all, const v1::Task& task) {
  const auto& prefs = task.placement().spread();
  SpreadCounts c;
  c.with.resize(prefs.size());
  c.without.resize(prefs.size());
  if (prefs.empty()) return c;
  for (const auto& load : all) {
    auto it = load.per_service.find(task.service_id());
    if (it == load.per_service.end()) continue;
    for (int i = 0; i < prefs.size(); ++i) {
      std::string v;
      if (Attribute(*load.node, prefs[i], &v)) {
        c.with[i][v] += it->second;
      } else {
        c.without[i] += it->second;
      }
    }
  }
  return c;
}

// Spread score: tasks of the service in the node's group for each preference
// (lower is better), then on the node, then overall, then the node id.
using Score = std::tuple<std::vector<int>, int, int, std::string_view>;

Score ScoreOf(const NodeLoad& load, const v1::Task& task, const SpreadCounts& spread) {
  std::vector<int> groups;
  const auto& prefs = task.placement().spread();
  for (int i = 0; i < prefs.size(); ++i) {
    std::string mine;
    if (Attribute(*load.node, prefs[i], &mine)) {
      auto it = spread.with[i].find(mine);
      groups.push_back(it == spread.with[i].end() ? 0 : it->second);
    } else {
      groups.push_back(spread.without[i]);
    }
  }
  auto it = load.per_service.find(task.service_id());
  int mine = it == load.per_service.end() ? 0 : it->second;
  return {groups, mine, load.total, load.node->meta().id()};
}

std::vector<NodeLoad> Loads(const std::vector<v1::Node>& nodes,
                            const std::vector<v1::Task>& assigned) {
  std::vector<NodeLoad> loads(nodes.size());
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < nodes.size(); ++i) {
    loads[i].node = &nodes[i];
    by_id[nodes[i].meta().id()] = i;
  }
  for (const auto& t : assigned) {
    auto it = by_id.find(t.node_id());
    if (it != by_id.end()) AddTask(loads[it->second], t);
  }
  return loads;
}

}  // namespace

Decision Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& assigned,
                  const std::vector<v1::Task>& pending) {
  std::vector<NodeLoad> loads = Loads(nodes, assigned);
  Decision d;
  for (const auto& task : pending) {
    std::map<std::string, int> reasons;
    NodeLoad* best = nullptr;
    Score best_score;
    const SpreadCounts spread = CountSpread(loads, task);
    for (auto& load : loads) {
      // A global task belongs to one node: only that node is considered.
      if (!task.node_id().empty() && load.node->meta().id() != task.node_id()) continue;
      std::string why = Refusal(load, task);
      if (!why.empty()) {
        reasons[why]++;
        continue;
      }
      Score s = ScoreOf(load, task, spread);
      if (!best || s < best_score) {
        best = &load;
        best_score = std::move(s);
      }
    }
    if (!best) {
      size_t considered = task.node_id().empty() ? loads.size() : 1;
      d.unplaced.push_back({task.meta().id(), Message(reasons, considered)});
      continue;
    }
    AddTask(*best, task);
    d.assigned.push_back({task.meta().id(), best->node->meta().id()});
  }
  return d;
}

std::string Explain(const v1::Node& node, const std::vector<v1::Task>& assigned,
                    const v1::Task& task) {
  std::vector<v1::Node> one = {node};
  std::vector<NodeLoad> loads = Loads(one, assigned);
  return Refusal(loads[0], task);
}

}  // namespace shoal::scheduler
