#include "shoal/dispatcher/dispatcher.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "fixture.h"
#include "shoal/store/txn.h"

namespace shoal::dispatcher {
using store::State;
using testing::Beat;
using testing::Fixture;
using testing::kSec;

TEST_CASE("a heartbeat from an unknown node is refused") {
  Fixture f;
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto r = d.Heartbeat(f.state, Beat("ghost"), 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Code::kNotFound);
}

TEST_CASE("assignments: full set first, then only changes, parked until something changes") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  f.AddTask("t1", "n1", v1::TASK_ASSIGNED);
  f.AddTask("t2", "n2", v1::TASK_ASSIGNED);
  f.AddTask("t3", "n1", v1::TASK_PENDING);  // not yet for the agent
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto hb = d.Heartbeat(f.state, Beat("n1"), 0);
  REQUIRE(hb.ok());
  std::string session = hb->session_id();

  v1::AssignmentsRequest req;
  req.set_node_id("n1");
  req.set_session_id(session);
  v1::AssignmentsReply got;
  int calls = 0;
  d.Assignments(f.state, req, 0, [&](Status s, v1::AssignmentsReply r) {
    REQUIRE(s.ok());
    got = r;
    ++calls;
  });
  REQUIRE(calls == 1);
  CHECK(got.full());
  REQUIRE(got.tasks_size() == 1);
  CHECK(got.tasks(0).meta().id() == "t1");

  // Nothing new: the call parks.
  req.set_known_generation(got.generation());
  d.Assignments(f.state, req, 0, [&](Status s, v1::AssignmentsReply r) {
    REQUIRE(s.ok());
    got = r;
    ++calls;
  });
  CHECK(calls == 1);
  CHECK(d.waiting() == 1);
  // Another node's task changes: still parked.
  f.AddTask("t4", "n2", v1::TASK_ASSIGNED);
  d.Changed(f.state);
  CHECK(calls == 1);
  // Its own: answered with only the change.
  f.AddTask("t5", "n1", v1::TASK_ASSIGNED);
  d.Changed(f.state);
  REQUIRE(calls == 2);
  CHECK_FALSE(got.full());
  REQUIRE(got.tasks_size() == 1);
  CHECK(got.tasks(0).meta().id() == "t5");

  // A deleted task shows as removed.
  req.set_known_generation(got.generation());
  d.Assignments(f.state, req, 0, [&](Status, v1::AssignmentsReply r) {
    got = r;
    ++calls;
  });
  v1::Mutation del;
  del.set_op(v1::Mutation::OP_DELETE);
  *del.mutable_task() = *f.state.Get<v1::Task>("t1");
  f.Apply({del});
  d.Changed(f.state);
  REQUIRE(calls == 3);
  REQUIRE(got.removed_size() == 1);
  CHECK(got.removed(0) == "t1");

  // A parked call is answered empty after assignments_wait_periods periods.
  req.set_known_generation(got.generation());
  d.Assignments(f.state, req, 0, [&](Status, v1::AssignmentsReply r) {
    got = r;
    ++calls;
  });
  d.Tick(f.state, kSec);
  CHECK(calls == 3);
  d.Tick(f.state, 5 * kSec);
  CHECK(calls == 4);
  CHECK(got.tasks_size() == 0);
}

TEST_CASE("status reports become merges, only for the node's own tasks and only when new") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  f.AddTask("t1", "n1", v1::TASK_ASSIGNED);
  f.AddTask("t2", "n2", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto req = Beat("n1");
  auto* u = req.add_updates();
  u->set_task_id("t1");
  u->mutable_status()->set_state(v1::TASK_RUNNING);
  auto* other = req.add_updates();
  other->set_task_id("t2");  // n2's task: n1 may not report it
  other->mutable_status()->set_state(v1::TASK_FAILED);
  REQUIRE(d.Heartbeat(f.state, req, 0).ok());
  auto muts = d.TakeMutations(f.state, 0);
  int statuses = 0;
  for (const auto& m : muts) {
    if (m.op() != v1::Mutation::OP_TASK_STATUS) continue;
    ++statuses;
    CHECK(m.task().meta().id() == "t1");
  }
  CHECK(statuses == 1);
  f.Apply(muts);
  CHECK(f.state.Get<v1::Task>("t1")->status().state() == v1::TASK_RUNNING);
  CHECK(f.state.Get<v1::Task>("t2")->status().state() == v1::TASK_ASSIGNED);
  // The same report again changes nothing.
  REQUIRE(d.Heartbeat(f.state, req, 0).ok());
  for (const auto& m : d.TakeMutations(f.state, 0)) {
    CHECK(m.op() != v1::Mutation::OP_TASK_STATUS);
  }
}

TEST_CASE("another node's report of a task never hides the owner's") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  f.AddTask("t1", "n1", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto report = [&](const std::string& node, v1::TaskState s) {
    auto req = Beat(node);
    auto* u = req.add_updates();
    u->set_task_id("t1");
    u->mutable_status()->set_state(s);
    REQUIRE(d.Heartbeat(f.state, req, 0).ok());
  };
  // n2 claims t1 further along first; n1's own, earlier state still counts.
  report("n2", v1::TASK_FAILED);
  report("n1", v1::TASK_RUNNING);
  // And a foreign report after the owner's does not replace it.
  report("n2", v1::TASK_COMPLETE);
  std::vector<v1::TaskState> taken;
  for (const auto& m : d.TakeMutations(f.state, 0)) {
    if (m.op() == v1::Mutation::OP_TASK_STATUS) taken.push_back(m.task().status().state());
  }
  CHECK(taken == std::vector<v1::TaskState>{v1::TASK_RUNNING});
  // Alone, a foreign report is dropped when taken.
  report("n2", v1::TASK_FAILED);
  for (const auto& m : d.TakeMutations(f.state, 0)) CHECK(m.op() != v1::Mutation::OP_TASK_STATUS);
}

TEST_CASE("a backward status is never applied") {
  Fixture f;
  f.AddNode("n1");
  f.AddTask("t1", "n1", v1::TASK_FAILED);
  store::Txn txn;
  v1::TaskStatus st;
  st.set_state(v1::TASK_RUNNING);
  txn.SetTaskStatus("t1", st);
  txn.SetTaskStatus("gone", st);  // a deleted task: skipped, not an error
  f.Apply(std::move(txn));
  CHECK(f.state.Get<v1::Task>("t1")->status().state() == v1::TASK_FAILED);
}

TEST_CASE("a node is ready while it heartbeats and down after the grace period") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  Options o;
  o.node_down_after_ns = 5 * kSec;
  Dispatcher d(o);
  d.BecomeLeader(f.state, 0);
  REQUIRE(d.Heartbeat(f.state, Beat("n1"), 0).ok());
  REQUIRE(d.Heartbeat(f.state, Beat("n2"), 0).ok());
  f.Apply(d.TakeMutations(f.state, 0));
  CHECK(f.state.Get<v1::Node>("n1")->status().state() == v1::NodeStatus::STATE_READY);
  CHECK(f.state.Get<v1::Node>("n2")->status().state() == v1::NodeStatus::STATE_READY);
  // n1 keeps beating, n2 stops.
  std::string s1 = d.Heartbeat(f.state, Beat("n1"), 4 * kSec)->session_id();
  CHECK(d.TakeMutations(f.state, 4 * kSec).empty());
  REQUIRE(d.Heartbeat(f.state, Beat("n1", s1), 6 * kSec).ok());
  auto muts = d.TakeMutations(f.state, 6 * kSec);
  REQUIRE(muts.size() == 1);
  CHECK(muts[0].node().meta().id() == "n2");
  CHECK(muts[0].node().status().state() == v1::NodeStatus::STATE_DOWN);
  f.Apply(muts);
  // n2 comes back.
  REQUIRE(d.Heartbeat(f.state, Beat("n2"), 7 * kSec).ok());
  muts = d.TakeMutations(f.state, 7 * kSec);
  REQUIRE(muts.size() == 1);
  CHECK(muts[0].node().status().state() == v1::NodeStatus::STATE_READY);
}

TEST_CASE("a new leader gives every node a full grace period") {
  Fixture f;
  f.AddNode("n1");
  Dispatcher d({});
  d.BecomeLeader(f.state, 100 * kSec);
  CHECK(d.TakeMutations(f.state, 104 * kSec).empty());
  auto muts = d.TakeMutations(f.state, 106 * kSec);
  REQUIRE(muts.size() == 1);
  CHECK(muts[0].node().status().state() == v1::NodeStatus::STATE_DOWN);
}

TEST_CASE("stepping down fails parked calls so agents find the new leader") {
  Fixture f;
  f.AddNode("n1");
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto hb = d.Heartbeat(f.state, Beat("n1"), 0);
  v1::AssignmentsRequest req;
  req.set_node_id("n1");
  req.set_session_id(hb->session_id());
  d.Assignments(f.state, req, 0, [](Status, v1::AssignmentsReply) {});
  req.set_known_generation(1);
  Status got;
  d.Assignments(f.state, req, 0, [&](Status s, v1::AssignmentsReply) { got = s; });
  d.StepDown();
  CHECK(got.code() == Code::kUnavailable);
}

namespace shoal::dispatcher {

TEST_CASE("applied events wake only the nodes whose tasks changed, and not for statuses") {
  Fixture f;
  f.AddNode("n1");
  f.AddNode("n2");
  f.AddTask("t1", "n1", v1::TASK_ASSIGNED);
  f.AddTask("t2", "n2", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  std::map<std::string, int> calls;
  std::map<std::string, v1::AssignmentsReply> got;
  std::map<std::string, std::string> session;
  for (const char* node : {"n1", "n2"}) {
    auto hb = d.Heartbeat(f.state, Beat(node, "?"), 0);
    REQUIRE(hb.ok());
    session[node] = hb->session_id();
    // A full set, then a call that parks.
    v1::AssignmentsRequest req;
    req.set_node_id(node);
    req.set_session_id(session[node]);
    d.Assignments(f.state, req, 0, [&, n = std::string(node)](Status, v1::AssignmentsReply r) {
      got[n] = r;
      ++calls[n];
    });
    req.set_known_generation(got[node].generation());
    d.Assignments(f.state, req, 0, [&, n = std::string(node)](Status, v1::AssignmentsReply r) {
      got[n] = r;
      ++calls[n];
    });
  }
  REQUIRE(calls["n1"] == 1);
  REQUIRE(calls["n2"] == 1);
  REQUIRE(d.waiting() == 2);

  // The agent's own status report changes the task's version: nobody wakes.
  std::vector<store::Event> events;
  v1::Mutation st;
  st.set_op(v1::Mutation::OP_TASK_STATUS);
  st.mutable_task()->mutable_meta()->set_id("t1");
  st.mutable_task()->mutable_status()->set_state(v1::TASK_RUNNING);
  v1::Command c;
  *c.mutable_transaction()->add_mutations() = st;
  REQUIRE(f.state.Apply(++f.index, c, &events).ok());
  d.Changed(f.state, events);
  CHECK(calls["n1"] == 1);
  CHECK(d.waiting() == 2);

  // A new desired state for t1 wakes n1 only.
  v1::Task t1 = *f.state.Get<v1::Task>("t1");
  t1.set_desired_state(v1::TASK_SHUTDOWN);
  store::Txn txn;
  txn.Put(t1);
  events.clear();
  REQUIRE(f.state.Apply(++f.index, std::move(txn).Build("test", 1), &events).ok());
  d.Changed(f.state, events);
  CHECK(calls["n1"] == 2);
  CHECK(calls["n2"] == 1);
  REQUIRE(got["n1"].tasks_size() == 1);
  CHECK(got["n1"].tasks(0).desired_state() == v1::TASK_SHUTDOWN);
  CHECK(d.waiting() == 1);

  // A final status is something the agent acts on (the task is sent again):
  // it wakes n2, and only n2.
  v1::Mutation failed;
  failed.set_op(v1::Mutation::OP_TASK_STATUS);
  failed.mutable_task()->mutable_meta()->set_id("t2");
  failed.mutable_task()->mutable_status()->set_state(v1::TASK_FAILED);
  v1::Command fc;
  *fc.mutable_transaction()->add_mutations() = failed;
  events.clear();
  REQUIRE(f.state.Apply(++f.index, fc, &events).ok());
  d.Changed(f.state, events);
  CHECK(calls["n1"] == 2);
  CHECK(calls["n2"] == 2);
  CHECK(d.waiting() == 0);
}

TEST_CASE("status reports whose proposal failed are queued again, unless newer ones came") {
  Fixture f;
  f.AddNode("n1");
  f.AddTask("t1", "n1", v1::TASK_ASSIGNED);
  f.AddTask("t2", "n1", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  auto report = [&](const std::string& task, v1::TaskState s) {
    v1::HeartbeatRequest r = Beat("n1");
    auto* u = r.add_updates();
    u->set_task_id(task);
    u->mutable_status()->set_state(s);
    REQUIRE(d.Heartbeat(f.state, r, 0).ok());
  };
  report("t1", v1::TASK_STARTING);
  report("t2", v1::TASK_STARTING);
  std::vector<v1::Mutation> taken;
  for (auto& m : d.TakeMutations(f.state, 0)) {
    if (m.op() == v1::Mutation::OP_TASK_STATUS) taken.push_back(m);
  }
  REQUIRE(taken.size() == 2);
  report("t2", v1::TASK_RUNNING);  // newer than the failed one
  d.Requeue(taken);
  std::map<std::string, v1::TaskState> again;
  for (auto& m : d.TakeMutations(f.state, 0)) {
    if (m.op() == v1::Mutation::OP_TASK_STATUS)
      again[m.task().meta().id()] = m.task().status().state();
  }
  CHECK(again ==
        std::map<std::string, v1::TaskState>{{"t1", v1::TASK_STARTING}, {"t2", v1::TASK_RUNNING}});
}

}  // namespace shoal::dispatcher

namespace {

// An agent as the dispatcher sees it: what it holds, kept from the replies.
struct FakeAgent {
  std::string session;
  uint64_t generation = 0;
  bool parked = false;
  std::map<std::string, std::pair<int, bool>> holds;  // id -> desired, terminal
  std::vector<std::string> replies;                   // each reply, as "+id" / "-id"

  void Take(const v1::AssignmentsReply& r) {
    if (r.full()) holds.clear();
    std::string what = r.full() ? "full" : "";
    for (const auto& t : r.tasks()) {
      holds[t.meta().id()] = {t.desired_state(), t.status().state() >= v1::TASK_COMPLETE};
      what += " +" + t.meta().id();
    }
    for (const auto& id : r.removed()) {
      holds.erase(id);
      what += " -" + id;
    }
    if (r.generation() != 0) generation = r.generation();
    if (r.full() || r.tasks_size() > 0 || r.removed_size() > 0) replies.push_back(what);
  }
};

// Parks one call per node (answered at once when there is news).
void Poll(Dispatcher& d, const State& state, const std::string& node, FakeAgent& a) {
  if (a.parked) return;
  a.parked = true;
  v1::AssignmentsRequest req;
  req.set_node_id(node);
  req.set_session_id(a.session);
  req.set_known_generation(a.generation);
  d.Assignments(state, req, 0, [&a](Status s, v1::AssignmentsReply r) {
    a.parked = false;
    if (s.ok()) a.Take(r);
  });
}

}  // namespace

TEST_CASE("incremental diffs send exactly what a walk over every task of the node sends") {
  const std::vector<std::string> nodes = {"n1", "n2", "n3"};
  const v1::TaskState states[] = {v1::TASK_PENDING, v1::TASK_ASSIGNED, v1::TASK_STARTING,
                                  v1::TASK_RUNNING, v1::TASK_COMPLETE, v1::TASK_FAILED};
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    std::mt19937 rng(seed);
    Fixture f;
    for (const auto& n : nodes) f.AddNode(n);
    // `inc` hears the applied events; `walk` is told only that something
    // changed, so it diffs every task of every node.
    Dispatcher inc({}), walk({});
    inc.BecomeLeader(f.state, 0);
    walk.BecomeLeader(f.state, 0);
    std::map<std::string, FakeAgent> ai, aw;
    for (const auto& n : nodes) {
      ai[n].session = inc.Heartbeat(f.state, Beat(n), 0)->session_id();
      aw[n].session = walk.Heartbeat(f.state, Beat(n), 0)->session_id();
      Poll(inc, f.state, n, ai[n]);
      Poll(walk, f.state, n, aw[n]);
    }
    int next_id = 0;
    for (int step = 0; step < 200; ++step) {
      store::Txn txn;
      std::vector<v1::Mutation> statuses;
      std::set<std::string> used;
      int ops = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < ops; ++k) {
        auto tasks = f.state.List(store::Kind::kTask);
        int what = static_cast<int>(rng() % 4);
        if (tasks.empty() || what == 0) {
          char id[16];
          std::snprintf(id, sizeof id, "t%03d", next_id++);
          v1::Task t;
          t.mutable_meta()->set_id(id);
          t.set_node_id(nodes[rng() % nodes.size()]);
          t.set_desired_state(v1::TASK_RUNNING);
          t.mutable_status()->set_state(states[rng() % 3]);
          txn.Put(t);
          used.insert(id);
          continue;
        }
        const v1::Task& t = tasks[rng() % tasks.size()]->task();
        if (!used.insert(t.meta().id()).second) continue;
        if (what == 1) {
          v1::Task next = t;
          next.set_desired_state(rng() % 2 ? v1::TASK_SHUTDOWN : v1::TASK_RUNNING);
          if (next.status().state() < v1::TASK_ASSIGNED && rng() % 2) {
            next.mutable_status()->set_state(v1::TASK_ASSIGNED);  // the scheduler placed it
          }
          txn.Put(next);
        } else if (what == 2) {
          v1::Mutation m;
          m.set_op(v1::Mutation::OP_TASK_STATUS);
          m.mutable_task()->mutable_meta()->set_id(t.meta().id());
          m.mutable_task()->mutable_status()->set_state(states[2 + rng() % 4]);
          statuses.push_back(std::move(m));
        } else {
          txn.Delete(t);
        }
      }
      std::vector<store::Event> events;
      v1::Command c = std::move(txn).Build("test", 1);
      for (auto& m : statuses) *c.mutable_transaction()->add_mutations() = std::move(m);
      REQUIRE(f.state.Apply(++f.index, c, &events).ok());
      inc.Changed(f.state, events);
      walk.Changed(f.state);
      // Now and then an agent polls late (its call on its way): the changes
      // for it wait in its session until it does.
      std::set<std::string> late;
      for (const auto& n : nodes) {
        if (rng() % 4 == 0) {
          late.insert(n);
          continue;
        }
        Poll(inc, f.state, n, ai[n]);
        Poll(walk, f.state, n, aw[n]);
      }
      for (const auto& n : nodes) {
        if (late.count(n)) continue;
        INFO("seed " << seed << " step " << step << " node " << n);
        REQUIRE(ai[n].replies == aw[n].replies);
        // And what the agent holds is what it should run: every assigned task.
        std::map<std::string, std::pair<int, bool>> want;
        for (const v1::Mutation* m : f.state.Find(store::Kind::kTask, "node", n)) {
          const v1::Task& t = m->task();
          if (t.status().state() < v1::TASK_ASSIGNED) continue;
          want[t.meta().id()] = {t.desired_state(), t.status().state() >= v1::TASK_COMPLETE};
        }
        REQUIRE(ai[n].holds == want);
      }
    }
  }
}

}  // namespace shoal::dispatcher
