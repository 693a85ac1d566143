#include "reflect.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <utility>

#include "shoal/common/text.h"
#include "shoal/common/units.h"

namespace shoal::plan::internal {
namespace {

using CppType = pb::FieldDescriptor::CppType;

// Byte values longer than this are summarised: a config file is better compared by
// its hash than printed inline in a plan.
constexpr size_t kMaxInlineBytes = 64;

std::string IntText(int64_t v, v1::Unit unit) {
  switch (unit) {
    case v1::UNIT_DURATION_NS:
      return FormatDuration(v);
    case v1::UNIT_BYTES:
      return FormatBytes(v);
    case v1::UNIT_NANO_CPUS:
      return FormatNanoCpus(v);
    case v1::UNIT_FILE_MODE:
      if (v >= 0 && v <= std::numeric_limits<uint32_t>::max()) {
        return FormatFileMode(static_cast<uint32_t>(v));
      }
      break;
    default:
      break;
  }
  return std::to_string(v);
}

std::string UintText(uint64_t v, v1::Unit unit) {
  if (unit != v1::UNIT_NONE && v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return IntText(static_cast<int64_t>(v), unit);
  }
  return std::to_string(v);
}

template <class F>
std::string FloatText(F v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

std::string BytesText(const std::string& b) {
  bool printable = b.size() <= kMaxInlineBytes && std::all_of(b.begin(), b.end(), [](char c) {
                     return std::isprint(static_cast<unsigned char>(c)) || c == '\n' || c == '\t';
                   });
  if (printable) return Quote(b);
  return "(" + std::to_string(b.size()) + " bytes)";
}

// "FailureAction" -> {"FAILURE", "ACTION"}.
std::vector<std::string> CamelWords(std::string_view name) {
  std::vector<std::string> words;
  for (char c : name) {
    if (std::isupper(static_cast<unsigned char>(c)) || words.empty()) words.emplace_back();
    words.back() += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return words;
}

std::string MessageText(const pb::Message& m, const Schema& schema, bool secret_ref) {
  std::vector<const pb::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);  // set (non-default) fields, by number
  std::string out = "{";
  for (const pb::FieldDescriptor* f : fields) {
    const FieldInfo& info = schema.Of(f);
    if (out.size() > 1) out += ", ";
    out += f->name();
    out += ": ";
    if (IsSensitive(info, f, secret_ref)) {
      out += "(sensitive)";
    } else {
      out += FieldText(m, f, schema, secret_ref || info.holds_secret_refs);
    }
  }
  return out + "}";
}

}  // namespace

Schema::Schema(const pb::Descriptor* root) { Add(root); }

void Schema::Add(const pb::Descriptor* d) {
  auto [it, inserted] = messages_.try_emplace(d);
  if (!inserted) return;           // seen already (or recursive type being added)
  MessageInfo& info = it->second;  // references into an unordered_map survive rehashing
  info.fields.resize(d->field_count());
  bool has_sensitive = false;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const pb::FieldOptions& o = f->options();
    FieldInfo& fi = info.fields[i];
    fi.replaces_tasks = o.GetExtension(v1::replaces_tasks);
    fi.sensitive = o.GetExtension(v1::sensitive);
    fi.unit = o.GetExtension(v1::unit);
    fi.informational = o.GetExtension(v1::informational);
    fi.display_name = f->name();
    if (fi.unit == v1::UNIT_NANO_CPUS && fi.display_name == "nano_cpus") fi.display_name = "cpus";
    for (std::string_view suffix : {"_ns", "_bytes"}) {
      const std::string& n = fi.display_name;
      if (fi.unit != v1::UNIT_NONE && n.size() > suffix.size() &&
          n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
        fi.display_name = n.substr(0, n.size() - suffix.size());
      }
    }
    fi.holds_secret_refs = f->full_name() == "shoal.v1.ContainerSpec.secrets";
    has_sensitive = has_sensitive || fi.sensitive;
    if (o.GetExtension(v1::key) && !f->is_repeated() && info.key == nullptr) info.key = f;
  }
  // SecretSpec.data_hash is the sha256 of SecretSpec.data; the .proto marks only
  // the data, so the hash of a message's sensitive data inherits its sensitivity.
  if (has_sensitive) {
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->name() == "data_hash") info.fields[i].sensitive = true;
    }
  }
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->cpp_type() == CppType::CPPTYPE_MESSAGE) Add(d->field(i)->message_type());
  }
}

std::string EnumText(const pb::EnumValueDescriptor* value) {
  if (value == nullptr) return "?";
  std::vector<std::string> type_words = CamelWords(value->type()->name());
  std::vector<std::string_view> tokens;
  std::string_view name = value->name();
  for (size_t start = 0; start <= name.size();) {
    size_t end = name.find('_', start);
    if (end == std::string_view::npos) end = name.size();
    tokens.push_back(name.substr(start, end - start));
    start = end + 1;
  }
  size_t first = 0;
  while (first + 1 < tokens.size() &&
         std::find(type_words.begin(), type_words.end(), tokens[first]) != type_words.end()) {
    ++first;
  }
  std::string out;
  for (size_t i = first; i < tokens.size(); ++i) {
    if (!out.empty()) out += '-';
    for (char c : tokens[i]) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string ScalarText(const pb::Message& m, const pb::FieldDescriptor* f, int index,
                       v1::Unit unit) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case CppType::CPPTYPE_INT32:
      return IntText(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), unit);
    case CppType::CPPTYPE_INT64:
      return IntText(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), unit);
    case CppType::CPPTYPE_UINT32:
      return UintText(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), unit);
    case CppType::CPPTYPE_UINT64:
      return UintText(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), unit);
    case CppType::CPPTYPE_DOUBLE:
      return FloatText(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case CppType::CPPTYPE_FLOAT:
      return FloatText(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case CppType::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
    case CppType::CPPTYPE_ENUM:
      return EnumText(rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f));
    case CppType::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      return f->type() == pb::FieldDescriptor::TYPE_BYTES ? BytesText(s) : Quote(s);
    }
    case CppType::CPPTYPE_MESSAGE:
      break;  // not a scalar; callers use ElementText
  }
  return "?";
}

std::string ElementText(const pb::Message& m, const pb::FieldDescriptor* f, int index,
                        const Schema& schema, bool secret_ref) {
  if (f->cpp_type() == CppType::CPPTYPE_MESSAGE) {
    const pb::Reflection* r = m.GetReflection();
    const pb::Message& sub = index >= 0 ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
    return MessageText(sub, schema, secret_ref);
  }
  return ScalarText(m, f, index, schema.Of(f).unit);
}

std::string FieldText(const pb::Message& m, const pb::FieldDescriptor* f, const Schema& schema,
                      bool secret_ref) {
  const pb::Reflection* r = m.GetReflection();
  if (f->is_map()) {
    std::vector<std::pair<std::string, std::string>> entries;
    for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
      const pb::Message& e = r->GetRepeatedMessage(m, f, i);
      const pb::Descriptor* ed = f->message_type();
      entries.emplace_back(KeyText(e, ed->map_key()),
                           ElementText(e, ed->map_value(), -1, schema, secret_ref));
    }
    std::sort(entries.begin(), entries.end());  // map order is unspecified
    std::string out = "{";
    for (const auto& [k, v] : entries) {
      if (out.size() > 1) out += ", ";
      out += k + ": " + v;
    }
    return out + "}";
  }
  if (f->is_repeated()) {
    std::string out = "[";
    for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
      if (i > 0) out += ", ";
      out += ElementText(m, f, i, schema, secret_ref);
    }
    return out + "]";
  }
  return ElementText(m, f, -1, schema, secret_ref);
}

std::string KeyText(const pb::Message& m, const pb::FieldDescriptor* f) {
  if (f->cpp_type() == CppType::CPPTYPE_STRING) {
    std::string scratch;
    return m.GetReflection()->GetStringReference(m, f, &scratch);
  }
  return ScalarText(m, f, -1, v1::UNIT_NONE);
}

}  // namespace shoal::plan::internal
