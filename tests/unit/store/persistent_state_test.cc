#include "shoal/store/persistent_state.h"

#include <leveldb/db.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "shoal/store/txn.h"

using shoal::Code;
using shoal::store::Event;
using shoal::store::Kind;
using shoal::store::PersistentState;
using shoal::store::State;
using shoal::store::Txn;
namespace fs = std::filesystem;
namespace v1 = shoal::v1;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("shoal-store-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

v1::Network MakeNetwork(const std::string& id, const std::string& name) {
  v1::Network n;
  n.mutable_meta()->set_id(id);
  n.mutable_spec()->set_name(name);
  n.set_stack("demo");
  return n;
}

}  // namespace

TEST_CASE("applied state survives a reopen, deletes included") {
  TempDir dir;
  State st;
  {
    auto db = PersistentState::Open(dir.path.string());
    REQUIRE(db.ok());
    std::vector<Event> events;
    Txn t1;
    t1.Put(MakeNetwork("n1", "demo_front"));
    t1.Put(MakeNetwork("n2", "demo_back"));
    REQUIRE(st.Apply(4, std::move(t1).Build("t", 1), &events).ok());
    REQUIRE((*db)->Commit(st.applied_index(), events, true).ok());
    events.clear();
    Txn t2;
    t2.Delete(*st.Get<v1::Network>("n2"));
    REQUIRE(st.Apply(5, std::move(t2).Build("t", 2), &events).ok());
    REQUIRE((*db)->Commit(st.applied_index(), events, true).ok());
  }
  auto db = PersistentState::Open(dir.path.string());
  REQUIRE(db.ok());
  State loaded;
  REQUIRE((*db)->Load(&loaded).ok());
  CHECK(loaded.applied_index() == 5);
  CHECK(loaded.Count(Kind::kNetwork) == 1);
  CHECK(loaded.ToSnapshot().SerializeAsString() == st.ToSnapshot().SerializeAsString());
}

TEST_CASE("a snapshot replaces the stored state at once") {
  TempDir dir;
  auto db = PersistentState::Open(dir.path.string());
  REQUIRE(db.ok());
  State st;
  std::vector<Event> events;
  Txn t;
  t.Put(MakeNetwork("old", "demo_old"));
  REQUIRE(st.Apply(1, std::move(t).Build("t", 1), &events).ok());
  REQUIRE((*db)->Commit(1, events, true).ok());

  v1::StoreSnapshot snap;
  snap.set_applied_index(90);
  auto* m = snap.add_objects();
  *m->mutable_network() = MakeNetwork("new", "demo_new");
  REQUIRE((*db)->Reset(snap).ok());
  State loaded;
  REQUIRE((*db)->Load(&loaded).ok());
  CHECK(loaded.applied_index() == 90);
  CHECK(loaded.Get<v1::Network>("old") == nullptr);
  CHECK(loaded.Get<v1::Network>("new") != nullptr);
}

TEST_CASE("a damaged value is reported with the database and key, not ignored") {
  TempDir dir;
  {
    leveldb::DB* raw = nullptr;
    leveldb::Options o;
    o.create_if_missing = true;
    REQUIRE(leveldb::DB::Open(o, dir.path.string(), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    REQUIRE(db->Put(leveldb::WriteOptions(), "o/05/n1", "\xff\xff not a protobuf").ok());
    REQUIRE(db->Put(leveldb::WriteOptions(), "m/applied", "3").ok());
  }
  auto db = PersistentState::Open(dir.path.string());
  REQUIRE(db.ok());
  State loaded;
  shoal::Status s = (*db)->Load(&loaded);
  CHECK(s.code() == Code::kCorruption);
  CHECK_THAT(s.message(), Catch::Matchers::Contains("o/05/n1"));
  CHECK_THAT(s.message(), Catch::Matchers::Contains(dir.path.string()));
}
