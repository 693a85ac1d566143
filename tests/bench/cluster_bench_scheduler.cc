// shoal_cluster_bench scheduler: the orchestrator and scheduler in process (see cluster_bench.cc).

#include <set>

#include "cluster_bench.h"
#include "shoal/orchestrator/load_index.h"

namespace cluster_bench {

// ---- scheduler (in process) ----

class SeqIds : public shoal::orchestrator::IdSource {
 public:
  std::string NewTaskId() override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "task-%07llu", static_cast<unsigned long long>(++n_));
    return buf;
  }

 private:
  uint64_t n_ = 0;
};

int Scheduler(const Options& o) {
  int nodes = o.nodes < 0 ? 1000 : o.nodes;
  int services = o.services < 0 ? 100 : o.services;
  int replicas = o.replicas < 0 ? 1000 : o.replicas;
  long total = static_cast<long>(services) * replicas;
  fs::path dir = fs::path(o.dir) / ("shoal-sched-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string file = WriteStack(dir, services, replicas);
  uint64_t index = 0;
  int64_t now = 1'000'000'000;
  shoal::store::State state;
  {
    shoal::store::Txn txn;
    v1::Cluster cl;
    cl.mutable_meta()->set_id("cluster");
    cl.set_name("bench");
    cl.set_task_history_per_slot(5);
    txn.Put(cl);
    char host[32];
    for (int i = 0; i < nodes; ++i) {
      std::snprintf(host, sizeof host, "sim-%04d", i);
      v1::Node n;
      n.mutable_meta()->set_id(std::string("node-") + host);
      n.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_WORKER);
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
      n.mutable_description()->set_hostname(host);
      n.mutable_description()->set_os("linux");
      n.mutable_description()->set_nano_cpus(4'000'000'000);
      n.mutable_description()->set_memory_bytes(16LL << 30);
      n.mutable_description()->set_executor("sim");
      n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
      txn.Put(n);
    }
    if (!state.Apply(++index, std::move(txn).Build("bench", now), nullptr).ok()) return 1;
  }
  // Wall and CPU seconds of each step: on a shared machine the CPU time is
  // what the code costs, the wall time what it took beside everything else.
  struct Timer {
    Clock::time_point wall = Clock::now();
    double cpu = ThreadCpu();
    std::pair<double, double> Lap() {
      std::pair<double, double> out{Since(wall), ThreadCpu() - cpu};
      wall = Clock::now();
      cpu = ThreadCpu();
      return out;
    }
  };
  auto row = [](const char* what, std::pair<double, double> t, const std::string& extra) {
    std::printf("  %-62s %7.3f s wall %7.3f s CPU%s\n", what, t.first, t.second, extra.c_str());
  };
  auto rate = [](size_t n, double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %zu tasks, %.0f tasks/s of CPU", n, n / s);
    return std::string(buf);
  };
  std::printf("scheduler mode: %d nodes, %d services x %d replicas = %ld tasks\n", nodes, services,
              replicas, total);
  Timer timer;
  shoal::stack::LoadOptions lo;
  lo.files = {file};
  lo.stack_name = "bench";
  auto loaded = shoal::stack::Load(lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s", loaded.error().ToString().c_str());
    return 1;
  }
  row("stack::Load of the stack file (the CLI's side)", timer.Lap(), "");
  v1::DeployRequest req;
  *req.mutable_spec() = loaded->spec;
  std::mt19937_64 rng(42);
  auto change = shoal::manager::BuildDeploy(state, req, rng);
  if (!change.ok()) return 1;
  row("BuildDeploy (the deploy's transaction)", timer.Lap(), "");
  auto unplaced = shoal::manager::DryRunPlacement(state, *change, "bench");
  row("DryRunPlacement (inside the Deploy call, on the leader loop)", timer.Lap(),
      "  " + std::to_string(unplaced.size()) + " unplaced");
  v1::Command cmd;
  for (const auto& m : change->mutations) *cmd.mutable_transaction()->add_mutations() = m;
  if (!state.Apply(++index, cmd, nullptr).ok()) return 1;
  row("State::Apply of the deploy's transaction", timer.Lap(), "");

  // One pass, no cap.
  {
    shoal::store::State copy = state;
    SeqIds ids;
    shoal::orchestrator::Options opts;
    opts.max_mutations = SIZE_MAX;
    timer.Lap();
    auto out = shoal::orchestrator::Reconcile(copy, now, ids, opts);
    auto one = timer.Lap();
    row("Reconcile, max_mutations unlimited (1 pass)", one, rate(out.assigned, one.second));
    // The scheduler alone on the same tasks, in one call.
    std::vector<v1::Node> node_list;
    for (const v1::Mutation* m : copy.List(shoal::store::Kind::kNode)) {
      node_list.push_back(m->node());
    }
    std::vector<v1::Task> pending;
    pending.reserve(out.mutations.size());
    for (const auto& m : out.mutations) {
      if (!m.has_task()) continue;
      // What the orchestrator hands the scheduler: the fields it reads.
      v1::Task task;
      task.mutable_meta()->set_id(m.task().meta().id());
      task.set_service_id(m.task().service_id());
      *task.mutable_resources()->mutable_reservations() = m.task().resources().reservations();
      *task.mutable_endpoint()->mutable_ports() = m.task().endpoint().ports();
      *task.mutable_placement() = m.task().placement();
      pending.push_back(std::move(task));
    }
    timer.Lap();
    auto d = shoal::scheduler::Schedule(node_list, {}, pending);
    auto alone = timer.Lap();
    row("scheduler::Schedule alone, all tasks in one call", alone,
        rate(d.assigned.size(), alone.second));
    // Service by service, as the capped passes call it: 1,000 tasks with the
    // tasks of the earlier services already assigned.
    std::map<std::string, std::string> where;
    for (const auto& a : d.assigned) where[a.task_id] = a.node_id;
    std::vector<v1::Task> assigned;
    double worst = 0;
    timer.Lap();
    for (size_t i = 0; i < pending.size(); i += replicas) {
      std::vector<v1::Task> batch(pending.begin() + i,
                                  pending.begin() + std::min(pending.size(), i + replicas));
      auto one_service = Clock::now();
      auto placed = shoal::scheduler::Schedule(node_list, assigned, batch);
      worst = std::max(worst, Since(one_service));
      std::map<std::string, std::string> at;
      for (const auto& a : placed.assigned) at[a.task_id] = a.node_id;
      for (auto& task : batch) {
        task.set_node_id(at[task.meta().id()]);
        assigned.push_back(std::move(task));
      }
    }
    auto by_service = timer.Lap();
    char extra[96];
    std::snprintf(extra, sizeof extra, "%s (the last call %.3f s)",
                  rate(assigned.size(), by_service.second).c_str(), worst);
    row("scheduler::Schedule service by service, earlier ones assigned", by_service, extra);
  }
  // Capped passes, applied one after the other, as the leader runs them:
  // every pass over all services (before), or each follow-up over the
  // services the last one did not finish and those its transaction touched
  // (control_loops.cc now).
  for (int incremental_follow_ups = 0; incremental_follow_ups < 2; ++incremental_follow_ups) {
    shoal::store::State copy = state;
    SeqIds ids;
    shoal::orchestrator::Options opts;
    opts.max_mutations = 10'000;  // manager/control_loops.cc: kMaxMutationsPerPass
    std::pair<double, double> reconcile{0, 0}, apply{0, 0};
    double worst = 0;
    int passes = 0;
    size_t assigned = 0;
    uint64_t idx = index;
    std::set<std::string> next;
    bool full_pass = true;
    // As the leader's control loops do: the scheduler's load kept from the
    // applied events (with the incremental follow-ups only, to compare).
    shoal::orchestrator::LoadIndex loads;
    std::pair<double, double> indexing{0, 0};
    if (incremental_follow_ups) {
      loads.Rebuild(copy);
      opts.loads = &loads;
    }
    while (true) {
      opts.services = full_pass ? nullptr : &next;
      timer.Lap();
      auto out = shoal::orchestrator::Reconcile(copy, now, ids, opts);
      auto pass = timer.Lap();
      reconcile.first += pass.first;
      reconcile.second += pass.second;
      if (out.mutations.empty()) break;
      worst = std::max(worst, pass.second);
      ++passes;
      assigned += out.assigned;
      full_pass = incremental_follow_ups == 0 || out.unfinished_services.empty();
      next.clear();
      next.insert(out.unfinished_services.begin(), out.unfinished_services.end());
      v1::Command c;
      for (auto& m : out.mutations) *c.mutable_transaction()->add_mutations() = std::move(m);
      c.set_proposer("orchestrator");
      c.set_proposed_at_ns(now);
      std::vector<shoal::store::Event> events;
      timer.Lap();
      if (!copy.Apply(++idx, c, &events).ok()) return 1;
      auto ap = timer.Lap();
      apply.first += ap.first;
      apply.second += ap.second;
      for (const auto& e : events) {
        if (e.mutation.has_task()) next.insert(e.mutation.task().service_id());
      }
      if (incremental_follow_ups) {
        std::vector<const shoal::store::Event*> refs;
        for (const auto& e : events) refs.push_back(&e);
        timer.Lap();
        loads.Update(copy, refs);
        auto ix = timer.Lap();
        indexing.first += ix.first;
        indexing.second += ix.second;
      }
    }
    char what[96], extra[96];
    std::snprintf(
        what, sizeof what, "Reconcile, max_mutations %zu, %s: %d passes", opts.max_mutations,
        incremental_follow_ups ? "follow-ups incremental + load index" : "all full", passes);
    std::snprintf(extra, sizeof extra, "%s (slowest pass %.3f s CPU)",
                  rate(assigned, reconcile.second).c_str(), worst);
    row(what, reconcile, extra);
    row("  + State::Apply of those passes' transactions (with events)", apply,
        rate(assigned, reconcile.second + apply.second));
    if (incremental_follow_ups == 0) continue;
    row("  + LoadIndex::Update from those events", indexing, "");
    opts.services = nullptr;

    // The running phase: the agents' reports (RUNNING) applied 1,000 at a
    // time, each batch followed by the pass the leader runs next, full (as
    // before) or over the services the batch touched (control_loops.cc).
    // First in id order (each batch touches one service), then spread over
    // every service as 1,000 agents report them (each batch touches all).
    std::vector<std::string> ids_in_order;
    for (const v1::Mutation* m : copy.List(shoal::store::Kind::kTask)) {
      ids_in_order.push_back(m->task().meta().id());
    }
    for (int spread = 0; spread < 2; ++spread) {
      std::vector<std::string> order;
      if (spread == 0) {
        order.assign(ids_in_order.begin(),
                     ids_in_order.begin() + std::min<size_t>(ids_in_order.size(), 20'000));
      } else {
        // Tasks the first round did not report: from the middle of each service's.
        size_t per = static_cast<size_t>(replicas), n = static_cast<size_t>(services);
        for (size_t j = 0; j < 20'000 && j / n < per / 2; ++j) {
          size_t k = (j % n) * per + per / 2 + j / n;
          if (k < ids_in_order.size()) order.push_back(ids_in_order[k]);
        }
      }
      std::pair<double, double> merge{0, 0}, full{0, 0}, incremental{0, 0}, indexed{0, 0};
      int batches = 0;
      size_t full_muts = 0, inc_muts = 0, seen = 0;
      for (size_t i = 0; i < order.size(); i += 1000, ++batches) {
        v1::Command c;
        for (size_t j = i; j < std::min(order.size(), i + 1000); ++j) {
          v1::Mutation* m = c.mutable_transaction()->add_mutations();
          m->set_op(v1::Mutation::OP_TASK_STATUS);
          m->mutable_task()->mutable_meta()->set_id(order[j]);
          m->mutable_task()->mutable_status()->set_state(v1::TASK_RUNNING);
          m->mutable_task()->mutable_status()->set_message("started");
          m->mutable_task()->mutable_status()->set_timestamp_ns(now + 1);
        }
        std::vector<shoal::store::Event> events;
        timer.Lap();
        if (!copy.ApplyConsuming(++idx, &c, &events).ok()) return 1;
        auto ap = timer.Lap();
        merge.first += ap.first;
        merge.second += ap.second;
        std::vector<const shoal::store::Event*> refs;
        for (const auto& e : events) refs.push_back(&e);
        timer.Lap();
        loads.Update(copy, refs);
        auto ix = timer.Lap();
        indexed.first += ix.first;
        indexed.second += ix.second;
        std::set<std::string> touched;
        for (const auto& e : events) touched.insert(e.mutation.task().service_id());
        shoal::orchestrator::Options fo = opts;
        timer.Lap();
        auto fout = shoal::orchestrator::Reconcile(copy, now, ids, fo);
        auto f = timer.Lap();
        full.first += f.first;
        full.second += f.second;
        full_muts += fout.mutations.size();
        shoal::orchestrator::Options io = opts;
        io.services = &touched;
        timer.Lap();
        auto iout = shoal::orchestrator::Reconcile(copy, now, ids, io);
        auto inc = timer.Lap();
        incremental.first += inc.first;
        incremental.second += inc.second;
        inc_muts += iout.mutations.size();
        seen += iout.services_seen;
      }
      if (batches == 0) continue;
      char buf[128];
      std::snprintf(buf, sizeof buf, "  %d batches, %.1f us CPU per status", batches,
                    1e6 * merge.second / (batches * 1000.0));
      row(spread ? "State::ApplyConsuming of 1,000 RUNNING reports, spread over services"
                 : "State::ApplyConsuming of 1,000 RUNNING reports (x batches)",
          merge, buf);
      row("  + LoadIndex::Update from their events", indexed, "");
      std::snprintf(buf, sizeof buf, "  %.4f s CPU per pass, %zu mutations", full.second / batches,
                    full_muts);
      row("  then a full pass after each", full, buf);
      std::snprintf(buf, sizeof buf, "  %.4f s CPU per pass, %zu mutations, %.1f services a pass",
                    incremental.second / batches, inc_muts, static_cast<double>(seen) / batches);
      row("  then a pass over the touched services only", incremental, buf);
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

}  // namespace cluster_bench
