#include "shoal/plan/render.h"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <string>

#include "fixtures.h"

using namespace shoal::plan;           // NOLINT: test brevity
using namespace shoal::plan::testing;  // NOLINT
namespace v1 = shoal::v1;

namespace {

constexpr const char* kPlantedSecret = "PLANTED-s3cr3t-VALUE-7f3a";
constexpr const char* kPlantedHash = "5e2b0c0ffee5e2b0c0ffee";

// A plan with one of each kind of change, a secret rotation among them.
Plan MixedPlan() {
  v1::StackSpec current = DemoStack();
  v1::StackSpec desired = DemoStack();
  v1::ServiceSpec* api = FindService(desired, "demo_api");
  api->mutable_container()->set_image("example/api:1.1");
  (*api->mutable_container()->mutable_env())["DEBUG"] = "1";
  api->set_replicas(4);
  FindService(desired, "demo_web")->mutable_update_config()->set_delay_ns(90 * kSecond);
  desired.mutable_networks(0)->set_name("demo_front");
  desired.mutable_secrets(0)->set_data(kPlantedSecret);
  desired.mutable_secrets(0)->set_data_hash(kPlantedHash);
  return MustDiff(&current, desired);
}

}  // namespace

TEST_CASE("RenderText prints a terraform-like plan") {
  Plan plan = MixedPlan();
  std::string text = RenderText(plan, RenderOptions{});
  CHECK(text ==
        "Stack demo:\n"
        "  ~ service demo_api (rolling replace of 4 tasks)\n"
        "      ~ container.image: \"example/api:1.0\" -> \"example/api:1.1\"  # replaces tasks\n"
        "      + container.env.DEBUG: \"1\"  # replaces tasks\n"
        "      ~ replicas: 3 -> 4\n"
        "  ~ service demo_web (in place)\n"
        "      ~ update_config.delay: 10s -> 1m30s\n"
        "  - network demo_default\n"
        "  + network demo_front\n"
        "      + driver: \"overlay\"\n"
        "  ~ secret demo_db_password\n"
        "      ~ data: (sensitive value changed)\n"
        "      ~ data_hash: (sensitive value changed)\n"
        "\n"
        "Plan: 1 to create, 3 to update (4 tasks replaced), 1 to remove, 2 unchanged.\n");
  CHECK(text.find('\x1b') == std::string::npos);
}

TEST_CASE("RenderText colours markers only when asked") {
  Plan plan = MixedPlan();
  std::string text = RenderText(plan, RenderOptions{.color = true});
  CHECK_THAT(text, Catch::Contains("\x1b[32m+\x1b[0m network demo_front"));
  CHECK_THAT(text, Catch::Contains("\x1b[33m~\x1b[0m service demo_api"));
  CHECK_THAT(text, Catch::Contains("\x1b[31m-\x1b[0m network demo_default"));
}

TEST_CASE("RenderText for a plan without changes") {
  v1::StackSpec a = DemoStack();
  Plan plan = MustDiff(&a, a);
  std::string text = RenderText(plan, RenderOptions{});
  CHECK_THAT(text, Catch::EndsWith("No changes. 6 unchanged.\n"));
  std::string listed = RenderText(plan, RenderOptions{.show_unchanged = true});
  CHECK_THAT(listed, Catch::Contains("    service demo_api (unchanged)\n"));
}

TEST_CASE("RenderText describes creates briefly and summarises global replaces") {
  v1::StackSpec desired = DemoStack();
  Plan created = MustDiff(nullptr, desired);
  std::string text = RenderText(created, RenderOptions{});
  CHECK_THAT(text, Catch::Contains("  + service demo_web\n"
                                   "      + container.image: \"nginx:1.25\"\n"
                                   "      + mode: replicated\n"
                                   "      + replicas: 2\n"
                                   "      + endpoint.ports: [{protocol: \"tcp\", target: 80, "
                                   "published: 8080}]\n"));
  CHECK_THAT(text, Catch::Contains("Plan: 6 to create, 0 to update, 0 to remove, 0 unchanged."));
  // A new secret never shows its data or hash.
  CHECK(text.find("old-password-value") == std::string::npos);
  CHECK(text.find("aaaa1111") == std::string::npos);

  v1::StackSpec current = DemoStack();
  FindService(current, "demo_web")->set_mode(v1::MODE_GLOBAL);
  v1::StackSpec changed = current;
  FindService(changed, "demo_web")->mutable_container()->set_image("nginx:1.27");
  FindService(changed, "demo_api")->mutable_container()->set_image("example/api:2");
  std::string g = RenderText(MustDiff(&current, changed), RenderOptions{});
  CHECK_THAT(g, Catch::Contains("~ service demo_web (rolling replace of all tasks)"));
  CHECK_THAT(g, Catch::Contains("(3 tasks and all tasks of 1 global service replaced)"));
}

TEST_CASE("rendered output never contains a secret value or its hash") {
  Plan plan = MixedPlan();
  for (const std::string& out :
       {RenderText(plan, RenderOptions{}),
        RenderText(plan, RenderOptions{.color = true, .show_unchanged = true}), RenderJson(plan)}) {
    CHECK(out.find(kPlantedSecret) == std::string::npos);
    CHECK(out.find(kPlantedHash) == std::string::npos);
    CHECK(out.find("old-password-value") == std::string::npos);
    CHECK(out.find("aaaa1111") == std::string::npos);
  }
}

TEST_CASE("RenderJson parses back with the expected shape") {
  Plan plan = MixedPlan();
  std::string json = RenderJson(plan);
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc["stack"].GetString()) == "demo");
  // Keys come in a fixed order so that the output can be compared as text.
  auto it = doc.MemberBegin();
  CHECK(std::string(it->name.GetString()) == "stack");
  CHECK(std::string((++it)->name.GetString()) == "changes");
  CHECK(std::string((++it)->name.GetString()) == "summary");

  const auto& changes = doc["changes"];
  REQUIRE(changes.IsArray());
  REQUIRE(changes.Size() == plan.changes.size());
  const auto& api = changes[0];
  CHECK(std::string(api["kind"].GetString()) == "service");
  CHECK(std::string(api["name"].GetString()) == "demo_api");
  CHECK(std::string(api["action"].GetString()) == "update");
  CHECK(api["replaces_tasks"].GetBool());
  CHECK(api["tasks_replaced"].GetUint64() == 4);
  const auto& fields = api["fields"];
  REQUIRE(fields.Size() == 3);
  CHECK(std::string(fields[0]["path"].GetString()) == "container.image");
  CHECK(std::string(fields[0]["op"].GetString()) == "change");
  CHECK(std::string(fields[0]["old"].GetString()) == "\"example/api:1.0\"");
  CHECK(std::string(fields[0]["new"].GetString()) == "\"example/api:1.1\"");
  CHECK(fields[0]["replaces_tasks"].GetBool());
  CHECK(fields[1]["old"].IsNull());  // an added env var has no old value
  CHECK_FALSE(fields[2]["replaces_tasks"].GetBool());

  const auto& web = changes[1];
  CHECK(std::string(web["fields"][0]["new"].GetString()) == "1m30s");
  CHECK(web["tasks_replaced"].GetUint64() == 0);

  bool saw_secret = false;
  for (const auto& c : changes.GetArray()) {
    if (std::string(c["kind"].GetString()) != "secret") continue;
    saw_secret = true;
    for (const auto& f : c["fields"].GetArray()) {
      CHECK(f["sensitive"].GetBool());
      CHECK(f["old"].IsNull());
      CHECK(f["new"].IsNull());
    }
  }
  CHECK(saw_secret);

  const auto& s = doc["summary"];
  CHECK(s["create"].GetInt() == 1);
  CHECK(s["update"].GetInt() == 3);
  CHECK(s["remove"].GetInt() == 1);
  CHECK(s["unchanged"].GetInt() == 2);
  CHECK(s["tasks_replaced"].GetUint64() == 4);
  CHECK(s["has_changes"].GetBool());
}

TEST_CASE("RenderJson marks a global replace as all tasks") {
  v1::StackSpec current = DemoStack();
  FindService(current, "demo_web")->set_mode(v1::MODE_GLOBAL);
  v1::StackSpec desired = current;
  FindService(desired, "demo_web")->mutable_container()->set_image("nginx:1.27");
  rapidjson::Document doc;
  doc.Parse(RenderJson(MustDiff(&current, desired)).c_str());
  REQUIRE_FALSE(doc.HasParseError());
  CHECK(std::string(doc["changes"][1]["tasks_replaced"].GetString()) == "all");
  CHECK(doc["summary"]["global_services_replaced"].GetInt() == 1);
  CHECK(doc["summary"]["has_changes"].GetBool());
}
