#include "shoal/stack/emit.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <yaml-cpp/yaml.h>

#include <cmath>

namespace shoal::stack {

namespace {

void EmitYaml(YAML::Emitter& out, const Node& n) {
  switch (n.kind) {
    case Kind::kNull: out << YAML::Null; break;
    case Kind::kBool: out << (n.bool_value ? "true" : "false"); break;
    case Kind::kInt:
    case Kind::kFloat: out << n.text; break;
    case Kind::kString: {
      // "$" is written "$$" so that the output reads back as the same stack.
      std::string text;
      for (char c : n.text) {
        text.push_back(c);
        if (c == '$') text.push_back('$');
      }
      bool ambiguous = ResolvePlainScalar(n.text, {})->kind != Kind::kString ||
                       n.text.find('\n') != std::string::npos || n.text.empty();
      // Multi-line strings are double-quoted too: a literal block would change
      // their trailing newlines.
      if (ambiguous) {
        out << YAML::DoubleQuoted << text;
      } else {
        out << text;
      }
      break;
    }
    case Kind::kSeq:
      if (n.items.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      out << YAML::BeginSeq;
      for (const auto& i : n.items) EmitYaml(out, *i);
      out << YAML::EndSeq;
      break;
    case Kind::kMap:
      if (n.entries.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      out << YAML::BeginMap;
      for (const auto& e : n.entries) {
        out << YAML::Key;
        if (ResolvePlainScalar(e.key, {})->kind != Kind::kString) {
          out << YAML::DoubleQuoted << e.key;
        } else {
          out << e.key;
        }
        out << YAML::Value;
        EmitYaml(out, *e.value);
      }
      out << YAML::EndMap;
      break;
  }
}

template <class Writer>
void EmitJson(Writer& w, const Node& n) {
  switch (n.kind) {
    case Kind::kNull: w.Null(); break;
    case Kind::kBool: w.Bool(n.bool_value); break;
    case Kind::kInt: w.Int64(n.int_value); break;
    case Kind::kFloat:
      if (std::isfinite(n.float_value)) w.Double(n.float_value);
      else w.String(n.text.c_str());
      break;
    case Kind::kString: w.String(n.text.data(), static_cast<rapidjson::SizeType>(n.text.size())); break;
    case Kind::kSeq:
      w.StartArray();
      for (const auto& i : n.items) EmitJson(w, *i);
      w.EndArray();
      break;
    case Kind::kMap:
      w.StartObject();
      for (const auto& e : n.entries) {
        w.Key(e.key.data(), static_cast<rapidjson::SizeType>(e.key.size()));
        EmitJson(w, *e.value);
      }
      w.EndObject();
      break;
  }
}

}  // namespace

std::string ToYaml(const Node& root) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  EmitYaml(out, root);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n') s += '\n';
  return s;
}

std::string ToJson(const Node& root) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.SetIndent(' ', 2);
  EmitJson(w, root);
  return std::string(sb.GetString()) + "\n";
}

}  // namespace shoal::stack
