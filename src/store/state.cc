#include "shoal/store/state.h"

#include <atomic>
#include <cstring>

namespace shoal::store {

namespace {

using v1::Mutation;

// Index keys of an object: index name -> key, at most three, in a fixed array
// (this runs twice for every object written).
struct IndexKeys {
  int n = 0;
  std::pair<const char*, std::string> keys[3];
  void Add(const char* index, const std::string& key) { keys[n++] = {index, key}; }
  // An object outside any stack is not in the "stack" index: nothing looks
  // up the empty stack, and in a large state that one key would hold them all.
  void AddStack(const std::string& stack) {
    if (!stack.empty()) Add("stack", stack);
  }
};

IndexKeys KeysOf(Kind kind, const Mutation& m) {
  IndexKeys k;
  switch (kind) {
    case Kind::kNode:
      k.Add("name", m.node().description().hostname());
      break;
    case Kind::kStack:
      k.Add("name", m.stack().name());
      break;
    case Kind::kStackRevision:
      k.AddStack(m.stack_revision().stack());
      break;
    case Kind::kService:
      k.Add("name", m.service().spec().name());
      k.AddStack(m.service().spec().stack());
      break;
    case Kind::kTask:
      k.Add("service", m.task().service_id());
      k.Add("node", m.task().node_id());
      break;
    case Kind::kNetwork:
      k.Add("name", m.network().spec().name());
      k.AddStack(m.network().stack());
      if (!m.network().subnet().empty()) k.Add("subnet", m.network().subnet());
      break;
    case Kind::kVolume:
      k.Add("name", m.volume().spec().name());
      k.AddStack(m.volume().stack());
      break;
    case Kind::kSecret:
      k.Add("name", m.secret().spec().name());
      k.AddStack(m.secret().stack());
      break;
    case Kind::kConfig:
      k.Add("name", m.config().spec().name());
      k.AddStack(m.config().stack());
      break;
    case Kind::kCluster:
      break;
  }
  return k;
}

// Kinds whose "name" must be unique in the cluster.
bool UniqueName(Kind kind) {
  return kind != Kind::kNode && kind != Kind::kStackRevision && kind != Kind::kTask &&
         kind != Kind::kCluster;
}

const std::string& NameOf(Kind kind, const Mutation& m) {
  static const std::string kNone;
  switch (kind) {
    case Kind::kNode:
      return m.node().description().hostname();
    case Kind::kStack:
      return m.stack().name();
    case Kind::kService:
      return m.service().spec().name();
    case Kind::kNetwork:
      return m.network().spec().name();
    case Kind::kVolume:
      return m.volume().spec().name();
    case Kind::kSecret:
      return m.secret().spec().name();
    case Kind::kConfig:
      return m.config().spec().name();
    default:
      return kNone;
  }
}

// Every field of TaskStatus (objects.proto; a new field must be added here).
// MessageDifferencer's reflection cost more than the rest of a status merge.
bool SameStatus(const v1::TaskStatus& a, const v1::TaskStatus& b) {
  return a.state() == b.state() && a.timestamp_ns() == b.timestamp_ns() &&
         a.message() == b.message() && a.error() == b.error() && a.exit_code() == b.exit_code() &&
         a.container_id() == b.container_id() && a.health() == b.health();
}

// The object in `slot`, to be changed in place: when anything else shares it
// (an event, a copy of the State), `slot` first gets a copy of its own, so
// that what the others hold never changes. The State creates every object it
// holds as a non-const Mutation, so casting the const away is sound.
Mutation* Unshare(SharedMutation* slot) {
  if (slot->use_count() == 1) {
    // The last other holder may have let go on another thread (an events
    // stream): its reads happen before our writes.
    std::atomic_thread_fence(std::memory_order_acquire);
    return const_cast<Mutation*>(slot->get());
  }
  auto copy = std::make_shared<Mutation>(**slot);
  Mutation* out = copy.get();
  *slot = std::move(copy);
  return out;
}

v1::Meta* MutableMetaOf(Mutation* m) {
  switch (m->object_case()) {
    case Mutation::kNode:
      return m->mutable_node()->mutable_meta();
    case Mutation::kStack:
      return m->mutable_stack()->mutable_meta();
    case Mutation::kStackRevision:
      return m->mutable_stack_revision()->mutable_meta();
    case Mutation::kService:
      return m->mutable_service()->mutable_meta();
    case Mutation::kTask:
      return m->mutable_task()->mutable_meta();
    case Mutation::kNetwork:
      return m->mutable_network()->mutable_meta();
    case Mutation::kVolume:
      return m->mutable_volume()->mutable_meta();
    case Mutation::kSecret:
      return m->mutable_secret()->mutable_meta();
    case Mutation::kConfig:
      return m->mutable_config()->mutable_meta();
    case Mutation::kCluster:
      return m->mutable_cluster()->mutable_meta();
    case Mutation::OBJECT_NOT_SET:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

const char* KindName(Kind kind) {
  static const char* const kNames[kKindCount] = {"node",   "stack",   "stack revision", "service",
                                                 "task",   "network", "volume",         "secret",
                                                 "config", "cluster"};
  return kNames[static_cast<int>(kind)];
}

Result<Kind> KindOf(const Mutation& m) {
  switch (m.object_case()) {
    case Mutation::kNode:
      return Kind::kNode;
    case Mutation::kStack:
      return Kind::kStack;
    case Mutation::kStackRevision:
      return Kind::kStackRevision;
    case Mutation::kService:
      return Kind::kService;
    case Mutation::kTask:
      return Kind::kTask;
    case Mutation::kNetwork:
      return Kind::kNetwork;
    case Mutation::kVolume:
      return Kind::kVolume;
    case Mutation::kSecret:
      return Kind::kSecret;
    case Mutation::kConfig:
      return Kind::kConfig;
    case Mutation::kCluster:
      return Kind::kCluster;
    case Mutation::OBJECT_NOT_SET:
      break;
  }
  return InvalidArgument("a mutation without an object");
}

const v1::Meta* MetaOf(const Mutation& m) { return MutableMetaOf(const_cast<Mutation*>(&m)); }

Status State::Check(const Mutation& m, const std::map<std::string, std::string>& names) const {
  auto kind = KindOf(m);
  if (!kind.ok()) return kind.error();
  const v1::Meta* meta = MetaOf(m);
  if (meta->id().empty()) return InvalidArgument(std::string(KindName(*kind)) + " without an id");
  const Mutation* cur = Get(*kind, meta->id());
  uint64_t have = cur ? MetaOf(*cur)->version() : 0;
  std::string what = std::string(KindName(*kind)) + " " + meta->id();
  if (m.op() == Mutation::OP_TASK_STATUS) {
    // Applied as a merge without a version: an agent's report never conflicts.
    if (*kind != Kind::kTask) return InvalidArgument("OP_TASK_STATUS on a " + what);
    return Status::Ok();
  }
  if (m.op() == Mutation::OP_DELETE) {
    if (!cur) return {Code::kNotFound, what + " does not exist"};
    if (m.expected_version() != 0 && m.expected_version() != have) {
      return {Code::kFailedPrecondition, what + " changed since it was read (version " +
                                             std::to_string(m.expected_version()) + ", now " +
                                             std::to_string(have) + ")"};
    }
    return Status::Ok();
  }
  if (m.expected_version() != have) {
    if (!cur) return {Code::kFailedPrecondition, what + " no longer exists"};
    if (m.expected_version() == 0) return {Code::kAlreadyExists, what + " already exists"};
    return {Code::kFailedPrecondition, what + " changed since it was read (version " +
                                           std::to_string(m.expected_version()) + ", now " +
                                           std::to_string(have) + ")"};
  }
  // Another object than this one holding `key` in `index`, in the state or
  // earlier in this transaction (`names`, keyed "<prefix>/<key>").
  const auto taken = [&](const char* index, const std::string& prefix,
                         const std::string& key) -> Status {
    const auto& idx = tables_[static_cast<int>(*kind)].indexes;
    auto it = idx.find(index);
    if (it != idx.end()) {
      auto holders = it->second.find(key);
      if (holders != it->second.end()) {
        for (const auto& id : holders->second) {
          if (id != meta->id())
            return {Code::kAlreadyExists, prefix + " \"" + key + "\" is taken by " + id};
        }
      }
    }
    auto dup = names.empty() ? names.end() : names.find(prefix + "/" + key);
    if (dup != names.end() && dup->second != meta->id()) {
      return {Code::kAlreadyExists, prefix + " \"" + key + "\" is used twice in one transaction"};
    }
    return Status::Ok();
  };
  if (UniqueName(*kind)) {
    const std::string& name = NameOf(*kind, m);
    if (name.empty()) return InvalidArgument(what + " has no name");
    if (Status s = taken("name", std::string(KindName(*kind)) + " name", name); !s.ok()) return s;
  }
  // Two networks never share a subnet (the managers allocate them; the
  // engines refuse overlaps, and nodes rely on that to make a network once).
  if (*kind == Kind::kNetwork && !m.network().subnet().empty()) {
    if (Status s = taken("subnet", "network subnet", m.network().subnet()); !s.ok()) return s;
  }
  return Status::Ok();
}

Status State::Apply(uint64_t index, const v1::Command& command, std::vector<Event>* events,
                    std::vector<Status>* results) {
  return ApplyIndexed(index, command, nullptr, events, results);
}

Status State::ApplyConsuming(uint64_t index, v1::Command* command, std::vector<Event>* events,
                             std::vector<Status>* results) {
  return ApplyIndexed(index, *command, command, events, results);
}

Status State::ApplyIndexed(uint64_t index, const v1::Command& command, v1::Command* movable,
                           std::vector<Event>* events, std::vector<Status>* results) {
  if (index <= applied_index_) {
    return {Code::kFailedPrecondition, "index " + std::to_string(index) +
                                           " was already applied (at " +
                                           std::to_string(applied_index_) + ")"};
  }
  applied_index_ = index;
  if (command.kind_case() != v1::Command::kBatch) {
    Status s = ApplyOne(index, command, movable, events);
    if (results != nullptr) results->push_back(s);
    return s;
  }
  const auto& commands = command.batch().commands();
  if (results != nullptr) results->reserve(results->size() + commands.size());
  for (int i = 0; i < commands.size(); ++i) {
    const v1::Command& c = commands[i];
    v1::Command* mc = movable != nullptr ? movable->mutable_batch()->mutable_commands(i) : nullptr;
    Status s = c.kind_case() == v1::Command::kBatch
                   ? InvalidArgument("a command batch inside a command batch")
                   : ApplyOne(index, c, mc, events);
    if (results != nullptr) results->push_back(std::move(s));
  }
  return Status::Ok();
}

Status State::ApplyOne(uint64_t index, const v1::Command& command, v1::Command* movable,
                       std::vector<Event>* events) {
  if (command.kind_case() != v1::Command::kTransaction) return Status::Ok();
  const auto& muts = command.transaction().mutations();
  if (muts.size() == 1) {
    // The common case (one object per command) needs no bookkeeping across
    // mutations.
    if (Status s = Check(muts[0], {}); !s.ok()) return s;
  } else {
    std::map<std::string, std::string> names;  // kind/name -> id, within this transaction
    std::set<std::string> touched;
    for (const auto& m : muts) {
      if (Status s = Check(m, names); !s.ok()) return s;
      Kind kind = *KindOf(m);
      std::string key = std::string(KindName(kind)) + "/" + MetaOf(m)->id();
      if (!touched.insert(key).second) {
        return InvalidArgument(key + " is changed twice in one transaction");
      }
      if (UniqueName(kind) && m.op() == Mutation::OP_PUT) {
        names[std::string(KindName(kind)) + " name/" + NameOf(kind, m)] = MetaOf(m)->id();
      }
      if (m.has_network() && m.op() == Mutation::OP_PUT && !m.network().subnet().empty()) {
        names["network subnet/" + m.network().subnet()] = MetaOf(m)->id();
      }
    }
  }
  for (int i = 0; i < muts.size(); ++i) {
    const Mutation& m = muts[i];
    Kind kind = *KindOf(m);
    Table& t = tables_[static_cast<int>(kind)];
    const std::string& id = MetaOf(m)->id();
    auto it = t.Lookup(id);
    if (m.op() == Mutation::OP_TASK_STATUS) {
      // A report for a task that is gone, older than what is known, or equal
      // to it changes nothing: states only move forward (objects.proto).
      if (it == t.objects.end()) continue;
      const v1::TaskStatus& next = m.task().status();
      const v1::TaskStatus& now = it->second->task().status();
      if (next.state() < now.state()) continue;
      if (SameStatus(next, now)) continue;
      v1::Task* task = Unshare(&it->second)->mutable_task();
      if (movable != nullptr) {
        task->mutable_status()->Swap(
            movable->mutable_transaction()->mutable_mutations(i)->mutable_task()->mutable_status());
      } else {
        *task->mutable_status() = next;
      }
      task->mutable_meta()->set_version(index);
      task->mutable_meta()->set_updated_at_ns(command.proposed_at_ns());
      if (events) events->emplace_back(index, it->second);
      continue;
    }
    if (m.op() == Mutation::OP_DELETE) {
      Index(kind, *it->second, false);
      SharedMutation gone = std::move(it->second);
      t.Erase(it);
      if (events) {
        Unshare(&gone)->set_op(Mutation::OP_DELETE);
        events->emplace_back(index, std::move(gone));
      }
      continue;
    }
    // Moved when allowed: `m` is then empty from here on.
    auto stored = std::make_shared<Mutation>();
    if (movable != nullptr) {
      stored->Swap(movable->mutable_transaction()->mutable_mutations(i));
    } else {
      *stored = m;
    }
    stored->set_op(Mutation::OP_PUT);
    stored->set_expected_version(0);
    v1::Meta* meta = MutableMetaOf(stored.get());
    meta->set_version(index);
    meta->set_updated_at_ns(command.proposed_at_ns());
    if (it == t.objects.end()) {
      meta->set_created_at_ns(command.proposed_at_ns());
      Index(kind, *stored, true);
      it = t.Insert(meta->id(), std::move(stored));
    } else {
      meta->set_created_at_ns(MetaOf(*it->second)->created_at_ns());
      Reindex(kind, *it->second, *stored);
      it->second = std::move(stored);
    }
    if (events) events->emplace_back(index, it->second);
  }
  return Status::Ok();
}

void State::Index(Kind kind, const Mutation& m, bool add) {
  Table& t = tables_[static_cast<int>(kind)];
  const std::string& id = MetaOf(m)->id();
  IndexKeys keys = KeysOf(kind, m);
  for (int i = 0; i < keys.n; ++i) {
    const auto& [index, key] = keys.keys[i];
    auto idx = t.indexes.find(index);
    if (idx == t.indexes.end()) {
      if (!add) continue;
      idx = t.indexes.emplace(index, std::map<std::string, std::set<std::string>>()).first;
    }
    if (add) {
      idx->second[key].insert(id);
      continue;
    }
    auto ids = idx->second.find(key);
    if (ids == idx->second.end()) continue;
    ids->second.erase(id);
    if (ids->second.empty()) idx->second.erase(ids);
  }
}

void State::Reindex(Kind kind, const Mutation& before, const Mutation& after) {
  IndexKeys old_keys = KeysOf(kind, before);
  IndexKeys new_keys = KeysOf(kind, after);
  // Whether keys[i] of `a` is among those of `b` (at most three each).
  const auto kept = [](const IndexKeys& a, int i, const IndexKeys& b) {
    for (int j = 0; j < b.n; ++j) {
      if (std::strcmp(a.keys[i].first, b.keys[j].first) == 0 &&
          a.keys[i].second == b.keys[j].second) {
        return true;
      }
    }
    return false;
  };
  bool same = old_keys.n == new_keys.n;
  for (int i = 0; same && i < old_keys.n; ++i) same = kept(old_keys, i, new_keys);
  if (same) return;
  // Rare enough (a task moving node or desired state) to go the plain way.
  Index(kind, before, false);
  Index(kind, after, true);
}

State::Table::Table(const Table& other) : objects(other.objects), indexes(other.indexes) {
  by_id.reserve(objects.size());
  for (auto it = objects.begin(); it != objects.end(); ++it) by_id.emplace(it->first, it);
}

State::Table& State::Table::operator=(const Table& other) {
  if (this != &other) *this = Table(other);
  return *this;
}

State::Objects::iterator State::Table::Insert(const std::string& id, SharedMutation object) {
  auto it = objects.emplace(id, std::move(object)).first;
  by_id.emplace(it->first, it);
  return it;
}

void State::Table::Erase(Objects::iterator it) {
  by_id.erase(it->first);
  objects.erase(it);
}

State::Objects::iterator State::Table::Lookup(const std::string& id) {
  auto hit = by_id.find(id);
  return hit == by_id.end() ? objects.end() : hit->second;
}

State::Objects::const_iterator State::Table::Lookup(const std::string& id) const {
  auto hit = by_id.find(id);
  return hit == by_id.end() ? objects.cend() : Objects::const_iterator(hit->second);
}

const Mutation* State::Get(Kind kind, const std::string& id) const {
  const Table& t = tables_[static_cast<int>(kind)];
  auto it = t.Lookup(id);
  return it == t.objects.end() ? nullptr : it->second.get();
}

std::vector<const Mutation*> State::Find(Kind kind, const std::string& index,
                                         const std::string& key) const {
  std::vector<const Mutation*> out;
  const Table& t = tables_[static_cast<int>(kind)];
  auto idx = t.indexes.find(index);
  if (idx == t.indexes.end()) return out;
  auto ids = idx->second.find(key);
  if (ids == idx->second.end()) return out;
  out.reserve(ids->second.size());
  for (const auto& id : ids->second) out.push_back(t.Lookup(id)->second.get());
  return out;
}

std::vector<const Mutation*> State::List(Kind kind) const {
  std::vector<const Mutation*> out;
  for (const auto& [id, m] : tables_[static_cast<int>(kind)].objects) out.push_back(m.get());
  return out;
}

v1::StoreSnapshot State::ToSnapshot() const {
  v1::StoreSnapshot s;
  s.set_applied_index(applied_index_);
  for (const auto& t : tables_)
    for (const auto& [id, m] : t.objects) *s.add_objects() = *m;
  return s;
}

Status State::Restore(const v1::StoreSnapshot& snapshot) {
  State fresh;
  for (const auto& m : snapshot.objects()) {
    auto kind = KindOf(m);
    if (!kind.ok()) return kind.error();
    const std::string& id = MetaOf(m)->id();
    if (id.empty())
      return InvalidArgument("snapshot holds a " + std::string(KindName(*kind)) + " without an id");
    Table& t = fresh.tables_[static_cast<int>(*kind)];
    auto it = t.Lookup(id);
    if (it != t.objects.end()) {  // the same id twice: the last one wins
      fresh.Index(*kind, *it->second, false);
      t.Erase(it);
    }
    it = t.Insert(id, std::make_shared<Mutation>(m));
    fresh.Index(*kind, *it->second, true);
  }
  fresh.applied_index_ = snapshot.applied_index();
  *this = std::move(fresh);
  return Status::Ok();
}

}  // namespace shoal::store
