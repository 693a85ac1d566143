// The Raft pitfalls design.md section 4 names, one test each.

#include <catch2/catch.hpp>

#include "harness.h"

namespace shoal::raft::testing {
namespace {

using Strings = std::vector<std::string>;

ConfChange Change(shoal::v1::ConfChangeType type, uint64_t id) {
  ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(id);
  return cc;
}

TEST_CASE("Pitfall: a new leader commits its no-op before serving ReadIndex") {
  // No leader lease, so that node 2 can win while node 1 is still healthy.
  Cluster c({1, 2, 3}, [](Config* cfg) { cfg->check_quorum = false; });
  c.Elect(1);
  REQUIRE(c.node(1).Propose("old").ok());
  c.Settle();
  // Leader 2 wins, but no append acknowledgement reaches it yet: its no-op is
  // uncommitted and its commit index may lag what leader 1 committed.
  auto no_acks = [](const Message& m) { return m.type() != shoal::v1::MSG_APP_RESP; };
  c.Settle();
  c.node(2).Campaign();
  c.Settle(no_acks);
  REQUIRE(c.Leader() == 2);
  uint64_t noop_index = c.node(2).status().last_index;
  REQUIRE(c.node(2).ReadIndex("r").ok());
  c.Settle(no_acks);
  CHECK(c.member(2).reads.empty());
  // Configuration changes are refused for the same reason.
  CHECK(c.node(2).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).code() ==
        Code::kFailedPrecondition);
  c.Settle();
  c.Tick(1);
  REQUIRE(c.member(2).reads.size() == 1);
  CHECK(c.member(2).reads[0].index >= noop_index);
  CHECK(c.node(2).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).ok());
}

TEST_CASE("Pitfall: a removed member that keeps campaigning cannot disrupt the group") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(3);  // 3 never learns that it was removed
  REQUIRE(c.node(1).ProposeConfChange(Change(shoal::v1::CONF_CHANGE_REMOVE_VOTER, 3)).ok());
  c.Settle();
  c.Tick(2);
  REQUIRE(c.node(1).status().conf_state.voters_size() == 2);
  uint64_t term = c.node(1).status().term;
  c.Heal();
  for (int i = 0; i < 200; ++i) {
    c.node(3).Tick();  // only 3's clock runs fast: it campaigns again and again
    if (i % 10 == 0) c.Tick();
    c.Settle();
  }
  CHECK(c.Leader() == 1);
  CHECK(c.node(1).status().term == term);
  CHECK(c.node(2).status().term == term);
  REQUIRE(c.node(1).Propose("still-fine").ok());
  c.Settle();
  CHECK(AppliedData(c.member(2)) == Strings{"still-fine"});
}

TEST_CASE("Pitfall: messages from older terms are dropped") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  uint64_t old_term = c.node(1).status().term;
  c.Isolate(1);
  auto new_leader = [&] {
    for (uint64_t id : {2, 3}) {
      if (c.node(id).status().role == Role::kLeader) return id;
    }
    return uint64_t{0};
  };
  for (int i = 0; i < 60 && new_leader() == 0; ++i) c.Tick();
  uint64_t leader = new_leader();
  REQUIRE(leader != 0);
  uint64_t f = leader == 2 ? 3 : 2;
  c.Heal();
  uint64_t last = c.node(f).status().last_index;
  Message stale;
  stale.set_type(shoal::v1::MSG_APP);
  stale.set_from(1);
  stale.set_to(f);
  stale.set_term(old_term);
  stale.set_index(last);
  stale.set_log_term(old_term);
  stale.set_commit(last + 1);
  auto* e = stale.add_entries();
  e->set_index(last + 1);
  e->set_term(old_term);
  e->set_data("stale");
  REQUIRE(c.node(f).Step(stale).ok());
  CHECK(c.node(f).status().last_index == last);
  CHECK(c.node(f).status().leader == leader);
  Ready rd = c.node(f).GetReady();
  REQUIRE(rd.messages.size() == 1);
  // The stale leader is told the current term, nothing else.
  CHECK(rd.messages[0].type() == shoal::v1::MSG_APP_RESP);
  CHECK(rd.messages[0].term() > old_term);
  c.node(f).Advance(rd);
  // A stale leader that hears it steps down.
  REQUIRE(c.node(1).Step(rd.messages[0]).ok());
  CHECK(c.node(1).status().role == Role::kFollower);
}

TEST_CASE("Pitfall: the vote and term are synced before the vote reply") {
  Cluster c({1, 2, 3}, [](Config* cfg) { cfg->pre_vote = false; });
  c.Settle();
  Message vote;
  vote.set_type(shoal::v1::MSG_VOTE);
  vote.set_from(2);
  vote.set_to(1);
  vote.set_term(7);
  vote.set_index(10);
  vote.set_log_term(7);
  REQUIRE(c.node(1).Step(vote).ok());
  Ready rd = c.node(1).GetReady();
  REQUIRE(rd.hard_state.has_value());
  CHECK(rd.hard_state->term() == 7);
  CHECK(rd.hard_state->vote() == 2);
  CHECK(rd.must_sync);
  REQUIRE(rd.messages.size() == 1);
  CHECK_FALSE(rd.messages[0].reject());
  REQUIRE(c.member(1).storage.Save(rd.ToWrite()).ok());
  c.node(1).Advance(rd);
  // Crash right after the reply: the vote survives, so no second vote in term 7.
  c.Restart(1, /*lose_unsynced=*/true);
  CHECK(c.node(1).status().vote == 2);
  vote.set_from(3);
  REQUIRE(c.node(1).Step(vote).ok());
  Ready rd2 = c.node(1).GetReady();
  REQUIRE(rd2.messages.size() == 1);
  CHECK(rd2.messages[0].reject());
  c.node(1).Advance(rd2);
}

TEST_CASE("Pitfall: a follower never truncates entries at or below its commit index") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  for (std::string d : {"a", "b", "c"}) REQUIRE(c.node(1).Propose(d).ok());
  c.Settle();
  c.Tick(1);
  auto before = c.node(2).EntriesForTest(1, 100);
  uint64_t commit = c.node(2).status().commit;
  REQUIRE(commit == c.node(2).status().last_index);
  // A delayed AppendEntries from earlier in this term, claiming a shorter log.
  Message old;
  old.set_type(shoal::v1::MSG_APP);
  old.set_from(1);
  old.set_to(2);
  old.set_term(c.node(1).status().term);
  old.set_index(commit - 2);
  old.set_log_term(before[commit - 3].term());
  REQUIRE(c.node(2).Step(old).ok());
  Ready rd = c.node(2).GetReady();
  REQUIRE(rd.messages.size() == 1);
  CHECK_FALSE(rd.messages[0].reject());
  CHECK(rd.messages[0].index() == commit);
  c.node(2).Advance(rd);
  auto after = c.node(2).EntriesForTest(1, 100);
  REQUIRE(after.size() == before.size());
  CHECK(c.node(2).status().commit == commit);
}

TEST_CASE("Pitfall: a crash that loses unsynced writes keeps every acknowledged entry") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  for (std::string d : {"a", "b"}) REQUIRE(c.node(1).Propose(d).ok());
  c.Settle();
  for (uint64_t id : {1, 2, 3}) c.Restart(id, /*lose_unsynced=*/true);
  for (int i = 0; i < 40 && c.Leader() == 0; ++i) c.Tick();
  REQUIRE(c.Leader() != 0);
  c.Tick(2);
  for (auto& [id, n] : c.nodes()) CHECK(AppliedData(n) == Strings{"a", "b"});
}

}  // namespace
}  // namespace shoal::raft::testing
