#pragma once

// Private to the plan module: the field-level diff of two messages of one type,
// driven by reflection and the options in Schema.

#include <string>
#include <vector>

#include "reflect.h"
#include "shoal/plan/plan.h"

namespace shoal::plan::internal {

// Not thread-safe (it reuses a path buffer); make one per Diff call.
class FieldDiffer {
 public:
  // `schema` must outlive the differ and cover the types it is given.
  explicit FieldDiffer(const Schema& schema) : schema_(schema) {}

  // Appends every difference between `old_msg` and `new_msg` (same type) to
  // `out`, paths relative to the message. Fields set to their default and unset
  // fields compare equal, except for fields with explicit presence (`optional`).
  // Returns true if there was any difference.
  bool Diff(const pb::Message& old_msg, const pb::Message& new_msg, std::vector<FieldChange>* out);

  // A quick test that is true only if Diff would find nothing: the two messages
  // serialize (deterministically) to the same bytes. False does not prove a
  // difference (unknown fields, -0.0), so callers still run Diff then.
  bool SameBytes(const pb::Message& a, const pb::Message& b);

 private:
  // What a field inherits from the fields above it.
  struct Context {
    bool replaces_tasks = false;
    bool secret_ref = false;  // under ContainerSpec.secrets
  };
  // Two messages of one type and their (shared) reflection, fetched once per
  // message rather than once per field: GetReflection() is a virtual call that
  // also checks that descriptors are assigned.
  struct Pair {
    const pb::Message& a;
    const pb::Message& b;
    const pb::Reflection* r;
  };

  // Each returns true if the two sides differ. With out_ == nullptr they only
  // test, and stop at the first difference.
  bool DiffMessage(const pb::Message& a, const pb::Message& b, Context ctx);
  bool DiffField(const Pair& p, const pb::FieldDescriptor* f, const FieldInfo& info, Context ctx);
  bool DiffFieldValues(const Pair& p, const pb::FieldDescriptor* f, const FieldInfo& info,
                       Context ctx);
  bool DiffScalar(const Pair& p, const pb::FieldDescriptor* f, const FieldInfo& info,
                  bool replaces);
  bool DiffList(const Pair& p, const pb::FieldDescriptor* f, Context ctx);
  // Maps, and repeated messages matched by their (shoal.v1.key) field.
  bool DiffKeyed(const Pair& p, const pb::FieldDescriptor* f, const pb::FieldDescriptor* key_field,
                 Context ctx);
  bool ElementsEqual(const Pair& p, const pb::FieldDescriptor* f, int i);

  void Emit(FieldChange::Op op, std::string old_value, std::string new_value, bool replaces);

  const Schema& schema_;
  std::string path_;
  std::vector<FieldChange>* out_ = nullptr;
  // Reused by SameBytes so that comparing many objects allocates little.
  std::string bytes_a_, bytes_b_;
};

}  // namespace shoal::plan::internal
