#pragma once

// Test helpers: a whole group of ReplicatedStores in one thread, over an
// in-memory network, with ticks as the only clock. Deterministic from a seed.

#include <google/protobuf/util/message_differencer.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "shoal/raft/leveldb_storage.h"
#include "shoal/raft/memory_storage.h"
#include "shoal/store/replicated_store.h"
#include "shoal/store/txn.h"

namespace shoal::store::testing {

class SeededRandom : public raft::RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("shoal-rstore-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Messages queue until Deliver(); a member that is down or cut off loses them.
class MemNetwork {
 public:
  class Endpoint : public raft::Transport {
   public:
    Endpoint(MemNetwork* net, uint64_t id) : net_(net), id_(id) {}
    Status Send(const v1::Message& m) override {
      if (net_->cut_.count(id_) || net_->cut_.count(m.to())) {
        return {Code::kUnavailable, "cut off"};
      }
      net_->queue_.push_back(m);
      return Status::Ok();
    }

   private:
    MemNetwork* net_;
    uint64_t id_;
  };

  void Cut(uint64_t id) { cut_.insert(id); }
  void Heal(uint64_t id) { cut_.erase(id); }
  bool Empty() const { return queue_.empty(); }
  v1::Message Pop() {
    v1::Message m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }

 private:
  std::deque<v1::Message> queue_;
  std::set<uint64_t> cut_;
};

inline v1::Config MakeConfig(const std::string& id, const std::string& data, uint64_t version = 0) {
  v1::Config c;
  c.mutable_meta()->set_id(id);
  c.mutable_meta()->set_version(version);
  c.mutable_spec()->set_name(id);
  c.mutable_spec()->set_data(data);
  return c;
}

inline v1::Command PutCommand(const v1::Config& c) {
  Txn txn;
  txn.Put(c);
  return std::move(txn).Build("test", 1);
}

inline bool SameState(const State& a, const State& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a.ToSnapshot(), b.ToSnapshot());
}

// The outcome of one callback, filled in when it runs.
struct Outcome {
  bool done = false;
  Status status;
  uint64_t index = 0;
  ReplicatedStore::ProposeCallback Callback() {
    return [this](Status s, uint64_t i) {
      done = true;
      status = std::move(s);
      index = i;
    };
  }
};

class StoreCluster {
 public:
  struct Member {
    uint64_t id = 0;
    bool founder = true;       // bootstraps with the founders; a joiner starts with no peers
    raft::MemoryStorage disk;  // survives crashes (without a data directory)
    // With a data directory: LevelDB raft log and applied state, closed by a
    // crash and reopened by Start.
    std::unique_ptr<raft::LevelDbStorage> raft_db;
    std::unique_ptr<PersistentState> applied;
    std::unique_ptr<MemNetwork::Endpoint> endpoint;
    std::unique_ptr<SeededRandom> random;
    std::unique_ptr<ReplicatedStore> store;  // null while crashed
  };

  // `data_dir` empty: in-memory raft storage and no PersistentState.
  StoreCluster(int n, ReplicatedStoreOptions options, uint64_t seed = 1,
               std::filesystem::path data_dir = {})
      : options_(options), seed_(seed), data_dir_(std::move(data_dir)) {
    for (int i = 1; i <= n; ++i) options_.raft.peers.push_back(static_cast<uint64_t>(i));
    for (int i = 1; i <= n; ++i) NewMember(static_cast<uint64_t>(i), /*founder=*/true);
    for (auto& [id, m] : members_) (void)Start(id);
  }
  ~StoreCluster() {
    for (auto& [id, m] : members_) m->store.reset();  // before the storages it borrows
  }

  // A new member with empty storage and no peers, as `shoal cluster join`
  // starts one; it is not a voter until the leader adds it.
  Status AddJoiner(uint64_t id) {
    NewMember(id, /*founder=*/false);
    return Start(id);
  }

  Status Start(uint64_t id) {
    Member& m = *members_.at(id);
    ReplicatedStoreOptions o = options_;
    o.raft.id = id;
    if (!m.founder) o.raft.peers.clear();
    ReplicatedStoreDeps deps;
    deps.raft_storage = &m.disk;
    if (!data_dir_.empty()) {
      std::filesystem::path dir = data_dir_ / std::to_string(id);
      auto r = raft::LevelDbStorage::Open((dir / "raft").string());
      if (!r.ok()) return r.error();
      m.raft_db = std::move(r).value();
      auto a = PersistentState::Open((dir / "state").string());
      if (!a.ok()) return a.error();
      m.applied = std::move(a).value();
      deps.raft_storage = m.raft_db.get();
      deps.applied = m.applied.get();
    }
    deps.transport = m.endpoint.get();
    deps.random = m.random.get();
    auto s = ReplicatedStore::Open(o, deps);
    if (!s.ok()) return s.error();
    m.store = std::move(s).value();
    return m.store->Process();
  }
  void Crash(uint64_t id) {
    Member& m = *members_.at(id);
    // As kill -9: what the store has not yet written to its applied state is lost.
    if (m.store) m.store->DiscardUnwritten();
    m.store.reset();
    m.raft_db.reset();
    m.applied.reset();
  }
  bool Has(uint64_t id) const { return members_.count(id) > 0; }

  ReplicatedStore* store(uint64_t id) { return members_.at(id)->store.get(); }
  MemNetwork& net() { return net_; }

  // One tick on every live member, then every message delivered.
  void Step() {
    for (auto& [id, m] : members_) {
      if (!m->store) continue;
      m->store->Tick();
      (void)m->store->Process();
    }
    Deliver();
  }
  void Deliver() {
    while (!net_.Empty()) {
      v1::Message msg = net_.Pop();
      auto it = members_.find(msg.to());
      if (it == members_.end() || !it->second->store) continue;
      (void)it->second->store->Step(msg);
      (void)it->second->store->Process();
    }
  }
  // Steps until `pred` holds; false after max_ticks.
  bool RunUntil(const std::function<bool()>& pred, int max_ticks = 2000) {
    for (int i = 0; i < max_ticks; ++i) {
      if (pred()) return true;
      Step();
    }
    return pred();
  }
  // The live leader of the highest term (a deposed one may not know yet).
  uint64_t Leader() {
    uint64_t best = 0;
    uint64_t term = 0;
    for (auto& [id, m] : members_) {
      if (!m->store || !m->store->is_leader()) continue;
      uint64_t t = m->store->raft_status().term;
      if (best == 0 || t > term) {
        best = id;
        term = t;
      }
    }
    return best;
  }
  // Proposes through `id` and steps until the callback ran.
  Outcome Put(uint64_t id, const v1::Config& c) {
    Outcome out;
    store(id)->Propose(PutCommand(c), out.Callback());
    (void)store(id)->Process();
    RunUntil([&] { return out.done; });
    return out;
  }
  // Proposes a membership change through `id` and steps until the callback ran.
  Outcome Change(uint64_t id, v1::ConfChangeType type, uint64_t node) {
    raft::ConfChange cc;
    cc.set_type(type);
    cc.set_node_id(node);
    Outcome out;
    store(id)->ProposeConfChange(cc, out.Callback());
    (void)store(id)->Process();
    RunUntil([&] { return out.done; });
    return out;
  }

 private:
  void NewMember(uint64_t id, bool founder) {
    auto m = std::make_unique<Member>();
    m->id = id;
    m->founder = founder;
    m->endpoint = std::make_unique<MemNetwork::Endpoint>(&net_, id);
    m->random = std::make_unique<SeededRandom>(seed_ * 1000 + id);
    members_[id] = std::move(m);
  }

  ReplicatedStoreOptions options_;
  uint64_t seed_;
  std::filesystem::path data_dir_;
  MemNetwork net_;
  std::map<uint64_t, std::unique_ptr<Member>> members_;
};

inline ReplicatedStoreOptions FastOptions() {
  ReplicatedStoreOptions o;
  o.raft.heartbeat_ticks = 2;
  o.raft.election_ticks = 10;
  return o;
}

}  // namespace shoal::store::testing
