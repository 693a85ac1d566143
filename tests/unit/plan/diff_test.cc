#include <catch2/catch.hpp>

#include "fixtures.h"
#include "shoal/plan/plan.h"

using namespace shoal::plan;           // NOLINT: test brevity
using namespace shoal::plan::testing;  // NOLINT
namespace v1 = shoal::v1;
using Op = FieldChange::Op;

TEST_CASE("an empty cluster makes every object a create") {
  v1::StackSpec desired = DemoStack();
  Plan plan = MustDiff(nullptr, desired);
  CHECK(plan.stack == "demo");
  REQUIRE(plan.changes.size() == 6);
  for (const auto& c : plan.changes) CHECK(c.action == Action::kCreate);
  // Grouped by kind in StackSpec order, sorted by name.
  CHECK(plan.changes[0].name == "demo_api");
  CHECK(plan.changes[1].name == "demo_web");
  CHECK(plan.changes[2].kind == ObjectKind::kNetwork);
  CHECK(plan.changes[5].kind == ObjectKind::kConfig);

  const ObjectChange& web = plan.changes[1];
  REQUIRE(FindField(web, "container.image") != nullptr);
  CHECK(FindField(web, "container.image")->new_value == "\"nginx:1.25\"");
  CHECK(FindField(web, "mode")->new_value == "replicated");
  CHECK(FindField(web, "replicas")->new_value == "2");
  CHECK(FindField(web, "endpoint.ports")->new_value ==
        "[{protocol: \"tcp\", target: 80, published: 8080}]");
  CHECK(FindField(web, "container.env") == nullptr);  // a summary, not a dump

  Summary s = plan.Summarize();
  CHECK(s.create == 6);
  CHECK(s.update + s.remove + s.unchanged == 0);
  CHECK(plan.HasChanges());
  CHECK(PlanExitCode(plan) == 2);
}

TEST_CASE("equal specs yield no changes") {
  v1::StackSpec a = DemoStack();
  v1::StackSpec b = DemoStack();
  Plan plan = MustDiff(&a, b);
  REQUIRE(plan.changes.size() == 6);
  for (const auto& c : plan.changes) {
    CHECK(c.action == Action::kUnchanged);
    CHECK(c.fields.empty());
  }
  CHECK_FALSE(plan.HasChanges());
  CHECK(PlanExitCode(plan) == 0);
  CHECK(plan.Summarize().unchanged == 6);
}

TEST_CASE("map insertion order, list order of objects and unset defaults are not changes") {
  v1::StackSpec a = DemoStack();
  v1::StackSpec b = DemoStack();
  auto* env_a = FindService(a, "demo_api")->mutable_container()->mutable_env();
  auto* env_b = FindService(b, "demo_api")->mutable_container()->mutable_env();
  env_a->clear();
  env_b->clear();
  for (int i = 0; i < 50; ++i) (*env_a)["K" + std::to_string(i)] = std::to_string(i);
  for (int i = 49; i >= 0; --i) (*env_b)["K" + std::to_string(i)] = std::to_string(i);
  // Objects listed in another order are matched by name.
  b.mutable_services()->SwapElements(0, 1);
  // A message spelled out with default values equals an unset one (proto3).
  FindService(a, "demo_api")->clear_restart_policy();
  auto* rp = FindService(b, "demo_api")->mutable_restart_policy();
  rp->set_condition(v1::RestartPolicy::CONDITION_ANY);
  rp->set_max_attempts(0);
  FindService(b, "demo_api")->mutable_container()->mutable_healthcheck();
  FindService(b, "demo_api")->mutable_container()->mutable_labels();

  Plan plan = MustDiff(&a, b);
  CHECK_FALSE(plan.HasChanges());
}

TEST_CASE("create, update, remove and unchanged in one plan") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  desired.mutable_services()->DeleteSubrange(1, 1);  // remove demo_web
  *desired.add_services() = Service("demo", "worker", "example/worker:2");
  FindService(desired, "demo_api")->set_replicas(5);
  desired.mutable_networks(0)->set_name("demo_front");  // old removed, new created

  Plan plan = MustDiff(&current, desired);
  CHECK(FindChange(plan, "demo_api")->action == Action::kUpdate);
  CHECK(FindChange(plan, "demo_web")->action == Action::kRemove);
  CHECK(FindChange(plan, "demo_web")->fields.empty());
  CHECK(FindChange(plan, "demo_worker")->action == Action::kCreate);
  CHECK(FindChange(plan, "demo_default")->action == Action::kRemove);
  CHECK(FindChange(plan, "demo_front")->action == Action::kCreate);
  CHECK(FindChange(plan, "demo_data")->action == Action::kUnchanged);
  Summary s = plan.Summarize();
  CHECK(s.create == 2);
  CHECK(s.update == 1);
  CHECK(s.remove == 2);
  CHECK(s.unchanged == 3);
}

TEST_CASE("scale, labels and update policy are applied in place") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  v1::ServiceSpec* api = FindService(desired, "demo_api");
  api->set_replicas(5);
  (*api->mutable_labels())["team"] = "core";
  api->mutable_update_config()->set_order(v1::UpdateConfig::ORDER_START_FIRST);
  api->mutable_update_config()->set_delay_ns(30 * kSecond);
  api->mutable_update_config()->set_max_failure_ratio(0.25);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_api");
  CHECK(c.action == Action::kUpdate);
  CHECK_FALSE(c.replaces_tasks);
  CHECK_FALSE(c.tasks_replaced.has_value());
  REQUIRE(c.fields.size() == 5);
  for (const auto& f : c.fields) CHECK_FALSE(f.replaces_tasks);

  const FieldChange* replicas = FindField(c, "replicas");
  REQUIRE(replicas != nullptr);
  CHECK(replicas->op == Op::kChange);
  CHECK(replicas->old_value == "3");
  CHECK(replicas->new_value == "5");
  const FieldChange* label = FindField(c, "labels.team");
  REQUIRE(label != nullptr);
  CHECK(label->op == Op::kAdd);
  CHECK(label->new_value == "\"core\"");
  const FieldChange* order = FindField(c, "update_config.order");
  REQUIRE(order != nullptr);
  CHECK(order->old_value == "stop-first");
  CHECK(order->new_value == "start-first");
  const FieldChange* delay = FindField(c, "update_config.delay");
  REQUIRE(delay != nullptr);
  CHECK(delay->old_value == "10s");
  CHECK(delay->new_value == "30s");
  CHECK(FindField(c, "update_config.max_failure_ratio")->new_value == "0.25");
}

TEST_CASE("image, env and placement changes replace tasks") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  v1::ServiceSpec* api = FindService(desired, "demo_api");
  api->mutable_container()->set_image("example/api:1.1");
  auto& env = *api->mutable_container()->mutable_env();
  env["DEBUG"] = "1";
  env["LOG_LEVEL"] = "debug";
  env.erase("PORT");
  api->mutable_placement()->clear_constraints();
  api->set_replicas(4);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_api");
  CHECK(c.replaces_tasks);
  REQUIRE(c.tasks_replaced.has_value());
  CHECK(*c.tasks_replaced == 4);  // the desired replica count

  const FieldChange* image = FindField(c, "container.image");
  REQUIRE(image != nullptr);
  CHECK(image->replaces_tasks);
  CHECK(image->old_value == "\"example/api:1.0\"");
  CHECK(image->new_value == "\"example/api:1.1\"");
  CHECK(FindField(c, "container.env.DEBUG")->op == Op::kAdd);
  CHECK(FindField(c, "container.env.LOG_LEVEL")->op == Op::kChange);
  CHECK(FindField(c, "container.env.LOG_LEVEL")->old_value == "\"info\"");
  const FieldChange* port = FindField(c, "container.env.PORT");
  REQUIRE(port != nullptr);
  CHECK(port->op == Op::kRemove);
  CHECK(port->old_value == "\"8080\"");
  CHECK(port->replaces_tasks);
  const FieldChange* constraints = FindField(c, "placement.constraints");
  REQUIRE(constraints != nullptr);
  CHECK(constraints->op == Op::kRemove);
  CHECK(constraints->old_value == "[\"node.role == worker\"]");
  CHECK(constraints->replaces_tasks);
  CHECK_FALSE(FindField(c, "replicas")->replaces_tasks);

  Summary s = plan.Summarize();
  CHECK(s.tasks_replaced == 4);
}

TEST_CASE("a replaced global service replaces all its tasks") {
  v1::StackSpec current = DemoStack();
  FindService(current, "demo_web")->set_mode(v1::MODE_GLOBAL);
  FindService(current, "demo_web")->set_replicas(0);
  v1::StackSpec desired = current;
  FindService(desired, "demo_web")->mutable_container()->set_image("nginx:1.27");
  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_web");
  CHECK(c.replaces_tasks);
  CHECK_FALSE(c.tasks_replaced.has_value());
  CHECK(plan.Summarize().global_services_replaced == 1);

  // A mode change replaces tasks too, and prints the enum readably.
  v1::StackSpec scaled = current;
  FindService(scaled, "demo_web")->set_mode(v1::MODE_REPLICATED);
  FindService(scaled, "demo_web")->set_replicas(6);
  Plan plan2 = MustDiff(&current, scaled);
  const ObjectChange& c2 = *FindChange(plan2, "demo_web");
  CHECK(FindField(c2, "mode")->old_value == "global");
  CHECK(FindField(c2, "mode")->new_value == "replicated");
  CHECK(*c2.tasks_replaced == 6);
}

TEST_CASE("list elements with a key field are matched by it") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  v1::ContainerSpec* ctr = FindService(desired, "demo_api")->mutable_container();
  ctr->mutable_mounts(0)->set_read_only(true);
  auto* tmp = ctr->add_mounts();
  tmp->set_type(v1::Mount::TYPE_TMPFS);
  tmp->set_target("/tmp");
  tmp->set_tmpfs_size_bytes(int64_t{64} << 20);
  tmp->set_tmpfs_mode(01777);
  // Out of the normalised order on purpose: matching must not depend on position.
  ctr->mutable_mounts()->SwapElements(0, 1);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_api");
  REQUIRE(c.fields.size() == 2);
  const FieldChange* ro = FindField(c, "container.mounts[/data].read_only");
  REQUIRE(ro != nullptr);
  CHECK(ro->old_value == "false");
  CHECK(ro->new_value == "true");
  CHECK(ro->replaces_tasks);
  const FieldChange* added = FindField(c, "container.mounts[/tmp]");
  REQUIRE(added != nullptr);
  CHECK(added->op == Op::kAdd);
  CHECK(added->new_value ==
        "{type: tmpfs, target: \"/tmp\", tmpfs_size_bytes: 64MiB, tmpfs_mode: 01777}");

  // Removing the element shows what is removed.
  Plan back = MustDiff(&desired, current);
  const FieldChange* removed = FindField(*FindChange(back, "demo_api"), "container.mounts[/tmp]");
  REQUIRE(removed != nullptr);
  CHECK(removed->op == Op::kRemove);
  CHECK(removed->new_value.empty());
}

TEST_CASE("ports have no key field and compare as whole lists") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  auto* ep = FindService(desired, "demo_web")->mutable_endpoint();
  ep->mutable_ports(0)->set_published(8081);
  auto* p = ep->add_ports();
  p->set_protocol("udp");
  p->set_target(53);
  p->set_published(53);
  p->set_mode(v1::PortConfig::PUBLISH_HOST);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_web");
  REQUIRE(c.fields.size() == 1);
  const FieldChange& f = c.fields[0];
  CHECK(f.path == "endpoint.ports");
  CHECK(f.op == Op::kChange);
  CHECK(f.replaces_tasks);
  CHECK(f.old_value == "[{protocol: \"tcp\", target: 80, published: 8080}]");
  CHECK(f.new_value ==
        "[{protocol: \"tcp\", target: 80, published: 8081}, "
        "{protocol: \"udp\", target: 53, published: 53, mode: host}]");
  CHECK(*c.tasks_replaced == 2);
}

TEST_CASE("units format durations, bytes, CPUs and file modes") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  v1::ServiceSpec* api = FindService(desired, "demo_api");
  auto* limits = api->mutable_resources()->mutable_limits();
  limits->set_memory_bytes(int64_t{512} << 20);
  limits->set_nano_cpus(500'000'000);
  auto* hc = api->mutable_container()->mutable_healthcheck();
  hc->set_interval_ns(90 * kSecond);
  hc->set_timeout_ns(1'500'000'000);
  api->mutable_container()->set_stop_grace_period_ns(3600 * kSecond);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_api");
  CHECK(FindField(c, "resources.limits.memory")->new_value == "512MiB");
  CHECK(FindField(c, "resources.limits.memory")->old_value == "0B");
  CHECK(FindField(c, "resources.limits.cpus")->new_value == "0.5");
  CHECK(FindField(c, "container.healthcheck.interval")->new_value == "1m30s");
  CHECK(FindField(c, "container.healthcheck.timeout")->new_value == "1.5s");
  CHECK(FindField(c, "container.stop_grace_period")->new_value == "1h0m0s");
}

TEST_CASE("optional fields distinguish unset from false") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  FindService(desired, "demo_api")->mutable_container()->set_init(false);
  Plan plan = MustDiff(&current, desired);
  const FieldChange* init = FindField(*FindChange(plan, "demo_api"), "container.init");
  REQUIRE(init != nullptr);
  CHECK(init->op == Op::kAdd);
  CHECK(init->new_value == "false");
}

TEST_CASE("secret values and their hashes are never carried in the plan") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  desired.mutable_secrets(0)->set_data("new-password-value");
  desired.mutable_secrets(0)->set_data_hash("bbbb2222");
  auto add_ref = [](v1::StackSpec& st, const char* version) {
    auto* ref = FindService(st, "demo_api")->mutable_container()->add_secrets();
    ref->set_source("db_password");
    ref->set_name("demo_db_password");
    ref->set_target("/run/secrets/db_password");
    ref->set_mode(0440);
    ref->set_version(version);
  };
  add_ref(current, "aaaa1111");
  add_ref(desired, "bbbb2222");

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& secret = *FindChange(plan, "demo_db_password");
  CHECK(secret.action == Action::kUpdate);
  for (const auto& f : secret.fields) {
    CHECK(f.sensitive);
    CHECK(f.old_value.empty());
    CHECK(f.new_value.empty());
  }
  CHECK(FindField(secret, "data") != nullptr);

  const ObjectChange& api = *FindChange(plan, "demo_api");
  CHECK(api.replaces_tasks);  // a new secret value rolls the tasks that use it
  const FieldChange* version =
      FindField(api, "container.secrets[/run/secrets/db_password].version");
  REQUIRE(version != nullptr);
  CHECK(version->sensitive);
  CHECK(version->new_value.empty());

  // A new reference describes the element with the hash redacted.
  v1::StackSpec no_ref = DemoStack();
  Plan added = MustDiff(&no_ref, desired);
  const FieldChange* ref =
      FindField(*FindChange(added, "demo_api"), "container.secrets[/run/secrets/db_password]");
  REQUIRE(ref != nullptr);
  CHECK(ref->new_value ==
        "{source: \"db_password\", name: \"demo_db_password\", target: "
        "\"/run/secrets/db_password\", mode: 0440, version: (sensitive)}");
}

TEST_CASE("config content changes show the hash") {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  desired.mutable_configs(0)->set_data(std::string(200, 'x'));
  desired.mutable_configs(0)->set_data_hash("dddd4444");
  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_nginx_conf");
  CHECK(FindField(c, "data_hash")->old_value == "\"cccc3333\"");
  CHECK(FindField(c, "data_hash")->new_value == "\"dddd4444\"");
  CHECK(FindField(c, "data")->new_value == "(200 bytes)");
  CHECK_FALSE(FindField(c, "data")->sensitive);
}

TEST_CASE("Diff refuses specs it cannot match") {
  v1::StackSpec a = DemoStack();
  v1::StackSpec b = DemoStack();
  b.set_name("other");
  auto r = Diff(&a, b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == shoal::Code::kInvalidArgument);

  v1::StackSpec dup = DemoStack();
  *dup.add_services() = Service("demo", "api", "example/api:2.0");
  auto r2 = Diff(&a, dup);
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.error().message(), Catch::Contains("two services named \"demo_api\""));
}

TEST_CASE("a diff is symmetric in what it finds") {
  v1::StackSpec a = DemoStack();
  v1::StackSpec b = DemoStack();
  FindService(b, "demo_web")->mutable_container()->add_command("serve");
  FindService(b, "demo_web")->mutable_container()->set_command_set(true);
  Plan fwd = MustDiff(&a, b);
  Plan back = MustDiff(&b, a);
  const ObjectChange& f = *FindChange(fwd, "demo_web");
  const ObjectChange& r = *FindChange(back, "demo_web");
  REQUIRE(f.fields.size() == r.fields.size());
  CHECK(FindField(f, "container.command")->op == Op::kAdd);
  CHECK(FindField(r, "container.command")->op == Op::kRemove);
  CHECK(FindField(r, "container.command")->old_value == "[\"serve\"]");
}

TEST_CASE("enums print without their type's prefix, and keyed lists nest") {
  v1::StackSpec current = DemoStack();
  v1::ServiceSpec* api = FindService(current, "demo_api");
  auto* dep = api->add_depends_on();
  dep->set_service("db");
  dep->set_condition(v1::Dependency::SERVICE_STARTED);
  auto* net = api->add_networks();
  net->set_target("demo_default");
  net->add_aliases("api");
  v1::StackSpec desired = current;
  api = FindService(desired, "demo_api");
  api->mutable_restart_policy()->set_condition(v1::RestartPolicy::CONDITION_ON_FAILURE);
  api->mutable_depends_on(0)->set_condition(v1::Dependency::SERVICE_HEALTHY);
  api->mutable_networks(0)->add_aliases("backend");
  api->mutable_endpoint()->set_mode(v1::EndpointSpec::MODE_DNSRR);

  Plan plan = MustDiff(&current, desired);
  const ObjectChange& c = *FindChange(plan, "demo_api");
  CHECK(FindField(c, "restart_policy.condition")->old_value == "any");
  CHECK(FindField(c, "restart_policy.condition")->new_value == "on-failure");
  CHECK_FALSE(FindField(c, "restart_policy.condition")->replaces_tasks);
  CHECK(FindField(c, "depends_on[db].condition")->new_value == "service-healthy");
  CHECK(FindField(c, "endpoint.mode")->new_value == "dnsrr");
  const FieldChange* aliases = FindField(c, "networks[demo_default].aliases");
  REQUIRE(aliases != nullptr);
  CHECK(aliases->new_value == "[\"api\", \"backend\"]");
  CHECK(aliases->replaces_tasks);
  CHECK(c.replaces_tasks);
}

TEST_CASE("a replicated job reports its completions as the tasks replaced") {
  v1::StackSpec current = DemoStack();
  FindService(current, "demo_web")->set_mode(v1::MODE_REPLICATED_JOB);
  v1::StackSpec desired = current;
  FindService(desired, "demo_web")->mutable_container()->set_image("nginx:1.27");
  Plan plan = MustDiff(&current, desired);
  REQUIRE(FindChange(plan, "demo_web")->tasks_replaced.has_value());
  CHECK(*FindChange(plan, "demo_web")->tasks_replaced == 2);
}
