// Heartbeats answered off the dispatcher's thread (the daemon's dispatcher
// service answers repeated ones from a cache): Dispatcher::Heard keeps the
// node alive, and Options::reply_epoch moves whenever a cached reply may no
// longer hold.

#include <catch2/catch.hpp>

#include "fixture.h"
#include "shoal/dispatcher/dispatcher.h"
#include "shoal/store/txn.h"

namespace shoal::dispatcher {
using testing::Beat;
using testing::Fixture;
using testing::kSec;

TEST_CASE("a node heard off the dispatcher's thread stays ready; a wrong session does not count") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  Options o;
  o.node_down_after_ns = 5 * kSec;
  Dispatcher d(o);
  d.BecomeLeader(f.state, 0);
  std::string s1 = d.Heartbeat(f.state, Beat("n1"), 0)->session_id();
  std::string s2 = d.Heartbeat(f.state, Beat("n2"), 0)->session_id();
  f.Apply(d.TakeMutations(f.state, 0));
  REQUIRE(f.state.Get<v1::Node>("n1")->status().state() == v1::NodeStatus::STATE_READY);
  // Both are only "heard" from now on; n2 under a session it does not hold.
  for (int64_t t = 1; t <= 8; ++t) {
    d.Heard("n1", s1, t * kSec);
    d.Heard("n2", s2 + "-old", t * kSec);
  }
  auto muts = d.TakeMutations(f.state, 8 * kSec);
  REQUIRE(muts.size() == 1);
  CHECK(muts[0].node().meta().id() == "n2");
  CHECK(muts[0].node().status().state() == v1::NodeStatus::STATE_DOWN);
  // An older report never moves the last heartbeat back.
  d.Heard("n1", s1, 1 * kSec);
  CHECK(d.TakeMutations(f.state, 12 * kSec).size() == 1);  // n2 again, not n1
  // Not the leader: nothing is recorded, nothing fails.
  d.StepDown();
  d.Heard("n1", s1, 20 * kSec);
}

TEST_CASE("the reply epoch moves when a heartbeat reply may change, not for tasks or beats") {
  Fixture f;
  f.AddNode("n1");
  std::atomic<uint64_t> epoch{0};
  Options o;
  o.reply_epoch = &epoch;
  Dispatcher d(o);
  uint64_t e = epoch.load();
  d.BecomeLeader(f.state, 0);
  CHECK(epoch.load() > e);
  e = epoch.load();
  auto hb = d.Heartbeat(f.state, Beat("n1"), 0);
  REQUIRE(hb.ok());
  d.Heard("n1", hb->session_id(), kSec);
  CHECK(epoch.load() == e);
  // A task of the node: its reply is the same.
  v1::Task t;
  t.mutable_meta()->set_id("t1");
  t.set_node_id("n1");
  t.set_desired_state(v1::TASK_RUNNING);
  t.mutable_status()->set_state(v1::TASK_ASSIGNED);
  store::Txn txn;
  txn.Put(t);
  d.Changed(f.state, f.Apply(std::move(txn)));
  CHECK(epoch.load() == e);
  // A node (its role, the managers it lists): a new epoch.
  d.Changed(f.state, f.AddNode("n2"));
  CHECK(epoch.load() > e);
  e = epoch.load();
  // A change of unknown extent.
  d.Changed(f.state);
  CHECK(epoch.load() > e);
  e = epoch.load();
  d.StepDown();
  CHECK(epoch.load() > e);
}

}  // namespace shoal::dispatcher
