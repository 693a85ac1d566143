#include "shoal/store/state.h"

#include <google/protobuf/util/message_differencer.h>

namespace shoal::store {

namespace {

using v1::Mutation;

// Index keys of an object: index name -> keys.
std::vector<std::pair<std::string, std::string>> IndexKeys(Kind kind, const Mutation& m) {
  switch (kind) {
    case Kind::kNode:
      return {{"name", m.node().description().hostname()}};
    case Kind::kStack:
      return {{"name", m.stack().name()}};
    case Kind::kStackRevision:
      return {{"stack", m.stack_revision().stack()}};
    case Kind::kService:
      return {{"name", m.service().spec().name()}, {"stack", m.service().spec().stack()}};
    case Kind::kTask:
      return {{"service", m.task().service_id()},
              {"node", m.task().node_id()},
              {"desired_state", std::to_string(static_cast<int>(m.task().desired_state()))}};
    case Kind::kNetwork:
      return {{"name", m.network().spec().name()}, {"stack", m.network().stack()}};
    case Kind::kVolume:
      return {{"name", m.volume().spec().name()}, {"stack", m.volume().stack()}};
    case Kind::kSecret:
      return {{"name", m.secret().spec().name()}, {"stack", m.secret().stack()}};
    case Kind::kConfig:
      return {{"name", m.config().spec().name()}, {"stack", m.config().stack()}};
    case Kind::kCluster:
      return {};
  }
  return {};
}

// Kinds whose "name" must be unique in the cluster.
bool UniqueName(Kind kind) {
  return kind != Kind::kNode && kind != Kind::kStackRevision && kind != Kind::kTask &&
         kind != Kind::kCluster;
}

std::string NameOf(Kind kind, const Mutation& m) {
  for (const auto& [index, key] : IndexKeys(kind, m))
    if (index == "name") return key;
  return "";
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
  if (UniqueName(*kind)) {
    std::string name = NameOf(*kind, m);
    if (name.empty()) return InvalidArgument(what + " has no name");
    const auto& idx = tables_[static_cast<int>(*kind)].indexes;
    auto it = idx.find("name");
    if (it != idx.end()) {
      auto holders = it->second.find(name);
      if (holders != it->second.end()) {
        for (const auto& id : holders->second) {
          if (id != meta->id())
            return {Code::kAlreadyExists,
                    std::string(KindName(*kind)) + " name \"" + name + "\" is taken by " + id};
        }
      }
    }
    auto dup = names.find(std::string(KindName(*kind)) + "/" + name);
    if (dup != names.end() && dup->second != meta->id()) {
      return {Code::kAlreadyExists, std::string(KindName(*kind)) + " name \"" + name +
                                        "\" is used twice in one transaction"};
    }
  }
  return Status::Ok();
}

Status State::Apply(uint64_t index, const v1::Command& command, std::vector<Event>* events) {
  if (index <= applied_index_) {
    return {Code::kFailedPrecondition, "index " + std::to_string(index) +
                                           " was already applied (at " +
                                           std::to_string(applied_index_) + ")"};
  }
  applied_index_ = index;
  if (command.kind_case() != v1::Command::kTransaction) return Status::Ok();
  const auto& muts = command.transaction().mutations();
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
      names[std::string(KindName(kind)) + "/" + NameOf(kind, m)] = MetaOf(m)->id();
    }
  }
  for (const auto& m : muts) {
    Kind kind = *KindOf(m);
    Table& t = tables_[static_cast<int>(kind)];
    const std::string id = MetaOf(m)->id();
    auto it = t.objects.find(id);
    Event ev;
    ev.version = index;
    if (m.op() == Mutation::OP_TASK_STATUS) {
      // A report for a task that is gone, older than what is known, or equal
      // to it changes nothing: states only move forward (objects.proto).
      if (it == t.objects.end()) continue;
      v1::Task* task = it->second.mutable_task();
      const v1::TaskStatus& next = m.task().status();
      if (next.state() < task->status().state()) continue;
      if (google::protobuf::util::MessageDifferencer::Equals(next, task->status())) continue;
      *task->mutable_status() = next;
      task->mutable_meta()->set_version(index);
      task->mutable_meta()->set_updated_at_ns(command.proposed_at_ns());
      ev.mutation = it->second;
      if (events) events->push_back(std::move(ev));
      continue;
    }
    if (m.op() == Mutation::OP_DELETE) {
      Index(kind, it->second, false);
      ev.mutation = it->second;
      ev.mutation.set_op(Mutation::OP_DELETE);
      t.objects.erase(it);
    } else {
      Mutation stored = m;
      stored.set_op(Mutation::OP_PUT);
      stored.set_expected_version(0);
      v1::Meta* meta = MutableMetaOf(&stored);
      meta->set_version(index);
      meta->set_updated_at_ns(command.proposed_at_ns());
      if (it == t.objects.end()) {
        meta->set_created_at_ns(command.proposed_at_ns());
      } else {
        meta->set_created_at_ns(MetaOf(it->second)->created_at_ns());
        Index(kind, it->second, false);
      }
      ev.mutation = stored;
      Index(kind, stored, true);
      t.objects[id] = std::move(stored);
    }
    if (events) events->push_back(std::move(ev));
  }
  return Status::Ok();
}

void State::Index(Kind kind, const Mutation& m, bool add) {
  Table& t = tables_[static_cast<int>(kind)];
  const std::string& id = MetaOf(m)->id();
  for (const auto& [index, key] : IndexKeys(kind, m)) {
    auto& ids = t.indexes[index][key];
    if (add) {
      ids.insert(id);
    } else {
      ids.erase(id);
      if (ids.empty()) t.indexes[index].erase(key);
    }
  }
}

const Mutation* State::Get(Kind kind, const std::string& id) const {
  const auto& objects = tables_[static_cast<int>(kind)].objects;
  auto it = objects.find(id);
  return it == objects.end() ? nullptr : &it->second;
}

std::vector<const Mutation*> State::Find(Kind kind, const std::string& index,
                                         const std::string& key) const {
  std::vector<const Mutation*> out;
  const Table& t = tables_[static_cast<int>(kind)];
  auto idx = t.indexes.find(index);
  if (idx == t.indexes.end()) return out;
  auto ids = idx->second.find(key);
  if (ids == idx->second.end()) return out;
  for (const auto& id : ids->second) out.push_back(&t.objects.at(id));
  return out;
}

std::vector<const Mutation*> State::List(Kind kind) const {
  std::vector<const Mutation*> out;
  for (const auto& [id, m] : tables_[static_cast<int>(kind)].objects) out.push_back(&m);
  return out;
}

v1::StoreSnapshot State::ToSnapshot() const {
  v1::StoreSnapshot s;
  s.set_applied_index(applied_index_);
  for (const auto& t : tables_)
    for (const auto& [id, m] : t.objects) *s.add_objects() = m;
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
    fresh.tables_[static_cast<int>(*kind)].objects[id] = m;
    fresh.Index(*kind, m, true);
  }
  fresh.applied_index_ = snapshot.applied_index();
  *this = std::move(fresh);
  return Status::Ok();
}

}  // namespace shoal::store
