// The cluster simulation (cluster_simulation.h, docs/simulation.md): managers
// and agents of a whole cluster in one thread, every decision from one seed.
//
// Wiring, as in production:
//   manager = ReplicatedStore (MemoryStorage disk) + manager::ControlLoops;
//             each raft tick: store.Tick(), every 10th tick ControlLoops::Tick,
//             then a "turn": store.Process() + ControlLoops::AfterBatch (what
//             Manager's event loop does); a delivered message is a turn too.
//             Agent RPCs are answered like daemon.cc's DispatcherService: a
//             non-leader says "not the leader; leader at ADDR".
//   agent   = SimAgent (sim_agent.h, agent.cc's protocol) + SimExecutor.
//   client  = transactions proposed on any live manager (followers forward),
//             read-modify-write with optimistic concurrency, retried.

#include <cstdio>
#include <sstream>

#include "cluster_sim_internal.h"

namespace shoal::sim {
namespace cluster {

Status SimTransport::Send(const Message& m) {
  sim_->SendRaft(host_, m);
  return Status::Ok();
}

void ClusterSim::Trace(const std::string& line) {
  std::string s = "[" + std::to_string(now_) + "ms] " + line;
  if (opts_.verbose) fprintf(stderr, "%s\n", s.c_str());
  trace_.push_back(std::move(s));
  if (trace_.size() > 250) trace_.pop_front();
}

void ClusterSim::Fail(const std::string& why) {
  if (!error_.empty()) return;
  std::ostringstream out;
  out << "cluster simulation at " << now_ << "ms: " << why << "\nrecent events:\n";
  for (const auto& t : trace_) out << "  " << t << "\n";
  out << Dump();
  error_ = out.str();
}

// ---- hosts ----

std::vector<int> ClusterSim::ManagerHosts() const {
  std::vector<int> out;
  for (const Host& h : hosts_) {
    if (h.raft_id) out.push_back(h.index);
  }
  return out;
}

Host* ClusterSim::HostOfRaft(uint64_t raft_id) {
  if (raft_id == 0 || raft_id > static_cast<uint64_t>(opts_.managers)) return nullptr;
  return &hosts_[raft_id - 1];
}

Host* ClusterSim::HostOfAddr(const std::string& addr) {
  if (addr.size() < 2 || addr[0] != 'm') return nullptr;
  return HostOfRaft(std::strtoull(addr.c_str() + 1, nullptr, 10));
}

void ClusterSim::StartManager(Host& h) {
  if (h.lose_unsynced) h.disk->LoseUnsyncedWrites();
  h.lose_unsynced = false;
  store::ReplicatedStoreOptions o;
  o.raft.id = h.raft_id;
  for (int i = 1; i <= opts_.managers; ++i) o.raft.peers.push_back(static_cast<uint64_t>(i));
  o.raft.tick_interval = std::chrono::milliseconds(kTickMs);
  o.raft.heartbeat_ticks = heartbeat_ticks_;
  o.raft.election_ticks = election_ticks_;
  o.raft.max_inflight_msgs = 8;
  o.raft.max_size_per_msg = 16 * 1024;
  o.snapshot_every = 100;  // restarted managers catch up by InstallSnapshot too
  o.snapshot_keep = 20;
  o.watch_capacity = 200;
  o.watch_keep = 20;  // as in the daemon: what the loops read goes early
  store::ReplicatedStoreDeps deps;
  deps.raft_storage = h.disk.get();
  deps.transport = h.transport.get();
  deps.random = h.random.get();
  auto s = ReplicatedStore::Open(o, deps);
  if (!s.ok()) return Fail(h.hostname + " failed to open its store: " + s.error().ToString());
  h.store = std::move(s).value();
  h.ids = std::make_unique<TaskIds>(rng_());
  h.loops =
      std::make_unique<manager::ControlLoops>(h.store.get(), dispatcher_options_, h.ids.get());
  h.ticks = 0;
  Turn(h);
}

void ClusterSim::StartAgent(Host& h) {
  SimAgentOptions o;
  o.node_id = h.node_id;
  o.description.set_hostname(h.hostname);
  o.description.set_os("linux");
  o.description.set_arch("x86_64");
  o.description.set_nano_cpus(4'000'000'000);
  o.description.set_memory_bytes(int64_t{8} << 30);
  o.description.set_executor("sim");
  o.report_unstarted = opts_.agent_reports_unstarted;
  // The managers known at join (a manager's own daemon lists itself first).
  if (h.raft_id) o.managers.push_back(AddrOf(h.raft_id));
  for (int m : ManagerHosts()) {
    if (hosts_[m].raft_id != h.raft_id) o.managers.push_back(AddrOf(hosts_[m].raft_id));
  }
  h.agent = std::make_unique<SimAgent>(o, h.executor.get(), &h.agent_db, this,
                                       [this](const std::string& line) { Trace(line); });
}

void ClusterSim::Turn(Host& h) {
  if (!h.store || !error_.empty()) return;
  Status s = h.store->Process();
  if (!s.ok()) return Fail(h.hostname + "'s store stopped: " + s.ToString());
  h.loops->AfterBatch(ManagerNow(h));
}

void ClusterSim::Crash(Host& h, bool lose_tasks) {
  // The processes of the daemon die: agent RPCs in flight to this manager
  // see their connection reset.
  if (h.raft_id) {
    for (Host& o : hosts_) {
      if (!o.agent || o.index == h.index) continue;
      for (const SimAgent::Call& c : o.agent->Outstanding()) {
        if (c.addr != AddrOf(h.raft_id)) continue;
        Packet p;
        p.from = h.index;
        p.to = o.index;
        p.call = c.id;
        p.kind = c.kind == SimAgent::Call::kHeartbeat ? Packet::kHeartbeatReply
                                                      : Packet::kAssignmentsReply;
        p.status = {Code::kUnavailable, "connection reset"};
        Push(p, false, false);
      }
    }
    // The store first: its destructor fails pending proposals, whose
    // callbacks (ControlLoops', the client's) must still find their owners.
    h.store.reset();
    h.loops.reset();
    h.ids.reset();
    ++stats_.manager_crashes;
  }
  h.agent.reset();
  if (lose_tasks) {
    h.executor = std::make_unique<executor::SimExecutor>();
    ++stats_.host_crashes;
  } else {
    ++stats_.agent_crashes;
  }
  h.up = false;
}

void ClusterSim::Restart(Host& h) {
  Trace("restart " + h.hostname);
  h.up = true;
  h.restart_at = 0;
  if (h.raft_id) StartManager(h);
  if (h.joined) StartAgent(h);
}

const Host* ClusterSim::Leader() const {
  const Host* best = nullptr;
  uint64_t best_term = 0;
  for (const Host& h : hosts_) {
    if (!h.store || !h.store->is_leader()) continue;
    uint64_t term = h.store->raft_status().term;
    if (!best || term > best_term) {
      best = &h;
      best_term = term;
    }
  }
  return best;
}

// ---- network ----

void ClusterSim::Push(Packet p, bool droppable, bool duplicable) {
  int copies = duplicable && Chance(dup_) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (droppable && Chance(drop_)) {
      bool request = p.kind == Packet::kHeartbeat || p.kind == Packet::kAssignments;
      // A lost RPC is a black hole (the caller waits out its deadline), or a
      // reset connection (an error comes back at once), for a request either
      // before or after the server received it (then the server still acts
      // on it, and its answer goes nowhere).
      double mode = std::uniform_real_distribution<double>(0, 1)(rng_);
      if (p.kind != Packet::kRaft && request && mode < 0.3 && opts_.dangling_polls) {
        net_.emplace(std::make_pair(now_ + 1 + Rand(max_delay_), seq_++), p);
      }
      if (p.kind != Packet::kRaft && mode < 0.65) {
        Packet e;
        e.kind = request ? (p.kind == Packet::kHeartbeat ? Packet::kHeartbeatReply
                                                         : Packet::kAssignmentsReply)
                         : p.kind;
        e.from = request ? p.to : p.from;
        e.to = request ? p.from : p.to;
        e.call = p.call;
        e.status = {Code::kUnavailable, "connection reset"};
        net_.emplace(std::make_pair(now_ + 1 + Rand(max_delay_), seq_++), std::move(e));
      }
      continue;
    }
    net_.emplace(std::make_pair(now_ + 1 + Rand(max_delay_), seq_++), p);
  }
}

void ClusterSim::SendRaft(int from, const Message& m) {
  ++stats_.raft_messages;
  Host* to = HostOfRaft(m.to());
  if (!to) return;
  Packet p;
  p.kind = Packet::kRaft;
  p.from = from;
  p.to = to->index;
  p.raft = m;
  Push(std::move(p), true, true);
}

void ClusterSim::SendHeartbeat(uint64_t call, const std::string& addr,
                               const v1::HeartbeatRequest& req) {
  ++stats_.rpcs;
  if (stepping_host_ < 0) return Fail("an agent called outside its step");
  Packet p;
  p.kind = Packet::kHeartbeat;
  p.from = stepping_host_;
  Host* to = HostOfAddr(addr);
  if (!to) return;  // an address nobody listens on: the call times out
  p.to = to->index;
  p.call = call;
  p.hb_req = req;
  Push(std::move(p), true, false);
}

void ClusterSim::SendAssignments(uint64_t call, const std::string& addr,
                                 const v1::AssignmentsRequest& req) {
  ++stats_.rpcs;
  if (stepping_host_ < 0) return Fail("an agent called outside its step");
  Packet p;
  p.kind = Packet::kAssignments;
  p.from = stepping_host_;
  Host* to = HostOfAddr(addr);
  if (!to) return;
  p.to = to->index;
  p.call = call;
  p.as_req = req;
  Push(std::move(p), true, false);
}

void ClusterSim::Reply(const Packet& req, Status status) {
  Packet r;
  r.kind = req.kind == Packet::kHeartbeat ? Packet::kHeartbeatReply : Packet::kAssignmentsReply;
  r.from = req.to;
  r.to = req.from;
  r.call = req.call;
  r.status = std::move(status);
  Push(std::move(r), true, false);
}

void ClusterSim::Deliver() {
  while (!net_.empty() && net_.begin()->first.first <= now_ && error_.empty()) {
    Packet p = std::move(net_.begin()->second);
    net_.erase(net_.begin());
    if (!Connected(p.from, p.to)) continue;  // partitioned: a black hole
    Host& to = hosts_[p.to];
    switch (p.kind) {
      case Packet::kRaft:
        if (!to.store) break;
        (void)to.store->Step(p.raft);
        Turn(to);
        break;
      case Packet::kHeartbeat:
      case Packet::kAssignments:
        DeliverRpc(p);
        break;
      case Packet::kHeartbeatReply:
        if (!to.agent) break;
        if (p.status.ok()) {
          to.agent->OnHeartbeatReply(p.call, p.hb_reply, NowNs());
        } else {
          to.agent->OnHeartbeatReply(p.call, p.status, NowNs());
        }
        break;
      case Packet::kAssignmentsReply:
        if (!to.agent) break;
        if (p.status.ok()) {
          to.agent->OnAssignmentsReply(p.call, p.as_reply, NowNs());
        } else {
          to.agent->OnAssignmentsReply(p.call, p.status, NowNs());
        }
        break;
    }
  }
}

// daemon.cc's DispatcherService on the manager's event loop.
void ClusterSim::DeliverRpc(const Packet& p) {
  Host& h = hosts_[p.to];
  if (!h.store) return Reply(p, {Code::kUnavailable, "connection refused"});
  if (!h.store->is_leader()) {
    uint64_t leader = h.store->raft_status().leader;
    return Reply(p, {Code::kFailedPrecondition,
                     "not the leader; leader at " + (leader ? AddrOf(leader) : "")});
  }
  if (p.kind == Packet::kHeartbeat) {
    auto out = h.loops->dispatcher().Heartbeat(h.store->state(), p.hb_req, ManagerNow(h));
    if (!out.ok()) {
      Reply(p, out.error());
    } else {
      Packet r;
      r.kind = Packet::kHeartbeatReply;
      r.from = p.to;
      r.to = p.from;
      r.call = p.call;
      r.hb_reply = std::move(out).value();
      Push(std::move(r), true, false);
    }
  } else {
    int from = p.from, to = p.to;
    uint64_t call = p.call;
    h.loops->dispatcher().Assignments(h.store->state(), p.as_req, ManagerNow(h),
                                      [this, from, to, call](Status s, v1::AssignmentsReply reply) {
                                        Packet r;
                                        r.kind = Packet::kAssignmentsReply;
                                        r.from = to;
                                        r.to = from;
                                        r.call = call;
                                        r.status = std::move(s);
                                        r.as_reply = std::move(reply);
                                        Push(std::move(r), true, false);
                                      });
  }
  Turn(h);
}

// ---- the run ----

ClusterSimResult ClusterSim::Run() {
  ChooseProfile();
  MakeHosts();
  DefineServices();
  stats_.managers = static_cast<uint64_t>(opts_.managers);
  stats_.workers = static_cast<uint64_t>(opts_.workers);
  for (int m : ManagerHosts()) StartManager(hosts_[m]);
  SetupOps();

  const uint64_t fault_start = static_cast<uint64_t>(opts_.setup_ms);
  const uint64_t fault_end = fault_start + static_cast<uint64_t>(opts_.fault_ms);
  const uint64_t end = fault_end + static_cast<uint64_t>(opts_.heal_ms);
  bool converged = false;
  uint64_t stable_since = 0;
  uint64_t stable_index = 0;
  std::string last_why = "never checked";
  for (now_ = 0; now_ < end && error_.empty(); ++now_) {
    if (!healing_ && now_ >= fault_end) Heal();
    if (!healing_ && now_ >= fault_start) InjectFaults();
    for (Host& h : hosts_) {
      if (!h.up && h.restart_at != 0 && now_ >= h.restart_at) Restart(h);
    }
    // An agent starts once its node's Admit committed (join answers then).
    if (now_ % 10 == 0) {
      if (const Host* l = Leader()) {
        for (Host& h : hosts_) {
          if (h.joined || !l->store->state().Get<v1::Node>(h.node_id)) continue;
          h.joined = true;
          if (!h.up) continue;
          Trace("agent " + h.hostname + " joins");
          StartAgent(h);
        }
      }
    }
    RunClient();
    Deliver();
    for (Host& h : hosts_) {
      if (!h.store || (now_ + static_cast<uint64_t>(h.tick_phase)) % kTickMs != 0) continue;
      h.store->Tick();
      // Manager::OnTick: the control loops every 10 raft ticks.
      if (++h.ticks % 10 == 0) h.loops->Tick(ManagerNow(h));
      Turn(h);
    }
    for (Host& h : hosts_) {
      if (!h.agent) continue;
      stepping_host_ = h.index;
      h.agent->Step(NowNs());
      stepping_host_ = -1;
    }
    if (error_.empty()) CheckLeaders();
    if (now_ % 200 == 0 && error_.empty()) CheckStores();
    if (now_ % 200 == 100 && error_.empty()) CheckAgents();
    if (healing_ && now_ % 250 == 0 && error_.empty()) {
      std::string why = CheckFinal();
      const Host* l = Leader();
      uint64_t index = l ? l->store->state().applied_index() : 0;
      if (!why.empty()) {
        stable_since = 0;
        last_why = why;
      } else if (stable_since == 0 || index != stable_index) {
        // Holds now; it must keep holding with nothing written meanwhile.
        stable_since = now_;
        stable_index = index;
        last_why = "converged at " + std::to_string(now_) + "ms but the leader kept writing";
      } else if (now_ - stable_since >= 3000) {
        converged = true;
        stats_.converge_ms = stable_since - heal_at_;
        stats_.stuck_retired = stuck_retired_;
        break;
      }
    }
  }
  stats_.simulated_ms = now_;
  if (error_.empty() && !converged) {
    Fail("the cluster did not converge within " + std::to_string(opts_.heal_ms) +
         "ms of healing: " + last_why);
  }
  if (error_.empty()) CheckStores();
  stats_.tasks_created = task_ids_seen_.size();
  // Callbacks capture `this`: stop every store (then its loops) before the
  // simulation goes.
  for (Host& h : hosts_) {
    h.agent.reset();
    h.store.reset();
    h.loops.reset();
  }
  ClusterSimResult r;
  r.ok = error_.empty();
  r.error = error_;
  r.stats = stats_;
  return r;
}

}  // namespace cluster

ClusterSimResult RunClusterSimulation(const ClusterSimOptions& options) {
  return cluster::ClusterSim(options).Run();
}

}  // namespace shoal::sim
