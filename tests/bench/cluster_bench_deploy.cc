// shoal_cluster_bench deploy: a stack end to end (see cluster_bench.cc).

#include "cluster_bench.h"

namespace cluster_bench {

// ---- deploy ----

int Deploy(const Options& o) {
  int nodes = o.nodes < 0 ? 1000 : o.nodes;
  int services = o.services < 0 ? 100 : o.services;
  int replicas = o.replicas < 0 ? 1000 : o.replicas;
  int runs = o.runs < 0 ? 1 : o.runs;
  long total = static_cast<long>(services) * replicas;
  std::vector<double> accepted, placed, running, rates;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    auto t_setup = Clock::now();
    if (!StartManagers(c, 3, true, &m)) return 1;
    double managers_s = Since(t_setup);
    std::vector<std::string> sims;
    auto t_sim = Clock::now();
    for (int p = 0; p < o.sim_procs; ++p) {
      int share = nodes / o.sim_procs + (p < nodes % o.sim_procs ? 1 : 0);
      sims.push_back("sim" + std::to_string(p + 1));
      if (c.StartSim(sims.back(), share, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
    }
    double sim_s = Since(t_sim);
    if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
      std::fprintf(stderr, "not all %d sim nodes became ready\n", nodes);
      return 1;
    }
    double ready_s = Since(t_sim);
    auto [leader_id, leader] = Leader(c, "m1", 10000);
    (void)leader_id;
    std::string follower = leader == "m1" ? "m2" : "m1";
    std::string poll = o.poll_leader ? leader : follower;
    std::printf(
        "run %d: 3 managers up in %.1f s; %d sim nodes in %d process(es) READY in %.1f s, all "
        "ready in the store after %.1f s; leader %s, polling %s\n",
        run, managers_s, nodes, o.sim_procs, sim_s, ready_s, leader.c_str(), poll.c_str());
    std::fflush(stdout);
    std::string file = WriteStack(c.dir(), services, replicas);

    std::vector<std::unique_ptr<PerfRecord>> perf;
    if (!o.perf.empty()) {
      fs::create_directories(o.perf);
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(leader), o.perf + "/leader.data"));
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(sims[0]), o.perf + "/sim.data"));
      std::this_thread::sleep_for(milliseconds(500));
    }
    if (o.scale) {
      // The services first with no replicas (not timed); the clock then runs
      // from the ScaleService calls, which have no dry run.
      std::string zero = WriteStack(c.dir(), services, 0);
      CliResult dep0 = c.Cli(leader, {"deploy", "--detach", "-c", zero, "bench"});
      if (dep0.code != 0) {
        std::fprintf(stderr, "deploy of 0 replicas failed: %s\n", dep0.out.c_str());
        return 1;
      }
    }
    uint64_t term0 = Term(c, leader);
    CpuSample cpu0 = SampleCpu(c);
    auto t0 = Clock::now();
    double t_acc = 0;
    if (o.scale) {
      std::atomic<int> failed{0};
      std::vector<std::thread> calls;
      v1::Control::Stub* stub = &c.Control(leader);
      for (int i = 0; i < services; ++i) {
        calls.emplace_back([&, i, stub] {
          char name[32];
          std::snprintf(name, sizeof name, "bench_svc%03d", i);
          v1::ScaleServiceRequest req;
          req.set_name(name);
          req.set_replicas(replicas);
          v1::ScaleServiceReply reply;
          grpc::Status st = stub->ScaleService(Ctx(60000).get(), req, &reply);
          if (!st.ok()) {
            std::fprintf(stderr, "scale %s: %s\n", name, st.error_message().c_str());
            ++failed;
          }
        });
      }
      for (auto& th : calls) th.join();
      t_acc = Since(t0);
      if (failed > 0) return 1;
    } else {
      CliResult dep = c.Cli(leader, {"deploy", "--detach", "-c", file, "bench"});
      t_acc = Since(t0);
      if (dep.code != 0) {
        std::printf("  the deploy call failed after %.2f s: %s", t_acc, dep.out.c_str());
        // The transaction may still have committed: go on if the stack is there.
        bool there = WaitFor(
            [&] {
              for (const auto& n : m.names) {
                v1::ListServicesRequest lr;
                lr.set_stack("bench");
                v1::ListServicesReply ls;
                if (c.Control(n).ListServices(Ctx(5000).get(), lr, &ls).ok() &&
                    ls.services_size() == services) {
                  return true;
                }
              }
              return false;
            },
            60, 500);
        if (!there) {
          std::printf("run %d: the deploy was not accepted\n", run);
          return 1;
        }
        std::printf("  ... but the stack was committed (seen %.2f s after the start)\n", Since(t0));
        auto [lid2, leader2] = Leader(c, "m1", 10000);
        if (!leader2.empty()) {
          leader = leader2;
          poll = o.poll_leader ? leader : (leader == "m1" ? "m2" : "m1");
        }
      }
    }
    CpuSample cpu_acc = SampleCpu(c);

    // Poll a follower with one ListServices a poll: its running and placed
    // counts are what `shoal deploy` waits on. (Listing the tasks instead
    // cost the polled follower a second per 100,000 tasks and delayed what
    // it measured; they are listed once after the clock stops, to confirm.)
    std::set<std::string> done;  // services whose tasks all run
    double t_placed = -1, t_running = -1, slowest_poll = 0;
    long last_running = 0;
    auto next_report = Clock::now();
    while (Since(t0) < o.timeout_s) {
      v1::ListServicesRequest lr;
      lr.set_stack("bench");
      v1::ListServicesReply ls;
      auto call0 = Clock::now();
      grpc::Status s = c.Control(poll).ListServices(Ctx(30000).get(), lr, &ls);
      slowest_poll = std::max(slowest_poll, Since(call0));
      if (s.ok()) {
        long run_count = 0, placed = 0;
        for (const auto& sv : ls.services()) {
          run_count += static_cast<long>(sv.running());
          placed += static_cast<long>(sv.placed());
          if (sv.running() == sv.desired()) done.insert(sv.service().meta().id());
        }
        last_running = run_count;
        bool all_there = ls.services_size() == services;
        if (t_placed < 0 && all_there && placed == total) t_placed = Since(t0);
        if (run_count == total && all_there) {
          t_running = Since(t0);
          if (t_placed < 0) t_placed = t_running;
          break;
        }
      }
      if (Clock::now() >= next_report) {
        std::printf(
            "  %6.1f s: %s, %zu/%d services and %ld/%ld tasks running (slowest "
            "ListServices %.2f s)\n",
            Since(t0), t_placed < 0 ? "not all placed" : "all placed", done.size(), services,
            last_running, total, slowest_poll);
        slowest_poll = 0;
        std::fflush(stdout);
        next_report = Clock::now() + std::chrono::seconds(5);
      }
      std::this_thread::sleep_for(milliseconds(o.poll_ms));
    }
    CpuSample cpu1 = SampleCpu(c);
    for (auto& p : perf) p->Stop();
    if (t_running < 0) {
      std::printf("run %d: did NOT converge within %d s: %ld/%ld running\n", run, o.timeout_s,
                  last_running, total);
      return 1;
    }
    {
      // The counts the clock stopped on, checked against the tasks themselves.
      v1::ListTasksRequest all;
      all.set_stack("bench");
      all.set_live_only(true);
      v1::ListTasksReply every;
      long running = 0;
      if (c.Control(poll).ListTasks(Ctx(60000).get(), all, &every).ok()) {
        for (const auto& t : every.tasks()) running += t.status().state() == v1::TASK_RUNNING;
      }
      if (running != total) {
        std::printf("run %d: ListServices said all %ld run, but ListTasks shows %ld running\n", run,
                    total, running);
        return 1;
      }
    }
    std::printf(
        "run %d: %ld tasks on %d nodes: accepted %.2f s, all placed %.2f s, all running %.2f s: "
        "%.0f tasks/s end to end (%.0f/s after acceptance)\n",
        run, total, nodes, t_acc, t_placed, t_running, total / t_running,
        total / (t_running - t_acc));
    {
      auto [id_now, leader_now] = Leader(c, poll, 10000);
      uint64_t term1 = Term(c, poll);
      if (leader_now != leader || term1 != term0) {
        std::printf("  leadership moved during the run: %s at term %llu, %s at term %llu\n",
                    leader.c_str(), static_cast<unsigned long long>(term0), leader_now.c_str(),
                    static_cast<unsigned long long>(term1));
        if (!leader_now.empty()) leader = leader_now;
      }
    }
    std::printf("  CPU-s until accepted: %s\n", CpuReport(cpu0, cpu_acc, t_acc, leader).c_str());
    std::printf("  CPU-s accepted to running: %s\n",
                CpuReport(cpu_acc, cpu1, t_running - t_acc, leader).c_str());
    // The steady state: what 1,000 agents' heartbeats cost the managers.
    if (!o.perf.empty()) {
      perf.clear();
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(leader), o.perf + "/leader-idle.data"));
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(sims[0]), o.perf + "/sim-idle.data"));
    }
    CpuSample idle0 = SampleCpu(c, true);
    std::this_thread::sleep_for(std::chrono::seconds(10));
    CpuSample idle1 = SampleCpu(c, true);
    for (auto& p : perf) p->Stop();
    std::printf("  CPU-s over the next 10 s, everything running: %s\n",
                CpuReport(idle0, idle1, 10, leader).c_str());
    std::printf("  context switches meanwhile: %s\n", SwitchReport(idle0, idle1, 10).c_str());
    std::string rss;
    for (const auto& n : c.Names()) {
      rss += (rss.empty() ? "" : ", ") + n + " " + ResidentMiB(c.Pid(n));
    }
    std::printf("  resident MiB now/peak: %s\n", rss.c_str());
    std::fflush(stdout);
    accepted.push_back(t_acc);
    placed.push_back(t_placed);
    running.push_back(t_running);
    rates.push_back(total / t_running);
  }
  if (runs > 1) {
    std::printf(
        "deploy %ld tasks, %d nodes, %d runs: accepted [%s] s, placed [%s] s, running [%s] "
        "s; median %.2f s running, %.0f tasks/s\n",
        total, nodes, runs, List(accepted).c_str(), List(placed).c_str(), List(running).c_str(),
        Median(running), Median(rates));
  }
  return 0;
}

}  // namespace cluster_bench
