// Rolling update benchmark (issue 5, item 9): one `shoal daemon` with the
// process executor runs N replicas of a shell task; `service update` rolls a
// new env out with parallelism P, a delay D between batches and a monitor M.
// Prints the time from the update call to the rollout's completion (the CLI
// waits for update_status COMPLETED) against the floor the spec declares:
// (batches - 1) × D + M, the waits no implementation can skip. Each task's
// stop_grace_period G is an upper bound (the tasks stop on SIGTERM at once),
// printed beside it. Also the daemon's CPU time and the load average.
//
//   shoal_update_bench [replicas=100] [parallelism=10] [delay_ms=1000] [monitor_ms=1000]

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "proc_stats.h"
#include "shoal_cluster.h"

namespace {

using shoal::bench::CpuSeconds;
using shoal::bench::Load;
using shoal::testing::CliResult;
using shoal::testing::ShoalCluster;

int DaemonPid(const ShoalCluster& c, const std::string& node) {
  return shoal::bench::PidOf("--data-dir " + c.Data(node));
}

}  // namespace

int main(int argc, char** argv) {
  int replicas = argc > 1 ? std::atoi(argv[1]) : 100;
  int parallelism = argc > 2 ? std::atoi(argv[2]) : 10;
  int delay_ms = argc > 3 ? std::atoi(argv[3]) : 1000;
  int monitor_ms = argc > 4 ? std::atoi(argv[4]) : 1000;
  const int grace_ms = 2000;

  ShoalCluster c;
  if (c.Start("n1") == 0) {
    std::cerr << "cannot start shoal daemon\n";
    return 1;
  }
  if (c.Cli("n1", {"cluster", "init"}).code != 0) return 1;
  std::string yaml =
      "services:\n"
      "  app:\n"
      "    image: busybox\n"
      "    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
      c.marker() +
      "\"]\n"
      "    stop_grace_period: " +
      std::to_string(grace_ms) +
      "ms\n"
      "    deploy:\n"
      "      replicas: " +
      std::to_string(replicas) +
      "\n"
      "      update_config:\n"
      "        parallelism: " +
      std::to_string(parallelism) +
      "\n"
      "        delay: " +
      std::to_string(delay_ms) +
      "ms\n"
      "        monitor: " +
      std::to_string(monitor_ms) + "ms\n";
  std::string file = c.WriteStack("bench.yml", yaml);
  auto t0 = std::chrono::steady_clock::now();
  CliResult dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "300", "bench"});
  double deploy_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (dep.code != 0) {
    std::cerr << dep.out;
    return 1;
  }
  int pid = DaemonPid(c, "n1");
  std::string load_before = Load();
  double cpu0 = CpuSeconds(pid);
  auto t1 = std::chrono::steady_clock::now();
  CliResult up =
      c.Cli("n1", {"service", "update", "bench_app", "--env-add", "V=2", "--timeout", "600"});
  double update_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  double cpu = CpuSeconds(pid) - cpu0;
  if (up.code != 0) {
    std::cerr << up.out;
    return 1;
  }
  int batches = (replicas + parallelism - 1) / parallelism;
  double floor_s = (batches - 1) * delay_ms / 1000.0 + monitor_ms / 1000.0;
  double bound_s = floor_s + batches * grace_ms / 1000.0;
  std::printf(
      "rolling update: %d replicas, parallelism %d, delay %d ms, monitor %d ms, grace %d ms "
      "(process executor, one node)\n"
      "  first deploy          %.2f s\n"
      "  update to completed   %.2f s\n"
      "  floor (delays+monitor) %.2f s   overhead %.2f s (%.0f ms per batch)\n"
      "  floor + every grace   %.2f s\n"
      "  daemon CPU            %.2f s (%.1f ms per replaced task)\n"
      "  load average          before %s, after %s\n",
      replicas, parallelism, delay_ms, monitor_ms, grace_ms, deploy_s, update_s, floor_s,
      update_s - floor_s, (update_s - floor_s) * 1000.0 / batches, bound_s, cpu,
      cpu * 1000.0 / replicas, load_before.c_str(), Load().c_str());
  return 0;
}
