// A leader failover in the middle of a rolling update (issue 5), simulated:
// three managers (ReplicatedStore + ControlLoops, wired as in
// cluster_simulation.cc) on one thread over an in-order network, agents
// reduced to what the orchestrator needs (assigned tasks start running,
// retired ones stop). The leader is killed after a seeded number of batches;
// the next leader must finish the rollout from the replicated state alone:
// every slot replaced exactly once, the update status completed once, no
// failure counted, both survivors holding the same state.

#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "shoal/manager/control_loops.h"
#include "shoal/raft/memory_storage.h"
#include "shoal/store/replicated_store.h"
#include "shoal/store/txn.h"

namespace shoal::sim {
namespace {

constexpr int kTickMs = 10;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kEpochNs = 1'700'000'000'000'000'000;
constexpr uint64_t kReplicas = 10;

class Random : public raft::RandomSource {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

class Ids : public orchestrator::IdSource {
 public:
  explicit Ids(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string NewTaskId() override { return prefix_ + std::to_string(++n_); }

 private:
  std::string prefix_;
  uint64_t n_ = 0;
};

struct Net;

class Wire : public raft::Transport {
 public:
  Wire(Net* net) : net_(net) {}
  Status Send(const raft::Message& m) override;

 private:
  Net* net_;
};

struct Manager {
  uint64_t id = 0;
  raft::MemoryStorage disk;
  std::unique_ptr<Random> random;
  std::unique_ptr<Wire> wire;
  std::unique_ptr<Ids> ids;
  std::unique_ptr<store::ReplicatedStore> store;  // null once killed
  std::unique_ptr<manager::ControlLoops> loops;
};

struct Net {
  std::deque<raft::Message> queue;
};

Status Wire::Send(const raft::Message& m) {
  net_->queue.push_back(m);
  return Status::Ok();
}

class FailoverSim {
 public:
  explicit FailoverSim(uint64_t seed) : rng_(seed) {
    for (uint64_t i = 1; i <= 3; ++i) {
      auto m = std::make_unique<Manager>();
      m->id = i;
      m->random = std::make_unique<Random>(seed * 31 + i);
      m->wire = std::make_unique<Wire>(&net_);
      m->ids = std::make_unique<Ids>("m" + std::to_string(i) + "-task-");
      store::ReplicatedStoreOptions o;
      o.raft.id = i;
      o.raft.peers = {1, 2, 3};
      o.raft.tick_interval = std::chrono::milliseconds(kTickMs);
      o.raft.heartbeat_ticks = 10;
      o.raft.election_ticks = 100;
      store::ReplicatedStoreDeps deps;
      deps.raft_storage = &m->disk;
      deps.transport = m->wire.get();
      deps.random = m->random.get();
      auto s = store::ReplicatedStore::Open(o, deps);
      REQUIRE(s.ok());
      m->store = std::move(s).value();
      dispatcher::Options d;
      d.node_down_after_ns = int64_t{1} << 60;  // no agents heartbeat here
      m->loops = std::make_unique<manager::ControlLoops>(m->store.get(), d, m->ids.get());
      managers_.push_back(std::move(m));
    }
  }

  int64_t Now() const { return kEpochNs + now_ms_ * kMs; }

  Manager* Leader() {
    for (auto& m : managers_) {
      if (m->store && m->store->is_leader()) return m.get();
    }
    return nullptr;
  }

  // One millisecond: deliver the messages, tick every kTickMs.
  void Step() {
    ++now_ms_;
    if (now_ms_ % kTickMs == 0) {
      for (auto& m : managers_) {
        if (!m->store) continue;
        m->store->Tick();
        if ((now_ms_ / kTickMs) % 10 == 0) m->loops->Tick(Now());
        Turn(*m);
      }
    }
    std::deque<raft::Message> batch;
    batch.swap(net_.queue);
    for (const raft::Message& msg : batch) {
      Manager& to = *managers_[msg.to() - 1];
      if (!to.store) continue;  // dead: dropped
      (void)to.store->Step(msg);
      Turn(to);
    }
    if (now_ms_ % 50 == 0) Agents();
  }

  void Turn(Manager& m) {
    REQUIRE(m.store->Process().ok());
    m.loops->AfterBatch(Now());
  }

  // Agents, all of them at once: assigned tasks run, retired ones stop.
  void Agents() {
    Manager* l = Leader();
    if (!l) return;
    v1::Command cmd;
    for (const v1::Mutation* m : l->store->state().List(store::Kind::kTask)) {
      const v1::Task& t = m->task();
      v1::TaskState next = t.status().state();
      if (t.desired_state() <= v1::TASK_RUNNING && t.status().state() == v1::TASK_ASSIGNED) {
        next = v1::TASK_RUNNING;
      } else if (t.desired_state() >= v1::TASK_SHUTDOWN &&
                 t.status().state() >= v1::TASK_ASSIGNED &&
                 t.status().state() < v1::TASK_COMPLETE) {
        next = v1::TASK_SHUTDOWN;
      }
      if (next == t.status().state()) continue;
      v1::Mutation* mu = cmd.mutable_transaction()->add_mutations();
      mu->set_op(v1::Mutation::OP_TASK_STATUS);
      mu->mutable_task()->mutable_meta()->set_id(t.meta().id());
      mu->mutable_task()->mutable_status()->set_state(next);
      mu->mutable_task()->mutable_status()->set_timestamp_ns(Now());
    }
    if (cmd.transaction().mutations_size() == 0) return;
    cmd.set_proposer("agents");
    l->store->Propose(std::move(cmd), [](Status, uint64_t) {});
  }

  // A client write on the leader, retried until it applies.
  void Write(const std::function<store::Txn(const store::State&)>& build) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      RunUntil([&] { return Leader() != nullptr; }, 10'000);
      Manager* l = Leader();
      bool done = false, ok = false;
      l->store->Propose(std::move(build(l->store->state())).Build("client", Now()),
                        [&](Status s, uint64_t) { done = true, ok = s.ok(); });
      RunUntil([&] { return done; }, 5'000);
      if (ok) return;
    }
    FAIL("the client write never applied");
  }

  bool RunUntil(const std::function<bool()>& pred, int limit_ms) {
    for (int i = 0; i < limit_ms; ++i) {
      if (pred()) return true;
      Step();
    }
    return pred();
  }

  void Kill(Manager& m) {
    m.store.reset();  // its pending proposals fail first, their owners alive
    m.loops.reset();
  }

  std::mt19937_64 rng_;
  Net net_;
  std::vector<std::unique_ptr<Manager>> managers_;
  int64_t now_ms_ = 0;
};

const v1::Service* Web(const store::State& s) { return s.Get<v1::Service>("web"); }

// Running live tasks of spec_version `v`.
uint64_t RunningAt(const store::State& s, uint64_t v) {
  uint64_t n = 0;
  for (const v1::Mutation* m : s.List(store::Kind::kTask)) {
    const v1::Task& t = m->task();
    n += t.desired_state() <= v1::TASK_RUNNING && t.status().state() == v1::TASK_RUNNING &&
         t.service_spec_version() == v;
  }
  return n;
}

}  // namespace

TEST_CASE("leader failover mid rolling update: the rollout completes exactly once", "[lifecycle]") {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    FailoverSim sim(seed);
    REQUIRE(sim.RunUntil([&] { return sim.Leader() != nullptr; }, 10'000));
    sim.Write([](const store::State&) {
      store::Txn txn;
      for (const char* id : {"n1", "n2", "n3"}) {
        v1::Node n;
        n.mutable_meta()->set_id(id);
        n.mutable_description()->set_hostname(id);
        n.mutable_description()->set_nano_cpus(4'000'000'000);
        n.mutable_description()->set_memory_bytes(int64_t{8} << 30);
        n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
        txn.Put(n);
      }
      v1::Service s;
      s.mutable_meta()->set_id("web");
      s.mutable_spec()->set_name("demo_web");
      s.mutable_spec()->set_stack("demo");
      s.mutable_spec()->set_replicas(kReplicas);
      s.mutable_spec()->mutable_container()->set_image("nginx:1");
      s.mutable_spec()->mutable_update_config()->set_parallelism(2);
      s.set_spec_version(1);
      txn.Put(s);
      return txn;
    });
    REQUIRE(sim.RunUntil(
        [&] { return sim.Leader() && RunningAt(sim.Leader()->store->state(), 1) == kReplicas; },
        20'000));
    sim.Write([](const store::State& s) {
      v1::Service next = *Web(s);
      *next.mutable_previous_spec() = next.spec();
      next.mutable_spec()->mutable_container()->set_image("nginx:2");
      next.set_spec_version(2);
      store::Txn txn;
      txn.Put(next);
      return txn;
    });
    // Kill the leader once a seeded number of new tasks run: mid rollout.
    const uint64_t kill_at = 2 + 2 * (seed % 4);  // 2, 4, 6 or 8 of 10
    REQUIRE(sim.RunUntil(
        [&] { return sim.Leader() && RunningAt(sim.Leader()->store->state(), 2) >= kill_at; },
        20'000));
    Manager* old = sim.Leader();
    REQUIRE(RunningAt(old->store->state(), 2) < kReplicas);
    sim.Kill(*old);
    REQUIRE(sim.RunUntil([&] { return sim.Leader() != nullptr; }, 10'000));
    REQUIRE(sim.RunUntil(
        [&] {
          const v1::Service* w = Web(sim.Leader()->store->state());
          return w->update_status().state() == v1::UpdateStatus::STATE_COMPLETED;
        },
        30'000));
    sim.RunUntil([] { return false; }, 2'000);  // settle: stragglers would show
    INFO("killed manager " << old->id << " at " << kill_at << "/10 replaced, done at "
                           << sim.now_ms_ << " simulated ms");

    const store::State& s = sim.Leader()->store->state();
    CHECK(RunningAt(s, 2) == kReplicas);
    std::map<uint64_t, int> per_slot, live_per_slot;
    for (const v1::Mutation* m : s.List(store::Kind::kTask)) {
      const v1::Task& t = m->task();
      per_slot[t.slot()]++;
      if (t.desired_state() <= v1::TASK_RUNNING) live_per_slot[t.slot()]++;
    }
    CHECK(per_slot.size() == kReplicas);
    for (const auto& [slot, n] : per_slot) {
      INFO("slot " << slot);
      CHECK(n == 2);  // the first task and exactly one replacement
      CHECK(live_per_slot[slot] == 1);
    }
    const v1::UpdateStatus& us = Web(s)->update_status();
    CHECK(us.spec_version() == 2);
    CHECK(us.failed_task_ids_size() == 0);
    // The survivors agree.
    for (auto& m : sim.managers_) {
      if (!m->store || m.get() == sim.Leader()) continue;
      sim.RunUntil([&] { return m->store->state().applied_index() == s.applied_index(); }, 5'000);
      CHECK(Web(m->store->state())->update_status().SerializeAsString() == us.SerializeAsString());
      CHECK(m->store->state().List(store::Kind::kTask).size() == s.List(store::Kind::kTask).size());
    }
  }
}

}  // namespace shoal::sim
