// Membership changes beyond the basics in replication_test.cc: how a removed
// member learns it, how a removed leader hands over, what survives a restart.

#include <algorithm>
#include <catch2/catch.hpp>

#include "harness.h"

namespace shoal::raft::testing {
namespace {

using Ids = std::vector<uint64_t>;
using Strings = std::vector<std::string>;

ConfChange Change(shoal::v1::ConfChangeType type, uint64_t id) {
  ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(id);
  return cc;
}

Ids Voters(RaftNode& n) {
  NodeStatus st = n.status();
  return {st.conf_state.voters().begin(), st.conf_state.voters().end()};
}

bool IsVote(const Message& m) {
  return m.type() == shoal::v1::MSG_VOTE || m.type() == shoal::v1::MSG_PRE_VOTE;
}

// Delivers `msgs` addressed to `to` without running its Ready in between.
void DeliverTo(Cluster& c, uint64_t to, const std::vector<Message>& msgs) {
  for (const auto& m : msgs) {
    if (m.to() == to) REQUIRE(c.node(to).Step(m).ok());
  }
}

TEST_CASE("A removed member that missed its removal is told so when it campaigns, and stops") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(3);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).ok());
  c.Settle();
  c.Tick(2);
  REQUIRE(Voters(c.node(1)) == Ids{1, 2});
  REQUIRE(!c.node(3).status().removed);
  uint64_t term = c.node(1).status().term;
  c.Heal();
  // Only 3's clock runs, so 1 and 2 are inside their leader lease and ignore
  // ordinary campaigns; the removal notice must get through anyway.
  for (int i = 0; i < 40 && !c.node(3).status().removed; ++i) {
    c.node(3).Tick();
    c.Settle();
  }
  REQUIRE(c.node(3).status().removed);
  CHECK(c.node(3).status().role == Role::kFollower);
  int votes = 0;
  for (int i = 0; i < 100; ++i) {
    c.node(3).Tick();
    c.Settle([&](const Message& m) {
      if (m.from() == 3 && IsVote(m)) ++votes;
      return true;
    });
  }
  CHECK(votes == 0);
  CHECK(c.node(1).status().term == term);
  CHECK(c.Leader() == 1);
}

TEST_CASE("A removed leader keeps leading until its successor has the whole log") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(3);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 1)).ok());
  uint64_t removal = c.node(1).status().last_index;
  // By hand: 2 acknowledges the removal, and 1 appends one more entry after
  // the removal committed but before applying it.
  DeliverTo(c, 2, c.Process(c.member(1)));
  DeliverTo(c, 1, c.Process(c.member(2)));
  REQUIRE(c.node(1).status().commit == removal);
  REQUIRE(c.node(1).Propose("late").ok());
  std::vector<Message> out = c.Process(c.member(1));  // applies the removal
  NodeStatus st = c.node(1).status();
  CHECK(st.removed);
  CHECK(st.role == Role::kLeader);  // 2 lacks "late": no hand-over yet
  CHECK(st.lead_transferee == 2);
  CHECK(c.node(1).Propose("refused").code() == Code::kUnavailable);
  CHECK(c.node(1).ReadIndex("r").code() == Code::kUnavailable);

  c.Heal();
  DeliverTo(c, 2, out);
  c.Settle();  // no tick: the hand-over needs no election timeout
  CHECK(c.Leader() == 2);
  CHECK(c.node(1).status().role == Role::kFollower);
  CHECK(Voters(c.node(2)) == Ids{2, 3});
  CHECK(AppliedData(c.member(2)) == Strings{"late"});
  REQUIRE(c.node(2).Propose("next").ok());
  c.Settle();
  CHECK(AppliedData(c.member(3)) == Strings{"late", "next"});
}

TEST_CASE("MSG_TIMEOUT_NOW that arrives before the removal is applied waits for it") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 1)).ok());
  std::vector<Message> appends = c.Process(c.member(1));
  DeliverTo(c, 2, appends);
  DeliverTo(c, 3, appends);
  DeliverTo(c, 1, c.Process(c.member(2)));
  DeliverTo(c, 1, c.Process(c.member(3)));
  std::vector<Message> commit = c.Process(c.member(1));  // applies: 2 has it all
  std::vector<Message> timeout_now = c.Process(c.member(1));
  REQUIRE(std::any_of(timeout_now.begin(), timeout_now.end(), [](const Message& m) {
    return m.type() == shoal::v1::MSG_TIMEOUT_NOW && m.to() == 2;
  }));
  CHECK(c.node(1).status().role == Role::kFollower);
  // Both reach 2 in one batch: the removal is committed but not yet applied there.
  DeliverTo(c, 2, commit);
  DeliverTo(c, 2, timeout_now);
  CHECK(c.node(2).status().role == Role::kFollower);
  c.Process(c.member(2));  // applies the removal, then campaigns
  CHECK(c.node(2).status().role == Role::kCandidate);
  c.Settle();
  CHECK(c.Leader() == 2);
  CHECK(Voters(c.node(2)) == Ids{2, 3});
}

TEST_CASE("Peers reports each voter's progress and silence on the leader only") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).Propose("x").ok());
  c.Settle();
  c.Isolate(3);
  c.Tick(5);
  std::vector<PeerProgress> peers = c.node(1).Peers();
  REQUIRE(peers.size() == 2);
  CHECK(peers[0].id == 2);
  CHECK(peers[0].match == c.node(1).status().last_index);
  CHECK(peers[0].inactive_ticks == 0);
  CHECK(peers[1].id == 3);
  CHECK(peers[1].inactive_ticks >= 5);
  CHECK(c.node(2).Peers().empty());
}

TEST_CASE("Removed ids stay removed across a restart from a snapshot") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).ok());
  c.Settle();
  c.Tick(1);
  REQUIRE(c.node(1).Propose("x").ok());
  c.Settle();
  // 1 compacts the removal into a snapshot; 2 keeps it in its log.
  NodeStatus st = c.node(1).status();
  auto snap = c.node(1).CreateSnapshot("", st.applied);
  REQUIRE(snap.ok());
  REQUIRE((*snap)->metadata().conf_state().removed_size() == 1);
  REQUIRE(c.member(1).storage.SaveSnapshot(**snap, st.applied).ok());
  c.Restart(1, false);
  c.Restart(2, false);
  // 1 knows at once (snapshot metadata); 2 once it re-applied its log.
  CHECK(Voters(c.node(1)) == Ids{1, 2});
  c.Settle();
  for (uint64_t id : {1, 2}) {
    CHECK(Voters(c.node(id)) == Ids{1, 2});
    NodeStatus now = c.node(id).status();
    const auto& removed = now.conf_state.removed();
    CHECK(Ids(removed.begin(), removed.end()) == Ids{3});
  }
  c.Elect(1);
  REQUIRE(c.Leader() == 1);
  Status again = c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_ADD_VOTER, 3));
  CHECK(again.code() == Code::kFailedPrecondition);
  CHECK(again.message().find("reused") != std::string::npos);
  CHECK(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_ADD_VOTER, 4)).ok());
}

}  // namespace
}  // namespace shoal::raft::testing
