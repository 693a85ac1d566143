#include "shoal/store/persistent_state.h"

#include <leveldb/write_batch.h>

#include <cstdio>
#include <string>

namespace shoal::store {

namespace {

constexpr const char* kAppliedKey = "m/applied";
constexpr size_t kWriteBufferSize = 64 << 20;

// "o/<kind number>/<id>": objects of one kind sit together, in id order.
void ObjectKey(Kind kind, const std::string& id, std::string* out) {
  int k = static_cast<int>(kind);
  out->assign("o/");
  out->push_back(static_cast<char>('0' + k / 10));
  out->push_back(static_cast<char>('0' + k % 10));
  out->push_back('/');
  out->append(id);
}

std::string ObjectKey(Kind kind, const std::string& id) {
  std::string key;
  ObjectKey(kind, id, &key);
  return key;
}

Status FromLevelDb(const leveldb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return {Code::kCorruption, what + ": " + s.ToString()};
  return IoError(what + ": " + s.ToString());
}

}  // namespace

void DirtyObjects::Clear() {
  if (size_ == 0) return;
  for (auto& ids : ids_) ids.clear();
  size_ = 0;
}

PersistentState::PersistentState(std::string dir, std::unique_ptr<leveldb::DB> db)
    : dir_(std::move(dir)), db_(std::move(db)) {}

PersistentState::~PersistentState() = default;

Result<std::unique_ptr<PersistentState>> PersistentState::Open(const std::string& dir) {
  leveldb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Every applied object is written here, under keys in no particular order,
  // so each memtable flush is a level-0 file spanning the whole key space and
  // each level-0 compaction rewrites level 1. A 64 MiB memtable (LevelDB's
  // default is 4 MiB) makes those compactions 16 times rarer; it costs up to
  // twice that much memory under a heavy write load (the memtable being
  // filled and the one being flushed). Snappy stays on: objects compress well.
  options.write_buffer_size = kWriteBufferSize;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) return FromLevelDb(s, "opening the state database " + dir);
  return std::unique_ptr<PersistentState>(
      new PersistentState(dir, std::unique_ptr<leveldb::DB>(raw)));
}

Status PersistentState::Load(State* out) const {
  v1::StoreSnapshot snap;
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek("o/"); it->Valid() && it->key().starts_with("o/"); it->Next()) {
    if (!snap.add_objects()->ParseFromArray(it->value().data(),
                                            static_cast<int>(it->value().size()))) {
      return {Code::kCorruption,
              dir_ + ": key " + it->key().ToString() + " does not hold a valid object"};
    }
  }
  if (Status s = FromLevelDb(it->status(), "reading " + dir_); !s.ok()) return s;
  std::string applied;
  leveldb::Status gs = db_->Get(ro, kAppliedKey, &applied);
  if (gs.IsNotFound()) {
    if (snap.objects_size() > 0) {
      return {Code::kCorruption, dir_ + ": objects without an applied index"};
    }
  } else if (!gs.ok()) {
    return FromLevelDb(gs, "reading " + dir_);
  } else {
    char* end = nullptr;
    unsigned long long v = std::strtoull(applied.c_str(), &end, 10);
    if (applied.empty() || *end != '\0') {
      return {Code::kCorruption, dir_ + ": key " + kAppliedKey + " holds \"" + applied + "\""};
    }
    snap.set_applied_index(v);
  }
  return out->Restore(snap);
}

Status PersistentState::Commit(uint64_t applied_index, const std::vector<Event>& events,
                               bool sync) {
  // Reused from batch to batch, so that a steady stream of commits does not
  // grow (and copy) a fresh buffer every time.
  leveldb::WriteBatch& batch = batch_;
  batch.Clear();
  std::string& value = value_;
  std::string& key = key_;
  for (const auto& e : events) {
    auto kind = KindOf(e.mutation);
    if (!kind.ok()) return kind.error();
    ObjectKey(*kind, MetaOf(e.mutation)->id(), &key);
    if (e.mutation.op() == v1::Mutation::OP_DELETE) {
      batch.Delete(key);
    } else {
      e.mutation.SerializeToString(&value);
      batch.Put(key, value);
    }
  }
  return WriteOut(applied_index, sync);
}

Status PersistentState::Flush(const State& state, const DirtyObjects& dirty, bool sync) {
  leveldb::WriteBatch& batch = batch_;
  batch.Clear();
  for (int k = 0; k < kKindCount; ++k) {
    Kind kind = static_cast<Kind>(k);
    for (const std::string& id : dirty.ids(kind)) {
      ObjectKey(kind, id, &key_);
      const v1::Mutation* m = state.Get(kind, id);
      if (m == nullptr) {
        batch.Delete(key_);
      } else {
        // The bytes Commit would have written for the object's last event:
        // the event and the State share that object.
        m->SerializeToString(&value_);
        batch.Put(key_, value_);
      }
    }
  }
  return WriteOut(state.applied_index(), sync);
}

Status PersistentState::WriteOut(uint64_t applied_index, bool sync) {
  batch_.Put(kAppliedKey, std::to_string(applied_index));
  leveldb::WriteOptions wo;
  wo.sync = sync;
  Status s = FromLevelDb(db_->Write(wo, &batch_), "writing " + dir_);
  // Keep no copy of an unusually large batch.
  constexpr size_t kKeep = 16 << 20;
  if (batch_.ApproximateSize() > kKeep) batch_ = leveldb::WriteBatch();
  if (value_.capacity() > kKeep) std::string().swap(value_);
  return s;
}

Status PersistentState::Reset(const v1::StoreSnapshot& snapshot) {
  leveldb::WriteBatch batch;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek("o/"); it->Valid() && it->key().starts_with("o/"); it->Next()) {
    batch.Delete(it->key());
  }
  std::string value;
  for (const auto& m : snapshot.objects()) {
    auto kind = KindOf(m);
    if (!kind.ok()) return kind.error();
    m.SerializeToString(&value);
    batch.Put(ObjectKey(*kind, MetaOf(m)->id()), value);
  }
  batch.Put(kAppliedKey, std::to_string(snapshot.applied_index()));
  leveldb::WriteOptions wo;
  wo.sync = true;
  return FromLevelDb(db_->Write(wo, &batch), "writing " + dir_);
}

}  // namespace shoal::store
