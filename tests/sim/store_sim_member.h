#pragma once

// The pieces of one simulated store member (store_simulation.cc): its disk,
// randomness and transport, and a message in flight.

#include <memory>
#include <random>
#include <string>
#include <tuple>

#include "shoal/raft/memory_storage.h"
#include "shoal/store/replicated_store.h"

namespace shoal::sim {
namespace store_sim {

using raft::Message;
using store::ReplicatedStore;

constexpr int kTickMs = 10;

class Random : public raft::RandomSource {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

inline uint64_t Fnv(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

class StoreSim;

class SimTransport : public raft::Transport {
 public:
  explicit SimTransport(StoreSim* sim) : sim_(sim) {}
  Status Send(const Message& m) override;

 private:
  StoreSim* sim_;
};

struct Member {
  uint64_t id = 0;
  bool founder = false;
  std::unique_ptr<raft::MemoryStorage> disk;
  std::unique_ptr<Random> random;
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<ReplicatedStore> store;  // null while down
  int tick_phase = 0;
  uint64_t restart_at = 0;
  bool lose_unsynced = false;
  bool stopped = false;       // removed, and shut down for good by its "daemon"
  uint64_t stop_at = 0;       // when it reported removed() and will be stopped
  bool keep_running = false;  // a removed member left running: must not disrupt
};

struct InFlight {
  uint64_t at;
  uint64_t seq;
  Message msg;
  bool operator>(const InFlight& o) const { return std::tie(at, seq) > std::tie(o.at, o.seq); }
};

}  // namespace store_sim
}  // namespace shoal::sim
