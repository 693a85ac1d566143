// The batched scheduler (heaps per label group) against a straightforward
// reference that tries every node for every task, on random small inputs:
// the same placements in the same order, the same messages.

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <tuple>

#include "shoal/scheduler/scheduler.h"

using shoal::scheduler::Decision;
using shoal::scheduler::Explain;
using shoal::scheduler::Schedule;
namespace v1 = shoal::v1;

namespace {

// Spread preferences in these tests name node labels only.
bool Label(const v1::Node& n, const std::string& pref, std::string* out) {
  const std::string key = pref.substr(std::string("node.labels.").size());
  auto it = n.spec().labels().find(key);
  if (it == n.spec().labels().end()) return false;
  *out = it->second;
  return true;
}

std::string ReferenceMessage(const std::map<std::string, int>& reasons, size_t nodes) {
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

// Every node for every task: filters through Explain, then the score
// (group counts per preference, tasks of the service, tasks overall, id).
Decision Reference(const std::vector<v1::Node>& nodes, std::vector<v1::Task> assigned,
                   const std::vector<v1::Task>& pending) {
  Decision d;
  for (const v1::Task& task : pending) {
    std::map<std::string, int> reasons;
    const v1::Node* best = nullptr;
    std::tuple<std::vector<int>, int, int, std::string> best_score;
    size_t considered = 0;
    for (const v1::Node& n : nodes) {
      if (!task.node_id().empty() && n.meta().id() != task.node_id()) continue;
      ++considered;
      std::string why = Explain(n, assigned, task);
      if (!why.empty()) {
        reasons[why]++;
        continue;
      }
      std::vector<int> groups;
      for (const std::string& pref : task.placement().spread()) {
        std::string mine;
        bool has = Label(n, pref, &mine);
        int count = 0;
        for (const v1::Task& t : assigned) {
          if (t.service_id() != task.service_id()) continue;
          for (const v1::Node& m : nodes) {
            if (m.meta().id() != t.node_id()) continue;
            std::string theirs;
            bool they = Label(m, pref, &theirs);
            if (they == has && (!has || theirs == mine)) ++count;
          }
        }
        groups.push_back(count);
      }
      int of_service = 0, total = 0;
      for (const v1::Task& t : assigned) {
        if (t.node_id() != n.meta().id()) continue;
        ++total;
        if (t.service_id() == task.service_id()) ++of_service;
      }
      auto score = std::make_tuple(groups, of_service, total, n.meta().id());
      if (best == nullptr || score < best_score) {
        best = &n;
        best_score = score;
      }
    }
    if (best == nullptr) {
      d.unplaced.push_back(
          {task.meta().id(), ReferenceMessage(reasons, task.node_id().empty() ? nodes.size() : 1)});
      continue;
    }
    v1::Task placed = task;
    placed.set_node_id(best->meta().id());
    assigned.push_back(placed);
    d.assigned.push_back({task.meta().id(), best->meta().id()});
  }
  return d;
}

v1::Task RandomNeeds(std::mt19937& rng, int index) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  v1::Task t;
  t.set_service_id("svc" + std::to_string(pick(3)));
  t.set_desired_state(v1::TASK_RUNNING);
  if (pick(3) == 0) t.mutable_placement()->add_constraints("node.labels.zone != c");
  if (pick(5) == 0) t.mutable_placement()->add_constraints("node.labels.disk == ssd");
  int spread = pick(3);
  if (spread >= 1) t.mutable_placement()->add_spread("node.labels.zone");
  if (spread >= 2) t.mutable_placement()->add_spread("node.labels.rack");
  t.mutable_placement()->set_max_replicas_per_node(pick(3));
  t.mutable_resources()->mutable_reservations()->set_memory_bytes(pick(3) * (1LL << 30));
  t.mutable_resources()->mutable_reservations()->set_nano_cpus(pick(2) * 1'000'000'000LL);
  if (pick(6) == 0) {
    auto* p = t.mutable_endpoint()->add_ports();
    p->set_mode(v1::PortConfig::PUBLISH_HOST);
    p->set_published(8080);
    p->set_target(80);
  }
  t.mutable_meta()->set_id("t" + std::to_string(index));
  return t;
}

}  // namespace

TEST_CASE("batched placement equals trying every node for every task") {
  std::mt19937 rng(20261127);
  for (int round = 0; round < 400; ++round) {
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    std::vector<v1::Node> nodes;
    int node_count = pick(9);
    for (int i = 0; i < node_count; ++i) {
      v1::Node n;
      n.mutable_meta()->set_id("n" + std::to_string(pick(100)) + "-" + std::to_string(i));
      n.mutable_description()->set_hostname("h" + std::to_string(i));
      n.mutable_description()->set_nano_cpus((1 + pick(4)) * 1'000'000'000LL);
      n.mutable_description()->set_memory_bytes((1 + pick(8)) * (1LL << 30));
      n.mutable_status()->set_state(pick(6) == 0 ? v1::NodeStatus::STATE_DOWN
                                                 : v1::NodeStatus::STATE_READY);
      if (pick(8) == 0) n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
      auto& labels = *n.mutable_spec()->mutable_labels();
      static const char* kZones[] = {"a", "b", "c"};
      if (pick(4) != 0) labels["zone"] = kZones[pick(3)];
      if (pick(3) != 0) labels["rack"] = std::to_string(pick(2));
      if (pick(2) == 0) labels["disk"] = "ssd";
      nodes.push_back(n);
    }
    std::vector<v1::Task> assigned;
    int assigned_count = node_count == 0 ? 0 : pick(12);
    for (int i = 0; i < assigned_count; ++i) {
      v1::Task t = RandomNeeds(rng, 1000 + i);
      t.set_node_id(nodes[pick(node_count)].meta().id());
      assigned.push_back(t);
    }
    // Runs of like tasks (batches), sometimes a global task between them.
    std::vector<v1::Task> pending;
    int runs = 1 + pick(4);
    for (int r = 0; r < runs; ++r) {
      v1::Task like = RandomNeeds(rng, 0);
      int count = 1 + pick(10);
      for (int i = 0; i < count; ++i) {
        v1::Task t = like;
        t.mutable_meta()->set_id("p" + std::to_string(pending.size()));
        pending.push_back(t);
      }
      if (pick(4) == 0) {
        v1::Task g = RandomNeeds(rng, 0);
        g.mutable_meta()->set_id("g" + std::to_string(pending.size()));
        g.set_node_id(node_count > 0 && pick(5) != 0 ? nodes[pick(node_count)].meta().id()
                                                     : "gone");
        pending.push_back(g);
      }
    }
    Decision want = Reference(nodes, assigned, pending);
    Decision got = Schedule(nodes, assigned, pending);
    INFO("round " << round);
    REQUIRE(got.assigned.size() == want.assigned.size());
    for (size_t i = 0; i < want.assigned.size(); ++i) {
      CHECK(got.assigned[i].task_id == want.assigned[i].task_id);
      CHECK(got.assigned[i].node_id == want.assigned[i].node_id);
    }
    REQUIRE(got.unplaced.size() == want.unplaced.size());
    for (size_t i = 0; i < want.unplaced.size(); ++i) {
      CHECK(got.unplaced[i].task_id == want.unplaced[i].task_id);
      CHECK(got.unplaced[i].message == want.unplaced[i].message);
    }

    // The same load as a kept usage (some of the assigned tasks, and others
    // that no longer count, on nodes listed or not) with its adjustments.
    shoal::scheduler::Usage usage;
    shoal::scheduler::Load load;
    load.base = &usage;
    std::vector<v1::Task> gone;
    const int gone_count = pick(4);
    for (int i = 0; i < gone_count; ++i) {
      v1::Task t = RandomNeeds(rng, 2000 + i);
      t.set_node_id(node_count > 0 && pick(4) != 0 ? nodes[pick(node_count)].meta().id()
                                                   : "elsewhere");
      gone.push_back(t);
    }
    for (const v1::Task& t : gone) {
      usage[t.node_id()].Add(shoal::scheduler::TaskLoad::Of(t));
      load.remove.push_back(&t);
    }
    for (const v1::Task& t : assigned) {
      if (pick(2) == 0) {
        usage[t.node_id()].Add(shoal::scheduler::TaskLoad::Of(t));
      } else {
        load.add.push_back(&t);
      }
    }
    std::vector<const v1::Node*> node_refs;
    for (const v1::Node& n : nodes) node_refs.push_back(&n);
    std::vector<const v1::Task*> pending_refs;
    for (const v1::Task& t : pending) pending_refs.push_back(&t);
    Decision kept = Schedule(node_refs, load, pending_refs);
    REQUIRE(kept.assigned.size() == want.assigned.size());
    for (size_t i = 0; i < want.assigned.size(); ++i) {
      CHECK(kept.assigned[i].task_id == want.assigned[i].task_id);
      CHECK(kept.assigned[i].node_id == want.assigned[i].node_id);
    }
    REQUIRE(kept.unplaced.size() == want.unplaced.size());
    for (size_t i = 0; i < want.unplaced.size(); ++i) {
      CHECK(kept.unplaced[i].message == want.unplaced[i].message);
    }
  }
}

TEST_CASE("a large batch is placed evenly and quickly") {
  std::vector<v1::Node> nodes;
  for (int i = 0; i < 1000; ++i) {
    v1::Node n;
    char id[16];
    std::snprintf(id, sizeof(id), "n%04d", i);
    n.mutable_meta()->set_id(id);
    n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
    nodes.push_back(n);
  }
  std::vector<v1::Task> pending;
  for (int i = 0; i < 20000; ++i) {
    v1::Task t;
    t.mutable_meta()->set_id("t" + std::to_string(i));
    t.set_service_id("svc" + std::to_string(i / 2000));
    pending.push_back(t);
  }
  Decision d = Schedule(nodes, {}, pending);
  REQUIRE(d.assigned.size() == 20000);
  std::map<std::string, int> per;
  for (const auto& a : d.assigned) per[a.node_id]++;
  CHECK(per.size() == 1000);
  for (const auto& [id, n] : per) CHECK(n == 20);
}
