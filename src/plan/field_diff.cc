#include "field_diff.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <string_view>
#include <utility>

namespace shoal::plan::internal {
namespace {

using CppType = pb::FieldDescriptor::CppType;
using Op = FieldChange::Op;

// Restores the path buffer to its length at construction when it goes out of scope.
class PathMark {
 public:
  explicit PathMark(std::string& path) : path_(path), size_(path.size()) {}
  ~PathMark() { path_.resize(size_); }
  PathMark(const PathMark&) = delete;
  PathMark& operator=(const PathMark&) = delete;

 private:
  std::string& path_;
  size_t size_;
};

void AppendName(std::string& path, std::string_view name) {
  if (!path.empty()) path += '.';
  path += name;
}

// Element (or map entry) i of a keyed repeated field, with its key's text.
struct Keyed {
  std::string key;
  int index;
  bool operator<(const Keyed& o) const { return key < o.key; }
};

// The elements of `f` sorted by key; false if two share a key, in which case
// matching by key is meaningless and the caller compares whole lists instead.
bool SortByKey(const pb::Message& m, const pb::Reflection* r, const pb::FieldDescriptor* f,
               const pb::FieldDescriptor* key_field, std::vector<Keyed>* out) {
  const int n = r->FieldSize(m, f);
  if (n == 0) return true;
  const pb::Reflection* er = r->GetRepeatedMessage(m, f, 0).GetReflection();
  const bool string_key = key_field->cpp_type() == CppType::CPPTYPE_STRING;
  out->reserve(n);
  std::string scratch;
  for (int i = 0; i < n; ++i) {
    const pb::Message& e = r->GetRepeatedMessage(m, f, i);
    out->push_back(
        {string_key ? er->GetStringReference(e, key_field, &scratch) : KeyText(e, key_field), i});
  }
  std::sort(out->begin(), out->end());
  return std::adjacent_find(out->begin(), out->end(), [](const Keyed& x, const Keyed& y) {
           return x.key == y.key;
         }) == out->end();
}

bool ScalarsEqual(const pb::Message& a, const pb::Message& b, const pb::Reflection* r,
                  const pb::FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case CppType::CPPTYPE_INT32:
      return r->GetInt32(a, f) == r->GetInt32(b, f);
    case CppType::CPPTYPE_INT64:
      return r->GetInt64(a, f) == r->GetInt64(b, f);
    case CppType::CPPTYPE_UINT32:
      return r->GetUInt32(a, f) == r->GetUInt32(b, f);
    case CppType::CPPTYPE_UINT64:
      return r->GetUInt64(a, f) == r->GetUInt64(b, f);
    case CppType::CPPTYPE_DOUBLE:
      return r->GetDouble(a, f) == r->GetDouble(b, f);
    case CppType::CPPTYPE_FLOAT:
      return r->GetFloat(a, f) == r->GetFloat(b, f);
    case CppType::CPPTYPE_BOOL:
      return r->GetBool(a, f) == r->GetBool(b, f);
    case CppType::CPPTYPE_ENUM:
      return r->GetEnumValue(a, f) == r->GetEnumValue(b, f);
    case CppType::CPPTYPE_STRING: {
      std::string sa, sb;
      return r->GetStringReference(a, f, &sa) == r->GetStringReference(b, f, &sb);
    }
    case CppType::CPPTYPE_MESSAGE:
      break;
  }
  return false;
}

bool RepeatedScalarsEqual(const pb::Message& a, const pb::Message& b, const pb::Reflection* r,
                          const pb::FieldDescriptor* f, int i) {
  switch (f->cpp_type()) {
    case CppType::CPPTYPE_INT32:
      return r->GetRepeatedInt32(a, f, i) == r->GetRepeatedInt32(b, f, i);
    case CppType::CPPTYPE_INT64:
      return r->GetRepeatedInt64(a, f, i) == r->GetRepeatedInt64(b, f, i);
    case CppType::CPPTYPE_UINT32:
      return r->GetRepeatedUInt32(a, f, i) == r->GetRepeatedUInt32(b, f, i);
    case CppType::CPPTYPE_UINT64:
      return r->GetRepeatedUInt64(a, f, i) == r->GetRepeatedUInt64(b, f, i);
    case CppType::CPPTYPE_DOUBLE:
      return r->GetRepeatedDouble(a, f, i) == r->GetRepeatedDouble(b, f, i);
    case CppType::CPPTYPE_FLOAT:
      return r->GetRepeatedFloat(a, f, i) == r->GetRepeatedFloat(b, f, i);
    case CppType::CPPTYPE_BOOL:
      return r->GetRepeatedBool(a, f, i) == r->GetRepeatedBool(b, f, i);
    case CppType::CPPTYPE_ENUM:
      return r->GetRepeatedEnumValue(a, f, i) == r->GetRepeatedEnumValue(b, f, i);
    case CppType::CPPTYPE_STRING: {
      std::string sa, sb;
      return r->GetRepeatedStringReference(a, f, i, &sa) ==
             r->GetRepeatedStringReference(b, f, i, &sb);
    }
    case CppType::CPPTYPE_MESSAGE:
      break;
  }
  return false;
}

}  // namespace

bool FieldDiffer::Diff(const pb::Message& old_msg, const pb::Message& new_msg,
                       std::vector<FieldChange>* out) {
  path_.clear();
  out_ = out;
  return DiffMessage(old_msg, new_msg, Context{});
}

bool FieldDiffer::SameBytes(const pb::Message& a, const pb::Message& b) {
  // ByteSizeLong also caches the sizes that SerializeWithCachedSizes relies on.
  if (a.ByteSizeLong() != b.ByteSizeLong()) return false;
  auto serialize = [](const pb::Message& m, std::string* out) {
    out->clear();
    pb::io::StringOutputStream stream(out);
    pb::io::CodedOutputStream coded(&stream);
    // Deterministic: map entries in key order, so that equal maps give equal bytes.
    coded.SetSerializationDeterministic(true);
    m.SerializeWithCachedSizes(&coded);
    return !coded.HadError();
  };
  return serialize(a, &bytes_a_) && serialize(b, &bytes_b_) && bytes_a_ == bytes_b_;
}

void FieldDiffer::Emit(Op op, std::string old_value, std::string new_value, bool replaces) {
  if (out_ == nullptr) return;
  FieldChange& c = out_->emplace_back();
  c.path = path_;
  c.op = op;
  c.old_value = std::move(old_value);
  c.new_value = std::move(new_value);
  c.replaces_tasks = replaces;
}

bool FieldDiffer::DiffMessage(const pb::Message& a, const pb::Message& b, Context ctx) {
  const pb::Descriptor* d = a.GetDescriptor();
  const MessageInfo& info = schema_.Of(d);
  const Pair p{a, b, a.GetReflection()};
  bool differ = false;
  for (int i = 0, n = d->field_count(); i < n; ++i) {
    if (DiffField(p, d->field(i), info.fields[i], ctx)) {
      differ = true;
      if (out_ == nullptr) return true;
    }
  }
  return differ;
}

bool FieldDiffer::DiffField(const Pair& p, const pb::FieldDescriptor* f, const FieldInfo& info,
                            Context ctx) {
  if (info.informational) return false;
  PathMark mark(path_);
  AppendName(path_, info.display_name);
  const Context sub{ctx.replaces_tasks || info.replaces_tasks,
                    ctx.secret_ref || info.holds_secret_refs};
  if (!IsSensitive(info, f, ctx.secret_ref)) return DiffFieldValues(p, f, info, sub);

  // Compare without recording anything, then record one change with no values.
  std::vector<FieldChange>* saved = out_;
  out_ = nullptr;
  bool differ = DiffFieldValues(p, f, info, sub);
  out_ = saved;
  if (differ && out_ != nullptr) {
    Emit(Op::kChange, "", "", sub.replaces_tasks);
    out_->back().sensitive = true;
  }
  return differ;
}

bool FieldDiffer::DiffFieldValues(const Pair& p, const pb::FieldDescriptor* f,
                                  const FieldInfo& info, Context ctx) {
  if (f->is_map()) return DiffKeyed(p, f, f->message_type()->map_key(), ctx);
  const bool is_message = f->cpp_type() == CppType::CPPTYPE_MESSAGE;
  if (f->is_repeated()) {
    if (is_message) {
      if (const pb::FieldDescriptor* key = schema_.Of(f->message_type()).key) {
        return DiffKeyed(p, f, key, ctx);
      }
    }
    return DiffList(p, f, ctx);
  }
  if (is_message) {
    if (!p.r->HasField(p.a, f) && !p.r->HasField(p.b, f)) return false;
    // An unset message reads as its default instance, so unset and empty are equal.
    return DiffMessage(p.r->GetMessage(p.a, f), p.r->GetMessage(p.b, f), ctx);
  }
  return DiffScalar(p, f, info, ctx.replaces_tasks);
}

bool FieldDiffer::DiffScalar(const Pair& p, const pb::FieldDescriptor* f, const FieldInfo& info,
                             bool replaces) {
  if (f->has_presence()) {
    // `optional` fields: "not set" (use the default of the engine) is a value of
    // its own, distinct from an explicit false or zero.
    const bool has_a = p.r->HasField(p.a, f);
    const bool has_b = p.r->HasField(p.b, f);
    if (has_a != has_b) {
      if (out_ == nullptr) return true;
      if (has_a) {
        Emit(Op::kRemove, ScalarText(p.a, f, -1, info.unit), "", replaces);
      } else {
        Emit(Op::kAdd, "", ScalarText(p.b, f, -1, info.unit), replaces);
      }
      return true;
    }
  }
  if (ScalarsEqual(p.a, p.b, p.r, f)) return false;
  if (out_ != nullptr) {
    Emit(Op::kChange, ScalarText(p.a, f, -1, info.unit), ScalarText(p.b, f, -1, info.unit),
         replaces);
  }
  return true;
}

bool FieldDiffer::ElementsEqual(const Pair& p, const pb::FieldDescriptor* f, int i) {
  if (f->cpp_type() != CppType::CPPTYPE_MESSAGE) return RepeatedScalarsEqual(p.a, p.b, p.r, f, i);
  std::vector<FieldChange>* saved = out_;
  out_ = nullptr;
  bool differ = DiffMessage(p.r->GetRepeatedMessage(p.a, f, i), p.r->GetRepeatedMessage(p.b, f, i),
                            Context{});
  out_ = saved;
  return !differ;
}

bool FieldDiffer::DiffList(const Pair& p, const pb::FieldDescriptor* f, Context ctx) {
  const int na = p.r->FieldSize(p.a, f);
  const int nb = p.r->FieldSize(p.b, f);
  bool differ = na != nb;
  for (int i = 0; i < na && !differ; ++i) differ = !ElementsEqual(p, f, i);
  if (!differ) return false;
  if (out_ != nullptr) {
    Op op = na == 0 ? Op::kAdd : nb == 0 ? Op::kRemove : Op::kChange;
    Emit(op, na == 0 ? "" : FieldText(p.a, f, schema_, ctx.secret_ref),
         nb == 0 ? "" : FieldText(p.b, f, schema_, ctx.secret_ref), ctx.replaces_tasks);
  }
  return true;
}

bool FieldDiffer::DiffKeyed(const Pair& p, const pb::FieldDescriptor* f,
                            const pb::FieldDescriptor* key_field, Context ctx) {
  const int na = p.r->FieldSize(p.a, f);
  const int nb = p.r->FieldSize(p.b, f);
  if (na == 0 && nb == 0) return false;
  std::vector<Keyed> ka, kb;
  if (!SortByKey(p.a, p.r, f, key_field, &ka) || !SortByKey(p.b, p.r, f, key_field, &kb)) {
    return DiffList(p, f, ctx);
  }

  const bool is_map = f->is_map();
  const pb::FieldDescriptor* value_field = is_map ? f->message_type()->map_value() : nullptr;
  auto element_text = [&](const pb::Message& m, int i) {
    if (!is_map) return ElementText(m, f, i, schema_, ctx.secret_ref);
    return ElementText(p.r->GetRepeatedMessage(m, f, i), value_field, -1, schema_, ctx.secret_ref);
  };
  auto push_key = [&](const std::string& key) {
    if (is_map) {
      path_ += '.';
      path_ += key;
    } else {
      path_ += '[';
      path_ += key;
      path_ += ']';
    }
  };
  // Both sides are sorted by key: walk them together as in a merge.
  bool differ = false;
  size_t i = 0, j = 0;
  while (i < ka.size() || j < kb.size()) {
    PathMark mark(path_);
    if (j == kb.size() || (i < ka.size() && ka[i].key < kb[j].key)) {
      if (out_ == nullptr) return true;
      push_key(ka[i].key);
      Emit(Op::kRemove, element_text(p.a, ka[i].index), "", ctx.replaces_tasks);
      differ = true;
      ++i;
    } else if (i == ka.size() || kb[j].key < ka[i].key) {
      if (out_ == nullptr) return true;
      push_key(kb[j].key);
      Emit(Op::kAdd, "", element_text(p.b, kb[j].index), ctx.replaces_tasks);
      differ = true;
      ++j;
    } else {
      push_key(ka[i].key);
      const pb::Message& ea = p.r->GetRepeatedMessage(p.a, f, ka[i].index);
      const pb::Message& eb = p.r->GetRepeatedMessage(p.b, f, kb[j].index);
      bool d;
      if (!is_map) {
        d = DiffMessage(ea, eb, ctx);
      } else {
        const Pair entries{ea, eb, ea.GetReflection()};
        if (value_field->cpp_type() == CppType::CPPTYPE_MESSAGE) {
          d = DiffMessage(entries.r->GetMessage(ea, value_field),
                          entries.r->GetMessage(eb, value_field), ctx);
        } else {
          d = DiffScalar(entries, value_field, schema_.Of(value_field), ctx.replaces_tasks);
        }
      }
      if (d) {
        differ = true;
        if (out_ == nullptr) return true;
      }
      ++i;
      ++j;
    }
  }
  return differ;
}

}  // namespace shoal::plan::internal
