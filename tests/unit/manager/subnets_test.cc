#include "shoal/manager/subnets.h"

#include <catch2/catch.hpp>
#include <set>

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
  // The Cluster object `cluster init --default-addr-pool ...` writes.
  void SetPool(std::vector<std::string> cidrs, uint32_t bits) {
    auto pool = MakeAddressPool(cidrs, bits);
    REQUIRE(pool.ok());
    v1::Command c;
    v1::Mutation* m = c.mutable_transaction()->add_mutations();
    m->mutable_cluster()->mutable_meta()->set_id("c1");
    *m->mutable_cluster()->mutable_address_pool() = *pool;
    REQUIRE(state.Apply(++index, c, nullptr).ok());
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

bool InPool(const std::string& subnet, const std::string& pool, int bits) {
  auto s = ParseIpv4Prefix(subnet);
  return s.ok() && s->bits == bits && s->ToString() == subnet &&
         s->Overlaps(*ParseIpv4Prefix(pool));
}

TEST_CASE("the managers give every stack network its own subnet and keep it") {
  Cluster c;
  REQUIRE(c.Deploy(StackWithNetworks("a", {"", ""})).ok());
  REQUIRE(c.Deploy(StackWithNetworks("b", {""})).ok());
  const std::string a0 = c.SubnetOf("a_net0"), a1 = c.SubnetOf("a_net1"), b0 = c.SubnetOf("b_net0");
  for (const auto& s : {a0, a1, b0}) {
    INFO(s);
    CHECK(InPool(s, kDefaultAddressPool, 24));
  }
  CHECK(a0 != a1);
  CHECK(a0 != b0);
  CHECK(a1 != b0);
  // A redeploy changes nothing; a changed network keeps its subnet.
  auto again = c.Deploy(StackWithNetworks("a", {"", ""}));
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
  v1::StackSpec changed = StackWithNetworks("a", {"", ""});
  (*changed.mutable_networks(0)->mutable_labels())["tier"] = "front";
  REQUIRE(c.Deploy(changed).ok());
  CHECK(c.SubnetOf("a_net0") == a0);
}

TEST_CASE("a subnet just freed is not the next one handed out") {
  // An engine may keep a removed network a while; the next stack's network
  // must not land on its subnet.
  Cluster c;
  REQUIRE(c.Deploy(StackWithNetworks("a", {""})).ok());
  const std::string freed = c.SubnetOf("a_net0");
  auto found = c.state.Find(Kind::kNetwork, "name", "a_net0");
  REQUIRE(found.size() == 1);
  v1::Command del;
  v1::Mutation* m = del.mutable_transaction()->add_mutations();
  *m = *found.front();
  m->set_op(v1::Mutation::OP_DELETE);
  REQUIRE(c.state.Apply(++c.index, del, nullptr).ok());
  REQUIRE(c.SubnetOf("a_net0") == "(none)");
  for (const char* stack : {"b", "c", "d", "e"}) {
    REQUIRE(c.Deploy(StackWithNetworks(stack, {""})).ok());
    CHECK(c.SubnetOf(std::string(stack) + "_net0") != freed);
  }
}

TEST_CASE("the cluster's own pool: several prefixes, another mask length") {
  Cluster c;
  c.SetPool({"10.50.0.0/24", "172.30.4.0/23"}, 26);  // 4 + 8 subnets of /26
  for (int i = 0; i < 12; ++i) {
    REQUIRE(c.Deploy(StackWithNetworks("s" + std::to_string(i), {""})).ok());
  }
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    const std::string s = c.SubnetOf("s" + std::to_string(i) + "_net0");
    INFO(s);
    CHECK((InPool(s, "10.50.0.0/24", 26) || InPool(s, "172.30.4.0/23", 26)));
    seen.insert(s);
  }
  CHECK(seen.size() == 12);
  auto full = c.Deploy(StackWithNetworks("s12", {""}));
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code() == Code::kFailedPrecondition);
  CHECK(full.error().message() ==
        "network s12_net0: all 12 subnets of 10.50.0.0/24, 172.30.4.0/23 are in use");
}

TEST_CASE("cluster init refuses a bad address pool, naming the flag") {
  CHECK(MakeAddressPool({}, 0)->cidrs().empty());
  const auto error = [](std::vector<std::string> cidrs, uint32_t bits) {
    auto r = MakeAddressPool(cidrs, bits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Code::kInvalidArgument);
    return r.error().message();
  };
  CHECK(error({"10.0.0.0/33"}, 0) ==
        "--default-addr-pool: \"10.0.0.0/33\" is not an IPv4 subnet (a.b.c.d/n)");
  CHECK(error({"10.0.0.0/8", "10.20.0.0/16"}, 0) ==
        "--default-addr-pool: 10.20.0.0/16 overlaps 10.0.0.0/8");
  CHECK(error({"10.0.0.0/16"}, 12) ==
        "--default-addr-pool-mask-length 12: must be between the pool's prefix length (16 for "
        "10.0.0.0/16) and 30");
  CHECK(error({"10.0.0.0/16"}, 31).find("--default-addr-pool-mask-length 31:") == 0);
  CHECK(error({}, 26) == "--default-addr-pool-mask-length needs --default-addr-pool");
  auto ok = MakeAddressPool({"10.1.2.3/16"}, 0);
  REQUIRE(ok.ok());
  CHECK(ok->cidrs(0) == "10.1.0.0/16");
  CHECK(ok->subnet_bits() == 24);
}

TEST_CASE("a declared subnet is used, and one that overlaps another network is refused") {
  Cluster c;
  REQUIRE(c.Deploy(StackWithNetworks("a", {"10.208.0.0/16"})).ok());
  CHECK(c.SubnetOf("a_net0") == "10.208.0.0/16");
  // The pool skips what a declared subnet covers.
  c.SetPool({"10.208.0.0/15"}, 24);
  for (const char* stack : {"b", "c", "d"}) {
    REQUIRE(c.Deploy(StackWithNetworks(stack, {""})).ok());
    CHECK(InPool(c.SubnetOf(std::string(stack) + "_net0"), "10.209.0.0/16", 24));
  }
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
  c.SetPool({"10.9.0.0/24"}, 24);  // one subnet: both deploys must pick it
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
  CHECK(results[1].message().find("network subnet \"10.9.0.0/24\" is taken by") == 0);
  CHECK(c.SubnetOf("b_net0") == "(none)");
  // Recomputed on the new state, it finds the pool used up, and says so.
  auto again = c.Deploy(rb.spec());
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message() == "network b_net0: all 1 subnets of 10.9.0.0/24 are in use");
}

}  // namespace shoal::manager
