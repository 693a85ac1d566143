#pragma once

// Shared by the files of shoal_store_bench (store_bench.cc has the modes):
// the three-member cluster, CPU accounting, and the load helpers.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

// SHOAL_STORE_NODE in the environment overrides the node binary built with
// this program, so that two builds can be compared with the same benchmark
// (defined in store_bench.cc).
const char* StoreNodeBinary();

#define SHOAL_STORE_NODE StoreNodeBinary()

#include "process_cluster.h"

namespace shoal::bench {

using shoal::testing::Clock;
using shoal::testing::ProcessCluster;
using shoal::testing::WaitFor;
namespace v1 = shoal::v1;
using std::chrono::milliseconds;

// CPU seconds (user + system) used so far by this process's children, the
// shoal_store_node processes, read from /proc. A busy shared machine slows a
// benchmark down but changes the CPU each commit costs much less, so this is
// the steadier figure to compare two builds with.
inline double NodesCpuSeconds() {
  double total = 0;
  std::error_code ec;
  long hz = sysconf(_SC_CLK_TCK);
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream in(e.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    // pid (comm) state ppid ... field 14 utime, 15 stime (1-based).
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long long ppid = 0;
    rest >> state >> ppid;
    if (ppid != getpid()) continue;
    std::string skip;
    for (int i = 0; i < 9; ++i) rest >> skip;  // fields 6..14 minus utime: pgrp .. cmajflt
    long long utime = 0, stime = 0;
    rest >> utime >> stime;
    total += static_cast<double>(utime + stime) / static_cast<double>(hz);
  }
  return total;
}

// CPU seconds used so far by this process (the benchmark's clients).
inline double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Figures {
  size_t commits = 0;
  size_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  double node_cpu_s = 0;    // CPU of the three members during the load
  double client_cpu_s = 0;  // CPU of the benchmark's clients
};

// The figures of a run from each client thread's, timed from `start` and
// from the CPU counters read then.
inline Figures Merge(const std::vector<Figures>& per, Clock::time_point start, double node_cpu0,
                     double self_cpu0) {
  Figures f;
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  f.node_cpu_s = NodesCpuSeconds() - node_cpu0;
  f.client_cpu_s = SelfCpuSeconds() - self_cpu0;
  for (auto& p : per) {
    f.commits += p.commits;
    f.errors += p.errors;
    f.latencies_ms.insert(f.latencies_ms.end(), p.latencies_ms.begin(), p.latencies_ms.end());
  }
  std::sort(f.latencies_ms.begin(), f.latencies_ms.end());
  return f;
}

// `clients` threads put distinct keys to `member` for `seconds`.
inline Figures Load(ProcessCluster& c, uint64_t member, int clients, double seconds,
                    const std::string& prefix) {
  std::string value(1024, 'x');
  std::vector<Figures> per(clients);
  std::vector<std::thread> threads;
  double node_cpu0 = NodesCpuSeconds();
  double self_cpu0 = SelfCpuSeconds();
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; Clock::now() < end; ++i) {
        auto t0 = Clock::now();
        grpc::Status s = c.Put(member, prefix + std::to_string(t) + "-" + std::to_string(i), value);
        if (!s.ok()) {
          ++per[t].errors;
          continue;
        }
        ++per[t].commits;
        per[t].latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& th : threads) th.join();
  Figures f = Merge(per, start, node_cpu0, self_cpu0);
  return f;
}

inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

inline void Print(const char* name, const Figures& f) {
  std::printf("%-28s %8.0f commits/s  p50 %6.2f ms  p99 %6.2f ms  (%zu commits, %zu errors)\n",
              name, f.commits / f.seconds, Percentile(f.latencies_ms, 0.5),
              Percentile(f.latencies_ms, 0.99), f.commits, f.errors);
  if (f.commits > 0 && f.node_cpu_s > 0) {
    std::printf("%-28s CPU per commit: members %.1f us, clients %.1f us\n", "",
                f.node_cpu_s * 1e6 / f.commits, f.client_cpu_s * 1e6 / f.commits);
  }
}

using ull = unsigned long long;

// Starts every member and waits for a leader.
inline bool StartAll(ProcessCluster& c) {
  for (uint64_t id = 1; id <= ProcessCluster::kSize; ++id) {
    if (!c.Start(id)) {
      std::fprintf(stderr, "cannot start member %llu\n", static_cast<ull>(id));
      return false;
    }
  }
  if (!WaitFor([&] { return c.Leader() != 0; }, milliseconds(15000))) {
    std::fprintf(stderr, "no leader\n");
    return false;
  }
  return true;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline std::set<std::filesystem::path> ClusterDirs() {
  std::set<std::filesystem::path> dirs;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
    if (e.path().filename().string().rfind("shoal-kill-", 0) == 0) dirs.insert(e.path());
  }
  return dirs;
}

// The modes (store_bench_faults.cc, store_bench_load.cc).
int RunDefault(double seconds, const std::vector<std::string>& flags);
int RunFailover(int runs, const std::vector<std::string>& flags);
int RunCatchUp(size_t objects, const std::vector<std::string>& flags);
int RunBatch(double seconds, int clients, const std::vector<std::string>& flags);
bool BatchRow(double seconds, int clients, int batch, bool one_transaction,
              const std::vector<std::string>& flags);
int RunSequential(double seconds, const std::vector<std::string>& flags);
int RunPipelined(double seconds, int clients, int window, const std::vector<std::string>& flags);

}  // namespace shoal::bench
