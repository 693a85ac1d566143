// The cluster simulation's workload (cluster_sim_internal.h): the seed's
// profile, the hosts and services, the setup transactions (`cluster init`,
// `join`, service creation), the faults and the client's changes.

#include <sstream>

#include "cluster_sim_internal.h"

namespace shoal::sim::cluster {

// ---- setup ----

void ClusterSim::ChooseProfile() {
  if (opts_.managers == 0) {
    // Mostly three managers, sometimes five, and sometimes the dev cluster's
    // one (then no manager crashes: there is no majority to keep).
    double m = std::uniform_real_distribution<double>(0, 1)(rng_);
    opts_.managers = m < 0.1 ? 1 : m < 0.3 ? 5 : 3;
  }
  if (opts_.workers == 0) opts_.workers = 3 + static_cast<int>(Rand(4));
  if (Chance(0.5)) {
    heartbeat_ticks_ = 10;  // production: 100 ms heartbeat, 1-2 s election
    election_ticks_ = 100;
  } else {
    heartbeat_ticks_ = 5;  // the raft simulations' compressed timings
    election_ticks_ = 25;
  }
  const double drops[] = {0, 0.01, 0.05, 0.1};
  const uint64_t delays[] = {2, 10, 40};
  drop_ = drops[Rand(4)];
  dup_ = Chance(0.3) ? 0.05 : 0;
  max_delay_ = delays[Rand(3)];
  partition_rate_ = Chance(0.75) ? 1.0 / 4000 : 0;
  crash_rate_ = Chance(0.75) ? 1.0 / 4000 : 0;
  change_rate_ = 1.0 / 2500;
  poll_reset_rate_ = Chance(0.5) && opts_.dangling_polls ? 1.0 / 1500 : 0;
  skew_ = Chance(0.5);
  managers_drained_ = Chance(0.3);
  // The defaults (1 s heartbeat, node down after 5 s), written into the
  // Cluster object as `cluster init` does.
  dispatcher_options_ = dispatcher::Options{};
  std::ostringstream p;
  p << "profile seed=" << opts_.seed << " managers=" << opts_.managers
    << " workers=" << opts_.workers << " raft=" << heartbeat_ticks_ << "/" << election_ticks_
    << " ticks drop=" << drop_ << " dup=" << dup_ << " max_delay=" << max_delay_
    << "ms partitions=" << (partition_rate_ > 0) << " crashes=" << (crash_rate_ > 0)
    << " poll_resets=" << (poll_reset_rate_ > 0) << " dangling_polls=" << opts_.dangling_polls
    << " agent_reports_unstarted=" << opts_.agent_reports_unstarted << " skew=" << skew_
    << " managers_drained=" << managers_drained_;
  Trace(p.str());
}

void ClusterSim::MakeHosts() {
  int n = opts_.managers + opts_.workers;
  hosts_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Host& h = hosts_[i];
    h.index = i;
    bool manager = i < opts_.managers;
    int k = manager ? i + 1 : i - opts_.managers + 1;
    h.hostname = (manager ? "m" : "w") + std::to_string(k);
    h.node_id = "node-" + h.hostname;
    h.zone = manager ? "m" : (k % 2 == 1 ? "a" : "b");
    h.executor = std::make_unique<executor::SimExecutor>();
    if (!manager) continue;
    h.raft_id = static_cast<uint64_t>(k);
    h.drained = managers_drained_;
    h.disk = std::make_unique<raft::MemoryStorage>();
    h.random = std::make_unique<Random>(rng_());
    h.transport = std::make_unique<SimTransport>(this, i);
    h.tick_phase = static_cast<int>(Rand(kTickMs));
    if (skew_) h.clock_skew_ns = (static_cast<int64_t>(Rand(1001)) - 500) * kMs;
  }
}

void ClusterSim::DefineServices() {
  auto add = [&](std::string name, v1::ServiceMode mode, uint64_t replicas) -> ServiceDef& {
    ServiceDef d;
    d.id = "svc-" + name;
    d.name = "sim_" + name;
    d.mode = mode;
    d.replicas = replicas;
    d.env["VERSION"] = "0";
    services_.push_back(d);
    return services_.back();
  };
  ServiceDef& web = add("web", v1::MODE_REPLICATED, 1 + Rand(5));
  if (Chance(0.5)) {
    web.update_parallelism = 1 + Rand(2);
    web.update_delay_ns = static_cast<int64_t>(Rand(1000)) * kMs;
  }
  ServiceDef& api = add("api", v1::MODE_REPLICATED, 1 + Rand(4));
  api.healthcheck = Chance(0.5);
  switch (Rand(3)) {
    case 0:
      api.constraints = {"node.labels.zone == a"};
      break;
    case 1:
      api.constraints = {"node.role == worker"};
      break;
    default:
      break;
  }
  ServiceDef& mon = add("mon", v1::MODE_GLOBAL, 0);
  if (Chance(0.5)) mon.constraints = {"node.role != manager"};
  if (Chance(0.3)) mon.restart_delay_ns = 500 * kMs;
  if (Chance(0.6)) {
    ServiceDef& batch = add("batch", v1::MODE_REPLICATED_JOB, 1 + Rand(3));
    batch.env["SHOAL_SIM_EXIT"] = "0";
  }
  if (Chance(0.3)) add("tmp", v1::MODE_REPLICATED, 2).temporary = true;
}

v1::Node ClusterSim::NodeObject(const Host& h) const {
  // As daemon.cc's Init (the first manager) and Admit (everyone else) write it.
  v1::Node n;
  n.mutable_meta()->set_id(h.node_id);
  n.mutable_spec()->set_desired_role(h.raft_id ? v1::NodeSpec::ROLE_MANAGER
                                               : v1::NodeSpec::ROLE_WORKER);
  n.mutable_spec()->set_availability(h.drained ? v1::NodeSpec::AVAILABILITY_DRAIN
                                               : v1::NodeSpec::AVAILABILITY_ACTIVE);
  (*n.mutable_spec()->mutable_labels())["zone"] = h.zone;
  n.mutable_description()->set_hostname(h.hostname);
  n.mutable_status()->set_state(v1::NodeStatus::STATE_UNKNOWN);
  n.mutable_status()->set_addr(h.hostname + ":4242");
  if (h.raft_id) {
    n.mutable_manager_status()->set_raft_id(h.raft_id);
    n.mutable_manager_status()->set_addr(AddrOf(h.raft_id));
  }
  return n;
}

v1::Service ClusterSim::ServiceObject(const ServiceDef& d) const {
  v1::Service s;
  s.mutable_meta()->set_id(d.id);
  s.set_spec_version(1);
  v1::ServiceSpec* spec = s.mutable_spec();
  spec->set_name(d.name);
  spec->set_stack("sim");
  spec->set_short_name(d.name.substr(4));
  spec->set_mode(d.mode);
  spec->set_replicas(d.replicas);
  spec->mutable_container()->set_image("sim/" + d.name.substr(4));
  for (const auto& [k, v] : d.env) (*spec->mutable_container()->mutable_env())[k] = v;
  for (const auto& c : d.constraints) spec->mutable_placement()->add_constraints(c);
  spec->mutable_update_config()->set_parallelism(d.update_parallelism);
  spec->mutable_update_config()->set_delay_ns(d.update_delay_ns);
  if (d.healthcheck) {
    spec->mutable_container()->mutable_healthcheck()->add_test("CMD");
    spec->mutable_container()->mutable_healthcheck()->add_test("true");
  }
  spec->mutable_restart_policy()->set_delay_ns(d.restart_delay_ns);
  return s;
}

void ClusterSim::SetupOps() {
  // `cluster init` on the first manager: the Cluster object and its Node.
  AddOp(
      "init",
      [this](const store::State& s) -> std::optional<store::Txn> {
        if (!s.List(Kind::kCluster).empty()) return std::nullopt;
        v1::Cluster c;
        c.mutable_meta()->set_id("sim-cluster");
        c.set_name("default");
        c.mutable_join_tokens()->set_worker("SHOAL-1-sim-cluster-worker-x");
        c.mutable_join_tokens()->set_manager("SHOAL-1-sim-cluster-manager-x");
        c.set_heartbeat_period_ns(dispatcher_options_.heartbeat_period_ns);
        c.set_node_down_grace_ns(dispatcher_options_.node_down_after_ns);
        c.set_task_history_per_slot(5);
        store::Txn t;
        t.Put(c);
        if (!s.Get<v1::Node>(hosts_[0].node_id)) t.Put(NodeObject(hosts_[0]));
        return t;
      },
      true);
  // `cluster join` of every other node: Admit writes its Node.
  for (size_t i = 1; i < hosts_.size(); ++i) {
    const Host& h = hosts_[i];
    AddOp(
        "admit " + h.node_id,
        [this, i](const store::State& s) -> std::optional<store::Txn> {
          if (s.Get<v1::Node>(hosts_[i].node_id)) return std::nullopt;
          store::Txn t;
          t.Put(NodeObject(hosts_[i]));
          return t;
        },
        true);
  }
  for (const ServiceDef& d : services_) {
    AddOp(
        "create " + d.name,
        [this, d](const store::State& s) -> std::optional<store::Txn> {
          if (s.Get<v1::Service>(d.id)) return std::nullopt;
          store::Txn t;
          t.Put(ServiceObject(d));
          return t;
        },
        true);
  }
}

// ---- faults and the client ----

void ClusterSim::InjectFaults() {
  if (heal_partition_at_ != 0 && now_ >= heal_partition_at_) {
    for (Host& h : hosts_) h.group = 0;
    heal_partition_at_ = 0;
    Trace("partition healed");
  }
  if (heal_partition_at_ == 0 && Chance(partition_rate_)) {
    std::ostringstream desc;
    double kind = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (kind < 0.35) {
      // A manager host, the leader half of the time.
      const Host* l = Leader();
      int victim = l && Chance(0.5) ? l->index : static_cast<int>(Rand(opts_.managers));
      hosts_[victim].group = 1;
      desc << "isolate manager host " << hosts_[victim].hostname;
    } else if (kind < 0.7) {
      // One or two worker hosts: their agents lose the managers.
      int a = opts_.managers + static_cast<int>(Rand(opts_.workers));
      hosts_[a].group = 1;
      desc << "isolate worker " << hosts_[a].hostname;
      if (Chance(0.4)) {
        int b = opts_.managers + static_cast<int>(Rand(opts_.workers));
        hosts_[b].group = 1;
        desc << " and " << hosts_[b].hostname;
      }
    } else {
      desc << "split:";
      for (Host& h : hosts_) {
        h.group = static_cast<int>(Rand(2));
        desc << ' ' << h.hostname << "->" << h.group;
      }
    }
    heal_partition_at_ = now_ + 300 + Rand(7700);
    ++stats_.partitions;
    Trace(desc.str());
  }
  if (Chance(crash_rate_)) {
    int victim = static_cast<int>(Rand(hosts_.size()));
    Host& h = hosts_[victim];
    if (!h.up) return;
    if (h.raft_id) {
      // Keep a majority of the managers up, so the cluster can make progress.
      int down = 0;
      for (int m : ManagerHosts()) down += hosts_[m].up ? 0 : 1;
      if (down + 1 > (opts_.managers - 1) / 2) return;
    }
    bool lose_tasks = Chance(0.5);
    h.lose_unsynced = h.raft_id && Chance(0.5);
    // Down for up to 10 s (past the 5 s of node-down detection), or, for a
    // daemon restarted by its supervisor, a moment.
    uint64_t down_ms =
        !lose_tasks && Chance(0.4) ? 10 + Rand(800) : 100 + Rand(h.raft_id ? 5000 : 10000);
    Trace(std::string(lose_tasks ? "host crash " : "daemon crash ") + h.hostname + " for " +
          std::to_string(down_ms) + "ms" +
          (lose_tasks ? " (its tasks die)" : " (its tasks keep running)") +
          (h.lose_unsynced ? ", losing unsynced raft writes" : ""));
    Crash(h, lose_tasks);
    h.restart_at = now_ + down_ms;
  }
  if (Chance(poll_reset_rate_)) {
    // The connection of a waiting long poll drops (an idle connection cut by
    // a NAT or a keepalive): the agent sees an error, the manager is not told.
    Host& h = hosts_[Rand(hosts_.size())];
    if (h.agent) {
      for (const SimAgent::Call& c : h.agent->Outstanding()) {
        if (c.kind != SimAgent::Call::kAssignments) continue;
        Packet p;
        p.kind = Packet::kAssignmentsReply;
        p.from = HostOfAddr(c.addr) ? HostOfAddr(c.addr)->index : h.index;
        p.to = h.index;
        p.call = c.id;
        p.status = {Code::kUnavailable, "connection reset"};
        Trace("reset " + h.hostname + "'s waiting assignments call to " + c.addr);
        Push(p, false, false);
      }
    }
  }
  if (Chance(change_rate_)) RandomSpecChange();
}

void ClusterSim::RandomSpecChange() {
  const ServiceDef& d = services_[Rand(services_.size())];
  std::string id = d.id;
  if (d.temporary) {
    AddOp(
        "delete " + d.name,
        [id](const store::State& s) -> std::optional<store::Txn> {
          const v1::Service* svc = s.Get<v1::Service>(id);
          if (!svc) return std::nullopt;
          store::Txn t;
          t.Delete(*svc);
          return t;
        },
        false);
    return;
  }
  double kind = std::uniform_real_distribution<double>(0, 1)(rng_);
  bool replicated = d.mode == v1::MODE_REPLICATED || d.mode == v1::MODE_REPLICATED_JOB;
  if (replicated && kind < 0.5) {
    uint64_t replicas = Rand(6);
    AddOp(
        "scale " + d.name + " to " + std::to_string(replicas),
        [id, replicas](const store::State& s) -> std::optional<store::Txn> {
          const v1::Service* svc = s.Get<v1::Service>(id);
          if (!svc || svc->spec().replicas() == replicas) return std::nullopt;
          v1::Service next = *svc;
          next.mutable_spec()->set_replicas(replicas);  // scaling replaces nothing
          store::Txn t;
          t.Put(next);
          return t;
        },
        false);
  } else if (kind < 0.85 || d.constraints.empty()) {
    // A new image version: replaces every task (deploy bumps spec_version).
    std::string version = std::to_string(next_version_++);
    AddOp(
        "update " + d.name + " VERSION=" + version,
        [id, version](const store::State& s) -> std::optional<store::Txn> {
          const v1::Service* svc = s.Get<v1::Service>(id);
          if (!svc) return std::nullopt;
          auto& env = svc->spec().container().env();
          auto it = env.find("VERSION");
          if (it != env.end() && it->second == version) return std::nullopt;
          v1::Service next = *svc;
          *next.mutable_previous_spec() = svc->spec();
          (*next.mutable_spec()->mutable_container()->mutable_env())["VERSION"] = version;
          next.set_spec_version(svc->spec_version() + 1);
          store::Txn t;
          t.Put(next);
          return t;
        },
        false);
  } else {
    // Drop or restore the service's placement constraints.
    std::vector<std::string> constraints = d.constraints;
    bool drop = Chance(0.5);
    AddOp(
        std::string(drop ? "drop" : "restore") + " constraints of " + d.name,
        [id, constraints, drop](const store::State& s) -> std::optional<store::Txn> {
          const v1::Service* svc = s.Get<v1::Service>(id);
          if (!svc) return std::nullopt;
          bool has = svc->spec().placement().constraints_size() > 0;
          if (has != drop) return std::nullopt;
          v1::Service next = *svc;
          *next.mutable_previous_spec() = svc->spec();
          next.mutable_spec()->mutable_placement()->clear_constraints();
          if (!drop) {
            for (const auto& c : constraints)
              next.mutable_spec()->mutable_placement()->add_constraints(c);
          }
          next.set_spec_version(svc->spec_version() + 1);
          store::Txn t;
          t.Put(next);
          return t;
        },
        false);
  }
}

void ClusterSim::AddOp(std::string what,
                       std::function<std::optional<store::Txn>(const store::State&)> build,
                       bool required) {
  ClientOp op;
  op.what = std::move(what);
  op.build = std::move(build);
  op.required = required;
  op.next_at = now_;
  ops_.emplace(next_op_++, std::move(op));
}

void ClusterSim::RunClient() {
  std::vector<int> live;
  for (int m : ManagerHosts()) {
    if (hosts_[m].store) live.push_back(m);
  }
  if (live.empty()) return;
  for (auto& [id, op] : ops_) {
    if (op.done || op.in_flight || now_ < op.next_at || !error_.empty()) continue;
    // The CLI talks to any manager; a follower forwards the write.
    Host& h = hosts_[live[Rand(live.size())]];
    std::optional<store::Txn> txn = op.build(h.store->state());
    if (!txn) {
      op.done = true;
      Trace("client: " + op.what + ": nothing to do on " + h.hostname);
      continue;
    }
    op.in_flight = true;
    uint64_t op_id = id;
    std::string via = h.hostname;
    h.store->Propose(std::move(*txn).Build("client", ManagerNow(h)), [this, op_id, via](
                                                                         Status s, uint64_t index) {
      ClientOp& o = ops_.at(op_id);
      o.in_flight = false;
      if (s.ok()) {
        o.done = true;
        ++stats_.client_writes;
        Trace("client: " + o.what + " via " + via + " applied at " + std::to_string(index));
        return;
      }
      ++o.attempts;
      if (!o.required && o.attempts >= 8) {
        o.done = true;
        Trace("client: " + o.what + " given up: " + s.ToString());
        return;
      }
      o.next_at = now_ + 200 + Rand(300);
    });
    Turn(h);
  }
}

void ClusterSim::Heal() {
  healing_ = true;
  heal_at_ = now_;
  Trace("heal everything");
  for (Host& h : hosts_) h.group = 0;
  heal_partition_at_ = 0;
  drop_ = dup_ = 0;
  for (Host& h : hosts_) {
    if (!h.up) h.restart_at = now_;
  }
}

}  // namespace shoal::sim::cluster
