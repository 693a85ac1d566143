#include "shoal/manager/subnets.h"

#include <catch2/catch.hpp>

#include "shoal/manager/deploy.h"

namespace shoal::manager {
namespace {

using store::Kind;

v1::StackSpec StackWithNetworks(const std::string& stack, std::vector<std::string> subnets) {
  v1::StackSpec s;
  s.set_name(stack);
  v1::ServiceSpec* svc = s.add_services();
  svc->set_name(stack + "_web");
  svc->set_short_name("web");
  svc->set_stack(stack);
  svc->set_replicas(1);
  svc->mutable_container()->set_image("img:1");
  for (size_t i = 0; i < subnets.size(); ++i) {
    v1::NetworkSpec* n = s.add_networks();
    n->set_name(stack + "_net" + std::to_string(i));
    if (!subnets[i].empty()) n->mutable_ipam()->add_config()->set_subnet(subnets[i]);
  }
  return s;
}

struct Cluster {
  store::State state;
  uint64_t index = 0;
  std::mt19937_64 rng{7};

  Result<DeployChange> Deploy(const v1::StackSpec& spec) {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    auto change = BuildDeploy(state, req, rng);
    if (!change.ok() || change->mutations.empty()) return change;
    v1::Command c;
    for (const auto& m : change->mutations) *c.mutable_transaction()->add_mutations() = m;
    REQUIRE(state.Apply(++index, c, nullptr).ok());
    return change;
  }
  std::string SubnetOf(const std::string& name) {
    auto found = state.Find(Kind::kNetwork, "name", name);
    return found.empty() ? "(none)" : found.front()->network().subnet();
  }
};

}  // namespace

TEST_CASE("IPv4 prefixes parse, print and overlap") {
  auto p = ParseIpv4Prefix("10.1.2.3/16");
  REQUIRE(p.ok());
  CHECK(p->ToString() == "10.1.0.0/16");
  CHECK(p->Overlaps(*ParseIpv4Prefix("10.1.200.0/24")));
  CHECK(ParseIpv4Prefix("10.1.200.0/24")->Overlaps(*p));
  CHECK_FALSE(p->Overlaps(*ParseIpv4Prefix("10.2.0.0/24")));
  for (const char* bad : {"10.0.0.0", "10.0.0/8", "10.0.0.0/33", "10.0.0.0/x", "fd00::/8", ""}) {
    INFO(bad);
    auto r = ParseIpv4Prefix(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("the managers give every stack network its own subnet and keep it") {
  Cluster c;
  REQUIRE(c.Deploy(StackWithNetworks("a", {"", ""})).ok());
  REQUIRE(c.Deploy(StackWithNetworks("b", {""})).ok());
  CHECK(c.SubnetOf("a_net0") == "10.208.0.0/24");
  CHECK(c.SubnetOf("a_net1") == "10.208.1.0/24");
  CHECK(c.SubnetOf("b_net0") == "10.208.2.0/24");
  // A redeploy changes nothing; a changed network keeps its subnet.
  auto again = c.Deploy(StackWithNetworks("a", {"", ""}));
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
  v1::StackSpec changed = StackWithNetworks("a", {"", ""});
  (*changed.mutable_networks(0)->mutable_labels())["tier"] = "front";
  REQUIRE(c.Deploy(changed).ok());
  CHECK(c.SubnetOf("a_net0") == "10.208.0.0/24");
}

TEST_CASE("a declared subnet is used, and one that overlaps another network is refused") {
  Cluster c;
  REQUIRE(c.Deploy(StackWithNetworks("a", {"10.208.0.0/16"})).ok());
  CHECK(c.SubnetOf("a_net0") == "10.208.0.0/16");
  // The pool skips what a declared subnet covers.
  REQUIRE(c.Deploy(StackWithNetworks("b", {""})).ok());
  CHECK(c.SubnetOf("b_net0") == "10.209.0.0/24");
  auto clash = c.Deploy(StackWithNetworks("x", {"10.208.5.0/24"}));
  REQUIRE_FALSE(clash.ok());
  CHECK(clash.error().code() == Code::kInvalidArgument);
  CHECK(clash.error().message() ==
        "network x_net0: subnet 10.208.5.0/24 overlaps network a_net0's; choose another one or "
        "leave it out");
  CHECK(c.SubnetOf("x_net0") == "(none)");  // nothing of the refused deploy was written
  auto bad = c.Deploy(StackWithNetworks("y", {"10.300.0.0/24"}));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("network y_net0: ipam subnet") == 0);
}

TEST_CASE("the store refuses two networks with one subnet, even from concurrent deploys") {
  Cluster c;
  // Two deploys computed from the same state pick the same free subnet; the
  // second to commit must fail rather than make two networks share it.
  v1::DeployRequest ra, rb;
  *ra.mutable_spec() = StackWithNetworks("a", {""});
  *rb.mutable_spec() = StackWithNetworks("b", {""});
  auto da = BuildDeploy(c.state, ra, c.rng);
  auto db = BuildDeploy(c.state, rb, c.rng);
  REQUIRE(da.ok());
  REQUIRE(db.ok());
  std::vector<Status> results;
  for (auto* d : {&*da, &*db}) {
    v1::Command cmd;
    for (const auto& m : d->mutations) *cmd.mutable_transaction()->add_mutations() = m;
    results.push_back(c.state.Apply(++c.index, cmd, nullptr));
  }
  REQUIRE(results.size() == 2);
  CHECK(results[0].ok());
  REQUIRE_FALSE(results[1].ok());
  CHECK(results[1].code() == Code::kAlreadyExists);
  CHECK(results[1].message().find("network subnet \"10.208.0.0/24\" is taken by") == 0);
  CHECK(c.SubnetOf("b_net0") == "(none)");
  // Recomputed on the new state, it gets the next one.
  REQUIRE(c.Deploy(rb.spec()).ok());
  CHECK(c.SubnetOf("b_net0") == "10.208.1.0/24");
}

}  // namespace shoal::manager
