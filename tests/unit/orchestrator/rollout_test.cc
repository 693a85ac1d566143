// The rolling updater (issue 5, item 3): start-first order, the failure
// action (pause, continue, rollback) and max_failure_ratio, monitor, the
// update status on the service, and a failover in the middle of a rollout.

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

using US = v1::UpdateStatus;

// Agents: every running task that checks health reports healthy.
void MakeHealthy(TestCluster& c) {
  for (const v1::Task* t : c.Tasks("web")) {
    if (t->status().state() != v1::TASK_RUNNING || !t->spec().has_healthcheck()) continue;
    if (t->status().health() == v1::TaskStatus::HEALTH_HEALTHY) continue;
    c.Update<v1::Task>(t->meta().id(), [&](v1::Task& x) {
      x.mutable_status()->set_health(v1::TaskStatus::HEALTH_HEALTHY);
      x.mutable_status()->set_timestamp_ns(c.now);
    });
  }
}

// `replicas` of nginx:1 on three nodes, running; update_config as given.
void Setup(TestCluster& c, uint64_t replicas, const v1::UpdateConfig& uc, bool checked = false) {
  for (const char* id : {"n1", "n2", "n3"}) c.Put(MakeNode(id));
  v1::Service s = MakeService("web", v1::MODE_REPLICATED, replicas);
  *s.mutable_spec()->mutable_update_config() = uc;
  *s.mutable_spec()->mutable_rollback_config() = uc;
  if (checked) {
    auto* hc = s.mutable_spec()->mutable_container()->mutable_healthcheck();
    hc->add_test("CMD");
    hc->add_test("true");
  }
  c.Put(s);
  c.Settle();
  if (checked) MakeHealthy(c);
}

// `service update --image`: a new spec, its previous kept.
void UpdateImage(TestCluster& c, const std::string& image) {
  c.Update<v1::Service>("web", [&](v1::Service& s) {
    *s.mutable_previous_spec() = s.spec();
    s.mutable_spec()->mutable_container()->set_image(image);
    s.set_spec_version(s.spec_version() + 1);
  });
}

const v1::Service& Svc(TestCluster& c) { return *c.state.Get<v1::Service>("web"); }

int LiveWithImage(TestCluster& c, const std::string& image) {
  int n = 0;
  for (const v1::Task* t : c.Live("web")) n += t->spec().image() == image;
  return n;
}

int RunningLive(TestCluster& c) {
  int n = 0;
  for (const v1::Task* t : c.Live("web")) n += t->status().state() == v1::TASK_RUNNING;
  return n;
}

// The agent of a new task of `image` reports it failed.
std::string FailOne(TestCluster& c, const std::string& image) {
  for (const v1::Task* t : c.Live("web")) {
    if (t->spec().image() != image || t->status().state() >= v1::TASK_COMPLETE) continue;
    std::string id = t->meta().id();
    c.Update<v1::Task>(id, [&](v1::Task& x) {
      x.mutable_status()->set_state(v1::TASK_FAILED);
      x.mutable_status()->set_exit_code(1);
      x.mutable_status()->set_error("the process exited with code 1");
      x.mutable_status()->set_timestamp_ns(c.now);
    });
    return id;
  }
  FAIL("no live task of " << image);
  return "";
}

// One round: reconcile, apply, agents start and stop what they were told.
void Round(TestCluster& c) {
  c.Apply(c.Reconcile());
  c.RunAssigned();
  c.StopRetired();
  MakeHealthy(c);
}

v1::UpdateConfig Config(uint64_t parallelism, v1::UpdateConfig::FailureAction action,
                        double ratio = 0, int64_t monitor_ns = 0) {
  v1::UpdateConfig uc;
  uc.set_parallelism(parallelism);
  uc.set_failure_action(action);
  uc.set_max_failure_ratio(ratio);
  uc.set_monitor_ns(monitor_ns);
  return uc;
}

}  // namespace

TEST_CASE("start-first: the new task runs (and is healthy) before the old one stops") {
  TestCluster c;
  v1::UpdateConfig uc = Config(1, v1::UpdateConfig::FAILURE_PAUSE);
  uc.set_order(v1::UpdateConfig::ORDER_START_FIRST);
  Setup(c, 3, uc, /*checked=*/true);
  UpdateImage(c, "nginx:2");

  Outcome first = c.Reconcile();
  CHECK(first.created == 1);
  CHECK(first.shut_down == 0);  // nothing stops before its replacement is up
  c.Apply(first);
  CHECK(c.Live("web").size() == 4);
  CHECK(Svc(c).update_status().state() == US::STATE_UPDATING);
  c.RunAssigned();
  // Running but not healthy yet: the old task still runs.
  CHECK(c.Reconcile().mutations.empty());

  // Every step keeps at least `replicas` tasks running, to the end.
  for (int i = 0; i < 20 && LiveWithImage(c, "nginx:2") < 3; ++i) {
    CHECK(RunningLive(c) >= 3);
    Round(c);
  }
  for (int i = 0; i < 5; ++i) Round(c);
  CHECK(LiveWithImage(c, "nginx:2") == 3);
  CHECK(c.Live("web").size() == 3);
  CHECK(Svc(c).update_status().state() == US::STATE_COMPLETED);
  // Each slot was replaced exactly once: 3 original tasks + 3 new ones.
  CHECK(c.Tasks("web").size() == 6);
}

TEST_CASE("failure action pause: the rollout stops, says why, and counts the failure once") {
  TestCluster c;
  Setup(c, 4, Config(1, v1::UpdateConfig::FAILURE_PAUSE));
  UpdateImage(c, "nginx:bad");
  Round(c);
  CHECK(LiveWithImage(c, "nginx:bad") == 1);
  std::string failed = FailOne(c, "nginx:bad");
  Round(c);
  const US& us = Svc(c).update_status();
  CHECK(us.state() == US::STATE_PAUSED);
  CHECK(us.message().find("update paused: task demo_web.") != std::string::npos);
  CHECK(us.message().find("exited with code 1") != std::string::npos);
  REQUIRE(us.failed_task_ids_size() == 1);
  CHECK(us.failed_task_ids(0) == failed);
  // Paused: the failed task is restarted by its policy, no other slot moves.
  for (int i = 0; i < 5; ++i) Round(c);
  CHECK(LiveWithImage(c, "nginx:bad") == 1);
  CHECK(LiveWithImage(c, "nginx:1") == 3);
  CHECK(Svc(c).update_status().failed_task_ids_size() == 1);
  CHECK(c.Reconcile().mutations.empty());

  // A new spec starts a new rollout.
  UpdateImage(c, "nginx:2");
  for (int i = 0; i < 10; ++i) Round(c);
  CHECK(LiveWithImage(c, "nginx:2") == 4);
  CHECK(Svc(c).update_status().state() == US::STATE_COMPLETED);
}

TEST_CASE("failure action continue, and max_failure_ratio") {
  SECTION("continue: the rollout goes on and completes") {
    TestCluster c;
    Setup(c, 4, Config(1, v1::UpdateConfig::FAILURE_CONTINUE));
    UpdateImage(c, "nginx:2");
    Round(c);
    FailOne(c, "nginx:2");
    for (int i = 0; i < 12; ++i) Round(c);
    CHECK(LiveWithImage(c, "nginx:2") == 4);
    CHECK(Svc(c).update_status().state() == US::STATE_COMPLETED);
    CHECK(Svc(c).update_status().failed_task_ids_size() == 1);
  }
  SECTION("ratio 0.5 of 4: two failures are tolerated, the third pauses") {
    TestCluster c;
    Setup(c, 4, Config(1, v1::UpdateConfig::FAILURE_PAUSE, 0.5));
    UpdateImage(c, "nginx:2");
    Round(c);
    FailOne(c, "nginx:2");
    Round(c);
    CHECK(Svc(c).update_status().state() == US::STATE_UPDATING);
    FailOne(c, "nginx:2");
    Round(c);
    CHECK(Svc(c).update_status().state() == US::STATE_UPDATING);
    FailOne(c, "nginx:2");
    Round(c);
    CHECK(Svc(c).update_status().state() == US::STATE_PAUSED);
    CHECK(Svc(c).update_status().failed_task_ids_size() == 3);
  }
}

TEST_CASE("failure action rollback: back to the previous spec, by rollback_config") {
  TestCluster c;
  Setup(c, 4, Config(2, v1::UpdateConfig::FAILURE_ROLLBACK));
  // The rollback goes one task at a time.
  c.Update<v1::Service>("web", [](v1::Service& s) {
    s.mutable_spec()->mutable_rollback_config()->set_parallelism(1);
  });
  UpdateImage(c, "nginx:bad");
  const uint64_t bad_version = Svc(c).spec_version();
  Round(c);
  CHECK(LiveWithImage(c, "nginx:bad") == 2);
  FailOne(c, "nginx:bad");
  Outcome out = c.Reconcile();
  CHECK(out.services_written == 1);
  c.Apply(out);
  const v1::Service& back = Svc(c);
  CHECK(back.spec().container().image() == "nginx:1");
  CHECK(back.previous_spec().container().image() == "nginx:bad");
  CHECK(back.spec_version() == bad_version + 1);
  CHECK(back.update_status().state() == US::STATE_ROLLBACK_STARTED);
  CHECK(back.update_status().message().find("update rolled back: task") != std::string::npos);
  // One task of nginx:1 at a time replaces the bad ones.
  c.RunAssigned();
  c.StopRetired();
  Outcome step = c.Reconcile();
  CHECK(step.created == 1);
  c.Apply(step);
  for (int i = 0; i < 12; ++i) Round(c);
  CHECK(LiveWithImage(c, "nginx:1") == 4);
  CHECK(Svc(c).update_status().state() == US::STATE_ROLLBACK_COMPLETED);
  CHECK(Svc(c).update_status().message().find("rolled back") != std::string::npos);
}

TEST_CASE("monitor: the rollout completes only once the last batch stayed up that long") {
  TestCluster c;
  const int64_t kMonitor = 5'000'000'000;
  Setup(c, 2, Config(0, v1::UpdateConfig::FAILURE_PAUSE, 0, kMonitor));
  UpdateImage(c, "nginx:2");
  Round(c);
  Round(c);
  CHECK(LiveWithImage(c, "nginx:2") == 2);
  CHECK(Svc(c).update_status().state() == US::STATE_UPDATING);
  // Within the monitor period a failure still counts.
  FailOne(c, "nginx:2");
  Round(c);
  CHECK(Svc(c).update_status().state() == US::STATE_PAUSED);
}

TEST_CASE("a failover mid rollout: the next leader continues it, each slot replaced once") {
  // Two managers hold the same replicated state; the leader changes after
  // every pass. The orchestrator keeps nothing between passes, so the
  // rollout must go on from the store alone.
  TestCluster a;
  Setup(a, 6, Config(2, v1::UpdateConfig::FAILURE_PAUSE));
  UpdateImage(a, "nginx:2");
  SeqIds other;  // the other manager's ids
  for (int i = 0; i < 30; ++i) {
    Outcome out = (i % 2 == 0)
                      ? a.Reconcile()
                      : shoal::orchestrator::Reconcile(a.state, a.now + 1'000'000, other, {});
    if (i % 2 == 1) {
      // The other manager's ids must not collide with ours.
      for (auto& m : out.mutations) {
        if (m.has_task() && m.expected_version() == 0) {
          m.mutable_task()->mutable_meta()->set_id("b-" + m.task().meta().id());
        }
      }
    }
    a.Apply(out);
    a.RunAssigned();
    a.StopRetired();
  }
  CHECK(LiveWithImage(a, "nginx:2") == 6);
  CHECK(Svc(a).update_status().state() == US::STATE_COMPLETED);
  CHECK(a.Tasks("web").size() == 12);  // 6 old + 6 new: nothing replaced twice
}

TEST_CASE("depends_on: a service gets tasks only once its dependency is healthy") {
  TestCluster c;
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  v1::Service db = MakeService("db", v1::MODE_REPLICATED, 1);
  auto* hc = db.mutable_spec()->mutable_container()->mutable_healthcheck();
  hc->add_test("CMD");
  hc->add_test("true");
  c.Put(db);
  v1::Service web = MakeService("web", v1::MODE_REPLICATED, 2);
  auto* dep = web.mutable_spec()->add_depends_on();
  dep->set_service("db");
  dep->set_condition(v1::Dependency::SERVICE_HEALTHY);
  dep->set_required(true);
  c.Put(web);
  c.Converge();
  c.RunAssigned();
  c.Converge();
  CHECK(c.Live("web").empty());
  CHECK(c.state.Get<v1::Service>("web")->waiting_message() == "waiting for db (service_healthy)");
  // db turns healthy: web starts.
  for (const v1::Task* t : c.Live("db")) {
    c.Update<v1::Task>(t->meta().id(), [&](v1::Task& x) {
      x.mutable_status()->set_health(v1::TaskStatus::HEALTH_HEALTHY);
    });
  }
  c.Converge();
  CHECK(c.Live("web").size() == 2);
  CHECK(c.state.Get<v1::Service>("web")->waiting_message().empty());
}

TEST_CASE("drain with start-first: the replacement starts elsewhere before the old stops") {
  TestCluster c;
  v1::UpdateConfig uc = Config(1, v1::UpdateConfig::FAILURE_PAUSE);
  uc.set_order(v1::UpdateConfig::ORDER_START_FIRST);
  Setup(c, 3, uc);
  auto per_node = c.PerNode("web");
  REQUIRE(per_node["n1"] == 1);
  c.Update<v1::Node>("n1", [](v1::Node& n) {
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
  });
  Outcome out = c.Reconcile();
  CHECK(out.created == 1);
  CHECK(out.shut_down == 0);
  c.Apply(out);
  CHECK(c.Reconcile().mutations.empty());  // the new one is not running yet
  CHECK(RunningLive(c) == 3);
  c.RunAssigned();
  Outcome stop = c.Reconcile();
  CHECK(stop.shut_down == 1);
  c.Apply(stop);
  c.StopRetired();
  CHECK(c.PerNode("web").count("n1") == 0);
  CHECK(c.Live("web").size() == 3);
}

TEST_CASE("a node back after being declared down: its old tasks stay shut down") {
  TestCluster c;
  Setup(c, 3, Config(1, v1::UpdateConfig::FAILURE_PAUSE));
  c.Update<v1::Node>(
      "n1", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN); });
  c.Converge();
  c.RunAssigned();
  c.Converge();
  CHECK(c.Live("web").size() == 3);
  // n1 returns; its agent still runs the old task and reports it RUNNING.
  c.Update<v1::Node>(
      "n1", [](v1::Node& n) { n.mutable_status()->set_state(v1::NodeStatus::STATE_READY); });
  c.Converge();
  CHECK(c.Live("web").size() == 3);
  int on_n1_told_to_run = 0;
  for (const v1::Task* t : c.Tasks("web")) {
    if (t->node_id() == "n1" && t->desired_state() <= v1::TASK_RUNNING &&
        t->status().state() == v1::TASK_RUNNING && t->meta().created_at_ns() < c.now - 10'000'000) {
      ++on_n1_told_to_run;
    }
  }
  CHECK(on_n1_told_to_run == 0);
  c.StopRetired();
  c.Settle();
  CHECK(c.Live("web").size() == 3);
  CHECK(RunningLive(c) == 3);
}

TEST_CASE("rebalance: tasks move from the busiest node to a new one, parallelism at a time") {
  TestCluster c;
  v1::UpdateConfig uc = Config(1, v1::UpdateConfig::FAILURE_PAUSE);
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  v1::Service s = MakeService("web", v1::MODE_REPLICATED, 6);
  *s.mutable_spec()->mutable_update_config() = uc;
  c.Put(s);
  c.Settle();
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 3}, {"n2", 3}});
  // n3 joins: Swarm would leave it empty; nothing moves until asked.
  c.Put(MakeNode("n3"));
  c.Settle();
  CHECK(c.PerNode("web").count("n3") == 0);
  c.Update<v1::Service>("web", [](v1::Service& svc) { svc.set_rebalance_requested(1); });
  Outcome first = c.Reconcile();
  CHECK(first.created == 1);  // parallelism 1
  CHECK(first.shut_down == 1);
  c.Apply(first);
  CHECK(c.Reconcile().mutations.empty());  // the moved task is not up yet
  for (int i = 0; i < 10; ++i) Round(c);
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}});
  CHECK(Svc(c).rebalanced() == 1);
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("service update --force re-runs a job: a new spec_version, every slot again") {
  TestCluster c;
  c.Put(MakeNode("n1"));
  v1::Service job = MakeService("web", v1::MODE_REPLICATED_JOB, 2);
  c.Put(job);
  c.Settle();
  c.SetStatusWhere([](const v1::Task& t) { return t.status().state() == v1::TASK_RUNNING; },
                   v1::TASK_COMPLETE);
  c.Settle();
  CHECK(c.Tasks("web").size() == 2);
  c.Update<v1::Service>("web", [](v1::Service& s) {
    s.mutable_spec()->set_force_update(1);
    s.set_spec_version(2);
  });
  Outcome rerun = c.Reconcile();
  CHECK(rerun.created == 2);
  CHECK(rerun.services_written == 0);  // jobs keep no update status
}

TEST_CASE("start-first for a global service: the new task runs beside the old on its node") {
  TestCluster c;
  for (const char* id : {"n1", "n2"}) c.Put(MakeNode(id));
  v1::Service s = MakeService("web", v1::MODE_GLOBAL);
  v1::UpdateConfig uc = Config(1, v1::UpdateConfig::FAILURE_PAUSE);
  uc.set_order(v1::UpdateConfig::ORDER_START_FIRST);
  *s.mutable_spec()->mutable_update_config() = uc;
  c.Put(s);
  c.Settle();
  UpdateImage(c, "nginx:2");
  Outcome first = c.Reconcile();
  CHECK(first.created == 1);
  CHECK(first.shut_down == 0);
  c.Apply(first);
  CHECK(c.Live("web").size() == 3);  // two old, one new beside one of them
  for (int i = 0; i < 10; ++i) Round(c);
  CHECK(LiveWithImage(c, "nginx:2") == 2);
  CHECK(c.Live("web").size() == 2);
  CHECK(c.PerNode("web") == std::map<std::string, int>{{"n1", 1}, {"n2", 1}});
  CHECK(Svc(c).update_status().state() == US::STATE_COMPLETED);
}
