// Healthchecks (issue 5, item 2): a live task its agent reports UNHEALTHY is
// replaced as an ended one is, through the restart policy; a task still
// STARTING or HEALTHY is left alone; jobs are not judged by their health.

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

using Health = v1::TaskStatus;

void Cluster2(TestCluster& c, v1::ServiceMode mode, uint64_t replicas) {
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  v1::Service s = MakeService("web", mode, replicas);
  auto* hc = s.mutable_spec()->mutable_container()->mutable_healthcheck();
  hc->add_test("CMD-SHELL");
  hc->add_test("curl -f http://localhost/");
  c.Put(s);
  c.Settle();
}

// What an agent reports when the task's health changes: same state, new
// health, the time of the change.
void SetHealth(TestCluster& c, const std::string& task_id, Health::Health h) {
  c.Update<v1::Task>(task_id, [&](v1::Task& t) {
    t.mutable_status()->set_health(h);
    if (h == Health::HEALTH_UNHEALTHY) t.mutable_status()->set_error("health check failed");
    t.mutable_status()->set_timestamp_ns(c.now);
  });
}

void WithPolicy(TestCluster& c, v1::RestartPolicy::Condition cond, int64_t delay_ns) {
  c.Update<v1::Service>("web", [&](v1::Service& s) {
    s.mutable_spec()->mutable_restart_policy()->set_condition(cond);
    s.mutable_spec()->mutable_restart_policy()->set_delay_ns(delay_ns);
  });
}

}  // namespace

TEST_CASE("health: an unhealthy task is replaced in its slot, counting the attempt") {
  TestCluster c;
  Cluster2(c, v1::MODE_REPLICATED, 2);
  auto slots = c.Slots("web");
  const std::string sick = slots[2];
  SetHealth(c, sick, Health::HEALTH_UNHEALTHY);
  Outcome out = c.Reconcile();
  CHECK(out.shut_down == 1);
  CHECK(out.created == 1);
  REQUIRE(out.mutations.size() == 2);
  CHECK(out.mutations[0].task().meta().id() == sick);
  CHECK(out.mutations[0].task().desired_state() == v1::TASK_SHUTDOWN);
  c.Apply(out);
  const v1::Task& next = *c.state.Get<v1::Task>(c.Slots("web")[2]);
  CHECK(next.meta().id() != sick);
  CHECK(next.restart_attempt() == 1);
  CHECK(next.status().health() == Health::HEALTH_NONE);
  CHECK(c.Slots("web")[1] == slots[1]);
  // The retired task, still reported running and unhealthy until its agent
  // stops it, is not replaced twice.
  CHECK(c.Reconcile().mutations.empty());
  c.Settle();
  CHECK(c.Live("web").size() == 2);
}

TEST_CASE("health: a starting or healthy task is left running") {
  TestCluster c;
  Cluster2(c, v1::MODE_REPLICATED, 2);
  auto slots = c.Slots("web");
  SetHealth(c, slots[1], Health::HEALTH_STARTING);
  SetHealth(c, slots[2], Health::HEALTH_HEALTHY);
  CHECK(c.Reconcile().mutations.empty());
  // Healthy again after a failing streak that did not reach `retries`: still
  // the same task.
  SetHealth(c, slots[1], Health::HEALTH_HEALTHY);
  CHECK(c.Reconcile().mutations.empty());
  CHECK(c.Slots("web") == slots);
}

TEST_CASE("health: the restart policy decides, an unhealthy task counting as failed") {
  TestCluster c;
  Cluster2(c, v1::MODE_REPLICATED, 1);
  SECTION("on-failure restarts it") {
    WithPolicy(c, v1::RestartPolicy::CONDITION_ON_FAILURE, 0);
    std::string sick = c.Slots("web")[1];
    SetHealth(c, sick, Health::HEALTH_UNHEALTHY);
    Outcome out = c.Reconcile();
    CHECK(out.created == 1);
    c.Apply(out);
    CHECK(c.Slots("web")[1] != sick);
  }
  SECTION("none leaves it running, unhealthy, in its slot") {
    WithPolicy(c, v1::RestartPolicy::CONDITION_NONE, 0);
    std::string sick = c.Slots("web")[1];
    SetHealth(c, sick, Health::HEALTH_UNHEALTHY);
    c.Apply(c.Reconcile());  // notes why it is not replaced
    for (int i = 0; i < 3; ++i) CHECK(c.Reconcile().mutations.empty());
    CHECK(c.Slots("web")[1] == sick);
  }
  SECTION("the delay counts from when it turned unhealthy") {
    const int64_t kDelay = 5'000'000'000;
    WithPolicy(c, v1::RestartPolicy::CONDITION_ANY, kDelay);
    std::string sick = c.Slots("web")[1];
    SetHealth(c, sick, Health::HEALTH_UNHEALTHY);
    int64_t since = c.state.Get<v1::Task>(sick)->status().timestamp_ns();
    c.Apply(c.Reconcile());              // notes the delay
    c.now = since + kDelay - 3'000'000;  // Reconcile's tick adds 1 ms
    CHECK(c.Reconcile().mutations.empty());
    c.now = since + kDelay;
    CHECK(c.Reconcile().created == 1);
  }
}

TEST_CASE("health: a global service's unhealthy task is replaced on its node") {
  TestCluster c;
  Cluster2(c, v1::MODE_GLOBAL, 0);
  auto before = c.PerNode("web");
  REQUIRE(before == std::map<std::string, int>{{"n1", 1}, {"n2", 1}});
  std::string sick;
  for (const v1::Task* t : c.Live("web")) {
    if (t->node_id() == "n2") sick = t->meta().id();
  }
  SetHealth(c, sick, Health::HEALTH_UNHEALTHY);
  Outcome out = c.Reconcile();
  CHECK(out.shut_down == 1);
  CHECK(out.created == 1);
  c.Apply(out);
  CHECK(c.PerNode("web") == before);
  for (const v1::Task* t : c.Live("web")) CHECK(t->meta().id() != sick);
}

TEST_CASE("health: a job's task is not judged by its health") {
  TestCluster c;
  Cluster2(c, v1::MODE_REPLICATED_JOB, 1);
  std::string t = c.Slots("web")[1];
  SetHealth(c, t, Health::HEALTH_UNHEALTHY);
  CHECK(c.Reconcile().mutations.empty());
}
