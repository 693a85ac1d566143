// Global services and jobs, and replicated jobs.

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

TEST_CASE("a global service runs once on every eligible node and follows the nodes") {
  TestCluster c;
  for (const char* id : {"n1", "n2", "n3"}) c.Put(MakeNode(id, {{"zone", "eu"}}));
  c.Put(MakeService("agent", v1::MODE_GLOBAL));
  Outcome out = c.Reconcile();
  CHECK(out.created == 3);
  CHECK(out.assigned == 3);
  c.Apply(out);
  CHECK(c.Reconcile().mutations.empty());
  CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 1}});
  for (const v1::Task* t : c.Live("agent")) {
    CHECK(t->slot() == 0);
    CHECK(t->status().state() == v1::TASK_ASSIGNED);
  }
  c.Settle();

  SECTION("drain: the node's task is shut down and not replaced") {
    c.Update<v1::Node>("n2", [](v1::Node& n) {
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
    });
    Outcome drain = c.Reconcile();
    CHECK(drain.shut_down == 1);
    CHECK(drain.created == 0);
    c.Apply(drain);
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n3", 1}});
    c.Settle();
    // Back to active: a new task.
    c.Update<v1::Node>("n2", [](v1::Node& n) {
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
    });
    c.Converge();
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 1}});
  }
  SECTION("pause: the task stays, but a paused node gets no new one") {
    c.Update<v1::Node>("n2", [](v1::Node& n) {
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_PAUSE);
    });
    CHECK(c.Reconcile().mutations.empty());
    c.Put(MakeNode("n4", {{"zone", "eu"}}));
    c.Update<v1::Node>("n4", [](v1::Node& n) {
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_PAUSE);
    });
    CHECK(c.Reconcile().mutations.empty());
  }
  SECTION("a new node gets a task") {
    c.Put(MakeNode("n4", {{"zone", "eu"}}));
    Outcome add = c.Reconcile();
    REQUIRE(add.mutations.size() == 1);
    CHECK(add.mutations[0].task().node_id() == "n4");
    CHECK(add.mutations[0].task().status().state() == v1::TASK_ASSIGNED);
  }
  SECTION("a node that stops matching the constraints loses its task") {
    c.Update<v1::Service>("agent", [](v1::Service& s) {
      s.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone == eu");
      s.set_spec_version(2);
    });
    c.Settle();  // every task replaced by one of version 2
    c.Update<v1::Node>("n3",
                       [](v1::Node& n) { (*n.mutable_spec()->mutable_labels())["zone"] = "us"; });
    Outcome moved = c.Reconcile();
    CHECK(moved.shut_down == 1);
    CHECK(moved.created == 0);
    c.Apply(moved);
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}});
    for (const v1::Task* t : c.Live("agent")) CHECK(t->service_spec_version() == 2);
  }
  SECTION("a constraint change shuts down the tasks of the nodes it excludes") {
    c.Update<v1::Node>("n1",
                       [](v1::Node& n) { (*n.mutable_spec()->mutable_labels())["zone"] = "us"; });
    c.Update<v1::Service>("agent", [](v1::Service& s) {
      s.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone != us");
      s.set_spec_version(2);
    });
    Outcome out2 = c.Reconcile();
    CHECK(out2.shut_down == 3);
    CHECK(out2.created == 2);
    c.Apply(out2);
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n2", 1}, {"n3", 1}});
  }
  SECTION("a node that goes down loses its task; it comes back with a new one") {
    c.Update<v1::Node>(
        "n1", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN); });
    Outcome down = c.Reconcile();
    CHECK(down.shut_down == 1);
    CHECK(down.created == 0);
    c.Apply(down);
    CHECK(c.Reconcile().mutations.empty());
    c.Update<v1::Node>(
        "n1", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_READY); });
    c.Settle();
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 1}});
  }
  SECTION("a removed node's task is shut down, then deleted") {
    c.Remove<v1::Node>("n3");
    c.Converge();
    CHECK(c.PerNode("agent") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}});
    CHECK(c.Tasks("agent").size() == 2);  // nothing reports on n3: history goes with it
  }
  SECTION("a failed task is replaced on the same node") {
    std::string failed;
    for (const v1::Task* t : c.Live("agent"))
      if (t->node_id() == "n2") failed = t->meta().id();
    c.SetStatus(failed, v1::TASK_FAILED);
    Outcome out3 = c.Reconcile();
    CHECK(out3.shut_down == 1);
    REQUIRE(out3.created == 1);
    c.Apply(out3);
    for (const v1::Task* t : c.Live("agent")) {
      if (t->node_id() == "n2") CHECK(t->restart_attempt() == 1);
    }
  }
}

TEST_CASE("a global task that does not fit its node waits there, pending") {
  TestCluster c;
  c.Put(MakeNode("n1"));
  c.Put(MakeNode("n2"));
  c.Update<v1::Node>("n2", [](v1::Node& n) { n.mutable_description()->set_memory_bytes(1 << 20); });
  v1::Service s = MakeService("agent", v1::MODE_GLOBAL);
  s.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(1 << 30);
  c.Put(s);
  c.Converge();
  std::map<std::string, v1::TaskState> states;
  for (const v1::Task* t : c.Live("agent")) {
    states[t->node_id()] = t->status().state();
    if (t->node_id() == "n2") CHECK(t->scheduling_message() == "0/1 nodes: 1 insufficient memory");
  }
  CHECK(states ==
        std::map<std::string, v1::TaskState>{{"n1", v1::TASK_ASSIGNED}, {"n2", v1::TASK_PENDING}});
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("a replicated job runs each slot to completion once, and again on a new spec") {
  TestCluster c;
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  c.Put(MakeService("migrate", v1::MODE_REPLICATED_JOB, 3));
  c.Converge();
  auto slots = c.Slots("migrate");
  REQUIRE(slots.size() == 3);
  for (const v1::Task* t : c.Live("migrate")) CHECK(t->desired_state() == v1::TASK_COMPLETE);
  c.RunAssigned();
  CHECK(c.Reconcile().mutations.empty());

  // Slot 2 fails: replaced; the others complete and are left alone.
  c.SetStatus(slots[1], v1::TASK_COMPLETE);
  c.SetStatus(slots[2], v1::TASK_FAILED);
  c.SetStatus(slots[3], v1::TASK_COMPLETE);
  Outcome out = c.Reconcile();
  CHECK(out.created == 1);
  CHECK(out.shut_down == 1);
  c.Apply(out);
  auto after = c.Slots("migrate");
  CHECK(after[1] == slots[1]);
  CHECK(after[3] == slots[3]);
  const v1::Task& retry = *c.state.Get<v1::Task>(after[2]);
  CHECK(retry.restart_attempt() == 1);
  CHECK(retry.desired_state() == v1::TASK_COMPLETE);
  c.RunAssigned();
  c.SetStatus(after[2], v1::TASK_COMPLETE);
  for (int i = 0; i < 3; ++i) CHECK(c.Reconcile().mutations.empty());  // not re-run

  // A new spec_version runs the job again.
  c.Update<v1::Service>("migrate", [](v1::Service& s) {
    s.mutable_spec()->mutable_container()->set_image("migrate:2");
    s.set_spec_version(2);
  });
  Outcome rerun = c.Reconcile();
  CHECK(rerun.created == 3);
  CHECK(rerun.shut_down == 3);
  c.Apply(rerun);
  for (const v1::Task* t : c.Live("migrate")) {
    CHECK(t->service_spec_version() == 2);
    CHECK(t->spec().image() == "migrate:2");
  }
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("a global job runs once per node, and on nodes that join later") {
  TestCluster c;
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  c.Put(MakeService("prune", v1::MODE_GLOBAL_JOB));
  c.Converge();
  CHECK(c.PerNode("prune") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}});
  c.SetStatusWhere([](const v1::Task&) { return true; }, v1::TASK_COMPLETE);
  CHECK(c.Reconcile().mutations.empty());
  c.Put(MakeNode("n3"));
  Outcome out = c.Reconcile();
  REQUIRE(out.created == 1);
  CHECK(out.mutations.back().task().node_id() == "n3");
  c.Apply(out);
  // Draining a node where the job completed changes nothing.
  c.Update<v1::Node>("n1", [](v1::Node& n) {
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
  });
  CHECK(c.Reconcile().mutations.empty());
  // A removed node's record of the run goes with it.
  c.Remove<v1::Node>("n2");
  c.Converge();
  CHECK(c.PerNode("prune") == std::map<std::string, int>{{"n1", 1}, {"n3", 1}});
  CHECK(c.Tasks("prune").size() == 2);
}
