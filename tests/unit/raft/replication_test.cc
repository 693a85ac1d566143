#include <catch2/catch.hpp>

#include "harness.h"

namespace shoal::raft::testing {
namespace {

using Strings = std::vector<std::string>;

TEST_CASE("Proposals commit on every member in order") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  for (std::string d : {"a", "b", "c"}) REQUIRE(c.node(1).Propose(d).ok());
  c.Settle();
  for (auto& [id, n] : c.nodes()) CHECK(AppliedData(n) == Strings{"a", "b", "c"});
}

TEST_CASE("Followers forward proposals to the leader") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(3).Propose("from-3").ok());
  c.Settle();
  for (auto& [id, n] : c.nodes()) CHECK(AppliedData(n) == Strings{"from-3"});
}

TEST_CASE("Without a leader a proposal is refused, not lost silently") {
  Cluster c({1, 2, 3});
  CHECK(c.node(2).Propose("x").code() == Code::kUnavailable);
}

TEST_CASE("Proposals between two Readys travel in one AppendEntries") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(1).Propose("p" + std::to_string(i)).ok());
  Ready rd = c.node(1).GetReady();
  int apps = 0;
  for (const auto& m : rd.messages) {
    if (m.type() == shoal::v1::MSG_APP) {
      ++apps;
      CHECK(m.entries_size() == 10);
    }
  }
  CHECK(apps == 2);
  c.node(1).Advance(rd);
}

TEST_CASE("Pipelining stops at the inflight limit and resumes on acknowledgement") {
  Cluster c({1, 2}, [](Config* cfg) { cfg->max_inflight_msgs = 3; });
  c.Elect(1);
  int apps_to_2 = 0;
  auto drop_acks = [&](const Message& m) {
    if (m.type() == shoal::v1::MSG_APP && m.to() == 2 && m.entries_size() > 0) ++apps_to_2;
    return m.type() != shoal::v1::MSG_APP_RESP;
  };
  for (int i = 0; i < 6; ++i) {
    REQUIRE(c.node(1).Propose("p" + std::to_string(i)).ok());
    c.Settle(drop_acks);
  }
  CHECK(apps_to_2 == 3);  // the window is full; nothing committed yet
  CHECK(c.node(1).status().commit < c.node(1).status().last_index);
  c.Tick(2);  // heartbeats free the window; acknowledgements now flow
  CHECK(c.node(1).status().commit == c.node(1).status().last_index);
  CHECK(AppliedData(c.member(2)).size() == 6);
}

TEST_CASE("A follower with a divergent uncommitted suffix is repaired") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).Propose("committed").ok());
  c.Settle();
  // Leader 1 appends entries only it holds, then loses leadership.
  c.Isolate(1);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(1).Propose("orphan").ok());
  c.Settle();
  uint64_t leader = 0;
  for (int i = 0; i < 60 && leader == 0; ++i) {
    c.Tick();
    for (uint64_t id : {2, 3}) {
      if (c.node(id).status().role == Role::kLeader) leader = id;
    }
  }
  REQUIRE(leader != 0);
  REQUIRE(c.node(leader).Propose("new").ok());
  c.Settle();
  c.Heal();
  c.Tick(3);
  for (auto& [id, n] : c.nodes()) CHECK(AppliedData(n) == Strings{"committed", "new"});
  auto ents1 = c.node(1).EntriesForTest(1, 100);
  auto ents2 = c.node(leader).EntriesForTest(1, 100);
  REQUIRE(ents1.size() == ents2.size());
  for (size_t i = 0; i < ents1.size(); ++i) CHECK(ents1[i].term() == ents2[i].term());
}

TEST_CASE("A member behind the compacted log catches up by InstallSnapshot") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(3);
  for (int i = 0; i < 20; ++i) REQUIRE(c.node(1).Propose("v" + std::to_string(i)).ok());
  c.Settle();
  uint64_t applied = c.node(1).status().applied;
  auto snap = c.node(1).CreateSnapshot("state-at-" + std::to_string(applied), applied);
  REQUIRE(snap.ok());
  REQUIRE(c.member(1).storage.SaveSnapshot(**snap, applied).ok());
  CHECK(c.node(1).status().first_index == applied + 1);
  c.Heal();
  bool got_snapshot = false;
  for (int i = 0; i < 5; ++i) {
    for (auto& [id, n] : c.nodes()) n.node->Tick();
    c.Settle([&](const Message& m) {
      got_snapshot |= m.type() == shoal::v1::MSG_SNAP && m.to() == 3;
      return true;
    });
  }
  CHECK(got_snapshot);
  CHECK(c.node(3).status().applied == applied);
  auto state = c.member(3).storage.Load();
  REQUIRE(state.ok());
  CHECK(state->snapshot->data() == "state-at-" + std::to_string(applied));
  REQUIRE(c.node(1).Propose("after").ok());
  c.Settle();
  CHECK(AppliedData(c.member(3)) == Strings{"after"});
}

TEST_CASE("ReadIndex on a follower goes through the leader") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).Propose("w").ok());
  c.Settle();
  REQUIRE(c.node(2).ReadIndex("r1").ok());
  c.Settle();
  REQUIRE(c.member(2).reads.size() == 1);
  CHECK(c.member(2).reads[0].context == "r1");
  CHECK(c.member(2).reads[0].index == c.node(1).status().commit);
}

TEST_CASE("ReadIndex needs a quorum of heartbeat replies") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(1);
  REQUIRE(c.node(1).ReadIndex("r").ok());
  c.Settle();
  CHECK(c.member(1).reads.empty());
}

ConfChange Change(shoal::v1::ConfChangeType type, uint64_t id) {
  ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(id);
  return cc;
}

TEST_CASE("Adding a member: it learns the log, votes, and can lead") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).Propose("before").ok());
  c.Settle();
  c.Add(4, {});
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_ADD_VOTER, 4)).ok());
  // One change at a time.
  CHECK(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_ADD_VOTER, 5)).code() ==
        Code::kFailedPrecondition);
  c.Settle();
  c.Tick(2);
  auto voters = c.node(4).status().conf_state.voters();
  CHECK(std::vector<uint64_t>(voters.begin(), voters.end()) == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(AppliedData(c.member(4)) == Strings{"before"});
  REQUIRE(c.node(1).TransferLeadership(4).ok());
  c.Settle();
  CHECK(c.Leader() == 4);
}

TEST_CASE("Removing a member: the rest commit without it and its id is never reused") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).ok());
  c.Settle();
  c.Tick(1);
  CHECK(c.node(1).status().conf_state.voters_size() == 2);
  c.Isolate(3);
  REQUIRE(c.node(1).Propose("two-of-two").ok());
  c.Settle();
  CHECK(AppliedData(c.member(2)) == Strings{"two-of-two"});
  CHECK(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_ADD_VOTER, 3)).code() ==
        Code::kFailedPrecondition);
}

TEST_CASE("A removed leader steps down and hands over") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 1)).ok());
  c.Settle();
  c.Tick(2);
  uint64_t leader = c.Leader();
  CHECK((leader == 2 || leader == 3));
  CHECK(c.node(1).status().role == Role::kFollower);
}

TEST_CASE("A restart replays the log from storage") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  for (std::string d : {"a", "b"}) REQUIRE(c.node(1).Propose(d).ok());
  c.Settle();
  c.Restart(2, /*lose_unsynced=*/true);
  c.Tick(2);
  CHECK(AppliedData(c.member(2)) == Strings{"a", "b"});
  c.Restart(1, /*lose_unsynced=*/true);
  c.Tick(30);
  REQUIRE(c.Leader() != 0);
  REQUIRE(c.node(c.Leader()).Propose("c").ok());
  c.Settle();
  CHECK(AppliedData(c.member(2)) == Strings{"a", "b", "c"});
}

}  // namespace
}  // namespace shoal::raft::testing
