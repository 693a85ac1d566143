// Raft micro-benchmark: committed 1 KiB commands per second for a 3-member
// group in one process, each member with its own LevelDB storage (synced
// appends, as in production). All three members run on one thread, so their
// fsyncs are serial; across machines they would overlap.
//
//   shoal_raft_bench [seconds-per-case]      (default 3)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shoal/raft/leveldb_storage.h"
#include "shoal/raft/node.h"

namespace {

namespace fs = std::filesystem;
using shoal::raft::Message;
using shoal::raft::RaftNode;
using shoal::raft::Ready;
using Clock = std::chrono::steady_clock;

class BenchRandom : public shoal::raft::RandomSource {
 public:
  explicit BenchRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

struct Member {
  std::unique_ptr<shoal::raft::LevelDbStorage> storage;
  std::unique_ptr<BenchRandom> random;
  std::unique_ptr<RaftNode> node;
  uint64_t applied_commands = 0;
};

class Group {
 public:
  explicit Group(const fs::path& dir) {
    for (uint64_t id = 1; id <= 3; ++id) {
      Member& m = members_[id];
      auto st = shoal::raft::LevelDbStorage::Open((dir / ("m" + std::to_string(id))).string());
      if (!st.ok()) Die(st.error().ToString());
      m.storage = std::move(st).value();
      m.random = std::make_unique<BenchRandom>(id);
      shoal::raft::Config c;
      c.id = id;
      c.peers = {1, 2, 3};
      auto state = m.storage->Load();
      if (!state.ok()) Die(state.error().ToString());
      auto node = RaftNode::Create(c, std::move(state).value(), m.random.get());
      if (!node.ok()) Die(node.error().ToString());
      m.node = std::move(node).value();
    }
    Pump();
    members_.at(1).node->Campaign();
    while (members_.at(1).node->status().role != shoal::raft::Role::kLeader ||
           members_.at(1).node->status().commit < members_.at(1).node->status().last_index) {
      Pump();
    }
  }

  RaftNode& leader() { return *members_.at(1).node; }
  uint64_t leader_applied() const { return members_.at(1).applied_commands; }

  // One round: every member handles its Ready, then messages are delivered.
  void Pump() {
    std::vector<Message> out;
    for (auto& [id, m] : members_) {
      if (!m.node->HasReady()) continue;
      Ready rd = m.node->GetReady();
      shoal::Status s = m.storage->Save(rd.ToWrite());
      if (!s.ok()) Die(s.ToString());
      for (auto& msg : rd.messages) out.push_back(std::move(msg));
      for (const auto& e : rd.committed_entries) {
        if (!e.data().empty()) ++m.applied_commands;
      }
      m.node->Advance(rd);
    }
    for (const auto& msg : out) (void)members_.at(msg.to()).node->Step(msg);
  }

  static void Die(const std::string& why) {
    std::fprintf(stderr, "shoal_raft_bench: %s\n", why.c_str());
    std::exit(1);
  }

 private:
  std::map<uint64_t, Member> members_;
};

void Throughput(Group& g, int batch, double seconds) {
  const std::string payload(1024, 'x');
  uint64_t start_applied = g.leader_applied();
  uint64_t proposed = 0;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    // Keep a bounded number of commands outstanding, as a client pool would.
    while (proposed - (g.leader_applied() - start_applied) < static_cast<uint64_t>(4 * batch)) {
      for (int i = 0; i < batch; ++i) {
        if (!g.leader().Propose(payload).ok()) Group::Die("propose refused");
        ++proposed;
      }
    }
    g.Pump();
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t done = g.leader_applied() - start_applied;
  std::printf("batch %4d: %9.0f commits/s (%llu commands in %.2f s)\n", batch, done / secs,
              static_cast<unsigned long long>(done), secs);
}

void Latency(Group& g, double seconds) {
  const std::string payload(1024, 'x');
  std::vector<double> us;
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    uint64_t target = g.leader_applied() + 1;
    auto t0 = Clock::now();
    if (!g.leader().Propose(payload).ok()) Group::Die("propose refused");
    while (g.leader_applied() < target) g.Pump();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("sequential client: %zu commits, p50 %.0f us, p99 %.0f us\n", us.size(),
              us[us.size() / 2], us[us.size() * 99 / 100]);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  fs::path dir = fs::temp_directory_path() / ("shoal_raft_bench_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    Group g(dir);
    std::printf("3 members, LevelDB storage in %s, 1 KiB commands\n", dir.c_str());
    Latency(g, seconds);
    for (int batch : {1, 16, 64, 256}) Throughput(g, batch, seconds);
  }
  fs::remove_all(dir);
  return 0;
}
