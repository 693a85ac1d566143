#pragma once

// Private to the plan module: the field options of the spec messages, read once
// per Diff through descriptors, and the display text of field values.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shoal/common/text.h"
#include "shoal/v1/options.pb.h"

namespace shoal::plan::internal {

using shoal::Quote;

namespace pb = google::protobuf;

struct FieldInfo {
  bool replaces_tasks = false;
  // (shoal.v1.sensitive), or a hash of a sensitive sibling (see Schema).
  bool sensitive = false;
  v1::Unit unit = v1::UNIT_NONE;
  // (shoal.v1.informational): never compared.
  bool informational = false;
  // The name shown in paths: unit suffixes dropped ("interval_ns" -> "interval").
  std::string display_name;
  // The field is ContainerSpec.secrets: the references under it point at secrets,
  // and their `version` is the hash of secret material.
  bool holds_secret_refs = false;
};

struct MessageInfo {
  std::vector<FieldInfo> fields;             // indexed by FieldDescriptor::index()
  const pb::FieldDescriptor* key = nullptr;  // the (shoal.v1.key) field, if any
};

// The options of every message type reachable from a root type. Reading an
// extension from FieldOptions costs a lookup, so Diff reads them once here rather
// than once per field per object.
class Schema {
 public:
  explicit Schema(const pb::Descriptor* root);

  // `d` must be reachable from the root given to the constructor.
  const MessageInfo& Of(const pb::Descriptor* d) const { return messages_.at(d); }
  const FieldInfo& Of(const pb::FieldDescriptor* f) const {
    return Of(f->containing_type()).fields[f->index()];
  }

 private:
  void Add(const pb::Descriptor* d);

  std::unordered_map<const pb::Descriptor*, MessageInfo> messages_;
};

// Whether a field's value must be hidden: it is sensitive itself, or it is the
// content hash of a secret that `secret_ref` says we are inside a reference to.
// A hash of a short secret is as good as the secret to anyone with a dictionary.
inline bool IsSensitive(const FieldInfo& info, const pb::FieldDescriptor* f, bool secret_ref) {
  return info.sensitive || (secret_ref && f->name() == "version");
}

// The readable name of an enum value: the leading words it shares with its
// type's name are dropped, the rest is lowercased with hyphens
// (ServiceMode.MODE_REPLICATED -> "replicated", Order.ORDER_START_FIRST ->
// "start-first", Dependency.Condition.SERVICE_HEALTHY -> "service-healthy").
std::string EnumText(const pb::EnumValueDescriptor* value);

// Text of one scalar (non-message) value: element `index` of a repeated field, or
// the singular field when index < 0. Integers with a unit use the units
// formatters; strings are quoted; bytes are quoted when short and printable, else
// "(N bytes)".
std::string ScalarText(const pb::Message& m, const pb::FieldDescriptor* f, int index,
                       v1::Unit unit);

// Text of a whole field: a scalar, a message ("{target: \"/data\", read_only:
// true}", default fields left out), a list ("[a, b]") or a map ("{K: v}").
// Sensitive values inside messages print as "(sensitive)".
std::string FieldText(const pb::Message& m, const pb::FieldDescriptor* f, const Schema& schema,
                      bool secret_ref);

// Text of element `index` of a repeated field (or the singular field when
// index < 0), whatever its type.
std::string ElementText(const pb::Message& m, const pb::FieldDescriptor* f, int index,
                        const Schema& schema, bool secret_ref);

// The text of a map key or of a (shoal.v1.key) field, unquoted, for paths.
std::string KeyText(const pb::Message& m, const pb::FieldDescriptor* f);

}  // namespace shoal::plan::internal
