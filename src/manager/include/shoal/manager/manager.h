#pragma once

// A manager: the replicated store on its event loop, and on the leader the
// control loops that act on it, the orchestrator (which also schedules) and
// the dispatcher (design.md sections 4-6). Everything that touches the store
// runs on the loop thread; gRPC handlers Post() to it.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/dispatcher/dispatcher.h"
#include "shoal/manager/control_loops.h"
#include "shoal/raft/leveldb_storage.h"
#include "shoal/store/persistent_state.h"
#include "shoal/store/replicated_store.h"
#include "shoal/transport/event_loop.h"
#include "shoal/transport/grpc_transport.h"

namespace shoal::manager {

struct ManagerOptions {
  std::string data_dir;  // raft log in <data_dir>/raft, applied state in <data_dir>/state
  uint64_t raft_id = 0;
  // Founding voters when the raft directory is new (cluster init: just this
  // member); empty for a member that joins an existing group.
  std::vector<uint64_t> bootstrap_peers;
  // Addresses known before the state names them (the managers listed at join).
  std::map<uint64_t, std::string> seed_addresses;
  std::chrono::milliseconds tick{10};
  dispatcher::Options dispatcher;
  // How Raft dials the other managers (the node's certificate; tls.h).
  transport::ClientTls tls;
};

class Manager {
 public:
  using Done = std::function<void(Status, uint64_t index)>;
  using ReadDone = std::function<void(Status, const store::State&)>;

  // Opens the store (kIo / kCorruption naming the file) and starts the loop.
  static Result<std::unique_ptr<Manager>> Open(const ManagerOptions& options);
  // Stops the loop; pending callbacks fail with kUnavailable.
  ~Manager();

  // Runs `fn` on the loop thread; false when stopping. Thread-safe.
  bool Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and waits; false when stopping. Not from the loop.
  bool RunSync(const std::function<void()>& fn);
  // Loop thread only: proposes `mutations` as one transaction.
  void Propose(std::vector<v1::Mutation> mutations, std::string proposer, Done done);
  // Loop thread only: a linearizable read; `done` sees the state at or after
  // every write committed before the call.
  void Read(ReadDone done);

  // Loop thread only.
  store::ReplicatedStore& store() { return *store_; }
  dispatcher::Dispatcher& dispatcher() { return loops_->dispatcher(); }
  bool is_leader() const { return store_ && store_->is_leader(); }
  // The leader's cluster address ("" when unknown). Loop thread only.
  std::string LeaderAddress() const;
  // Any thread.
  std::string AddressOf(uint64_t raft_id) const;
  void SetAddress(uint64_t raft_id, const std::string& addr);

  // Stops the loop and the store. Idempotent; not from the loop thread.
  void Stop();

  static int64_t NowNs();

 private:
  explicit Manager(const ManagerOptions& options);
  Status Init();
  void AfterBatch();
  void OnTick();
  void RefreshAddresses();

  ManagerOptions options_;
  std::unique_ptr<raft::LevelDbStorage> raft_disk_;
  std::unique_ptr<store::PersistentState> applied_;
  std::unique_ptr<transport::GrpcTransport> transport_;
  std::unique_ptr<store::ReplicatedStore> store_;
  std::unique_ptr<transport::EventLoop> loop_;
  std::unique_ptr<orchestrator::IdSource> task_ids_;
  std::unique_ptr<ControlLoops> loops_;

  class Random;
  std::unique_ptr<Random> random_;
  std::mt19937_64 ids_;

  mutable std::mutex addr_mu_;
  std::map<uint64_t, std::string> addresses_;

  uint64_t ticks_ = 0;
};

// A random id of 25 lowercase base-36 characters, as Swarm's look.
std::string NewId(std::mt19937_64& rng);

}  // namespace shoal::manager
