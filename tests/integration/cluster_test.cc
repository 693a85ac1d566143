// Real-process tests of the cluster (issue 4): `shoal daemon` processes on
// loopback running tasks through the process executor, driven by the `shoal`
// CLI exactly as a user would.

#include <catch2/catch.hpp>
#include <cctype>
#include <thread>

#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A stack whose tasks are shell processes that carry the test's marker.
std::string SleepStack(const ShoalCluster& c, const std::string& extra_service_yaml = "",
                       int replicas = 2) {
  return "services:\n"
         "  sleeper:\n"
         "    image: busybox\n"
         "    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
         c.marker() +
         "\"]\n"
         "    deploy:\n"
         "      replicas: " +
         std::to_string(replicas) + "\n" + extra_service_yaml;
}

// Tasks whose current state is running ("running 3 seconds ago").
int Running(const CliResult& ps) {
  int n = 0;
  size_t pos = 0;
  while ((pos = ps.out.find("running ", pos)) != std::string::npos) {
    pos += 8;
    if (pos < ps.out.size() && std::isdigit(static_cast<unsigned char>(ps.out[pos]))) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("one node: init, deploy converges, scale, stack rm stops every task") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  // A bad address pool is refused before anything is made.
  CliResult bad = c.Cli("n1", {"cluster", "init", "--default-addr-pool", "10.0.0.0/8",
                               "--default-addr-pool", "10.1.0.0/16"});
  CHECK(bad.code != 0);
  CHECK(bad.out.find("--default-addr-pool: 10.1.0.0/16 overlaps 10.0.0.0/8") != std::string::npos);
  CHECK(c.Cli("n1", {"cluster", "info"}).out.find("not in a cluster") != std::string::npos);
  CliResult init =
      c.Cli("n1", {"cluster", "init", "--advertise-addr", c.addr("n1"), "--default-addr-pool",
                   "10.77.0.0/16", "--default-addr-pool-mask-length", "26"});
  INFO(init.out);
  REQUIRE(init.code == 0);
  CHECK(TokenFrom(init.out, "worker") != "");
  CHECK(TokenFrom(init.out, "manager") != "");
  CliResult info = c.Cli("n1", {"cluster", "info"});
  INFO(info.out);
  CHECK(info.out.find("Subnets:   10.77.0.0/16 in /26 steps") != std::string::npos);

  std::string file = c.WriteStack("stack.yml", SleepStack(c));
  CliResult dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  REQUIRE(dep.code == 0);
  CHECK(dep.out.find("converged") != std::string::npos);
  CHECK(c.CountTasks() == 2);
  CliResult ps = c.Cli("n1", {"stack", "ps", "demo"});
  INFO(ps.out);
  CHECK(Running(ps) == 2);

  // Deploying the same file again changes nothing.
  CliResult again = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  CHECK(again.code == 0);
  CHECK(again.out.find("up to date") != std::string::npos);

  REQUIRE(c.Cli("n1", {"service", "scale", "demo_sleeper=3"}).code == 0);
  CHECK(Eventually([&] { return c.CountTasks() == 3; }, seconds(20)));
  REQUIRE(c.Cli("n1", {"service", "scale", "demo_sleeper=1"}).code == 0);
  CHECK(Eventually([&] { return c.CountTasks() == 1; }, seconds(30)));

  // Events since the start show the tasks being created and running.
  CliResult events = c.Cli("n1", {"events", "--since", "1", "--kind", "task"}, "timeout 2");
  INFO(events.out);
  CHECK(events.out.find("task demo_sleeper.1 running") != std::string::npos);

  CliResult rm = c.Cli("n1", {"stack", "rm", "demo"});
  INFO(rm.out);
  CHECK(rm.code == 0);
  CHECK(Eventually([&] { return c.CountTasks() == 0; }, seconds(20)));
  CHECK(c.Cli("n1", {"stack", "ls"}).out.find("demo") == std::string::npos);
}

TEST_CASE("one node: service logs shows what the tasks printed") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  std::string file =
      c.WriteStack("stack.yml",
                   "services:\n  talker:\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", "
                   "\"echo hello from $$SHOAL_TASK_SLOT; sleep 3600; echo " +
                       c.marker() + "\"]\n    deploy:\n      replicas: 2\n");
  REQUIRE(c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  CliResult logs;
  CHECK(Eventually(
      [&] {
        logs = c.Cli("n1", {"service", "logs", "demo_talker"});
        return logs.out.find("hello from 1") != std::string::npos &&
               logs.out.find("hello from 2") != std::string::npos;
      },
      seconds(10)));
  INFO(logs.out);
  CHECK(logs.out.find("demo_talker.1@") != std::string::npos);
}

TEST_CASE("one node: after kill -9 of the daemon, the restarted one adopts its tasks") {
  ShoalCluster c;
  int port = c.Start("n1");
  REQUIRE(port != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init", "--advertise-addr", c.addr("n1")}).code == 0);
  std::string file = c.WriteStack("stack.yml", SleepStack(c, "", 2));
  REQUIRE(c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  std::string before = c.Cli("n1", {"stack", "ps", "demo"}).out;
  c.Kill("n1");
  CHECK(c.CountTasks() == 2);  // tasks outlive their agent
  REQUIRE(c.Start("n1", {}, port) == port);
  CliResult ps;
  CHECK(Eventually(
      [&] {
        ps = c.Cli("n1", {"stack", "ps", "demo"});
        return Running(ps) == 2;
      },
      seconds(20)));
  INFO(before);
  INFO(ps.out);
  // The same tasks, not new ones, and no duplicate processes.
  for (size_t pos = 0; (pos = before.find("\n", pos)) != std::string::npos;) {
    ++pos;
    std::string id = before.substr(pos, 25);
    if (id.size() == 25) CHECK(ps.out.find(id) != std::string::npos);
  }
  CHECK(c.CountTasks() == 2);

  // A manager leaves with --force: it is demoted first, so it stops counting.
  CliResult leave = c.Cli("n1", {"cluster", "leave"});
  CHECK(leave.code == 1);
  CHECK(leave.out.find("demote") != std::string::npos);
}

TEST_CASE("one node: a killed task is replaced in its slot") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  std::string file = c.WriteStack("stack.yml", SleepStack(c, "", 1));
  REQUIRE(c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  REQUIRE(c.CountTasks() == 1);
  c.KillTasks();
  CHECK(Eventually(
      [&] {
        CliResult ps = c.Cli("n1", {"service", "ps", "demo_sleeper", "--all"});
        return ps.out.find("failed") != std::string::npos && Running(ps) == 1;
      },
      seconds(30)));
  CHECK(c.CountTasks() == 1);
}

TEST_CASE("bad input: an invalid stack and an unplaceable service change nothing") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);

  std::string bad = c.WriteStack("bad.yml", "services:\n  web:\n    image: [oops\n");
  CliResult r = c.Cli("n1", {"deploy", "-c", bad, "demo"});
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("bad.yml:") != std::string::npos);
  CHECK(c.Cli("n1", {"stack", "ls"}).out.find("demo") == std::string::npos);

  std::string nowhere = c.WriteStack(
      "nowhere.yml",
      SleepStack(c, "      placement:\n        constraints: [\"node.labels.zone == mars\"]\n", 1));
  CliResult dry = c.Cli("n1", {"deploy", "--dry-run", "-c", nowhere, "demo"});
  INFO(dry.out);
  CHECK(dry.code == 2);
  CHECK(dry.out.find("cannot place") != std::string::npos);
  CHECK(dry.out.find("zone") != std::string::npos);
  CHECK(c.Cli("n1", {"stack", "ls"}).out.find("demo") == std::string::npos);

  CliResult dep = c.Cli("n1", {"deploy", "-c", nowhere, "--timeout", "3", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 1);
  CHECK(dep.out.find("pending") != std::string::npos);
  CHECK(dep.out.find("did not converge") != std::string::npos);
}

TEST_CASE("membership: a bad token is refused and admits nothing; workers join and run tasks") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("w1") != 0);
  REQUIRE(c.Start("w2") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string worker = TokenFrom(init.out, "worker");
  REQUIRE(!worker.empty());

  std::string forged = worker.substr(0, worker.size() - 4) + "beef";
  CliResult bad = c.Cli("w1", {"cluster", "join", "--token", forged, c.addr("m1")});
  INFO(bad.out);
  CHECK(bad.code == 1);
  CHECK(bad.out.find("invalid join token") != std::string::npos);
  CHECK(!HasWord(c.Cli("m1", {"node", "ls"}).out, "w1"));

  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", worker, c.addr("m1")}).code == 0);
  REQUIRE(c.Cli("w2", {"cluster", "join", "--token", worker, c.addr("m1")}).code == 0);
  CHECK(Eventually(
      [&] {
        std::string ls = c.Cli("m1", {"node", "ls"}).out;
        size_t ready = 0, pos = 0;
        while ((pos = ls.find(" ready ", pos)) != std::string::npos) ++ready, ++pos;
        return ready == 3;
      },
      seconds(20)));

  // A rotated token stops working at once.
  CliResult rot = c.Cli("m1", {"cluster", "join-token", "--rotate", "worker"});
  REQUIRE(rot.code == 0);
  REQUIRE(c.Start("w3") != 0);
  CliResult old = c.Cli("w3", {"cluster", "join", "--token", worker, c.addr("m1")});
  CHECK(old.code == 1);
  CHECK(old.out.find("invalid join token") != std::string::npos);

  // Tasks on workers only; kill -9 one worker and its tasks move to the other.
  std::string file = c.WriteStack(
      "stack.yml",
      SleepStack(c, "      placement:\n        constraints: [\"node.role == worker\"]\n", 4));
  CliResult dep = c.Cli("m1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  REQUIRE(dep.code == 0);
  CliResult ps = c.Cli("m1", {"stack", "ps", "demo"});
  INFO(ps.out);
  CHECK(ps.out.find(" m1 ") == std::string::npos);
  auto start = std::chrono::steady_clock::now();
  c.Kill("w1");
  bool moved = Eventually(
      [&] {
        CliResult p = c.Cli("m1", {"stack", "ps", "demo"});
        return Running(p) == 4 && p.out.find(" w1 ") == std::string::npos;
      },
      seconds(30));
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(c.Cli("m1", {"stack", "ps", "demo"}).out);
  CHECK(moved);
  WARN("worker loss to tasks running elsewhere: " << took << " s");
  CHECK(c.Cli("m1", {"node", "ls"}).out.find("down") != std::string::npos);
}

TEST_CASE("three managers: the leader is killed during a deploy, which still finishes") {
  ShoalCluster c;
  for (const char* n : {"m1", "m2", "m3"}) REQUIRE(c.Start(n) != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string manager = TokenFrom(init.out, "manager");
  REQUIRE(!manager.empty());
  for (const char* n : {"m2", "m3"}) {
    CliResult j = c.Cli(n, {"cluster", "join", "--token", manager, c.addr("m1")});
    INFO(j.out);
    REQUIRE(j.code == 0);
    CHECK(j.out.find("as a manager") != std::string::npos);
  }
  CliResult ls;
  CHECK(Eventually(
      [&] {
        ls = c.Cli("m2", {"node", "ls"});
        size_t managers = 0, pos = 0;
        while ((pos = ls.out.find(" manager ", pos)) != std::string::npos) ++managers, ++pos;
        return managers == 3 && ls.out.find("leader") != std::string::npos &&
               ls.out.find(" ready ") != std::string::npos;
      },
      seconds(20)));
  INFO(ls.out);

  // The deploy goes through m2; m1 leads, and dies while the tasks start.
  std::string file = c.WriteStack("stack.yml", SleepStack(c, "", 6));
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(300));
    c.Kill("m1");
  });
  CliResult dep = c.Cli("m2", {"deploy", "-c", file, "--timeout", "60", "demo"});
  killer.join();
  INFO(dep.out);
  CHECK(dep.code == 0);
  CHECK(dep.out.find("converged") != std::string::npos);
  // Tasks that ran on m1 were moved to the managers that are alive.
  CHECK(Eventually(
      [&] {
        CliResult ps = c.Cli("m3", {"stack", "ps", "demo"});
        return Running(ps) == 6 && ps.out.find(" m1 ") == std::string::npos;
      },
      seconds(30)));
  // The next write is accepted by the new leader.
  auto start = std::chrono::steady_clock::now();
  CHECK(Eventually(
      [&] {
        return c.Cli("m3", {"service", "scale", "demo_sleeper=2"}).code == 0;
      },
      seconds(20)));
  WARN("next write accepted "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
       << " s after the check began");
  CHECK(Eventually(
      [&] {
        return Running(c.Cli("m2", {"stack", "ps", "demo"})) == 2;
      },
      seconds(30)));

  // Demoting m3 now would leave m2 alone with dead m1: refused.
  CliResult lose = c.Cli("m2", {"node", "demote", "m3"});
  INFO(lose.out);
  CHECK(lose.code == 1);
  CHECK(lose.out.find("not a quorum") != std::string::npos);
  // Remove the dead m1 first; then m3 can leave (demoted on its way out), and
  // m2 alone still commits.
  CHECK(c.Cli("m2", {"node", "demote", "m1"}).code == 0);
  CliResult leave = c.Cli("m3", {"cluster", "leave", "--force"});
  INFO(leave.out);
  CHECK(leave.code == 0);
  CHECK(Eventually(
      [&] {
        std::string out = c.Cli("m2", {"node", "ls"}).out;
        size_t pos = out.find(" m3 ");
        return pos != std::string::npos && out.find(" worker ", pos) != std::string::npos;
      },
      seconds(20)));
  CHECK(Eventually(
      [&] {
        return c.Cli("m2", {"service", "scale", "demo_sleeper=1"}).code == 0;
      },
      seconds(20)));
}

TEST_CASE("promote a worker, then demote the first manager; the cluster keeps working") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("w1") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")})
              .code == 0);
  CliResult w1ls = c.Cli("w1", {"node", "ls"});
  CHECK(w1ls.code == 1);  // a worker serves no control API
  CHECK(w1ls.out.find("not a manager") != std::string::npos);

  CliResult p = c.Cli("m1", {"node", "promote", "w1"});
  INFO(p.out);
  REQUIRE(p.code == 0);
  CHECK(Eventually([&] { return c.Cli("w1", {"node", "ls"}).code == 0; }, seconds(20)));
  CliResult ls = c.Cli("w1", {"node", "ls"});
  INFO(ls.out);
  CHECK(HasWord(ls.out, "w1"));

  CliResult d = c.Cli("w1", {"node", "demote", "m1"});
  INFO(d.out);
  REQUIRE(d.code == 0);
  // m1 stops serving the control API once it learns it was removed.
  CHECK(Eventually([&] { return c.Cli("m1", {"node", "ls"}).code == 1; }, seconds(20)));
  CliResult alone = c.Cli("w1", {"node", "demote", "w1"});
  CHECK(alone.code == 1);
  CHECK(alone.out.find("last manager") != std::string::npos);

  std::string file = c.WriteStack("stack.yml", SleepStack(c, "", 2));
  CliResult dep = c.Cli("w1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  CHECK(dep.code == 0);
}

TEST_CASE("one node: deploy waits for health; a task that turns unhealthy is replaced") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  // Healthy while the file exists. Failures within the start period do not
  // count before the first success, so a task waits as "starting" for it.
  const fs::path ok = c.dir() / "ok";
  const std::string healthcheck =
      "    healthcheck:\n"
      "      test: [\"CMD\", \"test\", \"-f\", \"" +
      ok.string() +
      "\"]\n"
      "      interval: 500ms\n"
      "      timeout: 2s\n"
      "      retries: 2\n"
      "      start_period: 60s\n"
      "      start_interval: 200ms\n";
  std::string file = c.WriteStack("stack.yml", SleepStack(c, healthcheck, 1));
  CliResult dep;
  std::chrono::steady_clock::time_point deployed;  // read after join
  std::thread deploy([&] {
    dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
    deployed = std::chrono::steady_clock::now();
  });
  // The task runs, but deploy waits until it is healthy.
  CHECK(Eventually(
      [&] {
        return c.Cli("n1", {"service", "ps", "demo_sleeper"}).out.find("running (starting)") !=
               std::string::npos;
      },
      seconds(20)));
  std::this_thread::sleep_for(seconds(1));
  auto healthy = std::chrono::steady_clock::now();
  std::ofstream(ok) << "";
  deploy.join();
  INFO(dep.out);
  CHECK(dep.code == 0);
  CHECK(dep.out.find("demo_sleeper: 0/1 (1 starting)") != std::string::npos);
  CHECK(dep.out.find("converged") != std::string::npos);
  CHECK(deployed > healthy);
  CliResult ps = c.Cli("n1", {"service", "ps", "demo_sleeper"});
  INFO(ps.out);
  CHECK(ps.out.find("running (healthy)") != std::string::npos);
  CHECK(c.CountTasks() == 1);

  // Broken: two failed probes make it unhealthy; it is replaced in its slot
  // and its process stopped. The replacement waits, starting, for the file.
  fs::remove(ok);
  CliResult all;
  CHECK(Eventually(
      [&] {
        all = c.Cli("n1", {"service", "ps", "demo_sleeper", "--all"});
        return all.out.find("shutdown (unhealthy)") != std::string::npos &&
               all.out.find("running (starting)") != std::string::npos;
      },
      seconds(30)));
  INFO(all.out);
  CHECK(all.out.find("health check failed 2 times in a row: exit 1") != std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 1; }, seconds(20)));
  std::ofstream(ok) << "";
  CHECK(Eventually(
      [&] {
        return c.Cli("n1", {"service", "ps", "demo_sleeper"}).out.find("running (healthy)") !=
               std::string::npos;
      },
      seconds(20)));
}

}  // namespace shoal::testing
