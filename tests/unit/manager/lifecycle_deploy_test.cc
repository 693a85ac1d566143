// Deploy and the lifecycle (issue 5): the rollouts a deploy starts, a forced
// update's counter kept across deploys, and `deploy --rebalance`.

#include <catch2/catch.hpp>

#include "shoal/manager/deploy.h"

namespace shoal::manager {
namespace {

v1::ServiceSpec Service(const std::string& name, uint64_t replicas, const std::string& image) {
  v1::ServiceSpec s;
  s.set_name("app_" + name);
  s.set_short_name(name);
  s.set_stack("app");
  s.set_replicas(replicas);
  s.mutable_container()->set_image(image);
  return s;
}

v1::StackSpec Stack(std::vector<v1::ServiceSpec> services) {
  v1::StackSpec s;
  s.set_name("app");
  for (auto& sv : services) *s.add_services() = std::move(sv);
  return s;
}

struct Cluster {
  store::State state;
  uint64_t index = 0;
  std::mt19937_64 rng{7};

  Result<DeployChange> Deploy(const v1::StackSpec& spec, bool rebalance = false) {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    req.set_rebalance(rebalance);
    auto change = BuildDeploy(state, req, rng);
    if (change.ok() && !change->mutations.empty()) Apply(change->mutations);
    return change;
  }
  void Apply(const std::vector<v1::Mutation>& muts) {
    v1::Command c;
    for (const auto& m : muts) *c.mutable_transaction()->add_mutations() = m;
    REQUIRE(state.Apply(++index, c, nullptr).ok());
  }
  const v1::Service* Svc(const std::string& name) { return FindService(state, name); }
};

}  // namespace

TEST_CASE("a deploy names the rollouts it starts: the services whose tasks it replaces") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("web", 2, "img:1"), Service("db", 1, "db:1")})).ok());
  auto d = c.Deploy(Stack({Service("web", 3, "img:2"), Service("db", 2, "db:1")}));
  REQUIRE(d.ok());
  CHECK(d->rollouts == std::map<std::string, uint64_t>{{"app_web", 2}});  // db only scales
}

TEST_CASE("service update --force's counter survives a deploy of the same file") {
  Cluster c;
  auto spec = Stack({Service("web", 2, "img:1")});
  REQUIRE(c.Deploy(spec).ok());
  // What UpdateService --force writes: the counter and a new spec_version.
  v1::Service forced = *c.Svc("app_web");
  forced.mutable_spec()->set_force_update(1);
  forced.set_spec_version(2);
  v1::Mutation m;
  m.set_expected_version(forced.meta().version());
  *m.mutable_service() = forced;
  c.Apply({m});
  auto again = c.Deploy(spec);
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());  // no change: nothing replaced again
  CHECK(c.Svc("app_web")->spec().force_update() == 1);
  // A real change keeps the counter too.
  REQUIRE(c.Deploy(Stack({Service("web", 2, "img:2")})).ok());
  CHECK(c.Svc("app_web")->spec().force_update() == 1);
  CHECK(c.Svc("app_web")->spec_version() == 3);
}

TEST_CASE("deploy --rebalance asks for a rebalance of the replicated services, even unchanged") {
  Cluster c;
  auto spec = Stack({Service("web", 2, "img:1")});
  REQUIRE(c.Deploy(spec).ok());
  auto d = c.Deploy(spec, /*rebalance=*/true);
  REQUIRE(d.ok());
  CHECK(d->revision == 0);  // no new revision: nothing declared changed
  CHECK(c.Svc("app_web")->rebalance_requested() == 1);
  // With a change, the same service write carries it.
  auto e = c.Deploy(Stack({Service("web", 2, "img:2")}), true);
  REQUIRE(e.ok());
  CHECK(c.Svc("app_web")->rebalance_requested() == 2);
  CHECK(c.Svc("app_web")->spec().container().image() == "img:2");
}

}  // namespace shoal::manager
