#include <leveldb/db.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "shoal/raft/leveldb_storage.h"
#include "shoal/raft/memory_storage.h"

namespace shoal::raft {
namespace {

namespace fs = std::filesystem;

Entry E(uint64_t index, uint64_t term, std::string data = "") {
  Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

HardState Hs(uint64_t term, uint64_t vote, uint64_t commit) {
  HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

Snapshot Snap(uint64_t index, uint64_t term, std::string data) {
  Snapshot s;
  s.mutable_metadata()->set_index(index);
  s.mutable_metadata()->set_term(term);
  s.mutable_metadata()->mutable_conf_state()->add_voters(1);
  s.set_data(std::move(data));
  return s;
}

Status Write(Storage& st, std::vector<Entry> ents, const HardState* hs, bool sync,
             const Snapshot* snap = nullptr) {
  StorageWrite w;
  w.entries = ents;
  w.hard_state = hs;
  w.sync = sync;
  w.snapshot = snap;
  return st.Save(w);
}

std::vector<uint64_t> Indexes(const PersistentState& s) {
  std::vector<uint64_t> out;
  for (const auto& e : s.entries) out.push_back(e.index());
  return out;
}

// The shared contract, run against both implementations.
void CheckContract(Storage& st) {
  auto empty = st.Load();
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  HardState hs = Hs(2, 1, 1);
  REQUIRE(Write(st, {E(1, 1, "a"), E(2, 1, "b"), E(3, 2, "c")}, &hs, true).ok());
  // A conflicting append replaces the suffix, including entries past its end.
  REQUIRE(Write(st, {E(2, 3, "B")}, nullptr, true).ok());
  auto s = st.Load();
  REQUIRE(s.ok());
  CHECK(Indexes(*s) == std::vector<uint64_t>{1, 2});
  CHECK(s->entries[1].data() == "B");
  CHECK(s->hard_state.term() == 2);

  REQUIRE(Write(st, {E(3, 3, "c"), E(4, 3, "d"), E(5, 3, "e")}, nullptr, true).ok());
  Snapshot local = Snap(4, 3, "sm@4");
  REQUIRE(st.SaveSnapshot(local, 3).ok());
  s = st.Load();
  CHECK(Indexes(*s) == std::vector<uint64_t>{3, 4, 5});  // 3 is the boundary
  CHECK(s->snapshot->data() == "sm@4");

  Snapshot received = Snap(9, 4, "sm@9");
  HardState hs2 = Hs(4, 0, 9);
  REQUIRE(Write(st, {E(10, 4, "j")}, &hs2, true, &received).ok());
  s = st.Load();
  CHECK(Indexes(*s) == std::vector<uint64_t>{10});
  CHECK(s->snapshot->metadata().index() == 9);
  CHECK(s->hard_state.commit() == 9);
}

TEST_CASE("MemoryStorage honours the storage contract") {
  MemoryStorage st;
  CheckContract(st);
}

TEST_CASE("MemoryStorage loses unsynced writes in a crash, and only those") {
  MemoryStorage st;
  HardState hs = Hs(1, 0, 0);
  REQUIRE(Write(st, {E(1, 1)}, &hs, true).ok());
  HardState commit = Hs(1, 0, 1);
  REQUIRE(Write(st, {}, &commit, false).ok());
  CHECK(st.unsynced_writes() == 1);
  CHECK(st.Load()->hard_state.commit() == 1);  // visible before the crash
  st.LoseUnsyncedWrites();
  CHECK(st.Load()->hard_state.commit() == 0);

  // A synced write makes the earlier unsynced ones durable too.
  REQUIRE(Write(st, {}, &commit, false).ok());
  REQUIRE(Write(st, {E(2, 1)}, nullptr, true).ok());
  st.LoseUnsyncedWrites();
  CHECK(st.Load()->hard_state.commit() == 1);
  CHECK(st.Load()->entries.size() == 2);
}

struct TempDir {
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("shoal_raft_storage_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

TEST_CASE("LevelDbStorage honours the storage contract and survives reopening") {
  TempDir dir;
  {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    CheckContract(**st);
  }
  auto st = LevelDbStorage::Open(dir.path.string());
  REQUIRE(st.ok());
  auto s = (*st)->Load();
  REQUIRE(s.ok());
  CHECK(Indexes(*s) == std::vector<uint64_t>{10});
  CHECK(s->snapshot->data() == "sm@9");
  // Bounds were rebuilt on open: a later truncation removes the old suffix.
  REQUIRE(Write(**st, {E(11, 4), E(12, 4)}, nullptr, true).ok());
  REQUIRE(Write(**st, {E(11, 5)}, nullptr, true).ok());
  CHECK(Indexes(*(*st)->Load()) == std::vector<uint64_t>{10, 11});
}

TEST_CASE("LevelDbStorage reports a damaged entry as corruption naming the key") {
  TempDir dir;
  {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    REQUIRE(Write(**st, {E(1, 1, "a"), E(2, 1, "b")}, nullptr, true).ok());
  }
  {
    leveldb::DB* raw = nullptr;
    REQUIRE(leveldb::DB::Open(leveldb::Options(), dir.path.string(), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    std::string key = "raft/e/";
    for (int i = 0; i < 7; ++i) key.push_back('\0');
    key.push_back('\2');
    REQUIRE(db->Put(leveldb::WriteOptions(), key, "\xff\xff garbage").ok());
  }
  auto st = LevelDbStorage::Open(dir.path.string());
  REQUIRE(st.ok());
  auto s = (*st)->Load();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code() == Code::kCorruption);
  CHECK(s.error().message().find(dir.path.string()) != std::string::npos);
  CHECK(s.error().message().find("index 2") != std::string::npos);
}

std::vector<fs::path> LogFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".log") out.push_back(f.path());
  }
  return out;
}

TEST_CASE("LevelDbStorage refuses to start on a damaged file, naming it") {
  TempDir dir;
  {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    std::vector<Entry> ents;
    for (uint64_t i = 1; i <= 50; ++i) ents.push_back(E(i, 1, std::string(200, 'x')));
    REQUIRE(Write(**st, ents, nullptr, true).ok());
  }
  auto logs = LogFiles(dir.path);
  REQUIRE(logs.size() == 1);
  {
    std::fstream f(logs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.write("CORRUPTCORRUPT", 14);
  }
  auto st = LevelDbStorage::Open(dir.path.string());
  Status err = st.ok() ? Status() : st.error();
  if (st.ok()) {
    auto s = (*st)->Load();
    if (!s.ok()) err = s.error();
  }
  REQUIRE_FALSE(err.ok());
  CHECK(err.code() == Code::kCorruption);
  CHECK(err.message().find(dir.path.string()) != std::string::npos);
}

TEST_CASE("LevelDbStorage: a crash halfway through InstallSnapshot leaves the old snapshot") {
  TempDir dir;
  uintmax_t before = 0;
  uintmax_t after = 0;
  fs::path log;
  {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    REQUIRE((*st)->SaveSnapshot(Snap(0, 0, "old"), 0).ok());
    REQUIRE(Write(**st, {E(1, 1, "a"), E(2, 1, "b")}, nullptr, true).ok());
    log = LogFiles(dir.path).at(0);
    before = fs::file_size(log);
    Snapshot received = Snap(100, 5, std::string(4000, 'n'));
    HardState hs = Hs(5, 0, 100);
    REQUIRE(Write(**st, {}, &hs, true, &received).ok());
    after = fs::file_size(log);
  }
  REQUIRE(after > before);
  // The machine lost power while the batch was being written.
  fs::resize_file(log, before + (after - before) / 2);
  auto st = LevelDbStorage::Open(dir.path.string());
  REQUIRE(st.ok());
  auto s = (*st)->Load();
  REQUIRE(s.ok());
  CHECK(s->snapshot->data() == "old");
  CHECK(Indexes(*s) == std::vector<uint64_t>{1, 2});
  CHECK(s->hard_state.commit() == 0);
}

std::vector<fs::path> SnapshotFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".shoal") out.push_back(f.path());
  }
  return out;
}

// A snapshot of at least 1 MiB goes to a synced, checksummed file of its own
// beside the database (leveldb_storage.cc); the database only refers to it.
TEST_CASE("LevelDbStorage keeps a large snapshot in its own file across a restart") {
  TempDir dir;
  // Not one repeated byte, so that a flipped byte anywhere changes the data.
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    REQUIRE(Write(**st, {E(1, 1, "a"), E(2, 1, "b"), E(3, 1, "c")}, nullptr, true).ok());
    REQUIRE((*st)->SaveSnapshot(Snap(2, 1, data), 1).ok());
  }
  auto files = SnapshotFiles(dir.path);
  REQUIRE(files.size() == 1);
  CHECK(fs::file_size(files[0]) > data.size());
  fs::path file = files[0];

  SECTION("intact: it is loaded whole, with the entries after it") {
    auto st = LevelDbStorage::Open(dir.path.string());
    REQUIRE(st.ok());
    auto s = (*st)->Load();
    REQUIRE(s.ok());
    CHECK(s->snapshot->metadata().index() == 2);
    CHECK(s->snapshot->metadata().conf_state().voters_size() == 1);
    CHECK(s->snapshot->data() == data);
    CHECK(Indexes(*s).back() == 3);
    // A newer large snapshot replaces the file: only one is kept.
    REQUIRE((*st)->SaveSnapshot(Snap(3, 1, data + "more"), 2).ok());
    CHECK(SnapshotFiles(dir.path).size() == 1);
    CHECK(SnapshotFiles(dir.path)[0] != file);
    CHECK((*(*st)->Load()).snapshot->data() == data + "more");
  }

  // Each damage must stop the start with kCorruption naming the file, never
  // load a different state silently.
  auto load_error = [&] {
    auto st = LevelDbStorage::Open(dir.path.string());
    if (!st.ok()) return st.error();
    auto s = (*st)->Load();
    return s.ok() ? Status::Ok() : s.error();
  };
  SECTION("a flipped byte in the data fails the checksum") {
    {
      std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(fs::file_size(file) / 2));
      char c = 0;
      f.read(&c, 1);
      c = static_cast<char>(c ^ 0x5a);
      f.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2));
      f.write(&c, 1);
    }
    Status err = load_error();
    REQUIRE_FALSE(err.ok());
    CHECK(err.code() == Code::kCorruption);
    CHECK(err.message().find(file.string()) != std::string::npos);
    CHECK(err.message().find("checksum") != std::string::npos);
  }
  SECTION("a truncated file is refused") {
    fs::resize_file(file, fs::file_size(file) - 1000);
    Status err = load_error();
    REQUIRE_FALSE(err.ok());
    CHECK(err.code() == Code::kCorruption);
    CHECK(err.message().find(file.string()) != std::string::npos);
    CHECK(err.message().find("bytes long") != std::string::npos);
  }
  SECTION("a missing file is refused") {
    fs::remove(file);
    Status err = load_error();
    REQUIRE_FALSE(err.ok());
    CHECK(err.code() == Code::kCorruption);
    CHECK(err.message().find(file.string()) != std::string::npos);
    CHECK(err.message().find("missing") != std::string::npos);
  }
}

}  // namespace
}  // namespace shoal::raft
