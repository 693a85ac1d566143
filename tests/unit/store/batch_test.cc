// Batch entries: the proposals of one turn packed into one Raft entry (a
// v1::CommandBatch), each command applied and answered on its own.

#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>

#include "disk_member.h"
#include "shoal/raft/leveldb_storage.h"
#include "shoal/store/replicated_store.h"
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

namespace {

v1::Config Named(const std::string& id, const std::string& name, const std::string& data) {
  v1::Config c = MakeConfig(id, data);
  c.mutable_spec()->set_name(name);
  return c;
}

}  // namespace

TEST_CASE("the proposals of one turn share an entry and keep their own results") {
  TempDir dir;
  v1::StoreSnapshot before_restart;
  uint64_t first = 0;
  {
    DiskMember m(dir.path, /*with_state=*/false);
    uint64_t last = m.store->raft_status().last_index;
    Outcome a, b, c, d, e;
    m.store->Propose(PutCommand(MakeConfig("a", "1")), a.Callback());
    m.store->Propose(PutCommand(MakeConfig("b", "2")), b.Callback());
    // Takes b's name: refused when applied, after b, in the same entry.
    m.store->Propose(PutCommand(Named("c", "b", "3")), c.Callback());
    // Changes `a` again: it goes into the next entry, so that `a` is not
    // stamped with one version twice; refused there, as `a` exists by then.
    m.store->Propose(PutCommand(MakeConfig("a", "4")), d.Callback());
    m.store->Propose(PutCommand(MakeConfig("e", "5")), e.Callback());
    CHECK(!a.done);  // callbacks run from Process() only
    REQUIRE(m.store->Process().ok());
    REQUIRE((a.done && b.done && c.done && d.done && e.done));

    CHECK(m.store->raft_status().last_index == last + 2);  // two entries for five commands
    first = a.index;
    CHECK(a.status.ok());
    CHECK(b.status.ok());
    CHECK(b.index == first);
    CHECK(c.status.code() == Code::kAlreadyExists);
    CHECK(c.index == first);
    CHECK(d.status.code() == Code::kAlreadyExists);
    CHECK(d.index == first + 1);
    CHECK(e.status.ok());
    CHECK(e.index == first + 1);

    const State& st = m.store->state();
    CHECK(st.Get<v1::Config>("a")->spec().data() == "1");
    CHECK(st.Get<v1::Config>("a")->meta().version() == first);
    CHECK(st.Get<v1::Config>("e")->meta().version() == first + 1);
    CHECK(st.Get<v1::Config>("c") == nullptr);
    auto events = m.store->watch().Since(0);
    REQUIRE(events.ok());
    REQUIRE(events->size() == 3);  // a, b, then e
    CHECK((*events)[1].version == first);
    CHECK((*events)[2].version == first + 1);
    before_restart = st.ToSnapshot();
  }
  // No applied state on disk: the restart replays both batch entries from
  // the Raft log and must reach the same state.
  DiskMember again(dir.path, /*with_state=*/false);
  CHECK(again.store->state().Get<v1::Config>("e") != nullptr);
  v1::StoreSnapshot now = again.store->state().ToSnapshot();
  now.set_applied_index(before_restart.applied_index());  // the new term's no-op
  CHECK(google::protobuf::util::MessageDifferencer::Equals(now, before_restart));
}

TEST_CASE("a batch is split by size, and batch_max_bytes 0 writes one entry per command") {
  TempDir dir;
  size_t cap = GENERATE(size_t{0}, size_t{3000});
  DiskMember m(dir.path, /*with_state=*/true, cap);
  uint64_t last = m.store->raft_status().last_index;
  std::vector<Outcome> out(10);
  for (int i = 0; i < 10; ++i) {
    m.store->Propose(PutCommand(MakeConfig("k" + std::to_string(i), std::string(1000, 'x'))),
                     out[i].Callback());
  }
  REQUIRE(m.store->Process().ok());
  for (const auto& o : out) REQUIRE(o.status.ok());
  uint64_t entries = m.store->raft_status().last_index - last;
  if (cap == 0) {
    CHECK(entries == 10);
  } else {
    // About three commands of 1 KiB reach 3,000 bytes.
    CHECK(entries >= 3);
    CHECK(entries <= 4);
  }
  CHECK(m.store->state().Count(shoal::store::Kind::kConfig) == 10);
}

TEST_CASE("a follower's batch is forwarded and every member applies it alike") {
  StoreCluster c(3, FastOptions(), 5);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t follower = c.Leader() == 1 ? 2 : 1;
  std::vector<Outcome> out(6);
  for (int i = 0; i < 6; ++i) {
    // The last one repeats the first: refused in a later entry.
    std::string id = i == 5 ? "f0" : "f" + std::to_string(i);
    c.store(follower)->Propose(PutCommand(MakeConfig(id, "v" + std::to_string(i))),
                               out[i].Callback());
  }
  REQUIRE(c.store(follower)->Process().ok());
  REQUIRE(c.RunUntil([&] { return out[5].done; }));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(out[i].status.ok());
    CHECK(out[i].index == out[0].index);
  }
  CHECK(out[5].status.code() == Code::kAlreadyExists);
  CHECK(out[5].index > out[0].index);
  REQUIRE(c.RunUntil([&] {
    uint64_t a = c.store(1)->state().applied_index();
    return a == c.store(2)->state().applied_index() && a == c.store(3)->state().applied_index();
  }));
  CHECK(SameState(c.store(1)->state(), c.store(2)->state()));
  CHECK(SameState(c.store(1)->state(), c.store(3)->state()));
  CHECK(c.store(3)->state().Get<v1::Config>("f0")->spec().data() == "v0");
}

TEST_CASE("a leader deposed before its batch commits fails every command of it as unknown") {
  StoreCluster c(3, FastOptions(), 7);
  REQUIRE(c.RunUntil([&] { return c.Leader() != 0; }));
  uint64_t leader = c.Leader();
  c.net().Cut(leader);
  std::vector<Outcome> out(4);
  for (int i = 0; i < 4; ++i) {
    c.store(leader)->Propose(PutCommand(MakeConfig("u" + std::to_string(i), "x")),
                             out[i].Callback());
  }
  REQUIRE(c.RunUntil([&] { return out[3].done; }));
  for (const auto& o : out) CHECK(o.status.code() == Code::kUnavailable);
}

TEST_CASE("State applies a batch command by command, at one index") {
  State st;
  v1::Command batch;
  *batch.mutable_batch()->add_commands() = PutCommand(MakeConfig("x", "1"));
  *batch.mutable_batch()->add_commands() = PutCommand(MakeConfig("x", "2", 99));  // stale
  *batch.mutable_batch()->add_commands() = PutCommand(MakeConfig("y", "3"));
  v1::Command nested;
  *nested.mutable_batch()->add_commands() = PutCommand(MakeConfig("z", "4"));
  *batch.mutable_batch()->add_commands() = nested;
  std::vector<Event> events;
  std::vector<Status> results;
  SECTION("copying") { REQUIRE(st.Apply(5, batch, &events, &results).ok()); }
  SECTION("moving the objects out") {
    REQUIRE(st.ApplyConsuming(5, &batch, &events, &results).ok());
  }
  REQUIRE(results.size() == 4);
  CHECK(results[0].ok());
  CHECK(results[1].code() == Code::kFailedPrecondition);
  CHECK(results[2].ok());
  CHECK(results[3].code() == Code::kInvalidArgument);  // never nested
  CHECK(st.applied_index() == 5);
  CHECK(st.Get<v1::Config>("x")->spec().data() == "1");
  CHECK(st.Get<v1::Config>("y")->meta().version() == 5);
  CHECK(st.Get<v1::Config>("z") == nullptr);
  CHECK(events.size() == 2);
  // An index already consumed is refused whole, with no result.
  results.clear();
  CHECK(st.Apply(5, batch, nullptr, &results).code() == Code::kFailedPrecondition);
  CHECK(results.empty());
}

TEST_CASE("a watcher capped at N events still gets the whole last version") {
  // A batch entry: one version, five events; then one more version.
  shoal::store::WatchLog log(100);
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) events.push_back(Event{7, v1::Mutation()});
  events.push_back(Event{8, v1::Mutation()});
  log.Append(std::move(events));
  auto first = log.Since(0, 2);
  REQUIRE(first.ok());
  CHECK(first->size() == 5);  // not 2: resuming from version 7 would skip three
  CHECK(first->back().version == 7);
  auto next = log.Since(7, 2);
  REQUIRE(next.ok());
  REQUIRE(next->size() == 1);
  CHECK(next->front().version == 8);
}
