#include "shoal/raft/leveldb_storage.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace shoal::raft {

namespace {

constexpr char kHardStateKey[] = "raft/hs";
constexpr char kSnapshotKey[] = "raft/snap";
// Set instead of kSnapshotKey when the snapshot lives in a file of its own:
// "<file name> <size> <checksum>".
constexpr char kSnapshotFileKey[] = "raft/snapfile";
constexpr char kEntryPrefix[] = "raft/e/";
constexpr size_t kEntryPrefixLen = sizeof(kEntryPrefix) - 1;
constexpr char kSnapshotFilePrefix[] = "snapshot-";
constexpr char kSnapshotFileSuffix[] = ".shoal";

// A snapshot at least this large is written to a file beside the database
// rather than into it: through LevelDB it would be copied into the log, the
// memtable, a table file at the next flush and again by every compaction that
// moves it down a level; in a file it is written once.
constexpr size_t kSnapshotFileThreshold = 1 << 20;

// Raft writes every entry once and deletes it after the next snapshot, and a
// commit waits for the write: a larger memtable than LevelDB's 4 MiB means
// fewer flushes and level-0 compactions under a steady stream of writes.
constexpr size_t kWriteBufferSize = 32 << 20;

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

// XXH64 (Yann Collet's xxHash, 64-bit variant): the checksum of a snapshot
// file, which LevelDB's block checksums no longer cover. Several GB/s.
class Xxh64 {
 public:
  static uint64_t Hash(const char* p, size_t len, uint64_t seed) {
    const char* end = p + len;
    uint64_t h;
    if (len >= 32) {
      uint64_t v1 = seed + kP1 + kP2;
      uint64_t v2 = seed + kP2;
      uint64_t v3 = seed;
      uint64_t v4 = seed - kP1;
      const char* limit = end - 32;
      do {
        v1 = Round(v1, Read64(p));
        v2 = Round(v2, Read64(p + 8));
        v3 = Round(v3, Read64(p + 16));
        v4 = Round(v4, Read64(p + 24));
        p += 32;
      } while (p <= limit);
      h = Rotl(v1, 1) + Rotl(v2, 7) + Rotl(v3, 12) + Rotl(v4, 18);
      h = Merge(h, v1);
      h = Merge(h, v2);
      h = Merge(h, v3);
      h = Merge(h, v4);
    } else {
      h = seed + kP5;
    }
    h += static_cast<uint64_t>(len);
    for (; p + 8 <= end; p += 8) h = Rotl(h ^ Round(0, Read64(p)), 27) * kP1 + kP4;
    if (p + 4 <= end) {
      uint32_t k;
      std::memcpy(&k, p, 4);
      h = Rotl(h ^ (static_cast<uint64_t>(k) * kP1), 23) * kP2 + kP3;
      p += 4;
    }
    for (; p < end; ++p) h = Rotl(h ^ (static_cast<unsigned char>(*p) * kP5), 11) * kP1;
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr uint64_t kP1 = 11400714785074694791ULL;
  static constexpr uint64_t kP2 = 14029467366897019727ULL;
  static constexpr uint64_t kP3 = 1609587929392839161ULL;
  static constexpr uint64_t kP4 = 9650029242287828579ULL;
  static constexpr uint64_t kP5 = 2870177450012600261ULL;
  static uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t Read64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint64_t Round(uint64_t acc, uint64_t input) {
    acc += input * kP2;
    return Rotl(acc, 31) * kP1;
  }
  static uint64_t Merge(uint64_t acc, uint64_t v) { return (acc ^ Round(0, v)) * kP1 + kP4; }
};

// A snapshot file holds exactly the serialised Snapshot message. It is
// written as two pieces, so that the state machine's bytes (nearly all of it)
// are not copied: the metadata field with the data field's tag and length,
// then the data.
std::string SnapshotFileHeader(const Snapshot& snapshot) {
  Snapshot meta_only;
  if (snapshot.has_metadata()) *meta_only.mutable_metadata() = snapshot.metadata();
  std::string header = meta_only.SerializeAsString();
  const std::string& data = snapshot.data();
  uint8_t buf[16];
  buf[0] = (2 << 3) | 2;  // field 2, length-delimited
  uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(data.size(), buf + 1);
  header.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(end - buf));
  return header;
}

// Of a snapshot file's bytes: the header, then the data.
uint64_t SnapshotChecksum(const char* header, size_t header_size, const char* data, size_t size) {
  return Xxh64::Hash(data, size, Xxh64::Hash(header, header_size, 0));
}

bool IsSnapshotFileName(const std::string& name) {
  return name.rfind(kSnapshotFilePrefix, 0) == 0 && name.size() > sizeof(kSnapshotFileSuffix) &&
         name.compare(name.size() - (sizeof(kSnapshotFileSuffix) - 1), std::string::npos,
                      kSnapshotFileSuffix) == 0;
}

Status Errno(const std::string& path, const std::string& what) {
  return IoError("raft storage " + path + ": " + what + ": " + std::strerror(errno));
}

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(dir, "opening the directory");
  int rc = ::fsync(fd);
  Status s = rc == 0 ? Status::Ok() : Errno(dir, "syncing the directory");
  ::close(fd);
  return s;
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
  options.write_buffer_size = kWriteBufferSize;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, path, &raw);
  if (!s.ok()) return Convert(s, path, "open");
  std::unique_ptr<LevelDbStorage> storage(
      new LevelDbStorage(path, std::unique_ptr<leveldb::DB>(raw)));
  Status bounds = storage->ScanBounds();
  if (!bounds.ok()) return bounds;
  Status files = storage->ScanSnapshotFiles();
  if (!files.ok()) return files;
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

// Finds the snapshot file the database refers to, and removes the others: a
// crash can leave one that was written but never referred to, or one that was
// replaced but not yet removed.
Status LevelDbStorage::ScanSnapshotFiles() {
  std::string ref;
  leveldb::Status s = db_->Get(Verified(), kSnapshotFileKey, &ref);
  if (s.ok()) {
    snapshot_file_ = ref.substr(0, ref.find(' '));
  } else if (!s.IsNotFound()) {
    return Convert(s, path_, std::string("reading ") + kSnapshotFileKey);
  }
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& f : std::filesystem::directory_iterator(path_, ec)) {
    std::string name = f.path().filename().string();
    if (!IsSnapshotFileName(name)) continue;
    unsigned long long seq = 0;
    if (std::sscanf(name.c_str() + sizeof(kSnapshotFilePrefix) - 1, "%llu", &seq) == 1) {
      next_snapshot_file_ = std::max<uint64_t>(next_snapshot_file_, seq + 1);
    }
    if (name != snapshot_file_) stale.push_back(name);
  }
  if (ec) return IoError("raft storage " + path_ + ": listing the directory: " + ec.message());
  for (const auto& name : stale) ::unlink((path_ + "/" + name).c_str());
  return Status::Ok();
}

Status LevelDbStorage::LoadSnapshotFile(const std::string& ref, Snapshot* out) const {
  char name[128];
  unsigned long long size = 0;
  unsigned long long sum = 0;
  if (ref.size() >= sizeof name ||
      std::sscanf(ref.c_str(), "%127s %llu %llx", name, &size, &sum) != 3 ||
      !IsSnapshotFileName(name)) {
    return {Code::kCorruption,
            "raft storage " + path_ + ": key " + kSnapshotFileKey + " holds \"" + ref + "\""};
  }
  std::string file = path_ + "/" + name;
  auto corrupt = [&](const std::string& what) {
    return Status(Code::kCorruption,
                  "raft storage " + path_ + ": snapshot file " + file + " " + what);
  };
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return corrupt("is missing");
    return Errno(path_, "opening " + file);
  }
  std::string bytes(size, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  char extra;
  bool longer = done == bytes.size() && ::read(fd, &extra, 1) == 1;
  ::close(fd);
  if (done != bytes.size() || longer) {
    return corrupt("is not " + std::to_string(size) + " bytes long");
  }
  if (!out->ParseFromString(bytes)) return corrupt("does not decode");
  // The data field was written last: the bytes before it are the header.
  size_t data_size = out->data().size();
  if (data_size > bytes.size() ||
      SnapshotChecksum(bytes.data(), bytes.size() - data_size,
                       bytes.data() + bytes.size() - data_size, data_size) != sum) {
    return corrupt("fails its checksum");
  }
  return Status::Ok();
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
  s = db_->Get(Verified(), kSnapshotFileKey, &value);
  if (s.ok()) {
    auto snap = std::make_shared<Snapshot>();
    if (Status st = LoadSnapshotFile(value, snap.get()); !st.ok()) return st;
    state.snapshot = std::move(snap);
  } else if (!s.IsNotFound()) {
    return Convert(s, path_, std::string("reading ") + kSnapshotFileKey);
  } else {
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

// Writes `snapshot` to a new file and syncs it and the directory, so that the
// batch that refers to it (*ref) may follow. The file is not referred to yet:
// a crash before that batch leaves it to ScanSnapshotFiles.
Status LevelDbStorage::WriteSnapshotFile(const Snapshot& snapshot, std::string* name,
                                         std::string* ref) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%020" PRIu64 "%s", kSnapshotFilePrefix, next_snapshot_file_++,
                kSnapshotFileSuffix);
  *name = buf;
  std::string file = path_ + "/" + *name;
  std::string header = SnapshotFileHeader(snapshot);
  const std::string& data = snapshot.data();
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(path_, "creating " + file);
  const char* bases[2] = {header.data(), data.data()};
  size_t left[2] = {header.size(), data.size()};
  Status s = Status::Ok();
  while (s.ok() && left[0] + left[1] > 0) {
    iovec iov[2];
    int n = 0;
    for (int i = 0; i < 2; ++i) {
      if (left[i] == 0) continue;
      iov[n].iov_base = const_cast<char*>(bases[i]);
      iov[n].iov_len = left[i];
      ++n;
    }
    ssize_t w = ::writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      s = Errno(path_, "writing " + file);
      break;
    }
    size_t written = static_cast<size_t>(w);
    for (int i = 0; i < 2 && written > 0; ++i) {
      size_t step = std::min(written, left[i]);
      bases[i] += step;
      left[i] -= step;
      written -= step;
    }
  }
  if (s.ok() && ::fdatasync(fd) != 0) s = Errno(path_, "syncing " + file);
  ::close(fd);
  if (s.ok()) s = SyncDirectory(path_);
  if (!s.ok()) {
    ::unlink(file.c_str());
    return s;
  }
  std::snprintf(buf, sizeof buf, " %zu %016" PRIx64, header.size() + data.size(),
                SnapshotChecksum(header.data(), header.size(), data.data(), data.size()));
  *ref = *name + buf;
  return Status::Ok();
}

// Puts `snapshot` into `batch`: inline when small, else in a new file
// (*new_file names it). Either way the other key goes, so exactly one holds
// the snapshot.
Status LevelDbStorage::PutSnapshot(const Snapshot& snapshot, leveldb::WriteBatch* batch,
                                   std::string* new_file) {
  new_file->clear();
  if (snapshot.data().size() < kSnapshotFileThreshold) {
    snapshot.SerializeToString(&value_);
    batch->Put(kSnapshotKey, value_);
    batch->Delete(kSnapshotFileKey);
    return Status::Ok();
  }
  std::string ref;
  if (Status s = WriteSnapshotFile(snapshot, new_file, &ref); !s.ok()) return s;
  batch->Put(kSnapshotFileKey, ref);
  batch->Delete(kSnapshotKey);
  return Status::Ok();
}

// After the batch that put a snapshot: the previous file, if any, is no longer
// referred to. After a failed batch nothing is removed (it may have reached the
// disk all the same); the store stops, and the next Open removes whichever file
// the database does not refer to.
void LevelDbStorage::FinishSnapshot(bool committed, const std::string& new_file) {
  if (!committed) return;
  if (!snapshot_file_.empty() && snapshot_file_ != new_file) {
    ::unlink((path_ + "/" + snapshot_file_).c_str());
  }
  snapshot_file_ = new_file;
}

Status LevelDbStorage::Save(const StorageWrite& write) {
  leveldb::WriteBatch& batch = batch_;
  batch.Clear();
  uint64_t first = first_;
  uint64_t last = last_;
  std::string new_file;
  if (write.snapshot) {
    // Installing a snapshot replaces the whole log in the same batch, so a
    // crash leaves either the old snapshot and log or the new snapshot.
    for (uint64_t i = first; i != 0 && i <= last; ++i) batch.Delete(EntryKey(i));
    if (Status s = PutSnapshot(*write.snapshot, &batch, &new_file); !s.ok()) return s;
    first = last = 0;
  }
  if (!write.entries.empty()) {
    uint64_t from = write.entries.front().index();
    uint64_t to = write.entries.back().index();
    // A conflicting suffix beyond the new entries must go too.
    for (uint64_t i = std::max(to + 1, first); last != 0 && i <= last; ++i) {
      batch.Delete(EntryKey(i));
    }
    for (const auto& e : write.entries) {
      e.SerializeToString(&value_);
      batch.Put(EntryKey(e.index()), value_);
    }
    if (first == 0 || from < first) first = from;
    last = to;
  }
  if (write.hard_state) {
    write.hard_state->SerializeToString(&value_);
    batch.Put(kHardStateKey, value_);
  }
  leveldb::WriteOptions wo;
  // A snapshot file is synced on its own; the batch that refers to it must
  // be too, or a crash could keep the reference and lose the older snapshot
  // file it replaces.
  wo.sync = write.sync || write.snapshot != nullptr;
  Status s = Convert(db_->Write(wo, &batch), path_, "write");
  ShrinkScratch();
  if (write.snapshot) FinishSnapshot(s.ok(), new_file);
  if (!s.ok()) return s;
  first_ = first;
  last_ = last;
  return Status::Ok();
}

void LevelDbStorage::ShrinkScratch() {
  // A snapshot kept inline passes through the batch; keep no copy of it.
  constexpr size_t kKeep = 16 << 20;
  if (value_.capacity() > kKeep) std::string().swap(value_);
  if (batch_.ApproximateSize() > kKeep) batch_ = leveldb::WriteBatch();
}

Status LevelDbStorage::SaveSnapshot(const Snapshot& snapshot, uint64_t compact_index) {
  leveldb::WriteBatch& batch = batch_;
  batch.Clear();
  std::string new_file;
  if (Status s = PutSnapshot(snapshot, &batch, &new_file); !s.ok()) return s;
  uint64_t first = first_;
  for (; first != 0 && first < compact_index && first <= last_; ++first) {
    batch.Delete(EntryKey(first));
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  Status s = Convert(db_->Write(wo, &batch), path_, "saving a snapshot");
  ShrinkScratch();
  FinishSnapshot(s.ok(), new_file);
  if (!s.ok()) return s;
  if (first > last_) {
    first_ = last_ = 0;
  } else {
    first_ = first;
  }
  return Status::Ok();
}

}  // namespace shoal::raft
