// shoal_store_bench [seconds [node flags...]]: three shoal_store_node processes on loopback
// with default Raft timings (issue 3, item 6). Measures, with 1 KiB values:
// a single sequential client (commits/s, p50/p99 commit latency), many
// concurrent clients (the event loop batches their proposals into one Ready
// and one fsync), and the failover time (kill -9 of the leader until the
// first write commits on the new leader).

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "process_cluster.h"

using shoal::testing::Clock;
using shoal::testing::ProcessCluster;
using shoal::testing::WaitFor;
using std::chrono::milliseconds;

namespace {

struct Figures {
  size_t commits = 0;
  size_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
};

// `clients` threads put distinct keys to `member` for `seconds`.
Figures Load(ProcessCluster& c, uint64_t member, int clients, double seconds,
             const std::string& prefix) {
  std::string value(1024, 'x');
  std::vector<Figures> per(clients);
  std::vector<std::thread> threads;
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
  Figures f;
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& p : per) {
    f.commits += p.commits;
    f.errors += p.errors;
    f.latencies_ms.insert(f.latencies_ms.end(), p.latencies_ms.begin(), p.latencies_ms.end());
  }
  std::sort(f.latencies_ms.begin(), f.latencies_ms.end());
  return f;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

void Print(const char* name, const Figures& f) {
  std::printf("%-28s %8.0f commits/s  p50 %6.2f ms  p99 %6.2f ms  (%zu commits, %zu errors)\n",
              name, f.commits / f.seconds, Percentile(f.latencies_ms, 0.5),
              Percentile(f.latencies_ms, 0.99), f.commits, f.errors);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 5;
  // Default timings (100 ms heartbeat, 1-2 s election) unless flags follow.
  ProcessCluster c(std::vector<std::string>(argv + std::min(argc, 2), argv + argc));
  for (uint64_t id = 1; id <= ProcessCluster::kSize; ++id) {
    if (!c.Start(id)) {
      std::fprintf(stderr, "cannot start member %llu\n", static_cast<unsigned long long>(id));
      return 1;
    }
  }
  if (!WaitFor([&] { return c.Leader() != 0; }, milliseconds(15000))) {
    std::fprintf(stderr, "no leader\n");
    return 1;
  }
  uint64_t leader = c.Leader();
  Print("1 client, sequential", Load(c, leader, 1, seconds, "a"));
  Print("16 clients", Load(c, leader, 16, seconds, "b"));
  Print("64 clients", Load(c, leader, 64, seconds, "c"));

  // Failover: kill -9 the leader, then put to the survivors until one commits.
  auto before = c.Status(leader);
  if (c.Leader() != leader) std::printf("leadership moved during the load\n");
  leader = c.Leader();
  auto killed = Clock::now();
  c.Kill(leader);
  bool done = false;
  for (int i = 0; !done && Clock::now() - killed < std::chrono::seconds(20); ++i) {
    for (uint64_t id = 1; id <= ProcessCluster::kSize && !done; ++id) {
      if (id != leader) done = c.Put(id, "failover" + std::to_string(i), "x").ok();
    }
  }
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
  std::printf("failover (kill -9 to first commit): %s %.0f ms (leader %llu of term %llu killed)\n",
              done ? "" : "FAILED after", ms, static_cast<unsigned long long>(leader),
              static_cast<unsigned long long>(before ? before->term() : 0));
  return done ? 0 : 1;
}
