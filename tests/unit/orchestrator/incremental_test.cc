// Options::services (the leader's incremental passes, control_loops.cc): on a
// cluster where a full pass has nothing to do, a change to some services'
// tasks or objects, then a pass over just those services must decide exactly
// what a full pass decides. Seeded random changes, many rounds.

#include <random>
#include <set>

#include "harness.h"

using namespace shoal::orchestrator::testing;  // NOLINT: test-local names
using shoal::orchestrator::Options;
using shoal::orchestrator::Outcome;
namespace orchestrator = shoal::orchestrator;

namespace {

std::string Serialized(const Outcome& out) {
  std::string s;
  for (const auto& m : out.mutations) s += m.SerializeAsString() + "|";
  return s + (out.more_work ? "more" : "done");
}

}  // namespace

TEST_CASE("a pass over the changed services decides what a full pass decides") {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    TestCluster c;
    for (int i = 0; i < 6; ++i) c.Put(MakeNode("n" + std::to_string(i)));
    const std::vector<v1::ServiceMode> modes = {v1::MODE_REPLICATED, v1::MODE_REPLICATED,
                                                v1::MODE_GLOBAL, v1::MODE_REPLICATED_JOB};
    std::vector<std::string> services;
    for (int i = 0; i < 6; ++i) {
      std::string id = "s" + std::to_string(i);
      v1::Service s = MakeService(id, modes[rng() % modes.size()], 1 + rng() % 4);
      if (i == 5) {
        // depends_on: decided from another service's tasks.
        auto* d = s.mutable_spec()->add_depends_on();
        d->set_service("s0");
        d->set_required(true);
      }
      c.Put(s);
      services.push_back(id);
    }
    c.Settle();
    int compared = 0;
    for (int round = 0; round < 40; ++round) {
      INFO("round " << round);
      REQUIRE(c.Reconcile().mutations.empty());
      // One change to one service, as agents or the CLI would make it.
      const std::string& id = services[rng() % services.size()];
      if (c.state.Get<v1::Service>(id) == nullptr) continue;
      std::set<std::string> touched = {id};
      auto live = c.Live(id);
      switch (rng() % 5) {
        case 0:
          c.Update<v1::Service>(id,
                                [&](v1::Service& s) { s.mutable_spec()->set_replicas(rng() % 5); });
          break;
        case 1:
          c.Update<v1::Service>(id, [&](v1::Service& s) {
            s.set_spec_version(s.spec_version() + 1);
            s.mutable_spec()->mutable_container()->set_image("nginx:" + std::to_string(round));
          });
          break;
        case 2:
          if (live.empty()) continue;
          c.SetStatus(live[rng() % live.size()]->meta().id(), v1::TASK_FAILED);
          break;
        case 3:
          if (live.empty()) continue;
          c.SetStatus(live[rng() % live.size()]->meta().id(), v1::TASK_COMPLETE);
          break;
        default:
          if (id == "s0") continue;  // keep the dependency of s5
          c.Remove<v1::Service>(id);
          break;
      }
      // The same ids for both passes.
      SeqIds saved = c.ids;
      Outcome full = c.Reconcile();
      SeqIds after_full = c.ids;
      c.ids = saved;
      c.now -= 1'000'000;  // the same clock
      Options only = c.options;
      only.services = &touched;
      Outcome part = c.Checked(c.state, c.now + 1'000'000, c.ids, only);
      c.now += 1'000'000;
      CHECK(Serialized(part) == Serialized(full));
      ++compared;
      c.ids = after_full;
      c.Apply(full);
      c.Settle();
    }
    CHECK(compared > 10);
  }
}

TEST_CASE("a capped pass names the services it did not finish") {
  TestCluster c;
  for (int i = 0; i < 4; ++i) c.Put(MakeNode("n" + std::to_string(i)));
  for (int i = 0; i < 5; ++i) c.Put(MakeService("s" + std::to_string(i), v1::MODE_REPLICATED, 10));
  c.options.max_mutations = 15;
  Outcome first = c.Reconcile();
  REQUIRE(first.more_work);
  // s0 whole (10), s1 cut short: s1 and everything after it wait.
  CHECK(first.unfinished_services == std::vector<std::string>{"s1", "s2", "s3", "s4"});
  c.Apply(first);
  // Going on over those alone ends where full passes end.
  std::set<std::string> next(first.unfinished_services.begin(), first.unfinished_services.end());
  for (int passes = 0; passes < 10 && !next.empty(); ++passes) {
    Options o = c.options;
    o.services = &next;
    Outcome out = c.Checked(c.state, c.now, c.ids, o);
    c.Apply(out);
    next = std::set<std::string>(out.unfinished_services.begin(), out.unfinished_services.end());
    if (!out.more_work) break;
  }
  CHECK(c.Reconcile().mutations.empty());
  for (int i = 0; i < 5; ++i) CHECK(c.Live("s" + std::to_string(i)).size() == 10);
}
