#include "shoal/raft/leveldb_storage.h"

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <system_error>

namespace shoal::raft {

namespace {

constexpr char kHardStateKey[] = "raft/hs";
constexpr char kSnapshotKey[] = "raft/snap";
constexpr char kEntryPrefix[] = "raft/e/";
constexpr size_t kEntryPrefixLen = sizeof(kEntryPrefix) - 1;

std::string EntryKey(uint64_t index) {
  std::string key(kEntryPrefix);
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
  return key;
}

// The index in an entry key, or nullopt if the key is malformed.
std::optional<uint64_t> EntryKeyIndex(const leveldb::Slice& key) {
  if (key.size() != kEntryPrefixLen + 8) return std::nullopt;
  uint64_t index = 0;
  for (size_t i = kEntryPrefixLen; i < key.size(); ++i) {
    index = (index << 8) | static_cast<unsigned char>(key[i]);
  }
  return index;
}

bool IsEntryKey(const leveldb::Slice& key) { return key.starts_with(kEntryPrefix); }

Status Convert(const leveldb::Status& s, const std::string& path, const std::string& what) {
  if (s.ok()) return Status::Ok();
  std::string msg = "raft storage " + path + ": " + what + ": " + s.ToString();
  if (s.IsCorruption()) return {Code::kCorruption, msg};
  if (s.IsNotFound()) return NotFound(msg);
  return IoError(msg);
}

leveldb::ReadOptions Verified() {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  return ro;
}

}  // namespace

Result<std::unique_ptr<LevelDbStorage>> LevelDbStorage::Open(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return IoError("raft storage " + path + ": cannot create directory: " + ec.message());
  leveldb::Options options;
  options.create_if_missing = true;
  // Stop at the first damaged block rather than skip it: skipping could drop
  // an acknowledged entry without a word.
  options.paranoid_checks = true;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, path, &raw);
  if (!s.ok()) return Convert(s, path, "open");
  std::unique_ptr<LevelDbStorage> storage(
      new LevelDbStorage(path, std::unique_ptr<leveldb::DB>(raw)));
  Status bounds = storage->ScanBounds();
  if (!bounds.ok()) return bounds;
  return storage;
}

LevelDbStorage::LevelDbStorage(std::string path, std::unique_ptr<leveldb::DB> db)
    : path_(std::move(path)), db_(std::move(db)) {}

LevelDbStorage::~LevelDbStorage() = default;

Status LevelDbStorage::ScanBounds() {
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(Verified()));
  it->Seek(kEntryPrefix);
  if (it->Valid() && IsEntryKey(it->key())) {
    auto first = EntryKeyIndex(it->key());
    // The prefix's successor: '/' + 1 == '0'.
    it->Seek("raft/e0");
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
    auto last = it->Valid() ? EntryKeyIndex(it->key()) : std::nullopt;
    if (!first || !last) {
      return {Code::kCorruption, "raft storage " + path_ + ": malformed entry key"};
    }
    first_ = *first;
    last_ = *last;
  }
  return Convert(it->status(), path_, "scanning the log");
}

Result<PersistentState> LevelDbStorage::Load() {
  PersistentState state;
  std::string value;
  leveldb::Status s = db_->Get(Verified(), kHardStateKey, &value);
  if (s.ok()) {
    if (!state.hard_state.ParseFromString(value)) {
      return Status(Code::kCorruption,
                    "raft storage " + path_ + ": key " + kHardStateKey + " does not decode");
    }
  } else if (!s.IsNotFound()) {
    return Convert(s, path_, std::string("reading ") + kHardStateKey);
  }
  s = db_->Get(Verified(), kSnapshotKey, &value);
  if (s.ok()) {
    auto snap = std::make_shared<Snapshot>();
    if (!snap->ParseFromString(value)) {
      return Status(Code::kCorruption,
                    "raft storage " + path_ + ": key " + kSnapshotKey + " does not decode");
    }
    state.snapshot = std::move(snap);
  } else if (!s.IsNotFound()) {
    return Convert(s, path_, std::string("reading ") + kSnapshotKey);
  }

  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(Verified()));
  for (it->Seek(kEntryPrefix); it->Valid() && IsEntryKey(it->key()); it->Next()) {
    auto index = EntryKeyIndex(it->key());
    Entry e;
    if (!index || !e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        e.index() != *index) {
      return Status(Code::kCorruption, "raft storage " + path_ + ": entry key for index " +
                                           std::to_string(index.value_or(0)) +
                                           " holds no valid entry");
    }
    if (!state.entries.empty() && *index != state.entries.back().index() + 1) {
      return Status(Code::kCorruption, "raft storage " + path_ + ": log gap after index " +
                                           std::to_string(state.entries.back().index()));
    }
    state.entries.push_back(std::move(e));
  }
  Status st = Convert(it->status(), path_, "reading the log");
  if (!st.ok()) return st;
  const auto& meta = state.snapshot->metadata();
  if (!state.entries.empty() && state.entries.front().index() > meta.index() + 1) {
    return Status(Code::kCorruption, "raft storage " + path_ + ": log starts at " +
                                         std::to_string(state.entries.front().index()) +
                                         " but the snapshot ends at " +
                                         std::to_string(meta.index()));
  }
  return state;
}

Status LevelDbStorage::Save(const StorageWrite& write) {
  leveldb::WriteBatch batch;
  uint64_t first = first_;
  uint64_t last = last_;
  if (write.snapshot) {
    // Installing a snapshot replaces the whole log in the same batch, so a
    // crash leaves either the old snapshot and log or the new snapshot.
    for (uint64_t i = first; i != 0 && i <= last; ++i) batch.Delete(EntryKey(i));
    batch.Put(kSnapshotKey, write.snapshot->SerializeAsString());
    first = last = 0;
  }
  if (!write.entries.empty()) {
    uint64_t from = write.entries.front().index();
    uint64_t to = write.entries.back().index();
    // A conflicting suffix beyond the new entries must go too.
    for (uint64_t i = std::max(to + 1, first); last != 0 && i <= last; ++i) {
      batch.Delete(EntryKey(i));
    }
    for (const auto& e : write.entries) batch.Put(EntryKey(e.index()), e.SerializeAsString());
    if (first == 0 || from < first) first = from;
    last = to;
  }
  if (write.hard_state) batch.Put(kHardStateKey, write.hard_state->SerializeAsString());
  leveldb::WriteOptions wo;
  wo.sync = write.sync;
  Status s = Convert(db_->Write(wo, &batch), path_, "write");
  if (!s.ok()) return s;
  first_ = first;
  last_ = last;
  return Status::Ok();
}

Status LevelDbStorage::SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) {
  leveldb::WriteBatch batch;
  batch.Put(kSnapshotKey, snapshot.SerializeAsString());
  uint64_t first = first_;
  for (; first != 0 && first < compact_index && first <= last_; ++first) {
    batch.Delete(EntryKey(first));
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status s = Convert(db_->Write(wo, &batch), path_, "saving a snapshot");
  if (!s.ok()) return s;
  if (first > last_) {
    first_ = last_ = 0;
  } else {
    first_ = first;
  }
  return Status::Ok();
}

}  // namespace shoal::raft
