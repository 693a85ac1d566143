#pragma once

// The plan: a semantic diff of a desired StackSpec against the one the cluster
// runs (design.md section 6). It compares protobuf fields through reflection,
// never YAML text, so key order and spelled-out defaults never show as changes.
// Each field's .proto options decide how a change is applied (replaces_tasks),
// whether its value may be shown (sensitive) and how it is printed (unit).
//
// Everything here is pure: no I/O, no clock, no global mutable state. All
// functions are safe to call from several threads at once.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::plan {

enum class ObjectKind { kService, kNetwork, kVolume, kSecret, kConfig };
enum class Action { kCreate, kUpdate, kRemove, kUnchanged };

// "service", "network", "volume", "secret", "config".
const char* KindName(ObjectKind kind);
// "create", "update", "remove", "unchanged".
const char* ActionName(Action action);

// One changed field (or map entry, or list element) of an object.
struct FieldChange {
  enum class Op {
    kAdd,     // absent before: a map key, a keyed list element, a list that was empty
    kChange,  // present on both sides with different values
    kRemove,  // absent after
  };
  // Dotted path from the object's root message: "container.image",
  // "container.env.FOO" (map key), "container.mounts[/data].read_only" (list
  // element matched by its (shoal.v1.key) field), "placement.constraints".
  std::string path;
  Op op = Op::kChange;
  // Display text of each side ("\"nginx:1.27\"", "30s", "512MiB", "[\"a\", \"b\"]",
  // "start-first"); empty for the side that is absent (kAdd: old, kRemove: new).
  // Both are always empty when `sensitive` is set.
  std::string old_value;
  std::string new_value;
  // Some field on the path from the object's root carries (shoal.v1.replaces_tasks).
  bool replaces_tasks = false;
  // The value is secret material (or a hash of it): only the fact of the change
  // may be shown.
  bool sensitive = false;
};

struct ObjectChange {
  ObjectKind kind = ObjectKind::kService;
  std::string name;  // full name, "<stack>_<name>"
  Action action = Action::kUnchanged;
  // kUpdate: every difference. kCreate: a short description of the new object
  // (for a service: image, mode, replicas, ports), all with Op::kAdd.
  // kRemove and kUnchanged: empty.
  std::vector<FieldChange> fields;
  // Services only, kUpdate only: at least one field change replaces tasks, so the
  // update is a rolling replace rather than an in-place change.
  bool replaces_tasks = false;
  // When replaces_tasks: the desired replica count of a replicated service or job;
  // nullopt for a global one (every node's task, a number only the cluster knows).
  std::optional<uint64_t> tasks_replaced;
};

struct Summary {
  int create = 0;
  int update = 0;
  int remove = 0;
  int unchanged = 0;
  // Sum of tasks_replaced over replicated services that are replaced.
  uint64_t tasks_replaced = 0;
  // Global services replaced (their task counts are unknown here).
  int global_services_replaced = 0;
};

struct Plan {
  std::string stack;
  // Every object of both specs, unchanged ones included, grouped by kind in the
  // order of StackSpec's lists (services, networks, volumes, secrets, configs)
  // and sorted by name within a kind.
  std::vector<ObjectChange> changes;

  Summary Summarize() const;
  // True if any object is created, updated or removed.
  bool HasChanges() const;
};

// Diffs `desired` against `current`. `current` may be null: the stack does not
// exist yet and every object is a create. Neither argument is retained.
//
// Objects are matched by name within each list. Fails with InvalidArgument if the
// two specs name different stacks, or if a list holds two objects of one name.
Result<Plan> Diff(const v1::StackSpec* current, const v1::StackSpec& desired);

// The process exit code of `shoal stack plan` for a plan that was made: 0 when
// nothing changes, 2 when something does (1 is kept for errors, as terraform's
// -detailed-exitcode does).
int PlanExitCode(const Plan& plan);

}  // namespace shoal::plan
