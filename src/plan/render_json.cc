#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "shoal/plan/render.h"

namespace shoal::plan {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

const char* OpName(FieldChange::Op op) {
  switch (op) {
    case FieldChange::Op::kAdd:
      return "add";
    case FieldChange::Op::kChange:
      return "change";
    case FieldChange::Op::kRemove:
      return "remove";
  }
  return "change";
}

void String(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// The value of one side, or null when that side is absent or must not be shown.
void Value(JsonWriter& w, const FieldChange& f, bool present, const std::string& text) {
  if (f.sensitive || !present) {
    w.Null();
  } else {
    String(w, text);
  }
}

void WriteField(JsonWriter& w, const FieldChange& f) {
  w.StartObject();
  w.Key("path");
  String(w, f.path);
  w.Key("op");
  w.String(OpName(f.op));
  w.Key("old");
  Value(w, f, f.op != FieldChange::Op::kAdd, f.old_value);
  w.Key("new");
  Value(w, f, f.op != FieldChange::Op::kRemove, f.new_value);
  w.Key("replaces_tasks");
  w.Bool(f.replaces_tasks);
  w.Key("sensitive");
  w.Bool(f.sensitive);
  w.EndObject();
}

void WriteObject(JsonWriter& w, const ObjectChange& c) {
  w.StartObject();
  w.Key("kind");
  w.String(KindName(c.kind));
  w.Key("name");
  String(w, c.name);
  w.Key("action");
  w.String(ActionName(c.action));
  w.Key("replaces_tasks");
  w.Bool(c.replaces_tasks);
  w.Key("tasks_replaced");
  if (!c.replaces_tasks) {
    w.Uint64(0);
  } else if (c.tasks_replaced) {
    w.Uint64(*c.tasks_replaced);
  } else {
    w.String("all");  // a global service: one task per eligible node
  }
  w.Key("fields");
  w.StartArray();
  for (const FieldChange& f : c.fields) WriteField(w, f);
  w.EndArray();
  w.EndObject();
}

}  // namespace

std::string RenderJson(const Plan& plan) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("stack");
  String(w, plan.stack);
  w.Key("changes");
  w.StartArray();
  for (const ObjectChange& c : plan.changes) WriteObject(w, c);
  w.EndArray();
  const Summary s = plan.Summarize();
  w.Key("summary");
  w.StartObject();
  w.Key("create");
  w.Int(s.create);
  w.Key("update");
  w.Int(s.update);
  w.Key("remove");
  w.Int(s.remove);
  w.Key("unchanged");
  w.Int(s.unchanged);
  w.Key("tasks_replaced");
  w.Uint64(s.tasks_replaced);
  w.Key("global_services_replaced");
  w.Int(s.global_services_replaced);
  w.Key("has_changes");
  w.Bool(plan.HasChanges());
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace shoal::plan
