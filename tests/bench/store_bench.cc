// shoal_store_bench: three shoal_store_node processes on loopback (issue 3,
// item 6). Three modes:
//
//   shoal_store_bench [seconds [node flags...]]
//       Default timings, 1 KiB values: a single sequential client (commits/s,
//       p50/p99 commit latency), many concurrent clients (the event loop
//       batches their proposals into one Ready and one fsync), and one
//       failover (kill -9 of the leader until the first write commits on the
//       new leader).
//   shoal_store_bench failover [runs [node flags...]]
//       `runs` (5) failovers, each on a fresh cluster: a client writes to the
//       leader, the leader is killed -9, and the survivors are written to until
//       one write commits. Prints each run and the median.
//   shoal_store_bench batch [seconds [clients [node flags...]]]
//       `clients` (4) threads send PutBatch calls of 16, 64 and 256 1 KiB values
//       to the leader for `seconds` (3) per row, each row on a fresh cluster,
//       first one Raft entry per value
//       (all proposed in one event-loop turn), then one transaction per batch.
//       Commits/s counts values; latency is that of a whole batch.
//   shoal_store_bench row SECONDS CLIENTS BATCH TXN [node flags...]
//       One row of the batch mode (TXN 1: one transaction per batch), e.g.
//       to profile it.
//   shoal_store_bench seq [seconds [node flags...]]
//       Only the sequential client of the default mode, after a short
//       warm-up: the commit latency of one write at a time.
//   shoal_store_bench catchup [objects [node flags...]]
//       Writes `objects` (100,000) small objects with concurrent clients, kills
//       -9 a follower, writes until the leader has taken a snapshot and
//       compacted its log past the follower's applied index, then restarts the
//       follower with its stale directory and times it until it has applied
//       the leader's commit index (an InstallSnapshot, then the tail).

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
// this program, so that two builds can be compared with the same benchmark.
static const char* StoreNodeBinary() {
  const char* env = std::getenv("SHOAL_STORE_NODE");
  return env != nullptr && *env != '\0' ? env : SHOAL_STORE_NODE;
}
#undef SHOAL_STORE_NODE
#define SHOAL_STORE_NODE StoreNodeBinary()

#include "process_cluster.h"

using shoal::testing::Clock;
using shoal::testing::ProcessCluster;
using shoal::testing::WaitFor;
namespace v1 = shoal::v1;
using std::chrono::milliseconds;

namespace {

// CPU seconds (user + system) used so far by this process's children, the
// shoal_store_node processes, read from /proc. A busy shared machine slows a
// benchmark down but changes the CPU each commit costs much less, so this is
// the steadier figure to compare two builds with.
double NodesCpuSeconds() {
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
double SelfCpuSeconds() {
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

// `clients` threads put distinct keys to `member` for `seconds`.
Figures Load(ProcessCluster& c, uint64_t member, int clients, double seconds,
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

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

void Print(const char* name, const Figures& f) {
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
bool StartAll(ProcessCluster& c) {
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

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One failover on a fresh cluster: a client writes to the leader for 1 s, the
// leader is killed -9, and one thread per survivor puts until a put commits.
// Milliseconds from the kill to the first commit, or a negative value.
double FailoverRun(const std::vector<std::string>& flags, int run) {
  ProcessCluster c(flags);
  if (!StartAll(c)) return -1;
  uint64_t leader = c.Leader();
  auto st = c.Status(leader);
  std::atomic<bool> stop{false};
  std::atomic<size_t> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      if (c.Put(leader, "w" + std::to_string(i), std::string(1024, 'x')).ok()) ++written;
    }
  });
  std::this_thread::sleep_for(milliseconds(1000));
  auto killed = Clock::now();
  c.Kill(leader);
  stop = true;
  std::mutex mu;
  std::optional<Clock::time_point> first;
  uint64_t by = 0;
  std::vector<std::thread> probes;
  for (uint64_t id = 1; id <= ProcessCluster::kSize; ++id) {
    if (id == leader) continue;
    probes.emplace_back([&, id] {
      for (int i = 0; Clock::now() - killed < std::chrono::seconds(20); ++i) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (first) return;
        }
        if (c.Put(id, "f" + std::to_string(id) + "-" + std::to_string(i), "x").ok()) {
          auto now = Clock::now();
          std::lock_guard<std::mutex> lock(mu);
          if (!first || now < *first) {
            first = now;
            by = id;
          }
          return;
        }
      }
    });
  }
  for (auto& t : probes) t.join();
  writer.join();
  if (!first) {
    std::printf("run %d: FAILED, no commit within 20 s of killing leader %llu\n", run,
                static_cast<ull>(leader));
    return -1;
  }
  double ms = std::chrono::duration<double, std::milli>(*first - killed).count();
  uint64_t new_leader = c.Leader();
  std::printf(
      "run %d: %6.0f ms  (leader %llu of term %llu killed after %zu writes; first commit via %llu, "
      "new leader %llu)\n",
      run, ms, static_cast<ull>(leader), static_cast<ull>(st ? st->term() : 0), written.load(),
      static_cast<ull>(by), static_cast<ull>(new_leader));
  std::fflush(stdout);
  return ms;
}

int RunFailover(int runs, const std::vector<std::string>& flags) {
  std::vector<double> ms;
  int failed = 0;
  for (int r = 1; r <= runs; ++r) {
    double m = FailoverRun(flags, r);
    if (m < 0) {
      ++failed;
    } else {
      ms.push_back(m);
    }
  }
  std::sort(ms.begin(), ms.end());
  std::printf("failover over %d runs: median %.0f ms, min %.0f ms, max %.0f ms, %d failed\n", runs,
              Median(ms), ms.empty() ? 0 : ms.front(), ms.empty() ? 0 : ms.back(), failed);
  return failed == 0 ? 0 : 1;
}

// `clients` threads put keys prefix0..prefix(count-1) with `value` to
// `member`; a failed put is retried (FAILED_PRECONDITION means it had
// committed). False when a key cannot be written.
bool PutMany(ProcessCluster& c, uint64_t member, int clients, size_t count,
             const std::string& prefix, const std::string& value) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      while (!failed) {
        size_t i = next++;
        if (i >= count) break;
        std::string key = prefix + std::to_string(i);
        bool ok = false;
        for (int attempt = 0; attempt < 20 && !ok; ++attempt) {
          grpc::Status s = c.Put(member, key, value);
          ok = s.ok() || s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
          if (!ok) std::this_thread::sleep_for(milliseconds(50));
        }
        if (!ok) failed = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  return !failed;
}

uint64_t DirBytes(const std::filesystem::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) n += it->file_size(ec);
  }
  return n;
}

std::set<std::filesystem::path> ClusterDirs() {
  std::set<std::filesystem::path> dirs;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
    if (e.path().filename().string().rfind("shoal-kill-", 0) == 0) dirs.insert(e.path());
  }
  return dirs;
}

// Restarts `member` and waits until it has applied `commit`. Milliseconds, or
// a negative value.
double TimeCatchUp(ProcessCluster& c, uint64_t member, uint64_t commit) {
  auto start = Clock::now();
  if (!c.Start(member)) return -1;
  bool done = WaitFor(
      [&] {
        auto st = c.Status(member);
        return st && st->applied() >= commit;
      },
      milliseconds(60000));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return done ? ms : -1;
}

int RunCatchUp(size_t objects, const std::vector<std::string>& flags) {
  constexpr int kClients = 64;
  uint64_t keep = 1000;  // the node's default --snapshot-keep
  for (size_t i = 0; i + 1 < flags.size(); ++i) {
    if (flags[i] == "--snapshot-keep") keep = std::stoull(flags[i + 1]);
  }
  // The cluster's directory (private to ProcessCluster): the one that appears.
  auto before = ClusterDirs();
  ProcessCluster c(flags);
  std::optional<std::filesystem::path> dir;
  for (const auto& d : ClusterDirs()) {
    if (!before.count(d)) dir = d;
  }
  if (!StartAll(c)) return 1;
  uint64_t leader = c.Leader();
  uint64_t follower = leader % ProcessCluster::kSize + 1;
  std::string value(100, 'v');
  auto t0 = Clock::now();
  if (!PutMany(c, leader, kClients, objects, "obj", value)) {
    std::fprintf(stderr, "cannot write the objects\n");
    return 1;
  }
  double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("wrote %zu objects of %zu bytes with %d clients in %.1f s (%.0f/s)\n", objects,
              value.size(), kClients, load_s, objects / load_s);
  if (c.Leader() != leader) {
    std::fprintf(stderr, "leadership moved during the load\n");
    return 1;
  }
  WaitFor(
      [&] {
        auto l = c.Status(leader);
        auto f = c.Status(follower);
        return l && f && f->applied() >= l->commit();
      },
      milliseconds(30000));
  auto fst = c.Status(follower);
  uint64_t follower_applied = fst ? fst->applied() : 0;
  c.Kill(follower);
  // Write until the leader's log is compacted past the follower's position.
  size_t extra = 0;
  for (int round = 0;; ++round) {
    auto l = c.Status(leader);
    if (l && l->snapshot_index() > follower_applied + keep) break;
    if (round == 100 ||
        !PutMany(c, leader, kClients, 1000, "more" + std::to_string(round) + "-", value)) {
      std::fprintf(stderr, "the leader does not compact its log\n");
      return 1;
    }
    extra += 1000;
  }
  auto l = c.Status(leader);
  if (!l) return 1;
  std::printf(
      "follower %llu killed at applied %llu; %zu more objects written; leader %llu: commit %llu, "
      "snapshot %llu (log compacted to %llu), %llu objects\n",
      static_cast<ull>(follower), static_cast<ull>(follower_applied), extra,
      static_cast<ull>(leader), static_cast<ull>(l->commit()),
      static_cast<ull>(l->snapshot_index()),
      static_cast<ull>(l->snapshot_index() > keep ? l->snapshot_index() - keep : 0),
      static_cast<ull>(l->objects()));
  if (dir) {
    std::printf("leader on disk: raft %.1f MB, state %.1f MB\n",
                DirBytes(*dir / ("node" + std::to_string(leader)) / "raft") / 1e6,
                DirBytes(*dir / ("node" + std::to_string(leader)) / "state") / 1e6);
  }

  // Restart with the stale directory. (Not with an empty one: a member that
  // lost its disk must not rejoin under its id, since it forgets its vote and
  // log; and the leader, whose progress still records the old match index,
  // sends it nothing until the next write.)
  double ms = TimeCatchUp(c, follower, l->commit());
  auto f = c.Status(follower);
  if (ms < 0 || !f) {
    std::printf("catch-up (stale directory) to commit %llu: FAILED", static_cast<ull>(l->commit()));
    if (f) {
      std::printf(" (follower term %llu, leader %llu, commit %llu, applied %llu, snapshot %llu)",
                  static_cast<ull>(f->term()), static_cast<ull>(f->leader()),
                  static_cast<ull>(f->commit()), static_cast<ull>(f->applied()),
                  static_cast<ull>(f->snapshot_index()));
    }
    std::printf("\n");
    return 1;
  }
  std::printf(
      "catch-up (stale directory) to commit %llu: %.0f ms (follower snapshot %llu, applied %llu, "
      "%llu objects)",
      static_cast<ull>(l->commit()), ms, static_cast<ull>(f->snapshot_index()),
      static_cast<ull>(f->applied()), static_cast<ull>(f->objects()));
  if (dir) {
    auto fdir = *dir / ("node" + std::to_string(follower));
    std::printf("; follower on disk: raft %.1f MB, state %.1f MB", DirBytes(fdir / "raft") / 1e6,
                DirBytes(fdir / "state") / 1e6);
  }
  std::printf("\n");
  return 0;
}

// The StoreControl address of `member`, from the peers file that
// ProcessCluster writes into its directory.
std::string AddressOf(const std::filesystem::path& dir, uint64_t member) {
  std::ifstream in(dir / "peers");
  uint64_t id;
  std::string address;
  while (in >> id >> address) {
    if (id == member) return address;
  }
  return "";
}

// `clients` threads each send PutBatch calls of `batch` distinct 1 KiB values
// to `stub` for `seconds`. Commits count values (each its own command unless
// `one_transaction`); latencies are per call (the commit latency of a batch).
Figures BatchLoad(v1::StoreControl::Stub* stub, int clients, int batch, bool one_transaction,
                  double seconds, const std::string& prefix) {
  std::string value(1024, 'x');
  std::vector<Figures> per(clients);
  std::vector<std::thread> threads;
  double node_cpu0 = NodesCpuSeconds();
  double self_cpu0 = SelfCpuSeconds();
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      v1::PutBatchRequest req;
      req.set_one_transaction(one_transaction);
      for (int j = 0; j < batch; ++j) req.add_puts()->set_value(value);
      for (int i = 0; Clock::now() < end; ++i) {
        std::string key = prefix + std::to_string(t) + "-" + std::to_string(i) + "-";
        for (int j = 0; j < batch; ++j) req.mutable_puts(j)->set_key(key + std::to_string(j));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
        v1::PutBatchReply reply;
        auto t0 = Clock::now();
        grpc::Status s = stub->PutBatch(&ctx, req, &reply);
        if (!s.ok()) {
          per[t].errors += batch;
          continue;
        }
        for (const auto& r : reply.results()) {
          if (r.code() == 0) {
            ++per[t].commits;
          } else {
            ++per[t].errors;
          }
        }
        per[t].latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& th : threads) th.join();
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

// One row of the batch mode on a fresh cluster, so that every row starts from
// an empty state (the state, and with it the cost of each snapshot, grows with
// every value written).
bool BatchRow(double seconds, int clients, int batch, bool one_transaction,
              const std::vector<std::string>& flags) {
  auto before = ClusterDirs();
  ProcessCluster c(flags);
  std::optional<std::filesystem::path> dir;
  for (const auto& d : ClusterDirs()) {
    if (!before.count(d)) dir = d;
  }
  if (!dir) {
    std::fprintf(stderr, "cannot find the cluster's directory\n");
    return false;
  }
  if (!StartAll(c)) return false;
  uint64_t leader = c.Leader();
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  args.SetMaxReceiveMessageSize(-1);
  auto stub = v1::StoreControl::NewStub(
      grpc::CreateCustomChannel(AddressOf(*dir, leader), grpc::InsecureChannelCredentials(), args));
  char name[64];
  std::snprintf(name, sizeof name, "batch %d, %s", batch,
                one_transaction ? "1 txn" : "1 entry each");
  Figures f = BatchLoad(stub.get(), clients, batch, one_transaction, seconds, "k");
  Print(name, f);
  auto st = c.Status(leader);
  if (c.Leader() != leader) std::printf("  leadership moved during the load\n");
  if (st) {
    std::printf("  leader: commit %llu, last snapshot at %llu\n",
                static_cast<unsigned long long>(st->commit()),
                static_cast<unsigned long long>(st->snapshot_index()));
  }
  std::fflush(stdout);
  return true;
}

int RunBatch(double seconds, int clients, const std::vector<std::string>& flags) {
  std::printf(
      "%d clients, PutBatch of 1 KiB values to the leader, a fresh cluster per row; commits "
      "count values, latency is per batch\n",
      clients);
  for (bool one : {false, true}) {
    for (int batch : {16, 64, 256}) {
      if (!BatchRow(seconds, clients, batch, one, flags)) return 1;
    }
  }
  return 0;
}

int RunSequential(double seconds, const std::vector<std::string>& flags) {
  ProcessCluster c(flags);
  if (!StartAll(c)) return 1;
  uint64_t leader = c.Leader();
  // A short warm-up: connections, first allocations.
  (void)Load(c, leader, 1, 0.3, "w");
  // One gRPC round trip through the leader's event loop and nothing else
  // (Status), the floor under a write's latency.
  std::vector<double> ping;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = Clock::now();
    if (!c.Status(leader)) continue;
    ping.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ping.begin(), ping.end());
  std::printf("%-28s p50 %6.3f ms  p99 %6.3f ms\n", "Status round trip", Percentile(ping, 0.5),
              Percentile(ping, 0.99));
  Print("1 client, sequential", Load(c, leader, 1, seconds, "a"));
  return 0;
}

int RunDefault(double seconds, const std::vector<std::string>& flags) {
  // Default timings (100 ms heartbeat, 1-2 s election) unless flags follow.
  ProcessCluster c(flags);
  if (!StartAll(c)) return 1;
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
}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "failover") {
      int runs = argc > 2 ? std::stoi(argv[2]) : 5;
      return RunFailover(runs, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
    if (mode == "batch") {
      double seconds = argc > 2 ? std::atof(argv[2]) : 3;
      int clients = argc > 3 ? std::stoi(argv[3]) : 4;
      return RunBatch(seconds, clients,
                      std::vector<std::string>(argv + std::min(argc, 4), argv + argc));
    }
    if (mode == "row") {
      if (argc < 6) {
        std::fprintf(stderr, "usage: shoal_store_bench row SECONDS CLIENTS BATCH TXN [flags]\n");
        return 2;
      }
      bool ok =
          BatchRow(std::atof(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]),
                   std::string(argv[5]) != "0", std::vector<std::string>(argv + 6, argv + argc));
      return ok ? 0 : 1;
    }
    if (mode == "seq") {
      double seconds = argc > 2 ? std::atof(argv[2]) : 3;
      return RunSequential(seconds,
                           std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
    if (mode == "catchup") {
      size_t objects = argc > 2 ? std::stoull(argv[2]) : 100000;
      return RunCatchUp(objects, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bad argument: %s\n", e.what());
    return 2;
  }
  double seconds = argc > 1 ? std::atof(argv[1]) : 5;
  return RunDefault(seconds, std::vector<std::string>(argv + std::min(argc, 2), argv + argc));
}
