#include "shoal/scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "filters.h"

namespace shoal::scheduler {

using internal::NodeLoad;

namespace {

// The nodes of one spread label group (all nodes when the batch has no
// spread preferences) that passed the static filters, as a min-heap on
// (tasks of the service, tasks overall, node id).
struct Group {
  std::vector<int*> counts;  // per preference: tasks of the service in this group's label value
  std::vector<size_t> heap;  // node indexes
  bool top_checked = false;  // the top passed the dynamic filters since it last changed
};

class Batch {
  // std heaps keep the greatest on top: "later" means a worse score.
  struct Worse {
    const Batch* b;
    bool operator()(size_t x, size_t y) const { return b->Less(y, x); }
  };
  Worse Later() const { return Worse{this}; }

 public:
  Batch(std::vector<NodeLoad>& loads, const v1::Task& like) : loads_(loads), like_(like) {}

  // Sorts the nodes into groups and heaps: O(N log N) at worst.
  void Prepare() {
    const auto& prefs = like_.placement().spread();
    const std::string& service = like_.service_id();
    mine_.resize(loads_.size());
    with_.resize(prefs.size());
    without_.assign(prefs.size(), 0);
    std::map<std::vector<std::optional<std::string>>, size_t> group_of;
    node_group_.assign(loads_.size(), SIZE_MAX);
    std::vector<std::optional<std::string>> key(prefs.size());
    for (size_t i = 0; i < loads_.size(); ++i) {
      const NodeLoad& load = loads_[i];
      mine_[i] = load.Of(service);
      for (int p = 0; p < prefs.size(); ++p) {
        std::string v;
        if (internal::Attribute(*load.node, prefs[p], &v)) {
          with_[p][v] += mine_[i];
          key[p] = std::move(v);
        } else {
          without_[p] += mine_[i];
          key[p].reset();
        }
      }
      std::string why = internal::StaticRefusal(*load.node, like_);
      if (!why.empty()) {
        reasons_[why]++;
        continue;
      }
      auto [it, added] = group_of.emplace(key, groups_.size());
      if (added) {
        Group g;
        for (int p = 0; p < prefs.size(); ++p) {
          g.counts.push_back(key[p] ? &with_[p][*key[p]] : &without_[p]);
        }
        groups_.push_back(std::move(g));
      }
      node_group_[i] = it->second;
      groups_[it->second].heap.push_back(i);
    }
    for (Group& g : groups_) std::make_heap(g.heap.begin(), g.heap.end(), Later());
  }

  // The node for the next task of the batch (its index), or nullopt when no
  // node can take it; then the batch's reasons explain why.
  std::optional<size_t> Pick() {
    Group* best = nullptr;
    for (Group& g : groups_) {
      if (!CheckTop(g)) continue;
      if (best == nullptr || Better(g, *best)) best = &g;
    }
    if (best == nullptr) return std::nullopt;
    return best->heap.front();
  }

  // Records `task` (like the batch's) on node `i`, which Pick returned.
  void Place(size_t i, const v1::Task& task) {
    Group& g = groups_[node_group_[i]];
    std::pop_heap(g.heap.begin(), g.heap.end(), Later());
    internal::AddTask(loads_[i], task);
    mine_[i]++;
    for (int* c : g.counts) ++*c;
    std::push_heap(g.heap.begin(), g.heap.end(), Later());
    g.top_checked = false;
  }

  const std::map<std::string, int>& reasons() const { return reasons_; }

 private:
  bool Less(size_t x, size_t y) const {
    if (mine_[x] != mine_[y]) return mine_[x] < mine_[y];
    if (loads_[x].total != loads_[y].total) return loads_[x].total < loads_[y].total;
    return loads_[x].node->meta().id() < loads_[y].node->meta().id();
  }

  // Drops refused nodes from the top of `g` until one passes; false when
  // none is left.
  bool CheckTop(Group& g) {
    while (!g.top_checked) {
      if (g.heap.empty()) return false;
      std::string why = internal::DynamicRefusal(loads_[g.heap.front()], like_);
      if (why.empty()) {
        g.top_checked = true;
        break;
      }
      // Refused for good in this batch: only placing here changes its load.
      reasons_[why]++;
      std::pop_heap(g.heap.begin(), g.heap.end(), Later());
      g.heap.pop_back();
    }
    return true;
  }

  // The spread score: group counts per preference, then the top node's.
  bool Better(const Group& a, const Group& b) const {
    for (size_t p = 0; p < a.counts.size(); ++p) {
      if (*a.counts[p] != *b.counts[p]) return *a.counts[p] < *b.counts[p];
    }
    return Less(a.heap.front(), b.heap.front());
  }

  std::vector<NodeLoad>& loads_;
  const v1::Task& like_;
  std::vector<int> mine_;  // tasks of the service per node
  std::vector<std::map<std::string, int>> with_;
  std::vector<int> without_;
  std::vector<Group> groups_;
  std::vector<size_t> node_group_;
  std::map<std::string, int> reasons_;  // refused nodes by first refusing filter
};

// A global task: only its own node is considered.
void PlaceBound(std::vector<NodeLoad>& loads,
                const std::unordered_map<std::string_view, size_t>& by_id, const v1::Task& task,
                Decision& d) {
  std::map<std::string, int> reasons;
  auto it = by_id.find(task.node_id());
  if (it != by_id.end()) {
    NodeLoad& load = loads[it->second];
    std::string why = internal::Refusal(load, task);
    if (why.empty()) {
      internal::AddTask(load, task);
      d.assigned.push_back({task.meta().id(), load.node->meta().id()});
      return;
    }
    reasons[why]++;
  }
  d.unplaced.push_back({task.meta().id(), internal::Message(reasons, 1)});
}

}  // namespace

TaskLoad TaskLoad::Of(const v1::Task& task) {
  TaskLoad l;
  l.service_id = task.service_id();
  l.nano_cpus = task.resources().reservations().nano_cpus();
  l.memory_bytes = task.resources().reservations().memory_bytes();
  for (const auto& p : task.endpoint().ports()) {
    if (internal::IsHostPort(p)) l.host_ports.push_back(internal::PortKey(p));
  }
  return l;
}

void NodeUsage::Add(const TaskLoad& load, int sign) {
  total += sign;
  nano_cpus += sign * load.nano_cpus;
  memory_bytes += sign * load.memory_bytes;
  auto count = [sign](std::unordered_map<std::string, int>& m, const std::string& key) {
    auto [it, added] = m.try_emplace(key, 0);
    it->second += sign;
    if (it->second == 0) m.erase(it);
  };
  count(per_service, load.service_id);
  for (const std::string& p : load.host_ports) count(host_ports, p);
}

int NodeUsage::Of(const std::string& service_id) const {
  auto it = per_service.find(service_id);
  return it == per_service.end() ? 0 : it->second;
}

Decision Schedule(const std::vector<const v1::Node*>& nodes,
                  const std::vector<const v1::Task*>& assigned,
                  const std::vector<const v1::Task*>& pending) {
  Load load;
  load.add = assigned;
  return Schedule(nodes, load, pending);
}

Decision Schedule(const std::vector<const v1::Node*>& nodes, const Load& load,
                  const std::vector<const v1::Task*>& pending) {
  std::vector<NodeLoad> loads = internal::Loads(nodes, load);
  std::unordered_map<std::string_view, size_t> by_id;
  by_id.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) by_id[nodes[i]->meta().id()] = i;
  Decision d;
  d.assigned.reserve(pending.size());
  for (size_t begin = 0; begin < pending.size();) {
    const v1::Task& first = *pending[begin];
    if (!first.node_id().empty()) {
      PlaceBound(loads, by_id, first, d);
      ++begin;
      continue;
    }
    size_t end = begin + 1;
    while (end < pending.size() && internal::SameNeeds(first, *pending[end])) ++end;
    Batch batch(loads, first);
    batch.Prepare();
    size_t k = begin;
    for (; k < end; ++k) {
      std::optional<size_t> node = batch.Pick();
      if (!node) break;
      batch.Place(*node, *pending[k]);
      d.assigned.push_back({pending[k]->meta().id(), loads[*node].node->meta().id()});
    }
    if (k < end) {
      // Nothing changes any more in this batch: the rest share one message.
      std::string why = internal::Message(batch.reasons(), loads.size());
      for (; k < end; ++k) d.unplaced.push_back({pending[k]->meta().id(), why});
    }
    begin = end;
  }
  return d;
}

Decision Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& assigned,
                  const std::vector<v1::Task>& pending) {
  auto pointers = [](const auto& values) {
    std::vector<const typename std::decay_t<decltype(values)>::value_type*> out;
    out.reserve(values.size());
    for (const auto& v : values) out.push_back(&v);
    return out;
  };
  return Schedule(pointers(nodes), pointers(assigned), pointers(pending));
}

std::string Explain(const v1::Node& node, const std::vector<v1::Task>& assigned,
                    const v1::Task& task) {
  NodeLoad load;
  load.node = &node;
  for (const v1::Task& t : assigned) {
    if (t.node_id() == node.meta().id()) internal::AddTask(load, t);
  }
  return internal::Refusal(load, task);
}

}  // namespace shoal::scheduler
