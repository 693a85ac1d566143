// Real-process tests of the service lifecycle verbs (issue 5): service update
// and rollback, stack history, diff and rollback.

#include <catch2/catch.hpp>

#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;

std::string Stack(const ShoalCluster& c, const std::string& greeting, int replicas,
                  bool with_extra) {
  std::string yaml =
      "services:\n"
      "  app:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"echo $$GREETING; sleep 3600; echo " +
      c.marker() +
      "\"]\n"
      "    environment:\n"
      "      GREETING: " +
      greeting +
      "\n"
      "    deploy:\n"
      "      replicas: " +
      std::to_string(replicas) + "\n";
  if (with_extra) {
    yaml += "  extra:\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
            c.marker() + "\"]\n";
  }
  return yaml;
}

}  // namespace

TEST_CASE("stack history, diff and rollback; service update and rollback") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  std::string v1 = c.WriteStack("v1.yml", Stack(c, "hello", 2, false));
  std::string v2 = c.WriteStack("v2.yml", Stack(c, "bonjour", 3, true));
  REQUIRE(c.Cli("n1", {"deploy", "-c", v1, "--timeout", "60", "demo"}).code == 0);
  REQUIRE(c.Cli("n1", {"deploy", "-c", v2, "--timeout", "60", "demo"}).code == 0);
  CHECK(c.CountTasks() == 4);

  CliResult hist = c.Cli("n1", {"stack", "history", "demo"});
  INFO(hist.out);
  CHECK(hist.out.find("2 *") != std::string::npos);

  CliResult diff = c.Cli("n1", {"stack", "diff", "demo", "1", "2"});
  INFO(diff.out);
  CHECK(diff.code == 2);
  CHECK(diff.out.find("bonjour") != std::string::npos);
  CHECK(diff.out.find("demo_extra") != std::string::npos);

  // Back to revision 1 as revision 3: the extra service goes, GREETING is hello.
  CliResult rb = c.Cli("n1", {"stack", "rollback", "demo", "--to", "1"});
  INFO(rb.out);
  REQUIRE(rb.code == 0);
  CHECK(rb.out.find("revision 3") != std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 2; }, seconds(30)));
  CHECK(c.Cli("n1", {"stack", "history", "demo"}).out.find("rollback to revision 1") !=
        std::string::npos);
  CliResult same = c.Cli("n1", {"stack", "diff", "demo", "1", "3"});
  CHECK(same.code == 0);

  // service update replaces the tasks with the new env, rollback returns.
  CliResult up = c.Cli(
      "n1", {"service", "update", "demo_app", "--env-add", "GREETING=hola", "--timeout", "60"});
  INFO(up.out);
  REQUIRE(up.code == 0);
  CHECK(up.out.find("tasks are replaced") != std::string::npos);
  CHECK(Eventually(
      [&] {
        return c.Cli("n1", {"service", "logs", "demo_app"}).out.find("hola") != std::string::npos;
      },
      seconds(20)));
  CliResult back = c.Cli("n1", {"service", "rollback", "demo_app"});
  INFO(back.out);
  CHECK(back.code == 0);
  CliResult scale = c.Cli("n1", {"service", "update", "demo_app", "--replicas", "1"});
  CHECK(scale.code == 0);
  CHECK(scale.out.find("tasks are replaced") == std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 1; }, seconds(30)));
}

}  // namespace shoal::testing
