// Replicated services: create, scale up and down, updates, determinism, the
// mutation budget.

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

void ThreeNodes(TestCluster& c) {
  for (const char* id : {"n1", "n2", "n3"}) c.Put(MakeNode(id));
}

}  // namespace

TEST_CASE("a replicated service gets one assigned task per slot, spread over the nodes") {
  TestCluster c;
  ThreeNodes(c);
  c.Put(MakeService("web", v1::MODE_REPLICATED, 6));

  Outcome first = c.Reconcile();
  CHECK(first.created == 6);
  CHECK(first.assigned == 6);
  CHECK_FALSE(first.more_work);
  REQUIRE(first.mutations.size() == 6);
  for (const auto& m : first.mutations) {
    CHECK(m.op() == v1::Mutation::OP_PUT);
    CHECK(m.expected_version() == 0);
  }
  c.Apply(first);
  CHECK(c.Reconcile().mutations.empty());  // idempotent

  auto slots = c.Slots("web");
  CHECK(slots.size() == 6);
  CHECK(slots.begin()->first == 1);
  CHECK(slots.rbegin()->first == 6);
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}});
  const v1::Task& t = *c.state.Get<v1::Task>(slots[1]);
  CHECK(t.service_name() == "demo_web");
  CHECK(t.stack() == "demo");
  CHECK(t.spec().image() == "nginx:1");
  CHECK(t.service_spec_version() == 1);
  CHECK(t.desired_state() == v1::TASK_RUNNING);
  CHECK(t.status().state() == v1::TASK_ASSIGNED);
  CHECK(t.status().message() == "assigned");
  CHECK(t.scheduling_message().empty());
  CHECK(t.restart_attempt() == 0);
}

TEST_CASE("scale up adds the lowest free slots and keeps the running tasks") {
  TestCluster c;
  ThreeNodes(c);
  c.Put(MakeService("web", v1::MODE_REPLICATED, 3));
  c.Settle();
  auto before = c.Slots("web");
  c.Update<v1::Service>("web", [](v1::Service& s) { s.mutable_spec()->set_replicas(5); });
  Outcome out = c.Reconcile();
  CHECK(out.created == 2);
  CHECK(out.shut_down == 0);
  c.Apply(out);
  auto after = c.Slots("web");
  CHECK(after.size() == 5);
  for (auto& [slot, id] : before) CHECK(after[slot] == id);
  CHECK(after.count(4) == 1);
  CHECK(after.count(5) == 1);
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("scale down takes from the busiest nodes, tasks not running first") {
  TestCluster c;
  for (const char* id : {"a", "b"}) c.Put(MakeNode(id));
  c.Put(MakeService("web", v1::MODE_REPLICATED, 5));
  // Hand-placed: a runs slots 1, 2 and a starting 3; b runs 4; 5 waits.
  auto task = [&](const std::string& id, uint64_t slot, const std::string& node,
                  v1::TaskState state) {
    v1::Task t;
    t.mutable_meta()->set_id(id);
    t.set_service_id("web");
    t.set_slot(slot);
    t.set_node_id(node);
    t.set_service_spec_version(1);
    t.set_desired_state(v1::TASK_RUNNING);
    t.mutable_status()->set_state(state);
    if (state == v1::TASK_PENDING) t.set_scheduling_message("0/2 nodes: 2 insufficient memory");
    c.Put(t);
  };
  task("t1", 1, "a", v1::TASK_RUNNING);
  task("t2", 2, "a", v1::TASK_RUNNING);
  task("t3", 3, "a", v1::TASK_STARTING);
  task("t4", 4, "b", v1::TASK_RUNNING);
  task("t5", 5, "", v1::TASK_PENDING);

  SECTION("to 4: the task without a node goes first") {
    c.Update<v1::Service>("web", [](v1::Service& s) { s.mutable_spec()->set_replicas(4); });
    c.Converge();
    CHECK(c.Slots("web") ==
          std::map<uint64_t, std::string>{{1, "t1"}, {2, "t2"}, {3, "t3"}, {4, "t4"}});
    CHECK(c.state.Get<v1::Task>("t5") == nullptr);  // never placed: deleted at once
  }
  SECTION("to 3: then the starting task on the busiest node") {
    c.Update<v1::Service>("web", [](v1::Service& s) { s.mutable_spec()->set_replicas(3); });
    c.Converge();
    CHECK(c.Slots("web") == std::map<uint64_t, std::string>{{1, "t1"}, {2, "t2"}, {4, "t4"}});
    CHECK(c.state.Get<v1::Task>("t3")->desired_state() == v1::TASK_SHUTDOWN);
  }
  SECTION("to 2: a is left with as many as b") {
    c.Update<v1::Service>("web", [](v1::Service& s) { s.mutable_spec()->set_replicas(2); });
    Outcome out = c.Reconcile();
    CHECK(out.shut_down == 3);
    CHECK(out.created == 0);
    c.Apply(out);
    CHECK(c.Slots("web") == std::map<uint64_t, std::string>{{1, "t1"}, {4, "t4"}});
    CHECK(c.Reconcile().mutations.empty());
    // Once stopped, the tasks of removed slots are deleted, not kept as history.
    c.StopRetired();
    c.Converge();
    CHECK(c.Tasks("web").size() == 2);
  }
  SECTION("to 0: every task goes") {
    c.Update<v1::Service>("web", [](v1::Service& s) { s.mutable_spec()->set_replicas(0); });
    c.Settle();
    CHECK(c.Tasks("web").empty());
  }
}

TEST_CASE("a spec change replaces every task, all at once for now") {
  TestCluster c;
  ThreeNodes(c);
  c.Put(MakeService("web", v1::MODE_REPLICATED, 3));
  c.Settle();
  auto old = c.Slots("web");
  c.Update<v1::Service>("web", [](v1::Service& s) {
    s.mutable_spec()->mutable_container()->set_image("nginx:2");
    s.set_spec_version(2);
  });
  Outcome out = c.Reconcile();
  CHECK(out.shut_down == 3);
  CHECK(out.created == 3);
  c.Apply(out);
  CHECK(c.Reconcile().mutations.empty());
  auto now = c.Slots("web");
  REQUIRE(now.size() == 3);
  for (auto& [slot, id] : now) {
    CHECK(id != old[slot]);
    const v1::Task& t = *c.state.Get<v1::Task>(id);
    CHECK(t.spec().image() == "nginx:2");
    CHECK(t.service_spec_version() == 2);
    CHECK(t.restart_attempt() == 0);
    CHECK(c.state.Get<v1::Task>(old[slot])->desired_state() == v1::TASK_SHUTDOWN);
  }
  c.Settle();
  CHECK(c.Tasks("web").size() == 6);  // the old ones kept as history
}

TEST_CASE("a service that fits nowhere stays pending with the scheduler's reason, without churn") {
  TestCluster c;
  ThreeNodes(c);
  v1::Service s = MakeService("db", v1::MODE_REPLICATED, 2);
  s.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone == eu");
  c.Put(s);
  Outcome out = c.Reconcile();
  CHECK(out.created == 2);
  CHECK(out.pending == 2);
  CHECK(out.assigned == 0);
  c.Apply(out);
  for (const v1::Task* t : c.Tasks("db")) {
    CHECK(t->status().state() == v1::TASK_PENDING);
    CHECK(t->node_id().empty());
    CHECK(t->scheduling_message() == "0/3 nodes: 3 constraint node.labels.zone == eu");
  }
  for (int i = 0; i < 3; ++i) {
    Outcome again = c.Reconcile();
    CHECK(again.mutations.empty());
    CHECK(again.pending == 2);
  }
  // The reason follows the cluster; a matching node takes the tasks.
  c.Update<v1::Node>("n3", [](v1::Node& n) {
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
  });
  Outcome changed = c.Reconcile();
  REQUIRE(changed.mutations.size() == 2);
  CHECK(changed.mutations[0].task().scheduling_message() ==
        "0/3 nodes: 2 constraint node.labels.zone == eu, 1 drained");
  c.Apply(changed);
  c.Put(MakeNode("n4", {{"zone", "eu"}}));
  c.Converge();
  CHECK(c.PerNode("db") == std::map<std::string, int>{{"n4", 2}});
  for (const v1::Task* t : c.Tasks("db")) CHECK(t->scheduling_message().empty());
}

TEST_CASE("the same state and ids give the same outcome") {
  auto build = [](TestCluster& c) {
    for (int i = 0; i < 7; ++i) c.Put(MakeNode("n" + std::to_string(i)));
    c.Put(MakeService("a", v1::MODE_REPLICATED, 10));
    c.Put(MakeService("b", v1::MODE_GLOBAL));
    c.Put(MakeService("c", v1::MODE_REPLICATED_JOB, 4));
  };
  TestCluster x, y;
  build(x);
  build(y);
  Outcome ox = x.Reconcile(), oy = y.Reconcile();
  REQUIRE(ox.mutations.size() == 21);
  REQUIRE(ox.mutations.size() == oy.mutations.size());
  for (size_t i = 0; i < ox.mutations.size(); ++i) {
    CHECK(ox.mutations[i].SerializeAsString() == oy.mutations[i].SerializeAsString());
  }
  // And after applying it, there is nothing left to do.
  x.Apply(ox);
  CHECK(x.Reconcile().mutations.empty());
}

TEST_CASE("max_mutations cuts a pass into several, each whole") {
  TestCluster c;
  ThreeNodes(c);
  c.options.max_mutations = 7;
  c.Put(MakeService("web", v1::MODE_REPLICATED, 20));
  Outcome first = c.Reconcile();
  CHECK(first.more_work);
  CHECK(first.mutations.size() == 7);
  CHECK(first.assigned == 7);
  int passes = 1;
  c.Apply(first);
  passes += c.Converge();
  CHECK(passes == 3);
  CHECK(c.Slots("web").size() == 20);
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 7}, {"n2", 7}, {"n3", 6}});

  SECTION("a replacement is never split, even with a budget of one") {
    c.options.max_mutations = 1;
    c.Update<v1::Service>("web", [](v1::Service& s) { s.set_spec_version(2); });
    Outcome out = c.Reconcile();
    CHECK(out.more_work);
    // The old task shut down, its replacement, and the rollout's status on
    // the service (outside the task budget).
    CHECK(out.mutations.size() == 3);
    CHECK(out.services_written == 1);
    c.Apply(out);
    int more = c.Converge();
    CHECK(more == 19);
    for (const v1::Task* t : c.Live("web")) CHECK(t->service_spec_version() == 2);
  }
}

TEST_CASE("a pending task's reason accounts for the tasks placed after it in the same pass") {
  // a's second task is refused for its replica limit; then b fills the node's
  // memory. The next pass would say "insufficient memory": so must this one.
  TestCluster c;
  v1::Node n = MakeNode("n1");
  n.mutable_description()->set_memory_bytes(1LL << 30);
  c.Put(n);
  v1::Service a = MakeService("a", v1::MODE_REPLICATED, 2);
  a.mutable_spec()->mutable_placement()->set_max_replicas_per_node(1);
  a.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(100 << 20);
  v1::Service b = MakeService("b", v1::MODE_REPLICATED, 1);
  b.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(900 << 20);
  c.Put(a);
  c.Put(b);
  Outcome out = c.Reconcile();
  CHECK(out.assigned == 2);
  CHECK(out.pending == 1);
  c.Apply(out);
  CHECK(c.Reconcile().mutations.empty());
  for (const v1::Task* t : c.Tasks("a")) {
    if (t->status().state() == v1::TASK_PENDING) {
      CHECK(t->scheduling_message() == "0/1 nodes: 1 insufficient memory");
    }
  }
}
