// Real-process tests of the service lifecycle (issue 5): service update and
// rollback, stack history, diff and rollback; a crash loop with max
// attempts, a failing healthcheck after an update rolled back, start-first
// without a gap, a paused update failing deploy, depends_on with a slow
// database, drain with start-first.

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <thread>

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
      std::to_string(replicas) +
      "\n"
      // A third service that both revisions declare, differently: a stack
      // rollback changes it too.
      "  db:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
      c.marker() + "\"]\n    environment:\n      DB_MODE: db-" + greeting + "\n";
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
  CHECK(c.CountTasks() == 5);

  CliResult hist = c.Cli("n1", {"stack", "history", "demo"});
  INFO(hist.out);
  CHECK(hist.out.find("2 *") != std::string::npos);

  CliResult diff = c.Cli("n1", {"stack", "diff", "demo", "1", "2"});
  INFO(diff.out);
  CHECK(diff.code == 2);
  CHECK(diff.out.find("bonjour") != std::string::npos);
  CHECK(diff.out.find("demo_extra") != std::string::npos);
  CHECK(diff.out.find("db-bonjour") != std::string::npos);

  // Back to revision 1 as revision 3, across three services: the extra
  // service goes, app's GREETING is hello again and db's DB_MODE db-hello.
  CliResult rb = c.Cli("n1", {"stack", "rollback", "demo", "--to", "1"});
  INFO(rb.out);
  REQUIRE(rb.code == 0);
  CHECK(rb.out.find("revision 3") != std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 3; }, seconds(30)));
  CliResult db = c.Cli("n1", {"service", "inspect", "demo_db"});
  INFO(db.out);
  CHECK(db.out.find("db-hello") != std::string::npos);  // db-bonjour stays as previous_spec
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
  CHECK(Eventually([&] { return c.CountTasks() == 2; }, seconds(30)));  // app 1, db 1
}

namespace {

// One service `app` of shell tasks carrying the marker; `body` is the shell
// script before the final sleep, `deploy` and `extra` YAML under the service.
std::string AppStack(const ShoalCluster& c, const std::string& body, const std::string& deploy,
                     const std::string& extra = "") {
  return "services:\n"
         "  app:\n"
         "    image: busybox\n"
         "    command: [\"/bin/sh\", \"-c\", \"" +
         body + "; sleep 3600; echo " + c.marker() +
         "\"]\n"
         "    deploy:\n" +
         deploy + extra;
}

// A healthcheck that passes once `file` exists, probed every 200 ms (100 ms
// in its start period, during which failures do not count).
std::string HealthFile(const std::string& file, const std::string& start_period = "30s") {
  return "    healthcheck:\n"
         "      test: [\"CMD\", \"test\", \"-f\", \"" +
         file +
         "\"]\n"
         "      interval: 200ms\n"
         "      timeout: 2s\n"
         "      retries: 2\n"
         "      start_period: " +
         start_period +
         "\n"
         "      start_interval: 100ms\n";
}

// A healthcheck whose first probe, after half a second, passes: a task is
// healthy only then, so a stop-first replacement would leave a gap.
std::string HealthyAfterHalfASecond() {
  return "    healthcheck:\n"
         "      test: [\"CMD\", \"true\"]\n"
         "      interval: 1s\n"
         "      start_period: 30s\n"
         "      start_interval: 500ms\n";
}

// A one-node cluster, initialised.
void OneNode(ShoalCluster& c) {
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
}

}  // namespace

TEST_CASE("a crash loop stops after max_attempts; deploy fails and ps says why") {
  ShoalCluster c;
  OneNode(c);
  std::string yaml =
      "services:\n"
      "  crash:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"exit 3; echo " +
      c.marker() +
      "\"]\n"
      "    deploy:\n"
      "      restart_policy:\n"
      "        condition: on-failure\n"
      "        delay: 100ms\n"
      "        max_attempts: 2\n";
  std::string file = c.WriteStack("crash.yml", yaml);
  CliResult dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 1);
  CHECK(dep.out.find("2 of 2 attempts made") != std::string::npos);
  CliResult ps = c.Cli("n1", {"service", "ps", "demo_crash", "--all"});
  INFO(ps.out);
  CHECK(ps.out.find("restart policy: 2 of 2 attempts made") != std::string::npos);
  CHECK(ps.out.find("exited with code 3") != std::string::npos);
  // The first run and two restarts, no more.
  size_t attempts = 0;
  for (size_t pos = 0; (pos = ps.out.find("exited with code 3", pos)) != std::string::npos; ++pos) {
    ++attempts;
  }
  CHECK(attempts == 3);
}

TEST_CASE("an update whose healthcheck fails is rolled back; deploy exits 1 and says so") {
  ShoalCluster c;
  OneNode(c);
  std::string ok = (c.dir() / "ok").string();
  std::string never = (c.dir() / "never").string();
  const std::string deploy =
      "      replicas: 2\n"
      "      update_config:\n"
      "        parallelism: 1\n"
      "        monitor: 1s\n"
      "        failure_action: rollback\n"
      "      rollback_config:\n"
      "        parallelism: 2\n"
      "        monitor: 0s\n";
  std::string v1 = c.WriteStack("v1.yml", AppStack(c, "touch " + ok, deploy, HealthFile(ok)));
  std::string v2 = c.WriteStack("v2.yml", AppStack(c, "echo v2", deploy, HealthFile(never, "0s")));
  REQUIRE(c.Cli("n1", {"deploy", "-c", v1, "--timeout", "60", "demo"}).code == 0);
  CliResult dep = c.Cli("n1", {"deploy", "-c", v2, "--timeout", "60", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 1);
  CHECK(dep.out.find("was rolled back") != std::string::npos);
  CHECK(dep.out.find("[rolled back]") != std::string::npos);
  CliResult ls = c.Cli("n1", {"service", "ls"});
  INFO(ls.out);
  CHECK(ls.out.find("rolled back") != std::string::npos);
  // The first spec runs again, healthy, on both replicas.
  CliResult ps = c.Cli("n1", {"service", "ps", "demo_app"});
  INFO(ps.out);
  size_t healthy = 0;
  for (size_t pos = 0; (pos = ps.out.find("running (healthy)", pos)) != std::string::npos; ++pos) {
    ++healthy;
  }
  CHECK(healthy == 2);
  CHECK(c.Cli("n1", {"service", "inspect", "demo_app"}).out.find(never) != std::string::npos);
}

TEST_CASE("start-first: no moment with fewer running tasks than replicas") {
  ShoalCluster c;
  OneNode(c);
  const std::string deploy =
      "      replicas: 2\n"
      "      update_config:\n"
      "        parallelism: 1\n"
      "        order: start-first\n"
      "        monitor: 0s\n";
  std::string file =
      c.WriteStack("s.yml", AppStack(c, "echo v1", deploy, HealthyAfterHalfASecond()));
  REQUIRE(c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  REQUIRE(c.CountTasks() == 2);
  std::atomic<bool> done{false};
  std::atomic<int> fewest{100};
  std::thread watch([&] {
    while (!done) {
      fewest = std::min(fewest.load(), c.CountTasks());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  CliResult up =
      c.Cli("n1", {"service", "update", "demo_app", "--env-add", "VERSION=2", "--timeout", "60"});
  done = true;
  watch.join();
  INFO(up.out);
  CHECK(up.code == 0);
  CHECK(fewest >= 2);
  CHECK(Eventually([&] { return c.CountTasks() == 2; }, seconds(20)));
}

TEST_CASE("a paused update makes deploy exit non-zero and say why") {
  ShoalCluster c;
  OneNode(c);
  const std::string deploy =
      "      replicas: 2\n"
      "      update_config:\n"
      "        parallelism: 1\n"
      "        failure_action: pause\n"
      "        monitor: 1s\n"
      "      restart_policy:\n"
      "        delay: 200ms\n";
  std::string v1 = c.WriteStack("v1.yml", AppStack(c, "echo v1", deploy));
  std::string v2 =
      c.WriteStack("v2.yml",
                   "services:\n  app:\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", "
                   "\"exit 1; echo " +
                       c.marker() + "\"]\n    deploy:\n" + deploy);
  REQUIRE(c.Cli("n1", {"deploy", "-c", v1, "--timeout", "60", "demo"}).code == 0);
  CliResult dep = c.Cli("n1", {"deploy", "-c", v2, "--timeout", "60", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 1);
  CHECK(dep.out.find("update paused for demo_app") != std::string::npos);
  CHECK(dep.out.find("exited with code 1") != std::string::npos);
  // One slot was tried; the other still runs the first spec.
  CHECK(c.CountTasks() >= 1);
}

TEST_CASE("depends_on service_healthy: the dependent starts once its slow database is healthy") {
  ShoalCluster c;
  OneNode(c);
  std::string ready = (c.dir() / "db-ready").string();
  std::string saw = (c.dir() / "web-saw-ready").string();
  std::string yaml =
      "services:\n"
      "  db:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"sleep 1.5; touch " +
      ready + "; sleep 3600; echo " + c.marker() + "\"]\n" + HealthFile(ready) +
      "  web:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"test -f " +
      ready + " && touch " + saw + "; sleep 3600; echo " + c.marker() +
      "\"]\n"
      "    depends_on:\n"
      "      db:\n"
      "        condition: service_healthy\n";
  std::string file = c.WriteStack("deps.yml", yaml);
  CliResult dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 0);
  CHECK(dep.out.find("waiting for db (service_healthy)") != std::string::npos);
  CHECK(fs::exists(saw));
}

TEST_CASE("drain with start-first: the replacement runs elsewhere before the old task stops") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("w1") != 0);
  REQUIRE(c.Start("w2") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string worker = TokenFrom(init.out, "worker");
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", worker, c.addr("m1")}).code == 0);
  REQUIRE(c.Cli("w2", {"cluster", "join", "--token", worker, c.addr("m1")}).code == 0);
  REQUIRE(Eventually(
      [&] {
        std::string ls = c.Cli("m1", {"node", "ls"}).out;
        size_t ready = 0, pos = 0;
        while ((pos = ls.find(" ready ", pos)) != std::string::npos) ++ready, ++pos;
        return ready == 3;
      },
      seconds(20)));
  const std::string deploy =
      "      replicas: 3\n"
      "      update_config:\n"
      "        order: start-first\n";
  std::string file =
      c.WriteStack("d.yml", AppStack(c, "echo v1", deploy, HealthyAfterHalfASecond()));
  REQUIRE(c.Cli("m1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  REQUIRE(c.CountTasks() == 3);
  std::atomic<bool> done{false};
  std::atomic<int> fewest{100};
  std::thread watch([&] {
    while (!done) {
      fewest = std::min(fewest.load(), c.CountTasks());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  REQUIRE(c.Cli("m1", {"node", "update", "--availability", "drain", "w1"}).code == 0);
  bool moved = Eventually(
      [&] {
        std::string ps = c.Cli("m1", {"service", "ps", "demo_app"}).out;
        return ps.find(" w1 ") == std::string::npos &&
               c.Cli("m1", {"service", "ls"}).out.find("3/3") != std::string::npos;
      },
      seconds(30));
  CHECK(Eventually([&] { return c.CountTasks() == 3; }, seconds(20)));
  done = true;
  watch.join();
  CHECK(moved);
  CHECK(fewest >= 3);
}

TEST_CASE("jobs: deploy waits for completion, a failed job fails it, --force runs it again") {
  ShoalCluster c;
  OneNode(c);
  std::string runs = (c.dir() / "runs").string();
  auto job = [&](const std::string& name, const std::string& script) {
    return "  " + name +
           ":\n"
           "    image: busybox\n"
           "    command: [\"/bin/sh\", \"-c\", \"" +
           script + "; echo " + c.marker() +
           "\"]\n"
           "    deploy:\n"
           "      mode: replicated-job\n"
           "      restart_policy:\n"
           "        condition: on-failure\n"
           "        max_attempts: 1\n";
  };
  std::string good =
      c.WriteStack("good.yml", "services:\n" + job("migrate", "sleep 0.5; echo run >> " + runs));
  CliResult dep = c.Cli("n1", {"deploy", "-c", good, "--timeout", "60", "jobs"});
  INFO(dep.out);
  CHECK(dep.code == 0);
  CHECK(dep.out.find("1/1 completed") != std::string::npos);
  CliResult again =
      c.Cli("n1", {"service", "update", "jobs_migrate", "--force", "--timeout", "60"});
  INFO(again.out);
  CHECK(again.code == 0);
  std::ifstream in(runs);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(all == "run\nrun\n");

  std::string bad = c.WriteStack("bad.yml", "services:\n" + job("broken", "exit 4"));
  CliResult fail = c.Cli("n1", {"deploy", "-c", bad, "--timeout", "60", "jobs2"});
  INFO(fail.out);
  CHECK(fail.code == 1);
  CHECK(fail.out.find("exited with code 4") != std::string::npos);
  CHECK(fail.out.find("1 of 1 attempts made") != std::string::npos);
}

TEST_CASE("a worker back after being declared down: its old tasks stop, none runs twice") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  int port = c.Start("w1");
  REQUIRE(port != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")})
              .code == 0);
  REQUIRE(Eventually(
      [&] {
        std::string ls = c.Cli("m1", {"node", "ls"}).out;
        size_t ready = 0, pos = 0;
        while ((pos = ls.find(" ready ", pos)) != std::string::npos) ++ready, ++pos;
        return ready == 2;
      },
      seconds(20)));
  std::string file = c.WriteStack("w.yml", AppStack(c, "echo up", "      replicas: 4\n"));
  REQUIRE(c.Cli("m1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  REQUIRE(c.Cli("m1", {"service", "ps", "demo_app"}).out.find(" w1 ") != std::string::npos);
  // The worker's daemon dies; its tasks run on, unseen. Once it is declared
  // down its tasks are replaced on m1: for a while there are more than 4.
  c.Kill("w1");
  REQUIRE(Eventually(
      [&] {
        return c.Cli("m1", {"node", "ls"}).out.find(" down ") != std::string::npos;
      },
      seconds(30)));
  CHECK(Eventually(
      [&] {
        std::string ps = c.Cli("m1", {"service", "ps", "demo_app"}).out;
        return ps.find(" w1 ") == std::string::npos &&
               c.Cli("m1", {"service", "ls"}).out.find("4/4") != std::string::npos;
      },
      seconds(30)));
  // Back: its agent learns its old tasks are retired and stops them.
  REQUIRE(c.Start("w1", {}, port) == port);
  CHECK(Eventually([&] { return c.CountTasks() == 4; }, seconds(30)));
  CliResult ps = c.Cli("m1", {"service", "ps", "demo_app", "--all"});
  INFO(ps.out);
  CHECK(c.Cli("m1", {"service", "ls"}).out.find("4/4") != std::string::npos);
  CHECK(c.CountTasks() == 4);
}

}  // namespace shoal::testing
