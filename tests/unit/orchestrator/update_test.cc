// Rolling updates (issue 5, item 3): parallelism and delay.

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

int Current(TestCluster& c, uint64_t version) {
  int n = 0;
  for (const v1::Task* t : c.Live("web")) n += t->service_spec_version() == version;
  return n;
}

void Setup(TestCluster& c, uint64_t parallelism, int64_t delay_ns) {
  for (const char* id : {"n1", "n2", "n3"}) c.Put(MakeNode(id));
  v1::Service s = MakeService("web", v1::MODE_REPLICATED, 4);
  s.mutable_spec()->mutable_update_config()->set_parallelism(parallelism);
  s.mutable_spec()->mutable_update_config()->set_delay_ns(delay_ns);
  c.Put(s);
  c.Settle();
  c.Update<v1::Service>("web", [](v1::Service& svc) {
    svc.mutable_spec()->mutable_container()->set_image("nginx:2");
    svc.set_spec_version(2);
  });
}

}  // namespace

TEST_CASE("a rolling update replaces `parallelism` tasks at a time, each batch once up") {
  TestCluster c;
  Setup(c, 2, 0);
  c.Apply(c.Reconcile());
  CHECK(Current(c, 2) == 2);
  // The batch is assigned but not running: nothing more.
  CHECK(c.Reconcile().mutations.empty());
  c.RunAssigned();
  c.StopRetired();
  c.Apply(c.Reconcile());
  CHECK(Current(c, 2) == 4);
  c.RunAssigned();
  // Every task runs the new version: the rollout completes (monitor 0).
  Outcome done = c.Reconcile();
  CHECK(done.services_written == 1);
  c.Apply(done);
  CHECK(c.state.Get<v1::Service>("web")->update_status().state() ==
        v1::UpdateStatus::STATE_COMPLETED);
  CHECK(c.Reconcile().mutations.empty());
}

TEST_CASE("a rolling update waits `delay` after a batch came up") {
  TestCluster c;
  const int64_t kDelay = 10'000'000'000;
  Setup(c, 1, kDelay);
  c.Apply(c.Reconcile());
  CHECK(Current(c, 2) == 1);
  c.RunAssigned();
  c.StopRetired();
  Outcome waiting = c.Reconcile();
  CHECK(waiting.mutations.empty());  // within the delay
  // It says when the delay ends, so the manager need not wait for a
  // periodic pass.
  const v1::Task* up = nullptr;
  for (const v1::Task* t : c.Live("web")) {
    if (t->service_spec_version() == 2) up = t;
  }
  REQUIRE(up != nullptr);
  CHECK(waiting.wake_at_ns == up->status().timestamp_ns() + kDelay);
  c.now += kDelay;
  c.Apply(c.Reconcile());
  CHECK(Current(c, 2) == 2);
}

TEST_CASE("parallelism 0 replaces every stale task at once") {
  TestCluster c;
  Setup(c, 0, 0);
  c.Apply(c.Reconcile());
  CHECK(Current(c, 2) == 4);
}
