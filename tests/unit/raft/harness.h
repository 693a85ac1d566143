#pragma once

// A tiny synchronous cluster for unit tests: every node's Ready is persisted to
// a MemoryStorage and its messages delivered at once, unless a link is cut.
// The deterministic fault-injecting simulation lives in tests/sim/.

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "shoal/raft/memory_storage.h"
#include "shoal/raft/node.h"

namespace shoal::raft::testing {

class SeededRandom : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

inline Config TestConfig(uint64_t id, std::vector<uint64_t> peers) {
  Config c;
  c.id = id;
  c.peers = std::move(peers);
  c.heartbeat_ticks = 1;
  c.election_ticks = 10;
  return c;
}

struct TestNode {
  uint64_t id = 0;
  MemoryStorage storage;
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<RaftNode> node;
  std::vector<Entry> applied;  // every committed entry, in order
  std::vector<ReadState> reads;
};

class Cluster {
 public:
  explicit Cluster(std::vector<uint64_t> ids, std::function<void(Config*)> tweak = nullptr)
      : tweak_(std::move(tweak)) {
    for (uint64_t id : ids) Add(id, ids);
  }

  // Starts a member with the given bootstrap peers (empty: joins later).
  TestNode& Add(uint64_t id, std::vector<uint64_t> peers) {
    auto& n = nodes_[id];
    n.id = id;
    n.random = std::make_unique<SeededRandom>(id * 7919);
    Config c = TestConfig(id, std::move(peers));
    if (tweak_) tweak_(&c);
    configs_[id] = c;
    auto created = RaftNode::Create(c, *n.storage.Load(), n.random.get());
    REQUIRE(created.ok());
    n.node = std::move(created).value();
    return n;
  }

  // Simulates a crash and restart from what the storage holds.
  void Restart(uint64_t id, bool lose_unsynced) {
    auto& n = nodes_.at(id);
    if (lose_unsynced) n.storage.LoseUnsyncedWrites();
    auto state = n.storage.Load();
    REQUIRE(state.ok());
    Config c = configs_[id];
    c.applied = state->snapshot->metadata().index();
    n.applied.clear();
    auto created = RaftNode::Create(c, std::move(state).value(), n.random.get());
    REQUIRE(created.ok());
    n.node = std::move(created).value();
  }

  RaftNode& node(uint64_t id) { return *nodes_.at(id).node; }
  TestNode& member(uint64_t id) { return nodes_.at(id); }

  void Cut(uint64_t a, uint64_t b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void Isolate(uint64_t a) {
    for (auto& [id, n] : nodes_) {
      if (id != a) Cut(a, id);
    }
  }
  void Heal() { cut_.clear(); }

  // Processes one node's Ready; returns the messages to deliver.
  std::vector<Message> Process(TestNode& n) {
    if (!n.node->HasReady()) return {};
    Ready rd = n.node->GetReady();
    REQUIRE(n.storage.Save(rd.ToWrite()).ok());
    for (const auto& e : rd.committed_entries) n.applied.push_back(e);
    for (const auto& r : rd.read_states) n.reads.push_back(r);
    n.node->Advance(rd);
    return rd.messages;
  }

  // Runs every Ready and delivers every message until the cluster is quiet.
  // `filter` may drop a message by returning false.
  void Settle(std::function<bool(const Message&)> filter = nullptr) {
    for (int round = 0; round < 1000; ++round) {
      std::vector<Message> out;
      bool busy = false;
      for (auto& [id, n] : nodes_) {
        busy |= n.node->HasReady();
        for (auto& m : Process(n)) out.push_back(std::move(m));
      }
      if (!busy) return;
      for (const auto& m : out) {
        if (cut_.count({m.from(), m.to()}) || !nodes_.count(m.to())) continue;
        if (filter && !filter(m)) continue;
        (void)nodes_.at(m.to()).node->Step(m);
      }
    }
    FAIL("cluster did not settle");
  }

  void Tick(int ticks = 1) {
    for (int i = 0; i < ticks; ++i) {
      for (auto& [id, n] : nodes_) n.node->Tick();
      Settle();
    }
  }

  // Makes `id` campaign and lets the election finish.
  void Elect(uint64_t id) {
    Settle();
    node(id).Campaign();
    Settle();
  }

  uint64_t Leader() {
    for (auto& [id, n] : nodes_) {
      if (n.node->status().role == Role::kLeader) return id;
    }
    return 0;
  }

  std::map<uint64_t, TestNode>& nodes() { return nodes_; }

 private:
  std::function<void(Config*)> tweak_;
  std::map<uint64_t, TestNode> nodes_;
  std::map<uint64_t, Config> configs_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
};

// Data of applied normal entries that carry data (no-ops skipped).
inline std::vector<std::string> AppliedData(const TestNode& n) {
  std::vector<std::string> out;
  for (const auto& e : n.applied) {
    if (e.type() == shoal::v1::ENTRY_NORMAL && !e.data().empty()) out.push_back(e.data());
  }
  return out;
}

}  // namespace shoal::raft::testing
