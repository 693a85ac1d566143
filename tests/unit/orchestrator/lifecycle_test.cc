// Failures, lost nodes, removed services, and the history reaper.

#include <set>

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

void Cluster3(TestCluster& c, uint64_t replicas) {
  for (const char* id : {"n1", "n2", "n3"}) c.Put(MakeNode(id));
  c.Put(MakeService("web", v1::MODE_REPLICATED, replicas));
  c.Settle();
}

}  // namespace

TEST_CASE("a failed task is replaced in its slot, counting the attempt") {
  TestCluster c;
  Cluster3(c, 3);
  auto slots = c.Slots("web");
  for (v1::TaskState ended : {v1::TASK_FAILED, v1::TASK_REJECTED, v1::TASK_COMPLETE}) {
    std::string failed = c.Slots("web")[2];
    uint64_t attempt = c.state.Get<v1::Task>(failed)->restart_attempt();
    c.SetStatus(failed, ended);
    Outcome out = c.Reconcile();
    CHECK(out.shut_down == 1);
    CHECK(out.created == 1);
    CHECK(out.assigned == 1);
    REQUIRE(out.mutations.size() == 2);
    CHECK(out.mutations[0].task().meta().id() == failed);
    CHECK(out.mutations[0].expected_version() == c.state.Get<v1::Task>(failed)->meta().version());
    CHECK(out.mutations[0].task().desired_state() == v1::TASK_SHUTDOWN);
    c.Apply(out);
    const v1::Task& next = *c.state.Get<v1::Task>(c.Slots("web")[2]);
    CHECK(next.meta().id() != failed);
    CHECK(next.restart_attempt() == attempt + 1);
    CHECK(next.status().state() == v1::TASK_ASSIGNED);
    CHECK(c.Reconcile().mutations.empty());
    c.RunAssigned();
  }
  CHECK(c.Slots("web")[1] == slots[1]);
  CHECK(c.Slots("web")[3] == slots[3]);
  CHECK(c.state.Get<v1::Task>(c.Slots("web")[2])->restart_attempt() == 3);
}

TEST_CASE("the tasks of a node that goes down are replaced elsewhere") {
  TestCluster c;
  Cluster3(c, 6);
  std::set<std::string> before;
  for (const v1::Task* t : c.Live("web")) before.insert(t->meta().id());
  c.Update<v1::Node>(
      "n2", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN); });
  Outcome out = c.Reconcile();
  CHECK(out.shut_down == 2);
  CHECK(out.created == 2);
  c.Apply(out);
  CHECK(c.Reconcile().mutations.empty());
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 3}, {"n3", 3}});
  for (const v1::Task* t : c.Live("web")) {
    CHECK(t->restart_attempt() == (before.count(t->meta().id()) ? 0u : 1u));
  }
  // The old tasks wait for n2 to report, or to be removed.
  size_t retired = 0;
  for (const v1::Task* t : c.Tasks("web")) retired += t->node_id() == "n2";
  CHECK(retired == 2);
  c.Remove<v1::Node>("n2");
  c.Converge();
  // Removed with their node: kept as history of their slots (limit 5).
  CHECK(c.Tasks("web").size() == 8);
}

TEST_CASE("a removed node's tasks are replaced, and a drained node's moved") {
  TestCluster c;
  Cluster3(c, 3);
  SECTION("removed") { c.Remove<v1::Node>("n1"); }
  SECTION("drained") {
    c.Update<v1::Node>("n1", [](v1::Node& n) {
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
    });
  }
  c.Settle();
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n2", 2}, {"n3", 1}});
  CHECK(c.Slots("web").size() == 3);
}

TEST_CASE("disconnected and paused nodes keep their replicated tasks") {
  TestCluster c;
  Cluster3(c, 3);
  c.Update<v1::Node>(
      "n1", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DISCONNECTED); });
  c.Update<v1::Node>("n2", [](v1::Node& n) {
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_PAUSE);
  });
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("a removed service's tasks are shut down, then deleted once stopped") {
  TestCluster c;
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  c.Put(MakeService("web", v1::MODE_REPLICATED, 3));
  v1::Service db = MakeService("db", v1::MODE_REPLICATED, 2);
  db.mutable_spec()->mutable_placement()->add_constraints("node.labels.disk == ssd");
  c.Put(db);
  c.Settle();
  c.Update<v1::Node>(
      "n2", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN); });
  c.Converge();
  c.Remove<v1::Service>("web");
  c.Remove<v1::Service>("db");

  Outcome out = c.Reconcile();
  // db's pending tasks never ran: deleted at once. web's tasks are told to stop.
  CHECK(out.deleted == 2);
  c.Apply(out);
  CHECK(c.Tasks("db").empty());
  for (const v1::Task* t : c.Tasks("web")) CHECK(t->desired_state() == v1::TASK_SHUTDOWN);
  CHECK(c.Reconcile().mutations.empty());

  c.StopRetired();  // n1's agent reports; n2 is down
  c.Converge();
  for (const v1::Task* t : c.Tasks("web")) CHECK(t->node_id() == "n2");
  CHECK_FALSE(c.Tasks("web").empty());
  c.Remove<v1::Node>("n2");  // nobody will report on n2's tasks any more
  c.Converge();
  CHECK(c.Tasks().empty());
}

TEST_CASE("the reaper keeps the newest terminal tasks of each slot") {
  TestCluster c;
  c.options.task_history_per_slot = 3;
  Cluster3(c, 2);
  std::vector<std::string> failed;
  for (int i = 0; i < 6; ++i) {
    std::string id = c.Slots("web")[1];
    failed.push_back(id);
    c.SetStatus(id, v1::TASK_FAILED);
    c.Converge();
    c.RunAssigned();
    std::vector<std::string> history;
    for (const v1::Task* t : c.Tasks("web")) {
      if (t->slot() == 1 && t->desired_state() == v1::TASK_SHUTDOWN)
        history.push_back(t->meta().id());
    }
    // The newest ones, up to the limit.
    size_t keep = std::min<size_t>(failed.size(), 3);
    CHECK(history == std::vector<std::string>(failed.end() - keep, failed.end()));
  }
  CHECK(c.Tasks("web").size() == 3 + 2);

  SECTION("Cluster.task_history_per_slot overrides the option") {
    v1::Cluster cluster;
    cluster.mutable_meta()->set_id("cluster");
    cluster.set_task_history_per_slot(1);
    c.Put(cluster);
    Outcome out = c.Reconcile();
    CHECK(out.deleted == 2);
    c.Apply(out);
    CHECK(c.Tasks("web").size() == 1 + 2);
  }
  SECTION("a limit of zero keeps no history") {
    c.options.task_history_per_slot = 0;
    c.Converge();
    CHECK(c.Tasks("web").size() == 2);
  }
}

TEST_CASE("a spec change and a failure in the same pass make one replacement") {
  TestCluster c;
  Cluster3(c, 2);
  std::string failed = c.Slots("web")[1];
  c.SetStatus(failed, v1::TASK_FAILED);
  c.Update<v1::Service>("web", [](v1::Service& s) { s.set_spec_version(2); });
  Outcome out = c.Reconcile();
  CHECK(out.created == 2);
  CHECK(out.shut_down == 2);
  c.Apply(out);
  const v1::Task& one = *c.state.Get<v1::Task>(c.Slots("web")[1]);
  CHECK(one.restart_attempt() == 1);
  CHECK(one.service_spec_version() == 2);
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("duplicate live tasks in a slot are reduced to one") {
  TestCluster c;
  Cluster3(c, 1);
  const v1::Task& keep = *c.state.Get<v1::Task>(c.Slots("web")[1]);
  v1::Task dup = keep;
  dup.mutable_meta()->set_id("zz-dup");
  dup.mutable_meta()->set_version(0);
  dup.mutable_status()->set_state(v1::TASK_ASSIGNED);
  std::string keep_id = keep.meta().id();
  c.Put(dup);
  Outcome out = c.Reconcile();
  REQUIRE(out.mutations.size() == 1);
  CHECK(out.mutations[0].task().meta().id() == "zz-dup");  // the running one stays
  CHECK(out.mutations[0].task().desired_state() == v1::TASK_SHUTDOWN);
  c.Apply(out);
  CHECK(c.Slots("web")[1] == keep_id);
}

// ---- restart policy (issue 5, item 1) ----

namespace {

void WithPolicy(TestCluster& c, v1::RestartPolicy::Condition cond, int64_t delay_ns,
                uint64_t max_attempts, int64_t window_ns = 0) {
  c.Update<v1::Service>("web", [&](v1::Service& s) {
    auto* rp = s.mutable_spec()->mutable_restart_policy();
    rp->set_condition(cond);
    rp->set_delay_ns(delay_ns);
    rp->set_max_attempts(max_attempts);
    rp->set_window_ns(window_ns);
  });
}

void Fail(TestCluster& c, const std::string& task_id, v1::TaskState state, int exit_code) {
  c.Update<v1::Task>(task_id, [&](v1::Task& t) {
    t.mutable_status()->set_state(state);
    t.mutable_status()->set_exit_code(exit_code);
    t.mutable_status()->set_timestamp_ns(c.now);
  });
}

}  // namespace

TEST_CASE("restart policy none: an ended task keeps its slot and is not restarted") {
  TestCluster c;
  Cluster3(c, 2);
  WithPolicy(c, v1::RestartPolicy::CONDITION_NONE, 0, 0);
  std::string t = c.Slots("web")[1];
  Fail(c, t, v1::TASK_FAILED, 1);
  // The one write says why, for `service ps`; then nothing.
  Outcome note = c.Reconcile();
  CHECK(note.created == 0);
  c.Apply(note);
  CHECK(c.state.Get<v1::Task>(t)->restart_message() == "restart policy: none");
  for (int i = 0; i < 3; ++i) CHECK(c.Reconcile().mutations.empty());
  CHECK(c.Slots("web")[1] == t);
}

TEST_CASE("restart policy on-failure: a failure restarts, a clean exit does not") {
  TestCluster c;
  Cluster3(c, 2);
  WithPolicy(c, v1::RestartPolicy::CONDITION_ON_FAILURE, 0, 0);
  std::string done = c.Slots("web")[1];
  Fail(c, done, v1::TASK_COMPLETE, 0);
  c.Apply(c.Reconcile());  // notes why it is not restarted
  CHECK(c.Reconcile().mutations.empty());
  std::string failed = c.Slots("web")[2];
  Fail(c, failed, v1::TASK_FAILED, 3);
  Outcome out = c.Reconcile();
  CHECK(out.created == 1);
  c.Apply(out);
  CHECK(c.Slots("web")[2] != failed);
  CHECK(c.Slots("web")[1] == done);
}

TEST_CASE("restart delay: the replacement waits until the task's end plus the delay") {
  TestCluster c;
  Cluster3(c, 1);
  const int64_t kDelay = 5'000'000'000;
  WithPolicy(c, v1::RestartPolicy::CONDITION_ANY, kDelay, 0);
  std::string t = c.Slots("web")[1];
  Fail(c, t, v1::TASK_FAILED, 1);
  int64_t ended = c.state.Get<v1::Task>(t)->status().timestamp_ns();
  Outcome note = c.Reconcile();
  CHECK(note.created == 0);
  c.Apply(note);
  CHECK(c.state.Get<v1::Task>(t)->restart_at_ns() == ended + kDelay);
  CHECK(c.state.Get<v1::Task>(t)->restart_message() == "restart delayed");
  c.now = ended + kDelay - 3'000'000;  // Reconcile's tick adds 1 ms
  Outcome early = c.Reconcile();
  CHECK(early.mutations.empty());
  CHECK(early.wake_at_ns == ended + kDelay);
  c.now = ended + kDelay;
  Outcome out = c.Reconcile();
  CHECK(out.created == 1);
}

TEST_CASE("max attempts: restarts stop after the limit, and a long run resets the count") {
  TestCluster c;
  Cluster3(c, 1);
  const int64_t kWindow = 60'000'000'000;
  WithPolicy(c, v1::RestartPolicy::CONDITION_ANY, 0, 2, kWindow);
  // Two quick failures are restarted (attempts 1 and 2), the third is not.
  for (int i = 1; i <= 2; ++i) {
    Fail(c, c.Slots("web")[1], v1::TASK_FAILED, 1);
    c.Apply(c.Reconcile());
    c.RunAssigned();
    CHECK(c.state.Get<v1::Task>(c.Slots("web")[1])->restart_attempt() == static_cast<uint64_t>(i));
  }
  std::string last = c.Slots("web")[1];
  Fail(c, last, v1::TASK_FAILED, 1);
  Outcome note = c.Reconcile();
  CHECK(note.created == 0);
  c.Apply(note);
  CHECK(c.state.Get<v1::Task>(last)->restart_message() == "restart policy: 2 of 2 attempts made");
  CHECK(c.Reconcile().mutations.empty());
  CHECK(c.Slots("web")[1] == last);

  // The same limit, but the task ran longer than the window: counting restarts.
  TestCluster d;
  Cluster3(d, 1);
  WithPolicy(d, v1::RestartPolicy::CONDITION_ANY, 0, 1, kWindow);
  Fail(d, d.Slots("web")[1], v1::TASK_FAILED, 1);
  d.Apply(d.Reconcile());
  d.RunAssigned();
  std::string second = d.Slots("web")[1];
  CHECK(d.state.Get<v1::Task>(second)->restart_attempt() == 1);
  d.now += 2 * kWindow;
  Fail(d, second, v1::TASK_FAILED, 1);
  Outcome out = d.Reconcile();
  CHECK(out.created == 1);
  d.Apply(out);
  CHECK(d.state.Get<v1::Task>(d.Slots("web")[1])->restart_attempt() == 1);
}

TEST_CASE("a lost node's tasks are replaced at once, whatever the policy's delay or limit") {
  TestCluster c;
  Cluster3(c, 3);
  WithPolicy(c, v1::RestartPolicy::CONDITION_NONE, 60'000'000'000, 1);
  std::string node = c.state.Get<v1::Task>(c.Slots("web")[1])->node_id();
  c.Update<v1::Node>(
      node, [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN); });
  Outcome out = c.Reconcile();
  CHECK(out.created >= 1);
}
