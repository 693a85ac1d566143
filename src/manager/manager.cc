#include "shoal/manager/manager.h"

#include <algorithm>
#include <chrono>

#include "shoal/agent/agent.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/store/txn.h"

namespace shoal::manager {

class Manager::Random : public raft::RandomSource {
 public:
  Random() : rng_(std::random_device{}()) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

// Task ids from the manager's generator (the orchestrator itself has none).
class TaskIds : public orchestrator::IdSource {
 public:
  explicit TaskIds(std::mt19937_64* rng) : rng_(rng) {}
  std::string NewTaskId() override { return NewId(*rng_); }

 private:
  std::mt19937_64* rng_;
};

std::string NewId(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string id(25, '0');
  for (char& c : id) c = kAlphabet[rng() % 36];
  return id;
}

int64_t Manager::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Manager::Manager(const ManagerOptions& options)
    : options_(options),
      random_(std::make_unique<Random>()),
      ids_(std::random_device{}()),
      addresses_(options.seed_addresses) {}

Manager::~Manager() { Stop(); }

Result<std::unique_ptr<Manager>> Manager::Open(const ManagerOptions& options) {
  agent::DisableMutexDeadlockDetection();  // see there: gRPC's locks, ~1 us each
  std::unique_ptr<Manager> m(new Manager(options));
  if (Status s = m->Init(); !s.ok()) return s;
  return m;
}

namespace {

transport::GrpcTransportOptions TransportOptions(const ManagerOptions& o) {
  transport::GrpcTransportOptions t;
  t.tls = o.tls;
  return t;
}

}  // namespace

Status Manager::Init() {
  auto raft_disk = raft::LevelDbStorage::Open(options_.data_dir + "/raft");
  if (!raft_disk.ok()) return raft_disk.error();
  raft_disk_ = std::move(raft_disk).value();
  auto applied = store::PersistentState::Open(options_.data_dir + "/state");
  if (!applied.ok()) return applied.error();
  applied_ = std::move(applied).value();
  transport_ = std::make_unique<transport::GrpcTransport>(
      [this](uint64_t id) { return AddressOf(id); },
      [this](uint64_t peer, bool unreachable, std::optional<bool> snapshot_ok) {
        (void)Post([this, peer, unreachable, snapshot_ok] {
          if (unreachable) store_->ReportUnreachable(peer);
          if (snapshot_ok) store_->ReportSnapshot(peer, *snapshot_ok);
        });
      },
      TransportOptions(options_));
  store::ReplicatedStoreOptions so;
  so.raft.id = options_.raft_id;
  so.raft.peers = options_.bootstrap_peers;
  so.raft.tick_interval = options_.tick;
  // The control loops wake only the agents whose tasks the applied entries
  // touched, read from the watch log; it must hold a whole orchestrator
  // transaction (10,000 mutations) plus the status merges beside it, or they
  // fall back to checking every parked agent.
  so.watch_capacity = std::max<size_t>(so.watch_capacity, 30'000);
  // What every reader has read goes early (see WatchLog::AddReader): a
  // follower has no reader, and the leader's loops read each batch at once.
  // 2,000 events stay for a watcher that reconnects.
  so.watch_keep = 2'000;
  store::ReplicatedStoreDeps deps{raft_disk_.get(), applied_.get(), transport_.get(),
                                  random_.get()};
  auto store = store::ReplicatedStore::Open(so, deps);
  if (!store.ok()) return store.error();
  store_ = std::move(store).value();
  task_ids_ = std::make_unique<TaskIds>(&ids_);
  loops_ = std::make_unique<ControlLoops>(store_.get(), options_.dispatcher, task_ids_.get());
  loop_ = std::make_unique<transport::EventLoop>(
      options_.tick, [this] { OnTick(); }, [this] { AfterBatch(); });
  return Status::Ok();
}

bool Manager::Post(std::function<void()> fn) {
  if (!loop_) return false;
  return loop_->Post([this, fn = std::move(fn)] {
    if (store_) fn();
  });
}

bool Manager::RunSync(const std::function<void()>& fn) {
  if (!loop_) return false;
  return loop_->RunSync([this, &fn] {
    if (store_) fn();
  });
}

void Manager::Stop() {
  if (!loop_) return;
  loop_->RunSync([this] {
    loops_->dispatcher().StepDown();
    // The store first: its destructor fails pending proposals, whose
    // callbacks write into the control loops.
    store_.reset();
    loops_.reset();
  });
  loop_->Stop();
}

void Manager::Propose(std::vector<v1::Mutation> mutations, std::string proposer, Done done) {
  v1::Command cmd;
  for (auto& m : mutations) *cmd.mutable_transaction()->add_mutations() = std::move(m);
  cmd.set_proposer(std::move(proposer));
  cmd.set_proposed_at_ns(NowNs());
  store_->Propose(std::move(cmd), std::move(done));
}

void Manager::Read(ReadDone done) {
  store_->Read([this, done = std::move(done)](Status s, uint64_t) {
    // Failed reads also run while the store is being destroyed.
    if (!s.ok() || !store_) {
      static const store::State kEmpty;
      return done(s.ok() ? Status(Code::kUnavailable, "stopping") : s, kEmpty);
    }
    done(s, store_->state());
  });
}

std::string Manager::AddressOf(uint64_t raft_id) const {
  std::lock_guard<std::mutex> lock(addr_mu_);
  auto it = addresses_.find(raft_id);
  return it == addresses_.end() ? "" : it->second;
}

void Manager::SetAddress(uint64_t raft_id, const std::string& addr) {
  std::lock_guard<std::mutex> lock(addr_mu_);
  addresses_[raft_id] = addr;
}

std::string Manager::LeaderAddress() const {
  if (!store_) return "";
  return AddressOf(store_->raft_status().leader);
}

// Peers' addresses come from the replicated Node objects, so a manager that
// moves or joins is found by every member once its Node is committed.
void Manager::RefreshAddresses() {
  std::lock_guard<std::mutex> lock(addr_mu_);
  for (const v1::Mutation* m : store_->state().List(store::Kind::kNode)) {
    const auto& ms = m->node().manager_status();
    if (ms.raft_id() != 0 && !ms.addr().empty()) addresses_[ms.raft_id()] = ms.addr();
  }
}

void Manager::OnTick() {
  if (!store_) return;
  store_->Tick();
  // Every 100 ms: the slower control-loop work.
  if (++ticks_ % 10 != 0) return;
  RefreshAddresses();
  loops_->Tick(NowNs());
}

void Manager::AfterBatch() {
  if (!store_) return;
  if (Status s = store_->Process(); !s.ok()) {
    // The disk failed: acknowledging anything more could outrun it. Stop as a
    // crash would; the other managers carry on.
    std::fprintf(stderr, "shoal: store stopped: %s\n", s.ToString().c_str());
    std::_Exit(2);
  }
  loops_->AfterBatch(NowNs());
}

}  // namespace shoal::manager
