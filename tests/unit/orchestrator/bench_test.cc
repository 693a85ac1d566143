// Scale: 1,000 nodes and 100,000 tasks. Timings are printed, not asserted
// (hidden: run with `shoal_orchestrator_tests "[.bench]"`).

#include <chrono>
#include <cstdio>

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Outcome;

namespace {

constexpr int kNodes = 1000;
constexpr int kServices = 1000;
constexpr int kReplicas = 100;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string Id(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%05d", prefix, i);
  return buf;
}

void Build(TestCluster& c) {
  shoal::store::Txn txn;
  for (int i = 0; i < kNodes; ++i) {
    v1::Node n = MakeNode(Id("node-", i), {{"zone", i % 3 == 0 ? "a" : "b"}});
    n.mutable_description()->set_memory_bytes(64LL << 30);
    txn.Put(n);
  }
  for (int i = 0; i < kServices; ++i) {
    v1::Service s = MakeService(Id("svc-", i), v1::MODE_REPLICATED, kReplicas);
    s.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(64 << 20);
    if (i % 10 == 0) s.mutable_spec()->mutable_placement()->add_spread("node.labels.zone");
    if (i % 10 == 1)
      s.mutable_spec()->mutable_placement()->add_constraints("node.labels.zone == b");
    txn.Put(s);
  }
  REQUIRE(c.state.Apply(1, std::move(txn).Build("bench", c.now), nullptr).ok());
  c.check_loads = false;  // timings: the load index is used, not checked
  c.loads.Rebuild(c.state);
}

struct Totals {
  int passes = 0;
  double reconcile = 0, apply = 0;
  size_t mutations = 0;
};

Totals Run(TestCluster& c) {
  Totals t;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    Outcome out = c.Reconcile();
    t.reconcile += Seconds(start);
    if (out.mutations.empty()) break;
    t.passes++;
    t.mutations += out.mutations.size();
    start = std::chrono::steady_clock::now();
    c.Apply(out);
    t.apply += Seconds(start);
  }
  return t;
}

void Print(const char* what, const Totals& t) {
  std::printf("%-44s %3d passes %7zu mutations  reconcile %7.3f s  apply %6.3f s\n", what, t.passes,
              t.mutations, t.reconcile, t.apply);
}

}  // namespace

TEST_CASE("orchestrator at 1,000 nodes and 100,000 tasks", "[.bench]") {
  TestCluster c;
  Build(c);
  Totals create = Run(c);
  Print("create 100k tasks (max_mutations 2000)", create);
  REQUIRE(c.state.Count(Kind::kTask) == static_cast<size_t>(kServices * kReplicas));

  c.RunAssigned();
  auto start = std::chrono::steady_clock::now();
  Outcome idle = c.Reconcile();
  std::printf("%-44s reconcile %7.3f s (%zu mutations)\n", "idle pass over 100k running tasks",
              Seconds(start), idle.mutations.size());
  CHECK(idle.mutations.empty());

  c.Update<v1::Node>(Id("node-", 7), [](v1::Node& n) {
    n.mutable_status()->set_state(v1::NodeStatus::STATE_DOWN);
  });
  Totals down = Run(c);
  Print("one node down: its tasks replaced", down);

  c.Update<v1::Service>(Id("svc-", 5), [](v1::Service& s) { s.set_spec_version(2); });
  Totals update = Run(c);
  Print("one service updated (100 tasks replaced)", update);

  TestCluster once;
  once.options.max_mutations = 1'000'000;
  Build(once);
  Totals single = Run(once);
  Print("create 100k tasks in one pass (no cap)", single);
}
