// The deterministic simulation again, one level up: every member is a whole
// ReplicatedStore (as the daemon runs it), and membership changes go through
// the store's API the way `shoal cluster join/leave` and a clean shutdown use
// it: ProposeConfChange, then start the joiner with an empty disk and no
// peers; StepDown; a member that reports removed() is stopped. Same faults and
// invariants as simulation.cc, checked on the store's own results.

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "shoal/raft/memory_storage.h"
#include "shoal/store/replicated_store.h"
#include "shoal/store/txn.h"
#include "simulation.h"
#include "store_sim_member.h"

namespace shoal::sim {
// Named rather than anonymous: store_sim_member.h declares its pieces here.
namespace store_sim {

using raft::Message;
using raft::Role;
using store::ReplicatedStore;

class StoreSim {
 public:
  explicit StoreSim(const SimOptions& o) : opts_(o), rng_(o.seed ^ 0x5eed5) {}
  SimResult Run();
  void Send(const Message& m);

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  void Trace(const std::string& line);
  void Fail(const std::string& why);

  Member& NewMember(uint64_t id, bool founder);
  void Start(Member& m);
  void Crash(Member& m);
  void Process(Member& m);
  void Deliver();
  void InjectFaults();
  void ClientOps();
  void ChangeMembership();
  void StopRemoved();
  void Check();
  void CheckLogs();
  bool Converged();
  void FinalChecks();
  uint64_t LeaderId() const;
  std::vector<uint64_t> LiveIds() const;
  std::vector<uint64_t> VotersOf(uint64_t id) const;

  SimOptions opts_;
  std::mt19937_64 rng_;
  uint64_t now_ = 0;
  bool healing_ = false;
  double drop_ = 0;
  double dup_ = 0;
  uint64_t max_delay_ = 1;
  double crash_rate_ = 0;
  double partition_rate_ = 0;
  double membership_rate_ = 0;
  uint64_t next_id_ = 0;

  std::map<uint64_t, Member> members_;
  std::set<uint64_t> isolated_;
  uint64_t heal_partition_at_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> net_;
  uint64_t seq_ = 0;
  std::vector<uint64_t> to_start_;  // joiners whose addition the leader reported

  std::map<uint64_t, uint64_t> leader_of_term_;
  std::map<uint64_t, std::pair<uint64_t, std::string>> committed_;  // index -> term, data
  std::map<uint64_t, uint64_t> state_hash_at_;                      // applied index -> hash
  std::map<std::string, uint64_t> acked_;                           // write id -> index
  std::map<std::string, std::string> acked_names_;                  // name -> write id
  std::set<uint64_t> removed_ids_;  // union of every member's applied ConfState.removed
  std::set<uint64_t> removal_acked_;
  uint64_t max_observed_ = 0;
  std::string last_acked_;  // the acknowledged write with the highest index
  uint64_t next_write_ = 0;
  bool change_in_flight_ = false;
  std::string final_write_;
  uint64_t final_write_at_ = 0;

  std::deque<std::string> trace_;
  std::string error_;
  SimStats stats_;
};

Status SimTransport::Send(const Message& m) {
  sim_->Send(m);
  return Status::Ok();
}

void StoreSim::Trace(const std::string& line) {
  std::string s = "[" + std::to_string(now_) + "ms] " + line;
  if (opts_.verbose) fprintf(stderr, "%s\n", s.c_str());
  trace_.push_back(std::move(s));
  if (trace_.size() > 60) trace_.pop_front();
}

void StoreSim::Fail(const std::string& why) {
  if (!error_.empty()) return;
  std::ostringstream out;
  out << "store simulation at " << now_ << "ms: " << why << "\nrecent events:\n";
  for (const auto& t : trace_) out << "  " << t << "\n";
  error_ = out.str();
}

Member& StoreSim::NewMember(uint64_t id, bool founder) {
  Member& m = members_[id];
  m.id = id;
  m.founder = founder;
  m.disk = std::make_unique<raft::MemoryStorage>();
  m.random = std::make_unique<Random>(rng_());
  m.transport = std::make_unique<SimTransport>(this);
  m.tick_phase = static_cast<int>(Rand(kTickMs));
  return m;
}

void StoreSim::Start(Member& m) {
  if (m.lose_unsynced) m.disk->LoseUnsyncedWrites();
  store::ReplicatedStoreOptions o;
  o.raft.id = m.id;
  if (m.founder) {
    for (int i = 1; i <= opts_.nodes; ++i) o.raft.peers.push_back(static_cast<uint64_t>(i));
  }
  o.raft.tick_interval = std::chrono::milliseconds(kTickMs);
  o.raft.heartbeat_ticks = 5;
  o.raft.election_ticks = 25;
  o.raft.max_inflight_msgs = 4;
  o.raft.max_size_per_msg = 4 * 1024;
  o.snapshot_every = 40;  // joiners and laggards catch up by snapshot too
  o.snapshot_keep = 10;
  o.watch_capacity = 100;
  // Batch entries of several commands, small ones split by size, and members
  // that write one entry per command (as builds before batching did) mixed
  // in one group.
  const size_t batch_bytes[] = {0, 512, 64 << 10, 64 << 10};
  o.batch_max_bytes = batch_bytes[Rand(4)];
  store::ReplicatedStoreDeps deps;
  deps.raft_storage = m.disk.get();
  deps.transport = m.transport.get();
  deps.random = m.random.get();
  auto s = ReplicatedStore::Open(o, deps);
  if (!s.ok())
    return Fail("member " + std::to_string(m.id) + " failed to open: " + s.error().ToString());
  m.store = std::move(s).value();
  m.restart_at = 0;
  Process(m);
}

void StoreSim::Crash(Member& m) {
  m.store.reset();  // fails its pending callbacks: the clients' outcomes are unknown
  ++stats_.crashes;
}

void StoreSim::Process(Member& m) {
  if (!m.store || !error_.empty()) return;
  Status s = m.store->Process();
  if (!s.ok()) Fail("member " + std::to_string(m.id) + " stopped: " + s.ToString());
}

void StoreSim::Send(const Message& m) {
  ++stats_.messages;
  int copies = Chance(dup_) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (Chance(drop_)) continue;
    net_.push(InFlight{now_ + 1 + Rand(max_delay_), seq_++, m});
  }
}

void StoreSim::Deliver() {
  while (!net_.empty() && net_.top().at <= now_ && error_.empty()) {
    Message m = net_.top().msg;
    net_.pop();
    auto it = members_.find(m.to());
    if (it == members_.end() || !it->second.store) continue;
    if (isolated_.count(m.from()) || isolated_.count(m.to())) continue;
    // Counted when delivered: a stale one is refused, which is rare.
    if (m.type() == shoal::v1::MSG_SNAP) ++stats_.snapshots_installed;
    (void)it->second.store->Step(m);
    Process(it->second);
  }
}

std::vector<uint64_t> StoreSim::LiveIds() const {
  std::vector<uint64_t> out;
  for (const auto& [id, m] : members_) {
    if (m.store) out.push_back(id);
  }
  return out;
}

uint64_t StoreSim::LeaderId() const {
  uint64_t best = 0;
  uint64_t best_term = 0;
  for (const auto& [id, m] : members_) {
    if (!m.store || !m.store->is_leader()) continue;
    uint64_t term = m.store->raft_status().term;
    if (best == 0 || term > best_term) {
      best = id;
      best_term = term;
    }
  }
  return best;
}

std::vector<uint64_t> StoreSim::VotersOf(uint64_t id) const {
  if (id == 0 || !members_.at(id).store) return {};
  return members_.at(id).store->voters();
}

void StoreSim::InjectFaults() {
  if (heal_partition_at_ != 0 && now_ >= heal_partition_at_) {
    isolated_.clear();
    heal_partition_at_ = 0;
    Trace("partition healed");
  }
  auto live = LiveIds();
  if (live.empty()) return;
  if (heal_partition_at_ == 0 && Chance(partition_rate_)) {
    uint64_t victim = LeaderId();
    if (victim == 0 || Chance(0.5)) victim = live[Rand(live.size())];
    isolated_.insert(victim);
    heal_partition_at_ = now_ + 200 + Rand(1500);
    ++stats_.partitions;
    Trace("isolate " + std::to_string(victim));
  }
  if (!Chance(crash_rate_)) return;
  // Keep a majority of the current voters up, so the group can make progress.
  auto voters = VotersOf(LeaderId());
  size_t down = 0;
  for (uint64_t v : voters) {
    if (!members_.count(v) || !members_.at(v).store) ++down;
  }
  if (voters.empty() || down + 1 > (voters.size() - 1) / 2) return;
  uint64_t victim = LeaderId();
  if (victim == 0 || Chance(0.5)) victim = live[Rand(live.size())];
  Member& m = members_.at(victim);
  Crash(m);
  m.restart_at = now_ + 50 + Rand(1500);
  m.lose_unsynced = Chance(0.5);
  Trace("crash " + std::to_string(victim) + (m.lose_unsynced ? " (losing unsynced writes)" : ""));
}

void StoreSim::ClientOps() {
  auto live = LiveIds();
  if (live.empty()) return;
  // As many writes as before batching (one every 8 ms on average), but
  // fewer turns: a turn holds 1.75 writes on average.
  if (Chance(1.0 / 14)) {
    Member& m = members_.at(live[Rand(live.size())]);
    // Several writes in one turn go into one batch entry (or a few). Some
    // repeat an earlier write of the turn (same id, or same name under a new
    // id): those must be refused, each on its own, and never acknowledged
    // beside the one they repeat.
    int n = Chance(0.3) ? 2 + static_cast<int>(Rand(4)) : 1;
    std::vector<std::pair<std::string, std::string>> burst;  // id, name
    for (int i = 0; i < n; ++i) {
      std::string id = "w" + std::to_string(next_write_++);
      std::string name = id;
      if (!burst.empty() && Chance(0.25)) {
        const auto& earlier = burst[Rand(burst.size())];
        name = earlier.second;
        if (Chance(0.5)) id = earlier.first;
      }
      burst.emplace_back(id, name);
      v1::Config c;
      c.mutable_meta()->set_id(id);
      c.mutable_spec()->set_name(name);
      c.mutable_spec()->set_data(std::string(Rand(200), 'x'));
      store::Txn txn;
      txn.Put(c);
      if (n > 1) ++stats_.burst_writes;
      m.store->Propose(std::move(txn).Build("sim", 1), [this, id, name](Status s, uint64_t index) {
        if (s.code() == Code::kAlreadyExists) ++stats_.writes_refused;
        if (!s.ok()) return;
        if (acked_.count(id)) return Fail("write " + id + " was acknowledged twice");
        auto [holder, fresh] = acked_names_.emplace(name, id);
        if (!fresh && holder->second != id) {
          return Fail("name " + name + " acknowledged for " + holder->second + " and " + id);
        }
        acked_[id] = index;
        ++stats_.writes_acked;
        if (index > max_observed_) last_acked_ = id;
        max_observed_ = std::max(max_observed_, index);
      });
    }
    Process(m);
  }
  if (Chance(1.0 / 12)) {
    Member& m = members_.at(live[Rand(live.size())]);
    uint64_t floor = max_observed_;
    std::string must_see = last_acked_;
    uint64_t id = m.id;
    m.store->Read([this, floor, must_see, id](Status s, uint64_t index) {
      if (!s.ok()) return;
      const ReplicatedStore& st = *members_.at(id).store;
      if (index < floor) {
        return Fail("stale read on " + std::to_string(id) + ": read index " +
                    std::to_string(index) + " < acknowledged " + std::to_string(floor));
      }
      if (!must_see.empty() && st.state().Get<v1::Config>(must_see) == nullptr) {
        return Fail("read on " + std::to_string(id) + " misses acknowledged write " + must_see);
      }
      max_observed_ = std::max(max_observed_, st.state().applied_index());
      ++stats_.reads_served;
    });
    Process(m);
  }
}

void StoreSim::ChangeMembership() {
  if (change_in_flight_ || !Chance(membership_rate_)) return;
  uint64_t leader = LeaderId();
  if (leader == 0) return;
  Member& l = members_.at(leader);
  auto voters = l.store->voters();
  if (Chance(0.25)) {
    Status s = l.store->StepDown();
    Trace("step down " + std::to_string(leader) + (s.ok() ? "" : ": " + s.message()));
    Process(l);
    return;
  }
  raft::ConfChange cc;
  size_t n = static_cast<size_t>(opts_.nodes);
  bool add = voters.size() < n || (voters.size() == n && Chance(0.5));
  if (add && !removed_ids_.empty() && Chance(0.1)) {
    // Reusing a removed id must be refused, whatever else happens.
    cc.set_node_id(*std::next(removed_ids_.begin(), static_cast<long>(Rand(removed_ids_.size()))));
  } else if (add) {
    cc.set_node_id(next_id_++);
  } else {
    cc.set_node_id(voters[Rand(voters.size())]);  // the leader included
  }
  cc.set_type(add ? shoal::v1::CONF_CHANGE_ADD_VOTER : shoal::v1::CONF_CHANGE_REMOVE_VOTER);
  uint64_t target = cc.node_id();
  bool reuse = add && removed_ids_.count(target) > 0;
  Trace(std::string(add ? "add " : "remove ") + std::to_string(target) + " via " +
        std::to_string(leader));
  change_in_flight_ = true;
  l.store->ProposeConfChange(cc, [this, add, target, reuse, leader](Status s, uint64_t index) {
    change_in_flight_ = false;
    Trace(std::string(add ? "add " : "remove ") + std::to_string(target) + ": " +
          (s.ok() ? "applied at " + std::to_string(index) : s.ToString()));
    if (reuse && s.ok()) return Fail("removed id " + std::to_string(target) + " was added again");
    if (s.ok()) {
      ++stats_.membership_changes;
      auto v = members_.at(leader).store->voters();
      bool in = std::find(v.begin(), v.end(), target) != v.end();
      if (in != add) return Fail("an applied change is not in voters() of its proposer");
      if (!add) removal_acked_.insert(target);
    }
    // The daemon answers the joiner on Ok; on an unknown outcome the change
    // may still commit, so the joiner starts too (idle if it never does).
    if (add && !reuse && (s.ok() || s.code() == Code::kUnavailable)) to_start_.push_back(target);
  });
  Process(l);
}

void StoreSim::StopRemoved() {
  for (auto& [id, m] : members_) {
    if (!m.store || m.stopped || !m.store->removed()) continue;
    // Check() has just gathered every member's removed ids.
    if (!removed_ids_.count(id)) {
      return Fail("member " + std::to_string(id) +
                  " reports removed(), but no member applied a change removing it");
    }
    if (m.stop_at == 0) {
      m.stop_at = now_ + Rand(500);
      m.keep_running = Chance(0.3);
      Trace("member " + std::to_string(id) + " reports removed" +
            (m.keep_running ? " (left running)" : ""));
    }
    if (!m.keep_running && now_ >= m.stop_at) {
      m.store.reset();
      m.stopped = true;
      Trace("stop removed member " + std::to_string(id));
    }
  }
}

void StoreSim::Check() {
  for (const auto& [id, m] : members_) {
    if (!m.store) continue;
    auto st = m.store->raft_status();
    removed_ids_.insert(st.conf_state.removed().begin(), st.conf_state.removed().end());
    if (st.role == Role::kLeader) {
      auto [it, inserted] = leader_of_term_.emplace(st.term, id);
      if (inserted) {
        ++stats_.elections;
        Trace("leader " + std::to_string(id) + " term " + std::to_string(st.term));
      } else if (it->second != id) {
        return Fail("two leaders in term " + std::to_string(st.term) + ": " +
                    std::to_string(it->second) + " and " + std::to_string(id));
      }
    }
    if (m.store->removed() && (st.role == Role::kCandidate || st.role == Role::kPreCandidate)) {
      return Fail("removed member " + std::to_string(id) + " campaigns");
    }
  }
}

void StoreSim::CheckLogs() {
  for (auto& [id, m] : members_) {
    if (!m.store) continue;
    auto st = m.store->raft_status();
    auto disk = m.disk->Load();
    if (!disk.ok()) return Fail("load: " + disk.error().ToString());
    for (const auto& e : disk->entries) {
      if (e.index() > st.commit || e.index() <= disk->snapshot->metadata().index()) continue;
      auto [it, inserted] = committed_.emplace(e.index(), std::make_pair(e.term(), e.data()));
      if (!inserted && (it->second.first != e.term() || it->second.second != e.data())) {
        return Fail("member " + std::to_string(id) + " holds a different committed entry at " +
                    std::to_string(e.index()));
      }
    }
    // Same applied index, same state: a hash of the whole applied state.
    const store::State& s = m.store->state();
    uint64_t h = Fnv(s.ToSnapshot().SerializeAsString());
    auto [it, inserted] = state_hash_at_.emplace(s.applied_index(), h);
    if (!inserted && it->second != h) {
      return Fail("states diverge at index " + std::to_string(s.applied_index()) + " (member " +
                  std::to_string(id) + ")");
    }
  }
}

bool StoreSim::Converged() {
  uint64_t leader = LeaderId();
  if (leader == 0) return false;
  Member& l = members_.at(leader);
  if (final_write_.empty()) {
    final_write_ = "final" + std::to_string(next_write_++);
    final_write_at_ = now_;
    v1::Config c;
    c.mutable_meta()->set_id(final_write_);
    c.mutable_spec()->set_name(final_write_);
    store::Txn txn;
    txn.Put(c);
    std::string id = final_write_;
    l.store->Propose(std::move(txn).Build("sim", 1), [this, id](Status s, uint64_t index) {
      if (s.ok()) acked_[id] = index;
    });
    Process(l);
    return false;
  }
  if (!acked_.count(final_write_)) {
    if (now_ > final_write_at_ + 1000) final_write_.clear();  // lost with a leader: retry
    return false;
  }
  uint64_t commit = l.store->raft_status().commit;
  for (uint64_t id : l.store->voters()) {
    const Member& m = members_.at(id);
    if (!m.store || m.store->state().applied_index() != commit) return false;
  }
  return true;
}

void StoreSim::FinalChecks() {
  CheckLogs();
  uint64_t leader = LeaderId();
  const Member* first = nullptr;
  for (uint64_t id : members_.at(leader).store->voters()) {
    const Member& m = members_.at(id);
    if (m.store->removed()) return Fail("voter " + std::to_string(id) + " reports removed()");
    for (const auto& [w, index] : acked_) {
      if (!m.store->state().Get<v1::Config>(w)) {
        return Fail("acknowledged write " + w + " (index " + std::to_string(index) +
                    ") missing on member " + std::to_string(id));
      }
    }
    if (first && first->store->state().ToSnapshot().SerializeAsString() !=
                     m.store->state().ToSnapshot().SerializeAsString()) {
      return Fail("states differ between members " + std::to_string(first->id) + " and " +
                  std::to_string(id));
    }
    first = &m;
  }
  for (uint64_t id : removal_acked_) {
    auto v = members_.at(leader).store->voters();
    if (std::find(v.begin(), v.end(), id) != v.end()) {
      return Fail("member " + std::to_string(id) + " is a voter again after its removal");
    }
  }
  stats_.final_index = first ? first->store->state().applied_index() : 0;
}

SimResult StoreSim::Run() {
  const double drops[] = {0, 0.01, 0.05, 0.15};
  const uint64_t delays[] = {2, 10, 40};
  drop_ = drops[Rand(4)];
  dup_ = Chance(0.3) ? 0.05 : 0;
  max_delay_ = delays[Rand(3)];
  partition_rate_ = Chance(0.5) ? 1.0 / 1500 : 0;
  crash_rate_ = Chance(0.6) ? 1.0 / 1000 : 0;
  membership_rate_ = Chance(0.7) ? 1.0 / 300 : 0;
  std::ostringstream p;
  p << "store profile drop=" << drop_ << " dup=" << dup_ << " max_delay=" << max_delay_
    << "ms partitions=" << (partition_rate_ > 0) << " crashes=" << (crash_rate_ > 0)
    << " membership=" << (membership_rate_ > 0);
  Trace(p.str());

  for (int i = 1; i <= opts_.nodes; ++i) NewMember(static_cast<uint64_t>(i), true);
  next_id_ = static_cast<uint64_t>(opts_.nodes) + 1;
  for (auto& [id, m] : members_) Start(m);

  const uint64_t end = static_cast<uint64_t>(opts_.workload_ms + opts_.heal_ms);
  bool converged = false;
  for (now_ = 0; now_ < end && error_.empty(); ++now_) {
    if (!healing_ && now_ >= static_cast<uint64_t>(opts_.workload_ms)) {
      healing_ = true;
      Trace("heal everything");
      isolated_.clear();
      heal_partition_at_ = 0;
      drop_ = dup_ = 0;
      for (auto& [id, m] : members_) {
        if (!m.store && !m.stopped) m.restart_at = now_;
      }
    }
    if (!healing_) {
      InjectFaults();
      ClientOps();
      ChangeMembership();
    }
    for (uint64_t id : std::exchange(to_start_, {})) {
      if (members_.count(id)) continue;
      Trace("start joiner " + std::to_string(id) + " (empty disk, no peers)");
      Start(NewMember(id, false));
    }
    for (auto& [id, m] : members_) {
      if (!m.store && !m.stopped && m.restart_at != 0 && now_ >= m.restart_at) {
        Trace("restart " + std::to_string(id));
        Start(m);
      }
    }
    Deliver();
    for (auto& [id, m] : members_) {
      if (m.store && (now_ + m.tick_phase) % kTickMs == 0) {
        m.store->Tick();
        Process(m);
      }
    }
    if (error_.empty()) Check();
    if (error_.empty()) StopRemoved();
    if (now_ % 100 == 0 && error_.empty()) CheckLogs();
    if (healing_ && now_ % 10 == 0 && error_.empty() && Converged()) {
      converged = true;
      break;
    }
  }
  if (error_.empty() && !converged) {
    std::ostringstream d;
    d << "the group did not converge after healing; final write '" << final_write_ << "'";
    for (const auto& [id, m] : members_) {
      d << "\n  member " << id;
      if (!m.store) {
        d << (m.stopped ? " stopped (removed)" : " down");
        continue;
      }
      auto st = m.store->raft_status();
      d << ": " << raft::RoleName(st.role) << " term " << st.term << " leader " << st.leader
        << " log [" << st.first_index << ", " << st.last_index << "] commit " << st.commit
        << " applied " << m.store->state().applied_index() << " voters";
      for (uint64_t v : m.store->voters()) d << ' ' << v;
      if (m.store->removed()) d << " (removed)";
    }
    Fail(d.str());
  }
  if (error_.empty()) FinalChecks();
  // Callbacks capture `this`: stop every store before the simulation goes.
  for (auto& [id, m] : members_) m.store.reset();
  SimResult r;
  r.ok = error_.empty();
  r.error = error_;
  r.stats = stats_;
  return r;
}

}  // namespace store_sim

SimResult RunStoreSimulation(const SimOptions& options) {
  return store_sim::StoreSim(options).Run();
}

}  // namespace shoal::sim
