#pragma once

// A group of one on LevelDB for the store tests: the Raft log in dir/raft
// and, with `with_state`, the applied state in dir/state (without it the
// state lives in memory, so a restart replays the whole Raft log).

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>

#include "shoal/raft/leveldb_storage.h"
#include "shoal/store/replicated_store.h"
#include "store_cluster.h"

namespace shoal::store::testing {

// A transport for a group of one: nothing is ever sent.
class NoPeers : public raft::Transport {
 public:
  Status Send(const v1::Message&) override { return {Code::kUnavailable, "no peers"}; }
};

struct DiskMember {
  std::unique_ptr<raft::LevelDbStorage> raft_disk;
  std::unique_ptr<PersistentState> applied;
  NoPeers transport;
  SeededRandom random{7};
  std::unique_ptr<ReplicatedStore> store;

  explicit DiskMember(const std::filesystem::path& dir, bool with_state = true,
                      size_t batch_max_bytes = 256 << 10,
                      ReplicatedStoreOptions o = FastOptions()) {
    auto r = raft::LevelDbStorage::Open((dir / "raft").string());
    REQUIRE(r.ok());
    raft_disk = std::move(r).value();
    if (with_state) {
      auto p = PersistentState::Open((dir / "state").string());
      REQUIRE(p.ok());
      applied = std::move(p).value();
    }
    o.raft.id = 1;
    o.raft.peers = {1};
    o.batch_max_bytes = batch_max_bytes;
    ReplicatedStoreDeps deps{raft_disk.get(), applied.get(), &transport, &random};
    auto s = ReplicatedStore::Open(o, deps);
    REQUIRE(s.ok());
    store = std::move(s).value();
    REQUIRE(store->Process().ok());
  }
  ~DiskMember() {
    store.reset();  // before the storages it borrows
  }

  Outcome Put(const v1::Config& c) {
    Outcome out;
    store->Propose(PutCommand(c), out.Callback());
    REQUIRE(store->Process().ok());
    return out;
  }
};

}  // namespace shoal::store::testing
