// shoal_cluster_bench worker-loss and leader-loss (see cluster_bench.cc).

#include "cluster_bench.h"

namespace cluster_bench {

// ---- worker loss ----

int WorkerLoss(const Options& o) {
  int services = o.services < 0 ? 10 : o.services;
  int replicas = o.replicas < 0 ? 100 : o.replicas;
  int runs = o.runs < 0 ? 5 : o.runs;
  bool sim = o.sim_procs > 1;
  int nodes = sim ? (o.nodes < 0 ? 1000 : o.nodes) : o.workers;
  long total = static_cast<long>(services) * replicas;
  std::vector<double> down_v, placed_v, running_v;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    if (!StartManagers(c, 3, true, &m)) return 1;
    std::vector<std::string> workers;
    if (sim) {
      for (int p = 0; p < o.sim_procs; ++p) {
        int share = nodes / o.sim_procs + (p < nodes % o.sim_procs ? 1 : 0);
        workers.push_back("sim" + std::to_string(p + 1));
        if (c.StartSim(workers.back(), share, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
      }
    } else {
      for (int w = 1; w <= o.workers; ++w) {
        workers.push_back("w" + std::to_string(w));
        if (!c.StartDaemon(workers.back())) return 1;
        CliResult j =
            c.Cli(workers.back(), {"cluster", "join", "--token", m.worker_token, c.Addr("m1")});
        if (j.code != 0) {
          std::fprintf(stderr, "join failed: %s\n", j.out.c_str());
          return 1;
        }
      }
    }
    if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
      std::fprintf(stderr, "not all %d workers became ready\n", nodes);
      return 1;
    }
    std::string file = WriteStack(c.dir(), services, replicas);
    auto [lid, leader] = Leader(c, "m1", 10000);
    CliResult dep = c.Cli(leader, {"deploy", "-c", file, "--timeout", "300", "bench"});
    if (dep.code != 0) {
      std::fprintf(stderr, "deploy failed: %s\n", dep.out.c_str());
      return 1;
    }
    // The victim's node ids: its hostname, or its prefix for a sim process.
    const std::string victim = workers.front();
    std::set<std::string> victim_nodes;
    v1::ListNodesReply nl;
    if (!c.Control(leader).ListNodes(Ctx(10000).get(), {}, &nl).ok()) return 1;
    for (const auto& n : nl.nodes()) {
      const std::string& h = n.description().hostname();
      if (h == victim || (sim && h.rfind(victim + "-", 0) == 0)) victim_nodes.insert(n.meta().id());
    }
    long on_victim = 0;
    {
      v1::ListTasksRequest tr;
      tr.set_stack("bench");
      tr.set_live_only(true);
      v1::ListTasksReply tl;
      if (!c.Control(leader).ListTasks(Ctx(30000).get(), tr, &tl).ok()) return 1;
      for (const auto& t : tl.tasks()) on_victim += victim_nodes.count(t.node_id()) ? 1 : 0;
    }
    auto t0 = Clock::now();
    c.Kill(victim);
    double t_down = -1, t_placed = -1, t_running = -1;
    while (Since(t0) < o.timeout_s) {
      if (t_down < 0) {
        v1::ListNodesReply nr;
        if (c.Control(leader).ListNodes(Ctx(5000).get(), {}, &nr).ok()) {
          bool all = true;
          for (const auto& n : nr.nodes()) {
            if (victim_nodes.count(n.meta().id())) {
              all = all && n.status().state() == v1::NodeStatus::STATE_DOWN;
            }
          }
          if (all) t_down = Since(t0);
        }
      }
      v1::ListTasksRequest tr;
      tr.set_stack("bench");
      tr.set_live_only(true);
      v1::ListTasksReply tl;
      if (c.Control(leader).ListTasks(Ctx(30000).get(), tr, &tl).ok()) {
        long live = 0, assigned = 0, runs_ok = 0;
        for (const auto& t : tl.tasks()) {
          bool elsewhere = !t.node_id().empty() && !victim_nodes.count(t.node_id());
          ++live;
          if (elsewhere && t.status().state() >= v1::TASK_ASSIGNED) ++assigned;
          if (elsewhere && t.status().state() == v1::TASK_RUNNING) ++runs_ok;
        }
        if (t_placed < 0 && live == total && assigned == total) t_placed = Since(t0);
        if (live == total && runs_ok == total) {
          t_running = Since(t0);
          break;
        }
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    if (t_running < 0) {
      std::printf("run %d: the lost tasks did NOT run elsewhere within %d s\n", run, o.timeout_s);
      return 1;
    }
    std::printf(
        "run %d: kill -9 of %s (%zu node(s), %ld of %ld tasks): node down %.2f s, tasks "
        "placed elsewhere %.2f s, all running %.2f s\n",
        run, victim.c_str(), victim_nodes.size(), on_victim, total, t_down, t_placed, t_running);
    std::fflush(stdout);
    down_v.push_back(t_down);
    placed_v.push_back(t_placed);
    running_v.push_back(t_running);
  }
  std::printf(
      "worker-loss, %d runs: down [%s], placed [%s], running [%s] s; median %.2f s to "
      "running elsewhere (min %.2f, max %.2f)\n",
      runs, List(down_v).c_str(), List(placed_v).c_str(), List(running_v).c_str(),
      Median(running_v), *std::min_element(running_v.begin(), running_v.end()),
      *std::max_element(running_v.begin(), running_v.end()));
  return 0;
}

// ---- leader loss ----

int LeaderLoss(const Options& o) {
  int services = o.services < 0 ? 1 : o.services;
  int replicas = o.replicas < 0 ? 30 : o.replicas;
  int runs = o.runs < 0 ? 5 : o.runs;
  int nodes = o.nodes < 0 ? 0 : o.nodes;
  std::vector<double> elected_v, accepted_v;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    if (!StartManagers(c, 3, nodes > 0, &m)) return 1;
    if (nodes > 0) {
      if (c.StartSim("sim1", nodes, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
      if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
        return 1;
      }
    }
    std::string file = WriteStack(c.dir(), services, replicas);
    CliResult dep = c.Cli("m1", {"deploy", "-c", file, "--timeout", "300", "bench"});
    if (dep.code != 0) {
      std::fprintf(stderr, "deploy failed: %s\n", dep.out.c_str());
      return 1;
    }
    auto [old_id, leader] = Leader(c, "m1", 10000);
    if (leader.empty()) {
      std::fprintf(stderr, "no leader known\n");
      return 1;
    }
    std::vector<std::string> survivors;
    for (const auto& n : m.names) {
      if (n != leader) survivors.push_back(n);
    }
    // Channels up before the clock starts.
    for (const auto& s : survivors) (void)Leader(c, s, 5000);

    std::atomic<bool> accepted{false};
    std::mutex mu;
    Clock::time_point t_accept{};
    std::string accepted_by, last_error;
    int refused = 0;
    std::vector<std::thread> attempts;
    int sent = 0;
    // Stubs made on this thread: Control() is not thread-safe.
    std::vector<v1::Control::Stub*> watch_stubs;
    for (const auto& s : survivors) watch_stubs.push_back(&c.Control(s));
    auto t0 = Clock::now();
    c.Kill(leader);
    std::atomic<double> t_elected{-1};
    // Watches for the new leader on its own thread, so that the attempts
    // below go out every 50 ms whatever the reads cost.
    std::thread watcher([&] {
      while (Since(t0) < 60 && t_elected < 0) {
        for (auto* stub : watch_stubs) {
          v1::ClusterInfoReply info;
          if (stub->ClusterInfo(Ctx(200).get(), {}, &info).ok() && info.raft_leader() != 0 &&
              info.raft_leader() != old_id) {
            t_elected = Since(t0);
            break;
          }
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
    auto next_attempt = t0;
    while (Since(t0) < 60 && !accepted) {
      if (Clock::now() >= next_attempt) {
        const std::string& target = survivors[sent % survivors.size()];
        v1::Control::Stub* stub = &c.Control(target);
        uint64_t want = static_cast<uint64_t>(replicas) + 1 + (sent % 2);
        ++sent;
        attempts.emplace_back([&, stub, target, want] {
          v1::ScaleServiceRequest req;
          req.set_name("bench_svc000");
          req.set_replicas(want);
          v1::ScaleServiceReply reply;
          grpc::Status s = stub->ScaleService(Ctx(10000).get(), req, &reply);
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            ++refused;
            last_error = s.error_message();
            return;
          }
          std::lock_guard<std::mutex> lock(mu);
          if (!accepted) {
            accepted = true;
            t_accept = Clock::now();
            accepted_by = target;
          }
        });
        next_attempt += milliseconds(50);
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    for (auto& th : attempts) th.join();
    watcher.join();
    if (!accepted) {
      std::printf("run %d: no write accepted within 60 s of killing the leader\n", run);
      return 1;
    }
    double t_acc = Secs(t0, t_accept);
    std::printf(
        "run %d: kill -9 of leader %s: new leader seen %.2f s, ScaleService accepted "
        "%.2f s (by %s; %d attempts sent, %d refused%s%s)\n",
        run, leader.c_str(), t_elected.load(), t_acc, accepted_by.c_str(), sent, refused,
        refused ? ", last: " : "", last_error.c_str());
    std::fflush(stdout);
    elected_v.push_back(t_elected.load());
    accepted_v.push_back(t_acc);
  }
  std::printf(
      "leader-loss, %d runs: new leader [%s] s, write accepted [%s] s; median %.2f s "
      "(min %.2f, max %.2f)\n",
      runs, List(elected_v).c_str(), List(accepted_v).c_str(), Median(accepted_v),
      *std::min_element(accepted_v.begin(), accepted_v.end()),
      *std::max_element(accepted_v.begin(), accepted_v.end()));
  return 0;
}

}  // namespace cluster_bench
