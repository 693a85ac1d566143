#include <catch2/catch.hpp>

#include "harness.h"

namespace shoal::raft::testing {
namespace {

TEST_CASE("A single-member group elects itself and commits") {
  Cluster c({1});
  c.Elect(1);
  REQUIRE(c.Leader() == 1);
  REQUIRE(c.node(1).Propose("x").ok());
  c.Settle();
  CHECK(AppliedData(c.member(1)) == std::vector<std::string>{"x"});
}

TEST_CASE("Ticks alone elect exactly one leader among three") {
  Cluster c({1, 2, 3});
  for (int i = 0; i < 60 && c.Leader() == 0; ++i) c.Tick();
  uint64_t leader = c.Leader();
  REQUIRE(leader != 0);
  int leaders = 0;
  for (auto& [id, n] : c.nodes()) {
    auto st = n.node->status();
    CHECK(st.leader == leader);
    CHECK(st.term == c.node(leader).status().term);
    leaders += st.role == Role::kLeader;
  }
  CHECK(leaders == 1);
}

TEST_CASE("Pre-vote: an isolated member does not inflate its term or disrupt on return") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.Leader() == 1);
  uint64_t term = c.node(1).status().term;
  c.Isolate(3);
  c.Tick(100);  // many election timeouts for node 3
  CHECK(c.node(3).status().term == term);
  CHECK(c.node(3).status().role != Role::kLeader);
  c.Heal();
  c.Tick(5);
  CHECK(c.Leader() == 1);
  CHECK(c.node(1).status().term == term);
  CHECK(c.node(3).status().leader == 1);
}

TEST_CASE("Check-quorum: a leader cut off from a quorum steps down") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.Leader() == 1);
  c.Isolate(1);
  c.Tick(40);
  CHECK(c.node(1).status().role != Role::kLeader);
  // The other two have elected a new leader meanwhile.
  uint64_t leader = c.Leader();
  CHECK((leader == 2 || leader == 3));
  c.Heal();
  c.Tick(3);
  CHECK(c.node(1).status().leader == leader);
}

Message VoteRequest(uint64_t from, uint64_t to, uint64_t term) {
  Message v;
  v.set_type(shoal::v1::MSG_VOTE);
  v.set_from(from);
  v.set_to(to);
  v.set_term(term);
  v.set_index(100);
  v.set_log_term(term);
  return v;
}

TEST_CASE("A member grants one vote per term") {
  Cluster c({1, 2, 3}, [](Config* cfg) { cfg->pre_vote = false; });
  c.Settle();
  RaftNode& n = c.node(1);
  REQUIRE(n.Step(VoteRequest(2, 1, 5)).ok());
  REQUIRE(n.Step(VoteRequest(3, 1, 5)).ok());
  Ready rd = n.GetReady();
  REQUIRE(rd.messages.size() == 2);
  CHECK(rd.messages[0].to() == 2);
  CHECK_FALSE(rd.messages[0].reject());
  CHECK(rd.messages[1].to() == 3);
  CHECK(rd.messages[1].reject());
  REQUIRE(rd.hard_state.has_value());
  CHECK(rd.hard_state->vote() == 2);
  n.Advance(rd);
}

TEST_CASE("The leader lease ignores vote requests while a leader is heard from") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  uint64_t term = c.node(2).status().term;
  REQUIRE(c.node(2).Step(VoteRequest(3, 2, term + 1)).ok());
  CHECK(c.node(2).status().term == term);
  CHECK(c.node(2).status().leader == 1);
}

TEST_CASE("Leadership transfer hands over to an up-to-date follower") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  REQUIRE(c.node(1).Propose("a").ok());
  c.Settle();
  REQUIRE(c.node(1).TransferLeadership(3).ok());
  c.Settle();
  CHECK(c.Leader() == 3);
  CHECK(c.node(1).status().leader == 3);
  REQUIRE(c.node(3).Propose("b").ok());
  c.Settle();
  for (auto& [id, n] : c.nodes()) CHECK(AppliedData(n) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("Leadership transfer waits for the target to catch up") {
  Cluster c({1, 2, 3});
  c.Elect(1);
  c.Isolate(3);
  REQUIRE(c.node(1).Propose("a").ok());
  c.Settle();
  REQUIRE(c.node(1).TransferLeadership(3).ok());
  c.Settle();
  CHECK(c.Leader() == 1);
  // Proposals are refused while the transfer is pending.
  CHECK(c.node(1).Propose("b").code() == Code::kUnavailable);
  c.Heal();
  c.Tick(2);
  CHECK(c.Leader() == 3);
}

TEST_CASE("Config validation names the bad setting") {
  Config cfg;
  CHECK(cfg.Validate().code() == Code::kInvalidArgument);
  cfg.id = 1;
  CHECK(cfg.Validate().ok());
  CHECK(cfg.heartbeat_ticks == 10);
  CHECK(cfg.election_ticks == 100);
  CHECK(cfg.tick_interval == std::chrono::milliseconds(10));
  cfg.election_ticks = 5;
  CHECK_FALSE(cfg.Validate().ok());
}

}  // namespace
}  // namespace shoal::raft::testing
