#include "simulation.h"

#include <algorithm>
#include <sstream>

#include "raft_sim_internal.h"

namespace shoal::sim {
namespace raft_sim {

void Simulation::Trace(const std::string& line) {
  std::string s = "[" + std::to_string(now_) + "ms] " + line;
  if (opts_.verbose) fprintf(stderr, "%s\n", s.c_str());
  trace_.push_back(std::move(s));
  if (trace_.size() > 60) trace_.pop_front();
}

void Simulation::Fail(const std::string& why) {
  if (!error_.empty()) return;
  std::ostringstream out;
  out << "at " << now_ << "ms: " << why << "\nrecent events:\n";
  for (const auto& t : trace_) out << "  " << t << "\n";
  error_ = out.str();
}

void Simulation::ChooseProfile() {
  const double drops[] = {0, 0.01, 0.05, 0.15};
  const double dups[] = {0, 0.02, 0.1};
  const uint64_t delays[] = {2, 10, 40};
  drop_ = drops[Rand(4)];
  dup_ = dups[Rand(3)];
  max_delay_ = delays[Rand(3)];
  partition_rate_ = Chance(0.7) ? 1.0 / 1500 : 0;
  crash_rate_ = Chance(0.7) ? 1.0 / 1500 : 0;
  membership_rate_ = Chance(0.5) ? 1.0 / 1000 : 0;
  std::ostringstream p;
  p << "profile drop=" << drop_ << " dup=" << dup_ << " max_delay=" << max_delay_
    << "ms partitions=" << (partition_rate_ > 0) << " crashes=" << (crash_rate_ > 0)
    << " membership=" << (membership_rate_ > 0);
  Trace(p.str());
}

raft::Config Simulation::NodeConfig(uint64_t id) const {
  raft::Config c;
  c.id = id;
  if (nodes_.at(id).founder) {
    for (const auto& [pid, n] : nodes_) {
      if (n.founder) c.peers.push_back(pid);
    }
  }
  c.tick_interval = std::chrono::milliseconds(kTickMs);
  // Compressed timings keep each seed's simulated time short; the ratios
  // (election >> heartbeat >> network delay) are what the protocol relies on.
  c.heartbeat_ticks = 5;
  c.election_ticks = 25;
  c.max_inflight_msgs = 4;        // small, to exercise flow control
  c.max_size_per_msg = 2 * 1024;  // small, to split batches
  return c;
}

void Simulation::Start(SimNode& n) {
  if (n.lose_unsynced) n.disk->LoseUnsyncedWrites();
  auto state = n.disk->Load();
  if (!state.ok()) return Fail("load failed: " + state.error().ToString());
  auto sm = KvMachine::Parse(state->snapshot->data());
  if (!sm) return Fail("undecodable snapshot on member " + std::to_string(n.id));
  n.sm = *sm;
  raft::Config c = NodeConfig(n.id);
  c.applied = n.sm.applied();
  auto created = raft::RaftNode::Create(c, std::move(state).value(), n.random.get());
  if (!created.ok()) return Fail("restart failed: " + created.error().ToString());
  n.raft = std::move(created).value();
  n.restart_at = 0;
  Drive(n);
}

void Simulation::Crash(SimNode& n) {
  n.raft.reset();
  n.reads.clear();
  // Clients of this member lose their connection: their writes are in doubt.
  for (auto it = pending_writes_.begin(); it != pending_writes_.end();) {
    it = it->second == n.id ? pending_writes_.erase(it) : std::next(it);
  }
  ++stats_.crashes;
}

void Simulation::Drive(SimNode& n) {
  while (n.raft && n.raft->HasReady() && error_.empty()) {
    Ready rd = n.raft->GetReady();
    // Persist, then send: the order every driver must keep.
    if (Status s = n.disk->Save(rd.ToWrite()); !s.ok()) return Fail(s.ToString());
    for (const auto& m : rd.messages) Send(m);
    if (rd.snapshot) {
      auto sm = KvMachine::Parse(rd.snapshot->data());
      if (!sm) return Fail("undecodable snapshot received");
      auto h = hash_at_.find(sm->applied());
      if (h != hash_at_.end() && h->second != sm->hash()) {
        return Fail("snapshot at " + std::to_string(sm->applied()) + " diverges");
      }
      n.sm = *sm;
      ++stats_.snapshots_installed;
    }
    for (const auto& e : rd.committed_entries) Apply(n, e);
    for (const auto& rs : rd.read_states) {
      auto it = n.reads.find(rs.context);
      if (it == n.reads.end()) continue;
      if (rs.index < it->second.floor) {
        return Fail("stale read " + rs.context + " on " + std::to_string(n.id) + ": index " +
                    std::to_string(rs.index) + " < acknowledged " +
                    std::to_string(it->second.floor));
      }
      it->second.index = rs.index;
      it->second.has_index = true;
    }
    n.raft->Advance(rd);
    ServeReads(n);
    auto st = n.raft->status();
    if (n.sm.applied() == st.applied && st.applied >= st.first_index + 150) {
      uint64_t compact = st.applied - 40;
      auto snap = n.raft->CreateSnapshot(n.sm.Serialize(), compact);
      if (!snap.ok()) return Fail("snapshot: " + snap.error().ToString());
      if (Status s = n.disk->SaveSnapshot(**snap, compact); !s.ok()) return Fail(s.ToString());
    }
  }
}

void Simulation::CheckEntry(uint64_t node, const Entry& e) {
  auto [it, inserted] = committed_.emplace(e.index(), EntryRef{e.term(), e.data()});
  if (!inserted && (it->second.term != e.term() || it->second.data != e.data())) {
    Fail("member " + std::to_string(node) + " holds a different committed entry at " +
         std::to_string(e.index()) + " (term " + std::to_string(e.term()) + " vs " +
         std::to_string(it->second.term) + ")");
  }
}

void Simulation::Apply(SimNode& n, const Entry& e) {
  if (e.index() != n.sm.applied() + 1) {
    return Fail("member " + std::to_string(n.id) + " applies " + std::to_string(e.index()) +
                " after " + std::to_string(n.sm.applied()));
  }
  CheckEntry(n.id, e);
  n.sm.Apply(e);
  auto [h, inserted] = hash_at_.emplace(e.index(), n.sm.hash());
  if (!inserted && h->second != n.sm.hash()) {
    return Fail("state machines diverge at " + std::to_string(e.index()));
  }
  if (auto put = KvMachine::DecodePut(e.data())) {
    auto p = pending_writes_.find(put->write_id);
    if (p != pending_writes_.end() && p->second == n.id) {
      acked_[put->write_id] = e.index();
      max_observed_ = std::max(max_observed_, e.index());
      pending_writes_.erase(p);
      ++stats_.writes_acked;
    }
  }
}

void Simulation::ServeReads(SimNode& n) {
  for (auto it = n.reads.begin(); it != n.reads.end();) {
    if (!it->second.has_index || n.sm.applied() < it->second.index) {
      ++it;
      continue;
    }
    // The state served includes everything up to applied, which is committed:
    // later reads must not observe anything older.
    max_observed_ = std::max(max_observed_, n.sm.applied());
    ++stats_.reads_served;
    it = n.reads.erase(it);
  }
}

void Simulation::Send(const Message& m) {
  ++stats_.messages;
  int copies = Chance(dup_) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (Chance(drop_)) continue;
    net_.push(InFlight{now_ + 1 + Rand(max_delay_), seq_++, m});
  }
}

void Simulation::Deliver() {
  while (!net_.empty() && net_.top().at <= now_ && error_.empty()) {
    Message m = net_.top().msg;
    net_.pop();
    auto it = nodes_.find(m.to());
    if (it == nodes_.end() || !it->second.raft || !Connected(m.from(), m.to())) continue;
    (void)it->second.raft->Step(m);
    Drive(it->second);
  }
}

std::vector<uint64_t> Simulation::LiveIds() const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (n.raft) out.push_back(id);
  }
  return out;
}

uint64_t Simulation::LeaderId() const {
  uint64_t best = 0;
  uint64_t best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (!n.raft) continue;
    auto st = n.raft->status();
    if (st.role == Role::kLeader && st.term >= best_term) {
      best = id;
      best_term = st.term;
    }
  }
  return best;
}

void Simulation::InjectFaults() {
  if (heal_partition_at_ != 0 && now_ >= heal_partition_at_) {
    for (auto& [id, g] : group_) g = 0;
    heal_partition_at_ = 0;
    Trace("partition healed");
  }
  if (heal_partition_at_ == 0 && Chance(partition_rate_)) {
    std::ostringstream desc;
    if (Chance(0.5)) {
      uint64_t victim = LiveIds().empty() ? 1 : LeaderId();
      if (victim == 0 || Chance(0.5)) victim = 1 + Rand(nodes_.size());
      group_[victim] = 1;
      desc << "isolate " << victim;
    } else {
      desc << "split:";
      for (auto& [id, g] : group_) {
        g = static_cast<int>(Rand(2));
        desc << ' ' << id << "->" << g;
      }
    }
    heal_partition_at_ = now_ + 200 + Rand(1500);
    ++stats_.partitions;
    Trace(desc.str());
  }
  size_t down = nodes_.size() - LiveIds().size();
  if (down < (nodes_.size() - 1) / 2 + 1 && Chance(crash_rate_)) {
    auto live = LiveIds();
    uint64_t victim = LeaderId();
    if (victim == 0 || Chance(0.5)) victim = live[Rand(live.size())];
    SimNode& n = nodes_.at(victim);
    Crash(n);
    n.restart_at = now_ + 50 + Rand(1500);
    n.lose_unsynced = Chance(0.5);
    Trace("crash " + std::to_string(victim) + (n.lose_unsynced ? " (losing unsynced writes)" : ""));
  }
}

void Simulation::ClientOps() {
  auto live = LiveIds();
  if (live.empty()) return;
  if (Chance(1.0 / 8)) {
    SimNode& n = nodes_.at(live[Rand(live.size())]);
    std::string id = "w" + std::to_string(next_write_++);
    std::string key = "k" + std::to_string(Rand(kKeys));
    if (n.raft->Propose(KvMachine::EncodePut(key, id)).ok()) pending_writes_[id] = n.id;
    Drive(n);
  }
  if (Chance(1.0 / 12)) {
    SimNode& n = nodes_.at(live[Rand(live.size())]);
    std::string ctx = "r" + std::to_string(next_read_++);
    ReadOp op;
    op.key = "k" + std::to_string(Rand(kKeys));
    op.floor = max_observed_;
    if (n.raft->ReadIndex(ctx).ok()) n.reads[ctx] = op;
    Drive(n);
  }
}

SimNode& Simulation::NewNode(uint64_t id, bool founder) {
  SimNode& n = nodes_[id];
  n.id = id;
  n.founder = founder;
  n.disk = std::make_unique<raft::MemoryStorage>();
  n.random = std::make_unique<SimRandom>(rng_());
  n.tick_phase = static_cast<int>(Rand(kTickMs));
  group_[id] = 0;
  return n;
}

std::vector<uint64_t> Simulation::Voters() const {
  uint64_t leader = LeaderId();
  if (leader == 0) return {};
  raft::NodeStatus st = nodes_.at(leader).raft->status();
  const auto& v = st.conf_state.voters();
  return {v.begin(), v.end()};
}

void Simulation::ChangeMembership() {
  if (!Chance(membership_rate_)) return;
  uint64_t leader = LeaderId();
  if (leader == 0) return;
  SimNode& l = nodes_.at(leader);
  auto voters = Voters();
  if (Chance(0.3)) {
    uint64_t to = voters[Rand(voters.size())];
    Status s = l.raft->TransferLeadership(to);
    Trace("transfer leadership " + std::to_string(leader) + " -> " + std::to_string(to) +
          (s.ok() ? "" : " refused: " + s.message()));
    Drive(l);
    return;
  }
  raft::ConfChange cc;
  if (voters.size() >= static_cast<size_t>(opts_.nodes)) {
    // Remove anyone, the leader included. The removed member keeps running and
    // campaigning: it must not disrupt the group.
    cc.set_type(shoal::v1::CONF_CHANGE_REMOVE_VOTER);
    cc.set_node_id(voters[Rand(voters.size())]);
  } else {
    uint64_t id = next_id_++;
    Start(NewNode(id, /*founder=*/false));
    cc.set_type(shoal::v1::CONF_CHANGE_ADD_VOTER);
    cc.set_node_id(id);
  }
  Status s = l.raft->ProposeConfChange(cc);
  if (s.ok()) ++stats_.membership_changes;
  Trace(std::string(cc.type() == shoal::v1::CONF_CHANGE_ADD_VOTER ? "add " : "remove ") +
        std::to_string(cc.node_id()) + (s.ok() ? "" : " refused: " + s.message()));
  Drive(l);
}

SimResult Simulation::Run() {
  ChooseProfile();
  for (int i = 1; i <= opts_.nodes; ++i) NewNode(i, /*founder=*/true);
  next_id_ = opts_.nodes + 1;
  for (auto& [id, n] : nodes_) Start(n);

  const uint64_t end = opts_.workload_ms + opts_.heal_ms;
  bool converged = false;
  for (now_ = 0; now_ < end && error_.empty(); ++now_) {
    if (!healing_ && now_ >= static_cast<uint64_t>(opts_.workload_ms)) {
      healing_ = true;
      Trace("heal everything");
      for (auto& [id, g] : group_) g = 0;
      heal_partition_at_ = 0;
      drop_ = dup_ = 0;
      for (auto& [id, n] : nodes_) {
        if (!n.raft) n.restart_at = now_;
      }
    }
    if (!healing_) {
      InjectFaults();
      ClientOps();
      ChangeMembership();
    }
    for (auto& [id, n] : nodes_) {
      if (!n.raft && n.restart_at != 0 && now_ >= n.restart_at) {
        Trace("restart " + std::to_string(id));
        Start(n);
      }
    }
    Deliver();
    for (auto& [id, n] : nodes_) {
      if (n.raft && (now_ + n.tick_phase) % kTickMs == 0) {
        n.raft->Tick();
        Drive(n);
      }
    }
    CheckLeaders();
    if (now_ % 200 == 0) CheckLogs();
    if (healing_ && now_ % 10 == 0 && Converged()) {
      converged = true;
      break;
    }
  }
  if (error_.empty() && !converged) {
    std::ostringstream d;
    d << "the group did not converge after healing; final write '" << final_write_ << "'";
    for (const auto& [id, n] : nodes_) {
      d << "\n  member " << id;
      if (!n.raft) {
        d << " down";
        continue;
      }
      auto st = n.raft->status();
      d << ": " << raft::RoleName(st.role) << " term " << st.term << " leader " << st.leader
        << " log [" << st.first_index << ", " << st.last_index << "] commit " << st.commit
        << " applied " << st.applied << " sm " << n.sm.applied();
    }
    Fail(d.str());
  }
  if (error_.empty()) FinalChecks();
  SimResult r;
  r.ok = error_.empty();
  r.error = error_;
  r.stats = stats_;
  return r;
}

}  // namespace raft_sim

SimResult RunSimulation(const SimOptions& options) { return raft_sim::Simulation(options).Run(); }

}  // namespace shoal::sim
