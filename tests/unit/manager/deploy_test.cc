#include "shoal/manager/deploy.h"

#include <catch2/catch.hpp>

namespace shoal::manager {
namespace {

using store::Kind;

v1::ServiceSpec Service(const std::string& stack, const std::string& name, uint64_t replicas,
                        const std::string& image = "img:1") {
  v1::ServiceSpec s;
  s.set_name(stack + "_" + name);
  s.set_short_name(name);
  s.set_stack(stack);
  s.set_replicas(replicas);
  s.mutable_container()->set_image(image);
  return s;
}

struct Cluster {
  store::State state;
  uint64_t index = 0;
  std::mt19937_64 rng{42};

  Result<DeployChange> Deploy(const v1::StackSpec& spec, bool prune = false, uint64_t check = 0) {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    req.set_prune(prune);
    req.set_check_version(check);
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

v1::StackSpec Stack(std::vector<v1::ServiceSpec> services) {
  v1::StackSpec s;
  s.set_name("app");
  for (auto& sv : services) *s.add_services() = std::move(sv);
  return s;
}

}  // namespace

TEST_CASE("a first deploy creates the stack, revision 1 and its services in one transaction") {
  Cluster c;
  auto d = c.Deploy(Stack({Service("app", "web", 2), Service("app", "db", 1)}));
  REQUIRE(d.ok());
  CHECK(d->revision == 1);
  CHECK(d->summary == "2 to create, 0 to update, 0 to remove");
  REQUIRE(c.Svc("app_web"));
  CHECK(c.Svc("app_web")->spec_version() == 1);
  uint64_t rev = 0;
  REQUIRE(CurrentStackSpec(c.state, "app", &rev));
  CHECK(rev == 1);
  CHECK(c.state.Count(Kind::kStackRevision) == 1);
}

TEST_CASE("the same spec again changes nothing and makes no revision") {
  Cluster c;
  auto spec = Stack({Service("app", "web", 2)});
  REQUIRE(c.Deploy(spec).ok());
  auto again = c.Deploy(spec);
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
  CHECK(c.state.Count(Kind::kStackRevision) == 1);
}

TEST_CASE("an image change replaces tasks (spec_version moves); a scale does not") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 2)})).ok());
  REQUIRE(c.Deploy(Stack({Service("app", "web", 5)})).ok());
  CHECK(c.Svc("app_web")->spec_version() == 1);
  CHECK(c.Svc("app_web")->spec().replicas() == 5);
  auto d = c.Deploy(Stack({Service("app", "web", 5, "img:2")}));
  REQUIRE(d.ok());
  CHECK(d->revision == 3);
  CHECK(c.Svc("app_web")->spec_version() == 2);
  CHECK(c.Svc("app_web")->previous_spec().container().image() == "img:1");
}

TEST_CASE("a service no longer declared stays without --prune and goes first with it") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 1), Service("app", "old", 1)})).ok());
  auto keep = c.Deploy(Stack({Service("app", "web", 1)}));
  REQUIRE(keep.ok());
  CHECK(keep->mutations.empty());  // nothing to do without --prune
  CHECK(c.Svc("app_old"));
  auto prune = c.Deploy(Stack({Service("app", "web", 1)}), /*prune=*/true);
  REQUIRE(prune.ok());
  CHECK_FALSE(c.Svc("app_old"));
  REQUIRE_FALSE(prune->plan.changes.empty());
  CHECK(prune->plan.changes.front().action == plan::Action::kRemove);
  CHECK(prune->summary == "0 to create, 0 to update, 1 to remove");
}

TEST_CASE("--check-version refuses a stack that moved on") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 1)})).ok());
  REQUIRE(c.Deploy(Stack({Service("app", "web", 2)}), false, 1).ok());
  auto stale = c.Deploy(Stack({Service("app", "web", 3)}), false, 1);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.error().code() == Code::kFailedPrecondition);
  CHECK(stale.error().message().find("revision 2, not 1") != std::string::npos);
  CHECK(c.Svc("app_web")->spec().replicas() == 2);
}

TEST_CASE("stack rm deletes every object of the stack and only those") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 1)})).ok());
  v1::StackSpec other = Stack({Service("other", "web", 1)});
  other.set_name("other");
  REQUIRE(c.Deploy(other).ok());
  c.Apply(RemoveStack(c.state, "app"));
  CHECK_FALSE(c.Svc("app_web"));
  CHECK(c.Svc("other_web"));
  uint64_t rev = 0;
  CHECK_FALSE(CurrentStackSpec(c.state, "app", &rev));
  CHECK(RemoveStack(c.state, "app").empty());
}

TEST_CASE("a stack cannot take over another stack's service, network, volume, secret or config") {
  Cluster c;
  v1::StackSpec app = Stack({Service("app", "web", 1)});
  app.add_secrets()->set_name("app_key");
  REQUIRE(c.Deploy(app).ok());
  // Stack "evil" declaring app's service by its full name.
  v1::StackSpec evil = Stack({Service("app", "web", 3)});
  evil.set_name("evil");
  auto r = c.Deploy(evil);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "service app_web belongs to stack app, not to evil");
  // Stack "ap" declaring a secret under app's full secret name.
  v1::StackSpec other = Stack({Service("ap", "db", 1)});
  other.set_name("ap");
  other.add_secrets()->set_name("app_key");
  r = c.Deploy(other);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "secret app_key belongs to stack app, not to ap");
  CHECK(c.Svc("app_web")->spec().replicas() == 1);
}

TEST_CASE("stack rm --volumes tells the stack's tasks to stop and take their volumes") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 1)})).ok());
  v1::Task t;
  t.mutable_meta()->set_id("t1");
  t.set_service_id(c.Svc("app_web")->meta().id());
  t.set_node_id("n1");
  t.set_desired_state(v1::TASK_RUNNING);
  v1::Mutation put;
  put.set_op(v1::Mutation::OP_PUT);
  *put.mutable_task() = t;
  c.Apply({put});
  // Without --volumes the tasks are left to the orchestrator, as before.
  for (const auto& m : RemoveStack(c.state, "app")) CHECK_FALSE(m.has_task());
  c.Apply(RemoveStack(c.state, "app", /*volumes=*/true));
  const v1::Task* after = c.state.Get<v1::Task>("t1");
  REQUIRE(after);
  CHECK(after->remove_volumes());
  CHECK(after->desired_state() == v1::TASK_SHUTDOWN);
  CHECK_FALSE(c.Svc("app_web"));
}

TEST_CASE("a global service wants a task on every ready, active, matching node") {
  Cluster c;
  auto g = Service("app", "agent", 0);
  g.set_mode(v1::MODE_GLOBAL);
  g.mutable_placement()->add_constraints("node.labels.zone == eu");
  REQUIRE(c.Deploy(Stack({g})).ok());
  std::vector<v1::Mutation> nodes;
  for (int i = 0; i < 4; ++i) {
    v1::Mutation m;
    v1::Node* n = m.mutable_node();
    n->mutable_meta()->set_id("n" + std::to_string(i));
    n->mutable_description()->set_hostname("n" + std::to_string(i));
    n->mutable_status()->set_state(i == 3 ? v1::NodeStatus::STATE_DOWN
                                          : v1::NodeStatus::STATE_READY);
    (*n->mutable_spec()->mutable_labels())["zone"] = i == 0 ? "us" : "eu";
    nodes.push_back(m);
  }
  c.Apply(nodes);
  v1::ServiceSummary sum = Summarize(c.state, *c.Svc("app_agent"));
  CHECK(sum.desired() == 2);  // n1, n2: n0 is in us, n3 is down
  CHECK(sum.running() == 0);
}

TEST_CASE("the dry run names the tasks that cannot be placed, and why") {
  Cluster c;
  v1::Mutation m;
  m.mutable_node()->mutable_meta()->set_id("n1");
  m.mutable_node()->mutable_status()->set_state(v1::NodeStatus::STATE_READY);
  c.Apply({m});
  auto web = Service("app", "web", 2);
  web.mutable_placement()->add_constraints("node.labels.zone == mars");
  v1::DeployRequest req;
  *req.mutable_spec() = Stack({web, Service("app", "db", 1)});
  auto change = BuildDeploy(c.state, req, c.rng);
  REQUIRE(change.ok());
  auto unplaced = DryRunPlacement(c.state, *change, "app");
  REQUIRE(unplaced.size() == 2);
  for (const auto& u : unplaced) {
    CHECK(u.service() == "app_web");
    CHECK(u.message().find("zone") != std::string::npos);
  }
  CHECK(c.state.Count(Kind::kService) == 0);  // a dry run changes nothing
}

}  // namespace shoal::manager

namespace shoal::manager {

TEST_CASE("a deploy compares with what runs: a manual scale shows and is undone") {
  Cluster c;
  auto spec = Stack({Service("app", "web", 2)});
  REQUIRE(c.Deploy(spec).ok());
  v1::Service scaled = *c.Svc("app_web");
  scaled.mutable_spec()->set_replicas(7);
  v1::Mutation m;
  m.set_expected_version(scaled.meta().version());
  *m.mutable_service() = scaled;
  c.Apply({m});
  auto again = c.Deploy(spec);
  REQUIRE(again.ok());
  CHECK(again->plan.HasChanges());
  CHECK(c.Svc("app_web")->spec().replicas() == 2);
}

TEST_CASE("external objects are never planned as changes") {
  Cluster c;
  auto spec = Stack({Service("app", "web", 1)});
  v1::NetworkSpec* ext = spec.add_networks();
  ext->set_name("shared");
  ext->set_external(true);
  REQUIRE(c.Deploy(spec).ok());
  auto again = c.Deploy(spec);
  REQUIRE(again.ok());
  CHECK_FALSE(again->plan.HasChanges());
}

TEST_CASE("a service's summary counts its tasks pending, placed and running") {
  Cluster c;
  REQUIRE(c.Deploy(Stack({Service("app", "web", 4)})).ok());
  const v1::Service& svc = *c.Svc("app_web");
  std::vector<v1::Mutation> tasks;
  // Slot 1 waits for a node, 2 is assigned, 3 runs, 4 runs an older version.
  const v1::TaskState states[] = {v1::TASK_PENDING, v1::TASK_ASSIGNED, v1::TASK_RUNNING,
                                  v1::TASK_RUNNING};
  for (int i = 0; i < 4; ++i) {
    v1::Mutation m;
    v1::Task* t = m.mutable_task();
    t->mutable_meta()->set_id("t" + std::to_string(i));
    t->set_service_id(svc.meta().id());
    t->set_slot(static_cast<uint64_t>(i + 1));
    t->set_service_spec_version(i == 3 ? svc.spec_version() - 1 : svc.spec_version());
    t->set_desired_state(v1::TASK_RUNNING);
    if (i > 0) t->set_node_id("n1");
    t->mutable_status()->set_state(states[i]);
    tasks.push_back(m);
  }
  c.Apply(tasks);
  v1::ServiceSummary sum = Summarize(c.state, svc);
  CHECK(sum.desired() == 4);
  CHECK(sum.pending() == 1);
  CHECK(sum.placed() == 2);  // the assigned and the running task of this version
  CHECK(sum.running() == 1);
}

}  // namespace shoal::manager
