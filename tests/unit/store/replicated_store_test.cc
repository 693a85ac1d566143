#include "shoal/store/replicated_store.h"

#include <catch2/catch.hpp>

#include "disk_member.h"
#include "shoal/raft/leveldb_storage.h"
#include "store_cluster.h"

using shoal::Code;
using shoal::Status;
using shoal::store::Event;
using shoal::store::PersistentState;
using shoal::store::ReplicatedStore;
using shoal::store::ReplicatedStoreDeps;
using shoal::store::ReplicatedStoreOptions;
using shoal::store::State;
namespace fs = std::filesystem;
namespace raft = shoal::raft;
namespace v1 = shoal::v1;
using namespace shoal::store::testing;

namespace {}  // namespace

TEST_CASE("a group of one commits without peers: propose, apply, watch, read") {
  TempDir dir;
  DiskMember m(dir.path);
  REQUIRE(m.store->is_leader());  // no election timeout for a group of one

  Outcome put = m.Put(MakeConfig("c1", "hello"));
  REQUIRE(put.done);
  REQUIRE(put.status.ok());
  const v1::Config* c = m.store->state().Get<v1::Config>("c1");
  REQUIRE(c);
  CHECK(c->spec().data() == "hello");
  CHECK(c->meta().version() == put.index);

  auto events = m.store->watch().Since(0);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 1);
  CHECK(events->front().version == put.index);
  CHECK(events->front().mutation.config().meta().id() == "c1");

  Outcome read;
  m.store->Read(read.Callback());
  REQUIRE(m.store->Process().ok());
  REQUIRE(read.done);
  CHECK(read.status.ok());
  CHECK(read.index >= put.index);
}

TEST_CASE("a transaction refused for a stale version reports the error to its proposer") {
  TempDir dir;
  DiskMember m(dir.path);
  Outcome first = m.Put(MakeConfig("c1", "v1"));
  REQUIRE(first.status.ok());
  Outcome update = m.Put(MakeConfig("c1", "v2", first.index));
  REQUIRE(update.status.ok());
  // A writer that read the first version.
  Outcome stale = m.Put(MakeConfig("c1", "v3", first.index));
  REQUIRE(stale.done);
  CHECK(stale.status.code() == Code::kFailedPrecondition);
  CHECK(stale.index > update.index);
  CHECK(m.store->state().Get<v1::Config>("c1")->spec().data() == "v2");
  // The refused entry still moved the applied index, on every member alike.
  CHECK(m.store->state().applied_index() == stale.index);
}

TEST_CASE("a restart loads the applied state and replays only the entries after it") {
  TempDir dir;
  TempDir saved;
  uint64_t saved_applied = 0;
  {
    DiskMember m(dir.path);
    for (int i = 0; i < 5; ++i) {
      Outcome o = m.Put(MakeConfig("a" + std::to_string(i), "x"));
      REQUIRE(o.status.ok());
    }
    saved_applied = m.store->state().applied_index();
  }
  // Keep the applied state as it was after five writes, then write five more.
  fs::copy(dir.path / "state", saved.path / "state");
  uint64_t applied_after_five = 0;
  v1::StoreSnapshot full;
  {
    DiskMember m(dir.path);
    applied_after_five = m.store->state().applied_index();
    CHECK(m.store->state().Count(shoal::store::Kind::kConfig) == 5);
    for (int i = 0; i < 5; ++i) {
      Outcome o = m.Put(MakeConfig("b" + std::to_string(i), "y"));
      REQUIRE(o.status.ok());
    }
    full = m.store->state().ToSnapshot();
  }

  SECTION("with the applied state current, nothing is replayed") {
    DiskMember m(dir.path);
    auto events = m.store->watch().Since(full.applied_index());
    REQUIRE(events.ok());
    CHECK(events->empty());  // only the new term's no-op followed
    CHECK(m.store->watch().Since(full.applied_index() - 1).error().code() ==
          Code::kFailedPrecondition);
    auto now = m.store->state().ToSnapshot();
    CHECK(now.applied_index() >= full.applied_index());
    now.set_applied_index(full.applied_index());
    CHECK(google::protobuf::util::MessageDifferencer::Equals(now, full));
  }
  SECTION("with the applied state behind (its batch was not synced), the rest is replayed") {
    fs::remove_all(dir.path / "state");
    fs::copy(saved.path / "state", dir.path / "state");
    DiskMember m(dir.path);
    CHECK(m.store->state().applied_index() >= full.applied_index());
    // Exactly the five later writes were applied again.
    auto events = m.store->watch().Since(applied_after_five);
    REQUIRE(events.ok());
    REQUIRE(events->size() == 5);
    CHECK(events->front().mutation.config().meta().id() == "b0");
    CHECK(m.store->watch().Since(saved_applied - 1).error().code() == Code::kFailedPrecondition);
    auto now = m.store->state().ToSnapshot();
    now.set_applied_index(full.applied_index());  // a new leader's no-op may follow
    CHECK(google::protobuf::util::MessageDifferencer::Equals(now, full));
  }
}

TEST_CASE("three members: election, forwarding, catch-up by log and by snapshot") {
  ReplicatedStoreOptions o = FastOptions();
  o.snapshot_every = 20;
  o.snapshot_keep = 5;
  StoreCluster c(3, o, 42);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t follower = leader == 1 ? 2 : 1;

  Outcome o1 = c.Put(follower, MakeConfig("c1", "from a follower"));
  REQUIRE(o1.status.ok());
  REQUIRE(c.RunUntil([&] {
    for (uint64_t id : {1, 2, 3}) {
      if (!c.store(id)->state().Get<v1::Config>("c1")) return false;
    }
    return true;
  }));

  SECTION("a crashed member catches up from the log") {
    uint64_t victim = leader == 3 ? 2 : 3;
    c.Crash(victim);
    for (int i = 0; i < 5; ++i)
      REQUIRE(c.Put(leader, MakeConfig("l" + std::to_string(i), "x")).status.ok());
    REQUIRE(c.Start(victim).ok());
    REQUIRE(c.RunUntil([&] { return c.store(victim)->state().Get<v1::Config>("l4") != nullptr; }));
    CHECK(c.store(victim)->snapshot_index() == 0);
  }
  SECTION("a crashed member catches up by snapshot after compaction") {
    uint64_t victim = leader == 3 ? 2 : 3;
    c.Crash(victim);
    for (int i = 0; i < 60; ++i)
      REQUIRE(c.Put(leader, MakeConfig("s" + std::to_string(i), "x")).status.ok());
    REQUIRE(c.store(leader)->snapshot_index() > 20);
    REQUIRE(c.store(leader)->raft_status().first_index > 10);
    REQUIRE(c.Start(victim).ok());
    REQUIRE(c.RunUntil([&] { return c.store(victim)->state().Get<v1::Config>("s59") != nullptr; }));
    CHECK(c.store(victim)->snapshot_index() > 0);
    // A watcher on the restarted member from before the snapshot must reload.
    CHECK(c.store(victim)->watch().Since(1).error().code() == Code::kFailedPrecondition);
  }
  SECTION("a crashed leader is replaced and writes continue") {
    c.Crash(leader);
    REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
    uint64_t next = c.Leader();
    REQUIRE(c.Put(next, MakeConfig("after", "x")).status.ok());
    REQUIRE(c.Start(leader).ok());
    REQUIRE(
        c.RunUntil([&] { return c.store(leader)->state().Get<v1::Config>("after") != nullptr; }));
  }

  // Every state identical once the group is quiet.
  c.RunUntil([&] {
    uint64_t a = c.store(1)->state().applied_index();
    return a == c.store(2)->state().applied_index() && a == c.store(3)->state().applied_index();
  });
  CHECK(SameState(c.store(1)->state(), c.store(2)->state()));
  CHECK(SameState(c.store(1)->state(), c.store(3)->state()));
}

TEST_CASE("a leader that loses its leadership fails its pending proposals as unknown") {
  StoreCluster c(3, FastOptions(), 7);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  c.net().Cut(leader);  // its messages and theirs are lost
  Outcome o;
  c.store(leader)->Propose(PutCommand(MakeConfig("lost", "x")), o.Callback());
  REQUIRE(c.RunUntil([&] { return o.done; }));
  CHECK(o.status.code() == Code::kUnavailable);
  c.net().Heal(leader);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0 && c.Leader() != leader; }));
}

TEST_CASE("a follower without a leader refuses at once, through the callback") {
  StoreCluster c(3, FastOptions(), 9);
  Outcome o;
  c.store(1)->Propose(PutCommand(MakeConfig("x", "x")), o.Callback());
  CHECK(!o.done);  // never from inside Propose
  REQUIRE(c.store(1)->Process().ok());
  REQUIRE(o.done);
  CHECK(o.status.code() == Code::kUnavailable);
}
