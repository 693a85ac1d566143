#include "shoal/store/state.h"

#include <catch2/catch.hpp>

#include "shoal/store/txn.h"
#include "shoal/store/watch.h"

using shoal::Code;
using shoal::store::Event;
using shoal::store::Kind;
using shoal::store::State;
using shoal::store::Txn;
using shoal::store::WatchLog;
namespace v1 = shoal::v1;

namespace {

v1::Service MakeService(const std::string& id, const std::string& name, const std::string& stack) {
  v1::Service s;
  s.mutable_meta()->set_id(id);
  s.mutable_spec()->set_name(name);
  s.mutable_spec()->set_stack(stack);
  s.mutable_spec()->set_replicas(1);
  return s;
}

v1::Task MakeTask(const std::string& id, const std::string& service, const std::string& node) {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id(service);
  t.set_node_id(node);
  t.set_desired_state(v1::TASK_RUNNING);
  return t;
}

shoal::Status ApplyTxn(State& st, uint64_t index, Txn txn, std::vector<Event>* events = nullptr) {
  return st.Apply(index, std::move(txn).Build("test", 1000 + static_cast<int64_t>(index)), events);
}

}  // namespace

TEST_CASE("a transaction applies whole, stamping versions and times") {
  State st;
  Txn txn;
  txn.Put(MakeService("s1", "demo_web", "demo"));
  txn.Put(MakeTask("t1", "s1", "n1"));
  std::vector<Event> events;
  REQUIRE(ApplyTxn(st, 7, std::move(txn), &events).ok());
  REQUIRE(events.size() == 2);
  CHECK(events[0].version == 7);
  const v1::Service* s = st.Get<v1::Service>("s1");
  REQUIRE(s);
  CHECK(s->meta().version() == 7);
  CHECK(s->meta().created_at_ns() == 1007);
  CHECK(st.applied_index() == 7);
  CHECK(st.Count(Kind::kTask) == 1);
}

TEST_CASE("a stale version aborts the whole transaction on every replica alike") {
  State st;
  Txn create;
  create.Put(MakeService("s1", "demo_web", "demo"));
  REQUIRE(ApplyTxn(st, 1, std::move(create)).ok());
  v1::Service read = *st.Get<v1::Service>("s1");  // version 1

  Txn first;
  v1::Service a = read;
  a.mutable_spec()->set_replicas(3);
  first.Put(a);
  REQUIRE(ApplyTxn(st, 2, std::move(first)).ok());

  // A second writer read version 1 too; its transaction also creates a task.
  Txn second;
  v1::Service b = read;
  b.mutable_spec()->set_replicas(9);
  second.Put(MakeTask("t9", "s1", "n1"));
  second.Put(b);
  shoal::Status s = ApplyTxn(st, 3, std::move(second));
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Matchers::Contains("changed since it was read"));
  CHECK(st.Get<v1::Service>("s1")->spec().replicas() == 3);
  CHECK(st.Get<v1::Task>("t9") == nullptr);  // nothing of it applied
  CHECK(st.applied_index() == 3);            // but the index moved on
}

TEST_CASE("names are unique per kind, also within one transaction") {
  State st;
  Txn t1;
  t1.Put(MakeService("s1", "demo_web", "demo"));
  REQUIRE(ApplyTxn(st, 1, std::move(t1)).ok());
  Txn t2;
  t2.Put(MakeService("s2", "demo_web", "demo"));
  CHECK(ApplyTxn(st, 2, std::move(t2)).code() == Code::kAlreadyExists);
  Txn t3;
  t3.Put(MakeService("s3", "x_a", "x"));
  t3.Put(MakeService("s4", "x_a", "x"));
  CHECK(ApplyTxn(st, 3, std::move(t3)).code() == Code::kAlreadyExists);
  Txn t4;
  t4.Put(MakeService("s1", "demo_web", "demo"));  // version 0: must not exist
  CHECK(ApplyTxn(st, 4, std::move(t4)).code() == Code::kAlreadyExists);
}

TEST_CASE("indexes follow updates and deletes") {
  State st;
  Txn t1;
  t1.Put(MakeService("s1", "demo_web", "demo"));
  t1.Put(MakeTask("t1", "s1", "n1"));
  t1.Put(MakeTask("t2", "s1", "n2"));
  REQUIRE(ApplyTxn(st, 1, std::move(t1)).ok());
  CHECK(st.Find(Kind::kTask, "service", "s1").size() == 2);
  CHECK(st.Find(Kind::kTask, "node", "n1").size() == 1);
  CHECK(st.Find(Kind::kService, "stack", "demo").size() == 1);
  CHECK(st.Find(Kind::kService, "name", "demo_web").size() == 1);

  Txn t2;
  v1::Task moved = *st.Get<v1::Task>("t1");
  moved.set_node_id("n2");
  moved.set_desired_state(v1::TASK_SHUTDOWN);
  t2.Put(moved);
  t2.Delete(*st.Get<v1::Task>("t2"));
  REQUIRE(ApplyTxn(st, 2, std::move(t2)).ok());
  CHECK(st.Find(Kind::kTask, "node", "n1").empty());
  CHECK(st.Find(Kind::kTask, "node", "n2").size() == 1);
  // No index by desired state: nothing looked tasks up by it, and its key of
  // running tasks was one set of every task id, an insert per task.
  CHECK(st.Find(Kind::kTask, "desired_state", std::to_string(v1::TASK_SHUTDOWN)).empty());
}

TEST_CASE("an index already applied is refused") {
  State st;
  REQUIRE(ApplyTxn(st, 5, Txn()).ok());
  CHECK(ApplyTxn(st, 5, Txn()).code() == Code::kFailedPrecondition);
}

TEST_CASE("snapshot and restore give the same state") {
  State st;
  Txn t;
  t.Put(MakeService("s1", "demo_web", "demo"));
  t.Put(MakeTask("t1", "s1", "n1"));
  REQUIRE(ApplyTxn(st, 3, std::move(t)).ok());
  State copy;
  REQUIRE(copy.Restore(st.ToSnapshot()).ok());
  CHECK(copy.applied_index() == 3);
  CHECK(copy.ToSnapshot().SerializeAsString() == st.ToSnapshot().SerializeAsString());
  CHECK(copy.Find(Kind::kTask, "service", "s1").size() == 1);
}

TEST_CASE("a watcher resumes from its version, or is told to resync") {
  WatchLog log(3);
  std::vector<Event> events;
  State st;
  for (uint64_t i = 1; i <= 5; ++i) {
    Txn t;
    t.Put(MakeTask("t" + std::to_string(i), "s1", "n1"));
    events.clear();
    REQUIRE(ApplyTxn(st, i, std::move(t), &events).ok());
    log.Append(events);
  }
  auto recent = log.Since(3);
  REQUIRE(recent.ok());
  REQUIRE(recent->size() == 2);
  CHECK((*recent)[0].version == 4);
  CHECK(log.Since(5)->empty());
  auto old = log.Since(1);
  REQUIRE_FALSE(old.ok());
  CHECK(old.error().code() == Code::kFailedPrecondition);
  CHECK_THAT(old.error().message(), Catch::Matchers::Contains("reload the state"));
}

namespace {

// Five tasks, one version each, appended to `log` as State::Apply made them.
void AppendFive(State& st, WatchLog& log) {
  for (uint64_t i = 1; i <= 5; ++i) {
    Txn t;
    t.Put(MakeTask("t" + std::to_string(i), "s1", "n1"));
    std::vector<Event> events;
    REQUIRE(ApplyTxn(st, i, std::move(t), &events).ok());
    log.Append(std::move(events));
  }
}

}  // namespace

TEST_CASE("the watch log keeps what a reader has not read, and little else") {
  State st;
  SECTION("without readers only `keep` events stay") {
    WatchLog log(100, 2);
    AppendFive(st, log);
    REQUIRE(log.Since(3).ok());
    CHECK(log.Since(3)->size() == 2);
    CHECK(log.Since(2).error().code() == Code::kFailedPrecondition);
  }
  SECTION("a reader holds back what it has not read, then lets it go") {
    WatchLog log(100, 2);
    uint64_t reader = log.AddReader(1);
    AppendFive(st, log);
    REQUIRE(log.Since(1).ok());
    CHECK(log.Since(1)->size() == 4);
    log.SetRead(reader, 4);
    CHECK(log.Since(3)->size() == 2);
    CHECK_FALSE(log.Since(2).ok());
    // The slowest of two readers decides.
    uint64_t slow = log.AddReader(3);
    log.SetRead(reader, 5);
    CHECK(log.Since(3)->size() == 2);
    log.RemoveReader(slow);
    log.RemoveReader(reader);
    CHECK(log.Since(3)->size() == 2);  // `keep` still applies
  }
  SECTION("capacity bounds the log even for a reader that does not read") {
    WatchLog log(3, 1);
    (void)log.AddReader(0);
    AppendFive(st, log);
    CHECK(log.Since(2)->size() == 3);
    auto old = log.Since(1);
    REQUIRE_FALSE(old.ok());
    CHECK_THAT(old.error().message(), Catch::Matchers::Contains("reload the state"));
  }
  SECTION("an event let go no longer shares its task: a status merge changes it in place") {
    WatchLog log(100, 0);
    uint64_t reader = log.AddReader(0);
    AppendFive(st, log);
    const v1::Task* before = st.Get<v1::Task>("t1");
    REQUIRE(before != nullptr);
    v1::TaskStatus running;
    running.set_state(v1::TASK_RUNNING);
    {
      // Still held by the event of its creation: the merge writes a copy.
      Txn t;
      t.SetTaskStatus("t1", running);
      std::vector<Event> events;
      REQUIRE(ApplyTxn(st, 6, std::move(t), &events).ok());
      log.Append(std::move(events));
    }
    const v1::Task* copied = st.Get<v1::Task>("t1");
    CHECK(copied != before);
    log.SetRead(reader, 6);  // everything read: nothing is kept
    v1::TaskStatus failed;
    failed.set_state(v1::TASK_FAILED);
    Txn t;
    t.SetTaskStatus("t1", failed);
    REQUIRE(ApplyTxn(st, 7, std::move(t)).ok());
    CHECK(st.Get<v1::Task>("t1") == copied);
    CHECK(st.Get<v1::Task>("t1")->status().state() == v1::TASK_FAILED);
  }
}
