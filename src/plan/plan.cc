#include "shoal/plan/plan.h"

#include <algorithm>
#include <initializer_list>
#include <string_view>

#include "field_diff.h"
#include "reflect.h"

namespace shoal::plan {
namespace {

using internal::FieldDiffer;
using internal::Schema;
namespace pb = google::protobuf;

// Resolves a dotted path of singular fields ("container.image") from `root`.
// Returns the message holding the last field, or null if a name is unknown.
const pb::Message* Resolve(const pb::Message& root, std::string_view path,
                           const pb::FieldDescriptor** field) {
  const pb::Message* m = &root;
  while (true) {
    size_t dot = path.find('.');
    const pb::FieldDescriptor* f =
        m->GetDescriptor()->FindFieldByName(std::string(path.substr(0, dot)));
    if (f == nullptr) return nullptr;
    if (dot == std::string_view::npos) {
      *field = f;
      return m;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) return nullptr;
    m = &m->GetReflection()->GetMessage(*m, f);
    path.remove_prefix(dot + 1);
  }
}

bool IsSet(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  return f->is_repeated() ? r->FieldSize(m, f) > 0 : r->HasField(m, f);
}

// Adds "+ path: value" for each named field of a new object. Fields in
// `always` are listed even at their default (a service's mode); the others only
// when set, so that a create stays a few readable lines rather than a dump.
void DescribeNew(const pb::Message& obj, const Schema& schema,
                 std::initializer_list<std::string_view> always,
                 std::initializer_list<std::string_view> if_set, std::vector<FieldChange>* out) {
  auto add = [&](std::string_view path, bool only_if_set) {
    const pb::FieldDescriptor* f = nullptr;
    const pb::Message* m = Resolve(obj, path, &f);
    if (m == nullptr || (only_if_set && !IsSet(*m, f))) return;
    FieldChange& c = out->emplace_back();
    c.path = std::string(path);
    c.op = FieldChange::Op::kAdd;
    c.sensitive = schema.Of(f).sensitive;
    if (!c.sensitive) c.new_value = internal::FieldText(*m, f, schema, false);
  };
  for (std::string_view p : always) add(p, false);
  for (std::string_view p : if_set) add(p, true);
}

void DescribeNew(const v1::ServiceSpec& s, const Schema& schema, std::vector<FieldChange>* out) {
  bool replicated = s.mode() == v1::MODE_REPLICATED || s.mode() == v1::MODE_REPLICATED_JOB;
  if (replicated) {
    DescribeNew(s, schema, {"container.image", "mode", "replicas"}, {"endpoint.ports"}, out);
  } else {
    DescribeNew(s, schema, {"container.image", "mode"}, {"endpoint.ports"}, out);
  }
}
void DescribeNew(const v1::NetworkSpec& n, const Schema& schema, std::vector<FieldChange>* out) {
  DescribeNew(n, schema, {}, {"driver", "external", "attachable", "internal", "enable_ipv6"}, out);
}
void DescribeNew(const v1::VolumeSpec& v, const Schema& schema, std::vector<FieldChange>* out) {
  DescribeNew(v, schema, {}, {"driver", "external"}, out);
}
void DescribeNew(const v1::SecretSpec& s, const Schema& schema, std::vector<FieldChange>* out) {
  DescribeNew(s, schema, {}, {"external", "file", "environment", "driver"}, out);
}
void DescribeNew(const v1::ConfigSpec& c, const Schema& schema, std::vector<FieldChange>* out) {
  DescribeNew(c, schema, {}, {"external", "file", "environment"}, out);
}

// How many tasks a rolling replace of `s` touches; nullopt for global services,
// whose count depends on the nodes.
std::optional<uint64_t> TasksOf(const v1::ServiceSpec& s) {
  if (s.mode() == v1::MODE_REPLICATED || s.mode() == v1::MODE_REPLICATED_JOB) return s.replicas();
  return std::nullopt;
}
template <class T>
void SetReplace(const T&, ObjectChange*) {}
void SetReplace(const v1::ServiceSpec& desired, ObjectChange* c) {
  c->replaces_tasks = std::any_of(c->fields.begin(), c->fields.end(),
                                  [](const FieldChange& f) { return f.replaces_tasks; });
  if (c->replaces_tasks) c->tasks_replaced = TasksOf(desired);
}

// The objects of one list sorted by name; fails on a duplicate name.
template <class T>
Result<std::vector<const T*>> SortedByName(const pb::RepeatedPtrField<T>* list, ObjectKind kind,
                                           const char* which) {
  std::vector<const T*> out;
  if (list == nullptr) return out;
  out.reserve(list->size());
  for (const T& obj : *list) out.push_back(&obj);
  std::sort(out.begin(), out.end(), [](const T* a, const T* b) { return a->name() < b->name(); });
  auto dup = std::adjacent_find(out.begin(), out.end(),
                                [](const T* a, const T* b) { return a->name() == b->name(); });
  if (dup != out.end()) {
    return InvalidArgument(std::string(which) + " stack spec has two " + KindName(kind) +
                           "s named \"" + (*dup)->name() + "\"");
  }
  return out;
}

template <class T>
Status DiffKind(const pb::RepeatedPtrField<T>* current, const pb::RepeatedPtrField<T>& desired,
                ObjectKind kind, const Schema& schema, FieldDiffer& differ,
                std::vector<ObjectChange>* out) {
  auto cur = SortedByName(current, kind, "current");
  if (!cur.ok()) return cur.error();
  auto des = SortedByName(&desired, kind, "desired");
  if (!des.ok()) return des.error();

  size_t i = 0, j = 0;
  while (i < cur->size() || j < des->size()) {
    ObjectChange& c = out->emplace_back();
    c.kind = kind;
    if (j == des->size() || (i < cur->size() && (*cur)[i]->name() < (*des)[j]->name())) {
      c.name = (*cur)[i++]->name();
      c.action = Action::kRemove;
    } else if (i == cur->size() || (*des)[j]->name() < (*cur)[i]->name()) {
      const T& d = *(*des)[j++];
      c.name = d.name();
      c.action = Action::kCreate;
      DescribeNew(d, schema, &c.fields);
    } else {
      const T& d = *(*des)[j++];
      c.name = d.name();
      const T& o = *(*cur)[i++];
      // Most objects of a redeployed stack are unchanged; bytes compare faster than
      // a walk through reflection.
      bool changed = !differ.SameBytes(o, d) && differ.Diff(o, d, &c.fields);
      c.action = changed ? Action::kUpdate : Action::kUnchanged;
      if (changed) SetReplace(d, &c);
    }
  }
  return Status::Ok();
}

}  // namespace

const char* KindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kService:
      return "service";
    case ObjectKind::kNetwork:
      return "network";
    case ObjectKind::kVolume:
      return "volume";
    case ObjectKind::kSecret:
      return "secret";
    case ObjectKind::kConfig:
      return "config";
  }
  return "object";
}

const char* ActionName(Action action) {
  switch (action) {
    case Action::kCreate:
      return "create";
    case Action::kUpdate:
      return "update";
    case Action::kRemove:
      return "remove";
    case Action::kUnchanged:
      return "unchanged";
  }
  return "unknown";
}

Summary Plan::Summarize() const {
  Summary s;
  for (const ObjectChange& c : changes) {
    switch (c.action) {
      case Action::kCreate:
        ++s.create;
        break;
      case Action::kUpdate:
        ++s.update;
        break;
      case Action::kRemove:
        ++s.remove;
        break;
      case Action::kUnchanged:
        ++s.unchanged;
        break;
    }
    if (c.action == Action::kUpdate && c.replaces_tasks) {
      if (c.tasks_replaced) {
        s.tasks_replaced += *c.tasks_replaced;
      } else {
        ++s.global_services_replaced;
      }
    }
  }
  return s;
}

bool Plan::HasChanges() const {
  return std::any_of(changes.begin(), changes.end(),
                     [](const ObjectChange& c) { return c.action != Action::kUnchanged; });
}

Result<Plan> Diff(const v1::StackSpec* current, const v1::StackSpec& desired) {
  if (current != nullptr && current->name() != desired.name()) {
    return InvalidArgument("cannot diff stack \"" + desired.name() + "\" against stack \"" +
                           current->name() + "\"");
  }
  const Schema schema(v1::StackSpec::descriptor());
  FieldDiffer differ(schema);
  Plan plan;
  plan.stack = desired.name();
  std::vector<ObjectChange>& out = plan.changes;
  Status s = DiffKind(current ? &current->services() : nullptr, desired.services(),
                      ObjectKind::kService, schema, differ, &out);
  if (s.ok()) {
    s = DiffKind(current ? &current->networks() : nullptr, desired.networks(), ObjectKind::kNetwork,
                 schema, differ, &out);
  }
  if (s.ok()) {
    s = DiffKind(current ? &current->volumes() : nullptr, desired.volumes(), ObjectKind::kVolume,
                 schema, differ, &out);
  }
  if (s.ok()) {
    s = DiffKind(current ? &current->secrets() : nullptr, desired.secrets(), ObjectKind::kSecret,
                 schema, differ, &out);
  }
  if (s.ok()) {
    s = DiffKind(current ? &current->configs() : nullptr, desired.configs(), ObjectKind::kConfig,
                 schema, differ, &out);
  }
  if (!s.ok()) return s;
  return plan;
}

int PlanExitCode(const Plan& plan) { return plan.HasChanges() ? 2 : 0; }

}  // namespace shoal::plan
