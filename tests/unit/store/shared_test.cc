// Events and the State share objects (copy on write): what an event or a copy
// of the State holds never changes when the State applies later writes.

#include <catch2/catch.hpp>

#include "shoal/store/state.h"
#include "shoal/store/txn.h"
#include "shoal/store/watch.h"

using shoal::store::Event;
using shoal::store::Kind;
using shoal::store::State;
using shoal::store::Txn;
namespace v1 = shoal::v1;

namespace {

v1::Task MakeTask(const std::string& id, const std::string& node) {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id("s1");
  t.set_node_id(node);
  t.set_desired_state(v1::TASK_RUNNING);
  t.mutable_spec()->set_image("busybox");
  return t;
}

v1::TaskStatus StatusOf(v1::TaskState state) {
  v1::TaskStatus s;
  s.set_state(state);
  s.set_timestamp_ns(state);
  return s;
}

// Applies `txn` at `index`, copying or moving its objects.
std::vector<Event> ApplyTxn(State& st, uint64_t index, Txn txn, bool consuming) {
  v1::Command c = std::move(txn).Build("test", 1000 + static_cast<int64_t>(index));
  std::vector<Event> events;
  shoal::Status s = consuming ? st.ApplyConsuming(index, &c, &events) : st.Apply(index, c, &events);
  REQUIRE(s.ok());
  return events;
}

}  // namespace

TEST_CASE("an event keeps the object as that write left it") {
  bool consuming = GENERATE(false, true);
  State st;
  Txn create;
  create.Put(MakeTask("t1", "n1"));
  std::vector<Event> created = ApplyTxn(st, 1, std::move(create), consuming);
  REQUIRE(created.size() == 1);
  // Shared, not copied.
  CHECK(&created[0].mutation == st.Get(Kind::kTask, "t1"));

  Txn report;
  report.SetTaskStatus("t1", StatusOf(v1::TASK_RUNNING));
  std::vector<Event> merged = ApplyTxn(st, 2, std::move(report), consuming);
  REQUIRE(merged.size() == 1);
  CHECK(merged[0].mutation.task().status().state() == v1::TASK_RUNNING);
  CHECK(merged[0].mutation.task().spec().image() == "busybox");
  CHECK(merged[0].mutation.task().meta().version() == 2);
  // The first event still holds version 1, unchanged.
  CHECK(created[0].mutation.task().meta().version() == 1);
  CHECK(created[0].mutation.task().status().state() == v1::TASK_NEW);

  // Nothing else holds the object now: the next merge changes it in place.
  merged.clear();
  created.clear();
  const v1::Mutation* before = st.Get(Kind::kTask, "t1");
  Txn again;
  again.SetTaskStatus("t1", StatusOf(v1::TASK_FAILED));
  std::vector<Event> failed = ApplyTxn(st, 3, std::move(again), consuming);
  REQUIRE(failed.size() == 1);
  CHECK(st.Get(Kind::kTask, "t1") == before);
  CHECK(failed[0].mutation.task().status().state() == v1::TASK_FAILED);

  // A put replaces the object; the held event keeps the old one.
  v1::Task moved = *st.Get<v1::Task>("t1");
  moved.set_node_id("n2");
  Txn put;
  put.Put(moved);
  std::vector<Event> put_events = ApplyTxn(st, 4, std::move(put), consuming);
  CHECK(failed[0].mutation.task().node_id() == "n1");
  CHECK(put_events[0].mutation.task().node_id() == "n2");
  CHECK(st.Find(Kind::kTask, "node", "n1").empty());
  CHECK(st.Find(Kind::kTask, "node", "n2").size() == 1);

  // A delete's event says so; the put's event still says put.
  Txn del;
  del.Delete(*st.Get<v1::Task>("t1"));
  std::vector<Event> deleted = ApplyTxn(st, 5, std::move(del), consuming);
  REQUIRE(deleted.size() == 1);
  CHECK(deleted[0].mutation.op() == v1::Mutation::OP_DELETE);
  CHECK(deleted[0].mutation.task().meta().id() == "t1");
  CHECK(put_events[0].mutation.op() == v1::Mutation::OP_PUT);
  CHECK(st.Get(Kind::kTask, "t1") == nullptr);
  CHECK(st.Find(Kind::kTask, "service", "s1").empty());
}

TEST_CASE("a copy of the State is independent of the original") {
  State st;
  Txn create;
  create.Put(MakeTask("t1", "n1"));
  (void)ApplyTxn(st, 1, std::move(create), true);
  State copy = st;
  Txn report;
  report.SetTaskStatus("t1", StatusOf(v1::TASK_RUNNING));
  (void)ApplyTxn(copy, 2, std::move(report), true);
  CHECK(copy.Get<v1::Task>("t1")->status().state() == v1::TASK_RUNNING);
  CHECK(st.Get<v1::Task>("t1")->status().state() == v1::TASK_NEW);
  CHECK(st.Get<v1::Task>("t1")->meta().version() == 1);
}

TEST_CASE("copies and moves of an event refer to the same object") {
  v1::Mutation m;
  m.mutable_config()->mutable_meta()->set_id("c1");
  Event a(7, m);
  Event b = a;
  CHECK(&b.mutation == &a.mutation);
  CHECK(b.object() == a.object());
  std::vector<Event> v;
  v.push_back(std::move(b));
  for (int i = 0; i < 100; ++i) v.push_back(a);  // reallocations move them
  CHECK(v[0].mutation.config().meta().id() == "c1");
  CHECK(&v[0].mutation == &a.mutation);
  CHECK(v[0].version == 7);
}
