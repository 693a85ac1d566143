// Membership changes and leadership transfer through ReplicatedStore: what the
// daemon's `cluster join`, `cluster leave`, `node demote/rm` and clean
// shutdown rely on.

#include <catch2/catch.hpp>

#include "store_cluster.h"

using shoal::Code;
using shoal::store::ReplicatedStoreOptions;
using shoal::store::VoterStatus;
namespace v1 = shoal::v1;
using namespace shoal::store::testing;

namespace {

constexpr auto kAdd = v1::CONF_CHANGE_ADD_VOTER;
constexpr auto kRemove = v1::CONF_CHANGE_REMOVE_VOTER;
using Ids = std::vector<uint64_t>;

bool HasConfig(StoreCluster& c, uint64_t id, const std::string& key) {
  return c.store(id) && c.store(id)->state().Get<v1::Config>(key) != nullptr;
}

// Steps until every listed member applied the same index and holds `key`.
bool Converged(StoreCluster& c, const Ids& ids, const std::string& key) {
  return c.RunUntil([&] {
    for (uint64_t id : ids) {
      if (!HasConfig(c, id, key)) return false;
      if (c.store(id)->state().applied_index() != c.store(ids[0])->state().applied_index()) {
        return false;
      }
    }
    return true;
  });
}

void CheckSameStates(StoreCluster& c, const Ids& ids) {
  for (uint64_t id : ids) CHECK(SameState(c.store(ids[0])->state(), c.store(id)->state()));
}

uint64_t OtherThan(const Ids& ids, uint64_t not_this) {
  for (uint64_t id : ids) {
    if (id != not_this) return id;
  }
  return 0;
}

}  // namespace

TEST_CASE("growing from one member to three with empty joiners") {
  StoreCluster c(1, FastOptions(), 3);
  REQUIRE(c.store(1)->is_leader());
  REQUIRE(c.Put(1, MakeConfig("before", "x")).status.ok());

  // The daemon's order: the leader commits the change, then the joiner starts
  // with an empty data directory and no peers.
  Outcome add2 = c.Change(1, kAdd, 2);
  REQUIRE(add2.status.ok());
  CHECK(add2.index > 0);
  CHECK(c.store(1)->voters() == Ids{1, 2});
  REQUIRE(c.AddJoiner(2).ok());
  CHECK(c.store(2)->voters().empty());  // learns the configuration from the leader
  CHECK(!c.store(2)->removed());
  REQUIRE(Converged(c, {1, 2}, "before"));
  CHECK(c.store(2)->voters() == Ids{1, 2});
  REQUIRE(c.Put(1, MakeConfig("middle", "x")).status.ok());

  REQUIRE(c.Change(1, kAdd, 3).status.ok());
  REQUIRE(c.AddJoiner(3).ok());
  // A joiner forwards writes once it has heard from the leader.
  REQUIRE(c.RunUntil([&] { return c.store(3)->raft_status().leader == 1; }));
  REQUIRE(c.Put(3, MakeConfig("after", "x")).status.ok());
  REQUIRE(Converged(c, {1, 2, 3}, "after"));
  for (uint64_t id : {1, 2, 3}) {
    CHECK(c.store(id)->voters() == Ids{1, 2, 3});
    CHECK(HasConfig(c, id, "before"));
    CHECK(HasConfig(c, id, "middle"));
  }
  CheckSameStates(c, {1, 2, 3});

  // A joiner is a full voter: it can lead.
  REQUIRE(c.store(1)->TransferLeadership(3).ok());
  REQUIRE(c.RunUntil([&] { return c.Leader() == 3; }));
  REQUIRE(c.Put(3, MakeConfig("led-by-3", "x")).status.ok());
  REQUIRE(Converged(c, {1, 2, 3}, "led-by-3"));
  CheckSameStates(c, {1, 2, 3});
}

TEST_CASE("removing a follower: it learns it was removed and cannot disrupt the group") {
  StoreCluster c(3, FastOptions(), 11);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t gone = OtherThan({1, 2, 3}, leader);
  Ids rest;
  for (uint64_t id : {1, 2, 3}) {
    if (id != gone) rest.push_back(id);
  }
  REQUIRE(c.Put(leader, MakeConfig("before", "x")).status.ok());

  // `node rm` of a member that is down or cut off: it misses its removal, and
  // the leader no longer replicates to it afterwards, so it learns the news
  // from the answer to its first campaign.
  c.net().Cut(gone);
  Outcome rm = c.Change(leader, kRemove, gone);
  REQUIRE(rm.status.ok());
  CHECK(c.store(leader)->voters() == rest);
  for (int i = 0; i < 30; ++i) c.Step();
  c.net().Heal(gone);
  CHECK(!c.store(gone)->removed());
  REQUIRE(c.RunUntil([&] { return c.store(gone)->removed(); }));
  uint64_t term = c.store(leader)->raft_status().term;
  for (int i = 0; i < 300; ++i) c.Step();  // 30 election timeouts
  CHECK(c.Leader() == leader);
  CHECK(c.store(leader)->raft_status().term == term);
  CHECK(c.store(gone)->raft_status().role == shoal::raft::Role::kFollower);

  REQUIRE(c.Put(leader, MakeConfig("after", "x")).status.ok());
  REQUIRE(Converged(c, rest, "after"));
  CHECK(!HasConfig(c, gone, "after"));

  // A removed member refuses work rather than forwarding it.
  Outcome refused = c.Put(gone, MakeConfig("from-removed", "x"));
  CHECK(refused.status.code() == Code::kFailedPrecondition);
  // Ids are never reused.
  Outcome again = c.Change(leader, kAdd, gone);
  CHECK(again.status.code() == Code::kFailedPrecondition);
  CHECK(c.store(leader)->voters() == rest);
}

TEST_CASE("removing the leader: it hands over at once and the group keeps committing") {
  StoreCluster c(3, FastOptions(), 5);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t old = c.Leader();
  REQUIRE(c.Put(old, MakeConfig("before", "x")).status.ok());

  Outcome rm = c.Change(old, kRemove, old);
  REQUIRE(rm.status.ok());
  CHECK(c.store(old)->removed());
  // MSG_TIMEOUT_NOW: no election timeout (10 ticks) to wait out.
  int ticks = 0;
  while (ticks < 10 && (c.Leader() == 0 || c.Leader() == old)) {
    c.Step();
    ++ticks;
  }
  uint64_t next = c.Leader();
  REQUIRE(next != 0);
  REQUIRE(next != old);
  CHECK(ticks < 5);
  Ids rest;
  for (uint64_t id : {1, 2, 3}) {
    if (id != old) rest.push_back(id);
  }
  CHECK(c.store(next)->voters() == rest);
  REQUIRE(c.Put(next, MakeConfig("after", "x")).status.ok());
  REQUIRE(Converged(c, rest, "after"));
  CheckSameStates(c, rest);
  for (int i = 0; i < 200; ++i) {
    c.Step();
    REQUIRE(!c.store(old)->is_leader());
  }
  CHECK(c.Leader() == next);
  // The group of two can shrink further, and then grows with a fresh id.
  REQUIRE(c.Change(next, kRemove, OtherThan(rest, next)).status.ok());
  CHECK(c.store(next)->voters() == Ids{next});
  REQUIRE(c.Change(next, kAdd, 7).status.ok());
  REQUIRE(c.AddJoiner(7).ok());
  REQUIRE(c.Put(next, MakeConfig("with-7", "x")).status.ok());
  REQUIRE(Converged(c, {next, 7}, "with-7"));
  CHECK(c.store(7)->voters() == (next < 7 ? Ids{next, 7} : Ids{7, next}));
}

TEST_CASE("configuration changes are refused where they cannot be vouched for") {
  StoreCluster c(3, FastOptions(), 17);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t follower = OtherThan({1, 2, 3}, leader);

  Outcome on_follower = c.Change(follower, kAdd, 4);
  CHECK(on_follower.status.code() == Code::kUnavailable);

  // One change at a time; the refusal still runs from Process().
  shoal::raft::ConfChange a;
  a.set_type(kAdd);
  a.set_node_id(4);
  shoal::raft::ConfChange b = a;
  b.set_node_id(5);
  Outcome first;
  Outcome second;
  c.store(leader)->ProposeConfChange(a, first.Callback());
  c.store(leader)->ProposeConfChange(b, second.Callback());
  CHECK(!second.done);
  REQUIRE(c.store(leader)->Process().ok());
  CHECK(second.done);
  CHECK(second.status.code() == Code::kFailedPrecondition);
  REQUIRE(c.RunUntil([&] { return first.done; }));
  CHECK(first.status.ok());

  CHECK(c.Change(leader, kAdd, 4).status.code() == Code::kFailedPrecondition);     // a voter
  CHECK(c.Change(leader, kRemove, 9).status.code() == Code::kFailedPrecondition);  // not one
  REQUIRE(c.AddJoiner(4).ok());
  REQUIRE(c.RunUntil([&] { return c.store(4)->voters().size() == 4; }));

  // A leader cut off before its change commits reports the outcome unknown.
  c.net().Cut(leader);
  Outcome lost = Outcome();
  shoal::raft::ConfChange rm;
  rm.set_type(kRemove);
  rm.set_node_id(follower);
  c.store(leader)->ProposeConfChange(rm, lost.Callback());
  REQUIRE(c.RunUntil([&] { return lost.done; }));
  CHECK(lost.status.code() == Code::kUnavailable);
}

TEST_CASE("StepDown picks the most up-to-date reachable voter; voter_status shows reachability") {
  StoreCluster c(3, FastOptions(), 23);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  uint64_t follower = OtherThan({1, 2, 3}, leader);
  uint64_t lagging = 6 - leader - follower;
  CHECK(c.store(follower)->StepDown().code() == Code::kFailedPrecondition);

  c.net().Cut(lagging);
  for (int i = 0; i < 3; ++i)
    REQUIRE(c.Put(leader, MakeConfig("k" + std::to_string(i), "x")).status.ok());
  for (int i = 0; i < 15; ++i) c.Step();  // more than an election timeout of silence

  auto status = c.store(leader)->voter_status();
  REQUIRE(status.size() == 3);
  for (const VoterStatus& v : status) {
    CHECK(v.leader == (v.id == leader));
    auto want = v.id == lagging ? VoterStatus::Reachability::kUnreachable
                                : VoterStatus::Reachability::kReachable;
    CHECK(v.reachability == want);
    if (v.id != lagging) CHECK(v.match == c.store(leader)->raft_status().last_index);
  }
  auto seen_by_follower = c.store(follower)->voter_status();
  for (const VoterStatus& v : seen_by_follower) {
    if (v.id == lagging) CHECK(v.reachability == VoterStatus::Reachability::kUnknown);
    if (v.id == leader) CHECK(v.reachability == VoterStatus::Reachability::kReachable);
  }

  REQUIRE(c.store(leader)->StepDown().ok());
  REQUIRE(c.RunUntil([&] { return c.Leader() == follower; }, 10));
  c.net().Heal(lagging);
  REQUIRE(c.Put(follower, MakeConfig("after", "x")).status.ok());
  REQUIRE(Converged(c, {1, 2, 3}, "after"));

  StoreCluster alone(1, FastOptions(), 29);
  CHECK(alone.store(1)->StepDown().code() == Code::kFailedPrecondition);
}

TEST_CASE("a joiner catches up by snapshot and knows the membership from it") {
  ReplicatedStoreOptions o = FastOptions();
  o.snapshot_every = 10;
  o.snapshot_keep = 2;
  StoreCluster c(3, o, 31);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  // A removal before the snapshot: the joiner must learn it from the snapshot.
  uint64_t gone = OtherThan({1, 2, 3}, leader);
  REQUIRE(c.Change(leader, kRemove, gone).status.ok());
  for (int i = 0; i < 40; ++i) {
    REQUIRE(c.Put(leader, MakeConfig("s" + std::to_string(i), "x")).status.ok());
  }
  REQUIRE(c.store(leader)->raft_status().first_index > 10);

  REQUIRE(c.Change(leader, kAdd, 4).status.ok());
  REQUIRE(c.AddJoiner(4).ok());
  REQUIRE(c.RunUntil([&] { return HasConfig(c, 4, "s39"); }));
  CHECK(c.store(4)->snapshot_index() > 0);
  Ids want;
  for (uint64_t id : {1, 2, 3, 4}) {
    if (id != gone) want.push_back(id);
  }
  CHECK(c.store(4)->voters() == want);
  auto removed = c.store(4)->raft_status().conf_state.removed();
  CHECK(Ids(removed.begin(), removed.end()) == Ids{gone});

  REQUIRE(c.store(leader)->TransferLeadership(4).ok());
  REQUIRE(c.RunUntil([&] { return c.Leader() == 4; }));
  CHECK(c.Change(4, kAdd, gone).status.code() == Code::kFailedPrecondition);
  REQUIRE(c.Put(4, MakeConfig("led-by-4", "x")).status.ok());
  Ids live = want;
  REQUIRE(Converged(c, live, "led-by-4"));
  CheckSameStates(c, live);
}

TEST_CASE("membership survives a restart of every member (LevelDB, snapshots)") {
  TempDir dir;
  ReplicatedStoreOptions o = FastOptions();
  o.snapshot_every = 5;
  o.snapshot_keep = 2;
  StoreCluster c(3, o, 37, dir.path);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  REQUIRE(c.Change(leader, kAdd, 4).status.ok());
  REQUIRE(c.AddJoiner(4).ok());
  REQUIRE(c.Put(leader, MakeConfig("a", "x")).status.ok());
  uint64_t gone = OtherThan({1, 2, 3}, leader);
  REQUIRE(c.Change(leader, kRemove, gone).status.ok());
  for (int i = 0; i < 12; ++i) {
    REQUIRE(c.Put(leader, MakeConfig("b" + std::to_string(i), "x")).status.ok());
  }
  Ids want;
  for (uint64_t id : {1, 2, 3, 4}) {
    if (id != gone) want.push_back(id);
  }
  REQUIRE(Converged(c, want, "b11"));
  REQUIRE(c.store(leader)->snapshot_index() > 0);

  for (uint64_t id : {1, 2, 3, 4}) c.Crash(id);
  for (uint64_t id : {1, 2, 3, 4}) REQUIRE(c.Start(id).ok());
  for (uint64_t id : want) CHECK(c.store(id)->voters() == want);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0 && c.store(gone)->removed(); }));
  uint64_t next = c.Leader();
  CHECK(next != gone);
  CHECK(c.Change(next, kAdd, gone).status.code() == Code::kFailedPrecondition);
  REQUIRE(c.Put(next, MakeConfig("after-restart", "x")).status.ok());
  REQUIRE(Converged(c, want, "after-restart"));
  CheckSameStates(c, want);
  for (uint64_t id : want) CHECK(HasConfig(c, id, "a"));
}
