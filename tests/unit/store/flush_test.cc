// The applied state on disk, written every Ready by default or lagging the
// State under the batched flush policy (ReplicatedStoreOptions::flush_*): when
// it is written, and that a restart after a crash at any point (the applied
// state behind, equal to or ahead of Raft's snapshot) rebuilds the same state.

#include <catch2/catch.hpp>
#include <filesystem>

#include "disk_member.h"
#include "shoal/store/replicated_store.h"
#include "shoal/store/txn.h"
#include "store_cluster.h"

using shoal::store::Kind;
using shoal::store::PersistentState;
using shoal::store::ReplicatedStoreOptions;
using shoal::store::State;
using shoal::store::Txn;
namespace fs = std::filesystem;
namespace v1 = shoal::v1;
using namespace shoal::store::testing;

namespace {

// Options under which only the test's own thresholds write the state.
ReplicatedStoreOptions Lazy() {
  ReplicatedStoreOptions o = FastOptions();
  o.flush_objects = 1000000;
  o.flush_entries = 1000000;
  o.flush_interval = std::chrono::hours(1);
  return o;
}

// What the applied state on disk holds, read as a restart would.
State OnDisk(const fs::path& dir) {
  auto p = PersistentState::Open((dir / "state").string());
  REQUIRE(p.ok());
  State s;
  REQUIRE((*p)->Load(&s).ok());
  return s;
}

// The state with its applied index set to `index`, for comparing states
// that differ only by a new leader's no-op entries.
v1::StoreSnapshot At(const State& s, uint64_t index) {
  v1::StoreSnapshot snap = s.ToSnapshot();
  snap.set_applied_index(index);
  return snap;
}

bool Same(const v1::StoreSnapshot& a, const v1::StoreSnapshot& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

// A config that replaces `id` as `state` holds it (or creates it).
v1::Config Next(const State& state, const std::string& id, const std::string& data) {
  const v1::Config* now = state.Get<v1::Config>(id);
  return MakeConfig(id, data, now != nullptr ? now->meta().version() : 0);
}

Outcome Delete(DiskMember& m, const std::string& id) {
  Txn txn;
  txn.Delete(MakeConfig(id, ""));
  Outcome out;
  m.store->Propose(std::move(txn).Build("test", 1), out.Callback());
  REQUIRE(m.store->Process().ok());
  return out;
}

}  // namespace

TEST_CASE("the applied state is written once enough objects changed, each once") {
  TempDir dir;
  ReplicatedStoreOptions o = Lazy();
  o.flush_objects = 3;
  uint64_t flushed = 0;
  {
    DiskMember m(dir.path, true, 256 << 10, o);
    uint64_t start = m.store->flushed_index();
    // c1 three times, then c2: two distinct objects, below the threshold.
    for (const char* v : {"a", "b", "c"})
      REQUIRE(m.Put(Next(m.store->state(), "c1", v)).status.ok());
    REQUIRE(m.Put(MakeConfig("c2", "x")).status.ok());
    CHECK(m.store->flushed_index() == start);
    // A third object: all three written, c1 as it is now.
    REQUIRE(m.Put(MakeConfig("c3", "x")).status.ok());
    CHECK(m.store->flushed_index() == m.store->state().applied_index());
    flushed = m.store->flushed_index();
    // Two more changes stay pending, and a crash loses them from this disk.
    REQUIRE(m.Put(MakeConfig("c4", "x")).status.ok());
    REQUIRE(Delete(m, "c1").status.ok());
    CHECK(m.store->flushed_index() == flushed);
    m.store->DiscardUnwritten();
  }
  State disk = OnDisk(dir.path);
  CHECK(disk.applied_index() == flushed);
  REQUIRE(disk.Get<v1::Config>("c1") != nullptr);
  CHECK(disk.Get<v1::Config>("c1")->spec().data() == "c");
  CHECK(disk.Get<v1::Config>("c4") == nullptr);
  // The restart replays what the crash lost from the Raft log.
  DiskMember again(dir.path, true, 256 << 10, o);
  CHECK(again.store->state().Get<v1::Config>("c1") == nullptr);
  CHECK(again.store->state().Get<v1::Config>("c4") != nullptr);
  CHECK(again.store->state().Count(Kind::kConfig) == 3);
}

TEST_CASE("the applied state is written after enough entries, time, or every Ready") {
  TempDir dir;
  ReplicatedStoreOptions o = Lazy();
  SECTION("entries") {
    o.flush_entries = 4;
    DiskMember m(dir.path, true, 256 << 10, o);
    uint64_t start = m.store->flushed_index();
    while (m.store->state().applied_index() < start + 3) {
      REQUIRE(m.Put(Next(m.store->state(), "c", "x")).status.ok());
      CHECK(m.store->flushed_index() == start);
    }
    REQUIRE(m.Put(Next(m.store->state(), "c", "y")).status.ok());
    CHECK(m.store->flushed_index() == m.store->state().applied_index());
  }
  SECTION("time") {
    o.flush_interval = 5 * o.raft.tick_interval;
    DiskMember m(dir.path, true, 256 << 10, o);
    REQUIRE(m.Put(Next(m.store->state(), "c", "x")).status.ok());
    uint64_t applied = m.store->state().applied_index();
    int ticks = 0;
    while (m.store->flushed_index() != applied && ticks < 100) {
      m.store->Tick();
      REQUIRE(m.store->Process().ok());
      ++ticks;
    }
    CHECK(m.store->flushed_index() == applied);
    CHECK(ticks >= 4);
    CHECK(ticks <= 6);
  }
  SECTION("sync_applied: every Ready, synced") {
    o.sync_applied = true;
    DiskMember m(dir.path, true, 256 << 10, o);
    REQUIRE(m.Put(Next(m.store->state(), "c", "x")).status.ok());
    CHECK(m.store->flushed_index() == m.store->state().applied_index());
  }
  SECTION("a clean stop writes everything") {
    uint64_t applied = 0;
    {
      DiskMember m(dir.path, true, 256 << 10, o);
      REQUIRE(m.Put(Next(m.store->state(), "c", "x")).status.ok());
      CHECK(m.store->flushed_index() < m.store->state().applied_index());
      applied = m.store->state().applied_index();
    }
    CHECK(OnDisk(dir.path).applied_index() == applied);
  }
}

TEST_CASE("a crash at any point restarts to the same state") {
  // Snapshots every 8 entries, keeping 2 below: the log is compacted often,
  // while the applied state is written every 5 objects or 7 entries, so a
  // crash finds it behind, at or ahead of Raft's snapshot.
  ReplicatedStoreOptions o = Lazy();
  o.snapshot_every = 8;
  o.snapshot_keep = 2;
  o.flush_objects = 5;
  o.flush_entries = 7;
  bool behind = false;
  bool ahead = false;
  for (int crash_after = 1; crash_after <= 40; crash_after += 3) {
    TempDir dir;
    v1::StoreSnapshot before;
    {
      DiskMember m(dir.path, true, 256 << 10, o);
      for (int i = 0; i < crash_after; ++i) {
        std::string id = "c" + std::to_string(i % 7);
        if (i % 5 == 4) {
          REQUIRE(Delete(m, id).done);  // may find it gone already: refused alike
        } else {
          REQUIRE(m.Put(Next(m.store->state(), id, std::to_string(i))).status.ok());
        }
      }
      before = m.store->state().ToSnapshot();
      if (m.store->flushed_index() < m.store->snapshot_index()) behind = true;
      if (m.store->flushed_index() > m.store->snapshot_index()) ahead = true;
      m.store->DiscardUnwritten();
    }
    DiskMember m(dir.path, true, 256 << 10, o);
    INFO("crash after " << crash_after << " writes");
    CHECK(m.store->state().applied_index() >= before.applied_index());
    CHECK(Same(At(m.store->state(), before.applied_index()), before));
  }
  CHECK(ahead);
  CHECK(!behind);  // a snapshot writes the applied state first
}

TEST_CASE("an applied state older than Raft's snapshot is replaced by it") {
  TempDir dir;
  TempDir saved;
  ReplicatedStoreOptions o = Lazy();
  o.snapshot_every = 10;
  o.snapshot_keep = 2;
  {
    DiskMember m(dir.path, true, 256 << 10, o);
    REQUIRE(m.Put(MakeConfig("early", "x")).status.ok());
  }
  fs::copy(dir.path / "state", saved.path / "state");
  v1::StoreSnapshot full;
  {
    DiskMember m(dir.path, true, 256 << 10, o);
    for (int i = 0; i < 30; ++i) {
      REQUIRE(m.Put(Next(m.store->state(), "c" + std::to_string(i % 4), std::to_string(i)))
                  .status.ok());
    }
    REQUIRE(m.store->raft_status().first_index > 3);  // the early entries are gone
    full = m.store->state().ToSnapshot();
    m.store->DiscardUnwritten();
  }
  // As if every write since "early" had been lost.
  fs::remove_all(dir.path / "state");
  fs::copy(saved.path / "state", dir.path / "state");
  DiskMember m(dir.path, true, 256 << 10, o);
  CHECK(Same(At(m.store->state(), full.applied_index()), full));
}

TEST_CASE("three members with lagging applied states survive crashes") {
  TempDir dir;
  ReplicatedStoreOptions o = Lazy();
  o.flush_objects = 4;
  o.snapshot_every = 12;
  o.snapshot_keep = 3;
  StoreCluster c(3, o, 5, dir.path);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  for (int round = 0; round < 6; ++round) {
    uint64_t leader = c.Leader();
    REQUIRE(leader != 0);
    for (int i = 0; i < 7; ++i) {
      REQUIRE(c.Put(leader,
                    Next(c.store(leader)->state(), "r" + std::to_string(i), std::to_string(round)))
                  .status.ok());
    }
    // Crash the leader every other round, a follower otherwise.
    uint64_t victim = round % 2 == 0 ? leader : (leader % 3) + 1;
    c.Crash(victim);
    REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
    REQUIRE(c.Start(victim).ok());
  }
  uint64_t leader = c.Leader();
  REQUIRE(c.Put(leader, MakeConfig("last", "x")).status.ok());
  REQUIRE(c.RunUntil([&] {
    uint64_t a = c.store(1)->state().applied_index();
    return a == c.store(2)->state().applied_index() && a == c.store(3)->state().applied_index() &&
           c.store(1)->state().Get<v1::Config>("last") != nullptr;
  }));
  CHECK(SameState(c.store(1)->state(), c.store(2)->state()));
  CHECK(SameState(c.store(1)->state(), c.store(3)->state()));
  CHECK(c.store(1)->state().Get<v1::Config>("r6")->spec().data() == "5");
}

TEST_CASE("by default the applied state is written every Ready, from its events") {
  TempDir dir;
  ReplicatedStoreOptions o = FastOptions();
  REQUIRE(o.flush_objects == 0);
  uint64_t applied = 0;
  v1::StoreSnapshot live;
  {
    DiskMember m(dir.path, true, 256 << 10, o);
    REQUIRE(m.Put(MakeConfig("c1", "a")).status.ok());
    CHECK(m.store->flushed_index() == m.store->state().applied_index());
    // Two commands in one Ready change c1 twice: the later write wins.
    Txn first;
    first.Put(*m.store->state().Get<v1::Config>("c1"));
    Outcome a, b, c;
    m.store->Propose(std::move(first).Build("test", 1), a.Callback());
    REQUIRE(m.store->Process().ok());
    REQUIRE(a.status.ok());
    Txn t2;
    t2.Put(Next(m.store->state(), "c1", "b"));
    Txn t3;
    t3.Put(MakeConfig("c2", "x"));
    m.store->Propose(std::move(t2).Build("test", 2), b.Callback());
    m.store->Propose(std::move(t3).Build("test", 3), c.Callback());
    REQUIRE(m.store->Process().ok());
    REQUIRE(b.status.ok());
    REQUIRE(c.status.ok());
    REQUIRE(Delete(m, "c2").status.ok());
    applied = m.store->state().applied_index();
    CHECK(m.store->flushed_index() == applied);
    live = m.store->state().ToSnapshot();
    // Nothing is left to write: a crash here loses nothing from this disk.
    m.store->DiscardUnwritten();
  }
  State disk = OnDisk(dir.path);
  CHECK(disk.applied_index() == applied);
  CHECK(Same(disk.ToSnapshot(), live));
  REQUIRE(disk.Get<v1::Config>("c1") != nullptr);
  CHECK(disk.Get<v1::Config>("c1")->spec().data() == "b");
  CHECK(disk.Get<v1::Config>("c2") == nullptr);
}
