#include "filters.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

namespace shoal::scheduler::internal {

std::string PortKey(const v1::PortConfig& p) {
  return std::to_string(p.published()) + "/" + (p.protocol().empty() ? "tcp" : p.protocol());
}

bool IsHostPort(const v1::PortConfig& p) {
  return p.mode() == v1::PortConfig::PUBLISH_HOST && p.published() != 0;
}

namespace {

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(' ');
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(' ');
  return std::string(s.substr(b, e - b + 1));
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
  std::string_view c = constraint;
  std::string lhs = Trim(c.substr(0, pos)), rhs = Trim(c.substr(pos + 2));
  std::string value;
  bool has = Attribute(n, lhs, &value);
  // Labels compare case-sensitively, as in Swarm; names and roles too.
  return eq ? (has && value == rhs) : (!has || value != rhs);
}

}  // namespace

bool NodeLoad::HostPortInUse(const std::string& key) const {
  int n = 0;
  if (base != nullptr) {
    auto it = base->host_ports.find(key);
    if (it != base->host_ports.end()) n += it->second;
  }
  auto it = host_ports.find(key);
  if (it != host_ports.end()) n += it->second;
  return n > 0;
}

void AddTask(NodeLoad& load, const v1::Task& t, int sign) {
  load.per_service[t.service_id()] += sign;
  load.total += sign;
  load.cpus += sign * t.resources().reservations().nano_cpus();
  load.memory += sign * t.resources().reservations().memory_bytes();
  for (const auto& p : t.endpoint().ports()) {
    if (IsHostPort(p)) load.host_ports[PortKey(p)] += sign;
  }
}

std::vector<NodeLoad> Loads(const std::vector<const v1::Node*>& nodes, const Load& load) {
  std::vector<NodeLoad> loads(nodes.size());
  std::unordered_map<std::string_view, size_t> by_id;
  by_id.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeLoad& l = loads[i];
    l.node = nodes[i];
    by_id[nodes[i]->meta().id()] = i;  // the last of equal ids, as before
    if (load.base == nullptr) continue;
    auto it = load.base->find(nodes[i]->meta().id());
    if (it == load.base->end()) continue;
    l.base = &it->second;
    l.total = l.base->total;
    l.cpus = l.base->nano_cpus;
    l.memory = l.base->memory_bytes;
  }
  if (load.base != nullptr) {
    // A node id listed twice: only the last of them counts its tasks, as
    // when every task is added one by one.
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (by_id[nodes[i]->meta().id()] == i) continue;
      loads[i].base = nullptr;
      loads[i].total = 0;
      loads[i].cpus = loads[i].memory = 0;
    }
  }
  for (const v1::Task* t : load.add) {
    auto it = by_id.find(t->node_id());
    if (it != by_id.end()) AddTask(loads[it->second], *t);
  }
  for (const v1::Task* t : load.remove) {
    auto it = by_id.find(t->node_id());
    if (it != by_id.end()) AddTask(loads[it->second], *t, -1);
  }
  return loads;
}

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

std::string StaticRefusal(const v1::Node& n, const v1::Task& task) {
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
  return "";
}

std::string DynamicRefusal(const NodeLoad& load, const v1::Task& task) {
  const v1::Node& n = *load.node;
  const auto& want = task.resources().reservations();
  if (want.nano_cpus() > 0 && load.cpus + want.nano_cpus() > n.description().nano_cpus()) {
    return "insufficient CPU";
  }
  if (want.memory_bytes() > 0 &&
      load.memory + want.memory_bytes() > n.description().memory_bytes()) {
    return "insufficient memory";
  }
  if (load.AnyHostPorts()) {
    for (const auto& p : task.endpoint().ports()) {
      if (IsHostPort(p) && load.HostPortInUse(PortKey(p))) {
        return "host port " + PortKey(p) + " in use";
      }
    }
  }
  uint64_t max = task.placement().max_replicas_per_node();
  if (max > 0 && static_cast<uint64_t>(load.Of(task.service_id())) >= max) {
    return "max replicas per node (" + std::to_string(max) + ")";
  }
  return "";
}

bool SameNeeds(const v1::Task& a, const v1::Task& b) {
  if (!a.node_id().empty() || !b.node_id().empty()) return false;
  if (a.service_id() != b.service_id()) return false;
  const auto &pa = a.placement(), &pb = b.placement();
  if (pa.max_replicas_per_node() != pb.max_replicas_per_node()) return false;
  if (!std::equal(pa.constraints().begin(), pa.constraints().end(), pb.constraints().begin(),
                  pb.constraints().end())) {
    return false;
  }
  if (!std::equal(pa.spread().begin(), pa.spread().end(), pb.spread().begin(), pb.spread().end())) {
    return false;
  }
  const auto &ra = a.resources().reservations(), &rb = b.resources().reservations();
  if (ra.nano_cpus() != rb.nano_cpus() || ra.memory_bytes() != rb.memory_bytes()) return false;
  const auto &xa = a.endpoint().ports(), &xb = b.endpoint().ports();
  if (xa.size() != xb.size()) return false;
  for (int i = 0; i < xa.size(); ++i) {
    if (IsHostPort(xa[i]) != IsHostPort(xb[i])) return false;
    if (IsHostPort(xa[i]) && PortKey(xa[i]) != PortKey(xb[i])) return false;
  }
  return true;
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

}  // namespace shoal::scheduler::internal
