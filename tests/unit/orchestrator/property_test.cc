// Many random (but seeded, so repeatable) changes to a cluster; after each,
// the Outcome applied must be a fixpoint (the next pass finds nothing to do)
// and the invariants of every service must hold.

#include <random>
#include <set>

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

bool Usable(const v1::Node* n) {
  return n && n->status().state() == v1::NodeStatus::STATE_READY &&
         n->spec().availability() == v1::NodeSpec::AVAILABILITY_ACTIVE;
}

bool Matches(const v1::Service& s, const v1::Node& n) {
  if (s.spec().placement().constraints().empty()) return true;
  auto it = n.spec().labels().find("disk");
  return it != n.spec().labels().end() && it->second == "ssd";
}

void CheckService(const TestCluster& c, const v1::Service& s, uint64_t history_limit) {
  const std::string& id = s.meta().id();
  const auto mode = s.spec().mode();
  const bool global = mode == v1::MODE_GLOBAL || mode == v1::MODE_GLOBAL_JOB;
  const bool job = mode == v1::MODE_REPLICATED_JOB || mode == v1::MODE_GLOBAL_JOB;
  INFO("service " << id);
  std::map<std::string, size_t> history;  // slot or node -> finished retired tasks
  std::set<std::string> live_nodes;
  size_t live = 0;
  for (const v1::Task* t : c.Tasks(id)) {
    INFO("task " << t->meta().id());
    const v1::Node* n = c.state.Get<v1::Node>(t->node_id());
    std::string key = global ? t->node_id() : std::to_string(t->slot());
    if (t->desired_state() > v1::TASK_COMPLETE) {
      if (t->status().state() >= v1::TASK_COMPLETE || !n) history[key]++;
      continue;
    }
    live++;
    if (global) live_nodes.insert(t->node_id());
    // Stale only where no replacement may start: a paused or disconnected
    // node keeps its global task until it can take the new one.
    if (!global || Usable(n)) CHECK(t->service_spec_version() == s.spec_version());
    if (job && t->status().state() == v1::TASK_COMPLETE) continue;  // done, wherever it ran
    if (t->status().state() >= v1::TASK_ASSIGNED) {
      // Assigned tasks run on nodes that may keep them.
      REQUIRE(n != nullptr);
      CHECK(n->status().state() != v1::NodeStatus::STATE_DOWN);
      CHECK(n->spec().availability() != v1::NodeSpec::AVAILABILITY_DRAIN);
      CHECK(Matches(s, *n));
      CHECK(t->status().state() < v1::TASK_COMPLETE);
    } else {
      CHECK(t->status().state() == v1::TASK_PENDING);
      CHECK_FALSE(t->scheduling_message().empty());
    }
  }
  for (const auto& [key, count] : history) CHECK(count <= history_limit);
  if (!global) {
    CHECK(live == s.spec().replicas());
    CHECK(c.Slots(id).size() == live);
    return;
  }
  // Every usable matching node has its task; others may keep theirs.
  for (const v1::Mutation* m : c.state.List(Kind::kNode)) {
    if (Usable(&m->node()) && Matches(s, m->node())) {
      CHECK(live_nodes.count(m->node().meta().id()) == 1);
    }
  }
}

}  // namespace

TEST_CASE("random changes: each outcome is a fixpoint and the invariants hold") {
  const uint32_t seed = GENERATE(range(1u, 25u));
  INFO("seed " << seed);
  TestCluster c;
  c.options.task_history_per_slot = 2;
  if (seed % 3 == 0) c.options.max_mutations = 4;
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  // Small nodes, so that tasks compete for memory and some stay pending.
  auto node_of = [](const std::string& id, std::map<std::string, std::string> labels = {}) {
    v1::Node n = MakeNode(id, std::move(labels));
    n.mutable_description()->set_memory_bytes(1LL << 30);
    return n;
  };
  auto reserving = [](v1::Service s, int64_t mib) {
    s.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(mib << 20);
    return s;
  };
  for (int i = 0; i < 6; ++i) c.Put(node_of("n" + std::to_string(i), {{"disk", "ssd"}}));
  c.Put(reserving(MakeService("web", v1::MODE_REPLICATED, 5), 400));
  c.Put(reserving(MakeService("api", v1::MODE_REPLICATED, 3), 300));
  c.Put(reserving(MakeService("log", v1::MODE_GLOBAL), 200));
  c.Put(MakeService("batch", v1::MODE_REPLICATED_JOB, 3));
  c.Put(MakeService("prune", v1::MODE_GLOBAL_JOB));
  v1::Service db = MakeService("db", v1::MODE_REPLICATED, 2);
  db.mutable_spec()->mutable_placement()->add_constraints("node.labels.disk == ssd");
  db.mutable_spec()->mutable_placement()->set_max_replicas_per_node(1);
  c.Put(db);
  const std::vector<std::string> services = {"web", "api", "log", "batch", "prune", "db"};

  for (int step = 0; step < 300; ++step) {
    INFO("step " << step);
    std::string node = "n" + std::to_string(pick(8));  // n6 and n7 come and go
    std::string svc = services[pick(services.size())];
    switch (pick(10)) {
      case 0:
        c.RunAssigned();
        break;
      case 1:
        c.StopRetired();
        break;
      case 2: {  // a running task ends: fails, or (a job) completes
        std::vector<const v1::Task*> running;
        for (const v1::Task* t : c.Tasks()) {
          if (t->status().state() == v1::TASK_RUNNING) running.push_back(t);
        }
        if (running.empty()) break;
        const v1::Task* t = running[pick(running.size())];
        bool job = t->desired_state() == v1::TASK_COMPLETE;
        c.SetStatus(t->meta().id(), job && pick(2) ? v1::TASK_COMPLETE : v1::TASK_FAILED);
        break;
      }
      case 3:
      case 4: {  // a node joins, goes down, comes back, drains, pauses, changes labels
        if (!c.state.Get<v1::Node>(node)) {
          c.Put(node_of(node));
          break;
        }
        int what = static_cast<int>(pick(6));
        c.Update<v1::Node>(node, [&](v1::Node& n) {
          auto* labels = n.mutable_spec()->mutable_labels();
          if (what == 0) n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN);
          if (what == 1) n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
          if (what == 2) n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
          if (what == 3) n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_PAUSE);
          if (what == 4) n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
          if (what == 5) (*labels)["disk"] = (*labels)["disk"] == "ssd" ? "hdd" : "ssd";
        });
        break;
      }
      case 5:
        if (c.state.Get<v1::Node>(node) && c.state.Count(Kind::kNode) > 2) {
          c.Remove<v1::Node>(node);
        }
        break;
      case 6: {
        uint64_t replicas = pick(7);
        if (c.state.Get<v1::Service>(svc)) {
          c.Update<v1::Service>(svc,
                                [&](v1::Service& s) { s.mutable_spec()->set_replicas(replicas); });
        }
        break;
      }
      case 7:
        if (c.state.Get<v1::Service>(svc)) {
          c.Update<v1::Service>(svc,
                                [](v1::Service& s) { s.set_spec_version(s.spec_version() + 1); });
        }
        break;
      case 8:
        if (svc == "api" && c.state.Get<v1::Service>("api")) {
          c.Remove<v1::Service>("api");
        } else if (svc == "api") {
          c.Put(reserving(MakeService("api", v1::MODE_REPLICATED, 3), 300));
        }
        break;
      case 9:
        break;
    }
    Outcome out = c.Reconcile();
    c.Apply(out);
    while (out.more_work) {
      out = c.Reconcile();
      c.Apply(out);
    }
    INFO("after " << out.mutations.size() << " mutations");
    CHECK(c.Reconcile().mutations.empty());
    for (const v1::Mutation* m : c.state.List(Kind::kService)) {
      CheckService(c, m->service(), 2);
    }
  }

  // Everything removed, every node back: nothing is left behind.
  for (const std::string& id : services) {
    if (c.state.Get<v1::Service>(id)) c.Remove<v1::Service>(id);
  }
  for (const v1::Mutation* m : c.state.List(Kind::kNode)) {
    if (m->node().status().state() == v1::NodeStatus::STATE_DOWN) {
      c.Update<v1::Node>(m->node().meta().id(), [](v1::Node& n) {
        n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
      });
    }
  }
  c.Settle();
  CHECK(c.Tasks().empty());
}
