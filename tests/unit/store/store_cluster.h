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
    raft::MemoryStorage disk;  // survives crashes
    std::unique_ptr<MemNetwork::Endpoint> endpoint;
    std::unique_ptr<SeededRandom> random;
    std::unique_ptr<ReplicatedStore> store;  // null while crashed
  };

  StoreCluster(int n, ReplicatedStoreOptions options, uint64_t seed = 1) : options_(options) {
    for (int i = 1; i <= n; ++i) options_.raft.peers.push_back(static_cast<uint64_t>(i));
    for (int i = 1; i <= n; ++i) {
      auto m = std::make_unique<Member>();
      m->id = static_cast<uint64_t>(i);
      m->endpoint = std::make_unique<MemNetwork::Endpoint>(&net_, m->id);
      m->random = std::make_unique<SeededRandom>(seed * 1000 + m->id);
      members_[m->id] = std::move(m);
    }
    for (auto& [id, m] : members_) (void)Start(id);
  }

  Status Start(uint64_t id) {
    Member& m = *members_.at(id);
    ReplicatedStoreOptions o = options_;
    o.raft.id = id;
    ReplicatedStoreDeps deps;
    deps.raft_storage = &m.disk;
    deps.transport = m.endpoint.get();
    deps.random = m.random.get();
    auto s = ReplicatedStore::Open(o, deps);
    if (!s.ok()) return s.error();
    m.store = std::move(s).value();
    return m.store->Process();
  }
  void Crash(uint64_t id) { members_.at(id)->store.reset(); }

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
  uint64_t Leader() {
    for (auto& [id, m] : members_) {
      if (m->store && m->store->is_leader()) return id;
    }
    return 0;
  }
  // Proposes through `id` and steps until the callback ran.
  Outcome Put(uint64_t id, const v1::Config& c) {
    Outcome out;
    store(id)->Propose(PutCommand(c), out.Callback());
    (void)store(id)->Process();
    RunUntil([&] { return out.done; });
    return out;
  }

 private:
  ReplicatedStoreOptions options_;
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
