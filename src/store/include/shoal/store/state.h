#pragma once

// The applied cluster state: typed tables of the objects of objects.proto with
// in-memory indexes, changed only by applying committed Commands in Raft order.
// Every manager applies the same commands to the same state, so every decision
// here (a stale version, a duplicate name) must depend on the state and the
// command alone: no clock, no randomness, no iteration over unordered maps.
//
// Threads: not thread-safe. The store's event loop owns a State; readers on
// other threads get copies through the loop.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/commands.pb.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::store {

// The kinds of object, in the order of Mutation's oneof.
enum class Kind {
  kNode,
  kStack,
  kStackRevision,
  kService,
  kTask,
  kNetwork,
  kVolume,
  kSecret,
  kConfig,
  kCluster,
};
const char* KindName(Kind kind);  // "node", "stack", ...
inline constexpr int kKindCount = 10;

// The kind of the object a mutation carries; InvalidArgument when it has none.
Result<Kind> KindOf(const v1::Mutation& m);
// The Meta of the object a mutation carries (null when none).
const v1::Meta* MetaOf(const v1::Mutation& m);

// An object as the State holds it: immutable once shared. The State changes
// an object in place only while nothing else holds it (no event, no copy of
// the State), and otherwise replaces it with a changed copy (copy on write),
// so an event and the State share one object instead of each holding a copy.
using SharedMutation = std::shared_ptr<const v1::Mutation>;

// A change that was applied: the mutation with the object as it now is (for a
// delete, as it was), stamped with the version (Raft index) that made it.
//
// `mutation` refers to the shared object (`object()`), which every copy of
// the event keeps alive; it is never changed once an event holds it, so it
// may be read on any thread. Copyable and movable but not assignable (a
// reference cannot be rebound); a moved-from event may only be destroyed.
class Event {
 public:
  Event() : Event(0, v1::Mutation()) {}
  Event(uint64_t version, SharedMutation object)
      : version(version), object_(std::move(object)), mutation(*object_) {}
  // For tests and tools: wraps a mutation of their own.
  Event(uint64_t version, v1::Mutation mutation)
      : Event(version, std::make_shared<const v1::Mutation>(std::move(mutation))) {}
  Event(const Event& other) : Event(other.version, other.object_) {}
  // The moved-from event still refers to the object, now kept alive by this one.
  Event(Event&& other) noexcept
      : version(other.version), object_(std::move(other.object_)), mutation(*object_) {}
  Event& operator=(const Event&) = delete;

  // The shared object (never null).
  const SharedMutation& object() const { return object_; }

  uint64_t version = 0;

 private:
  SharedMutation object_;  // before `mutation`, which is bound to it

 public:
  const v1::Mutation& mutation;
};

class State {
 public:
  // Applies a committed command at Raft index `index`. All of a transaction's
  // mutations are checked first (versions, names); if any fails nothing
  // changes and FailedPrecondition (stale version) or AlreadyExists (name
  // taken) is returned, the same on every manager. On success, each object is
  // stamped with meta.version = index and the command's time, and one Event per
  // mutation is appended to *events (may be null).
  //
  // A command holding a CommandBatch applies each of its commands in order at
  // the same index, each all or nothing on its own; it returns Ok once the
  // index is consumed, and `results` (may be null) receives one status per
  // command of the batch (one status for a plain command, equal to the
  // return). A batch inside a batch is refused (InvalidArgument) like any
  // malformed command. FailedPrecondition, with no result, for an index at or
  // below applied_index().
  Status Apply(uint64_t index, const v1::Command& command, std::vector<Event>* events,
               std::vector<Status>* results = nullptr);
  // The same, but the objects of `command` are moved into the state rather
  // than copied (the store parses each entry only to apply it); *command is
  // left in an unspecified state except for each command's request_id. It
  // must not live on a protobuf arena, or the objects are copied anyway.
  Status ApplyConsuming(uint64_t index, v1::Command* command, std::vector<Event>* events,
                        std::vector<Status>* results = nullptr);

  // The object with `id`, or null. Pointers stay valid until the next Apply
  // (which may change the object in place).
  const v1::Mutation* Get(Kind kind, const std::string& id) const;
  // Typed access: Get<v1::Service>(id).
  template <class T>
  const T* Get(const std::string& id) const;

  // Objects whose index `index` has key `key`, in id order. Indexes:
  //   "name"          services, networks, volumes, secrets, configs (full name),
  //                   stacks (name), nodes (hostname)
  //   "stack"         services, networks, volumes, secrets, configs, stack revisions
  //                   (only those in a stack: the empty stack is not indexed)
  //   "service"       tasks (service id)
  //   "node"          tasks (node id)
  std::vector<const v1::Mutation*> Find(Kind kind, const std::string& index,
                                        const std::string& key) const;
  // Every object of a kind, in id order.
  std::vector<const v1::Mutation*> List(Kind kind) const;
  size_t Count(Kind kind) const { return tables_[static_cast<int>(kind)].objects.size(); }

  uint64_t applied_index() const { return applied_index_; }

  // The whole state, and back: for Raft snapshots and LevelDB.
  v1::StoreSnapshot ToSnapshot() const;
  // Replaces the state. InvalidArgument for an object without kind or id.
  Status Restore(const v1::StoreSnapshot& snapshot);

 private:
  using Objects = std::map<std::string, SharedMutation>;
  struct Table {
    Table() = default;
    // A copy's lookup points into its own map, so it is rebuilt.
    Table(const Table& other);
    Table& operator=(const Table& other);
    Table(Table&&) noexcept = default;
    Table& operator=(Table&&) noexcept = default;

    Objects::iterator Insert(const std::string& id, SharedMutation object);
    void Erase(Objects::iterator it);
    Objects::iterator Lookup(const std::string& id);
    Objects::const_iterator Lookup(const std::string& id) const;

    Objects objects;  // id -> object (as an OP_PUT), in id order for List
    // The same nodes by hash: a lookup among 100,000 ids in the ordered map
    // costs some 17 string compares, each a cache miss, and lookups are most
    // of what the apply and the control loops do. Keys view the map's keys
    // (map nodes never move); never iterated, so order cannot leak out.
    std::unordered_map<std::string_view, Objects::iterator> by_id;
    // index name -> key -> ids (found by const char* without a string built)
    std::map<std::string, std::map<std::string, std::set<std::string>>, std::less<>> indexes;
  };

  Status Check(const v1::Mutation& m, const std::map<std::string, std::string>& names_in_txn) const;
  // One command at `index` (already consumed); moves its objects when
  // `movable` is set (it is then the same command, mutable).
  Status ApplyOne(uint64_t index, const v1::Command& command, v1::Command* movable,
                  std::vector<Event>* events);
  Status ApplyIndexed(uint64_t index, const v1::Command& command, v1::Command* movable,
                      std::vector<Event>* events, std::vector<Status>* results);
  void Index(Kind kind, const v1::Mutation& m, bool add);
  // Moves the index entries of an object from `before` to `after`, leaving
  // alone the keys that did not change (most updates change none).
  void Reindex(Kind kind, const v1::Mutation& before, const v1::Mutation& after);

  Table tables_[kKindCount];
  uint64_t applied_index_ = 0;
};

}  // namespace shoal::store

namespace shoal::store {

// Maps each object type to its Kind and its place in a Mutation.
template <class T>
struct KindTraits;
#define SHOAL_STORE_KIND(Type, KindValue, field)                               \
  template <>                                                                  \
  struct KindTraits<v1::Type> {                                                \
    static constexpr Kind kKind = Kind::KindValue;                             \
    static const v1::Type& From(const v1::Mutation& m) { return m.field(); }   \
    static v1::Type* Mutable(v1::Mutation* m) { return m->mutable_##field(); } \
  };
SHOAL_STORE_KIND(Node, kNode, node)
SHOAL_STORE_KIND(Stack, kStack, stack)
SHOAL_STORE_KIND(StackRevision, kStackRevision, stack_revision)
SHOAL_STORE_KIND(Service, kService, service)
SHOAL_STORE_KIND(Task, kTask, task)
SHOAL_STORE_KIND(Network, kNetwork, network)
SHOAL_STORE_KIND(Volume, kVolume, volume)
SHOAL_STORE_KIND(Secret, kSecret, secret)
SHOAL_STORE_KIND(Config, kConfig, config)
SHOAL_STORE_KIND(Cluster, kCluster, cluster)
#undef SHOAL_STORE_KIND

template <class T>
const T* State::Get(const std::string& id) const {
  const v1::Mutation* m = Get(KindTraits<T>::kKind, id);
  return m ? &KindTraits<T>::From(*m) : nullptr;
}

}  // namespace shoal::store
