// shoal_store_bench's fault modes: failover (kill -9 of the leader until the
// next commit), catch-up of a restarted follower by snapshot, and the default
// mode (load, then one failover).

#include "store_bench_util.h"

namespace shoal::bench {
namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace shoal::bench
