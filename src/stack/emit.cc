#include "shoal/stack/emit.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cmath>
#include <cstdio>
#include <string_view>

#include "shoal/common/text.h"

namespace shoal::stack {

namespace {

// A string that reads back as the same string when written bare: no YAML
// indicator at the start, no ": " or " #" inside, and not another type.
bool PlainSafe(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  static const std::string_view kBadFirst = "-?:,[]{}#&*!|>'\"%@`~ ";
  if (kBadFirst.find(s.front()) != std::string_view::npos || s.back() == ' ' || s.back() == ':') {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c >= 0x80 || c == '#' || c == ',' || c == '[' || c == ']' ||
        c == '{' || c == '}' || c == '"' || c == '\'' || c == '\\') {
      return false;
    }
    if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' ')) return false;
  }
  return ResolvePlainScalar(s, {})->kind == Kind::kString;
}

// "$" is written "$$" so that the output reads back as the same stack.
std::string Escaped(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    out.push_back(c);
    if (c == '$') out.push_back('$');
  }
  return out;
}

void Scalar(std::string& out, const Node& n) {
  switch (n.kind) {
    case Kind::kNull:
      out += "null";
      break;
    case Kind::kBool:
      out += n.bool_value ? "true" : "false";
      break;
    case Kind::kInt:
    case Kind::kFloat:
      out += n.text;
      break;
    default: {
      std::string text = Escaped(n.text);
      if (PlainSafe(text))
        out += text;
      else
        out += Quote(text);
    }
  }
}

void Key(std::string& out, const std::string& key) {
  if (PlainSafe(key))
    out += key;
  else
    out += Quote(key);
  out += ":";
}

bool IsEmptyContainer(const Node& n) {
  return (n.IsMap() && n.entries.empty()) || (n.IsSeq() && n.items.empty());
}

// Block style, two spaces per level; list items under a key at the key's indent,
// as docker stack config prints them.
void EmitYaml(std::string& out, const Node& n, int indent) {
  std::string pad(indent, ' ');
  if (n.IsMap()) {
    for (const auto& e : n.entries) {
      out += pad;
      Key(out, e.key);
      const Node& v = *e.value;
      if (IsEmptyContainer(v)) {
        out += v.IsMap() ? " {}\n" : " []\n";
      } else if (v.IsMap()) {
        out += "\n";
        EmitYaml(out, v, indent + 2);
      } else if (v.IsSeq()) {
        out += "\n";
        EmitYaml(out, v, indent + 2);
      } else {
        out += " ";
        Scalar(out, v);
        out += "\n";
      }
    }
  } else if (n.IsSeq()) {
    for (const auto& i : n.items) {
      out += pad + "-";
      if (IsEmptyContainer(*i)) {
        out += i->IsMap() ? " {}\n" : " []\n";
      } else if (i->IsMap() || i->IsSeq()) {
        // The first line of a nested block goes on the dash line.
        std::string nested;
        EmitYaml(nested, *i, indent + 2);
        out += " " + nested.substr(indent + 2);
      } else {
        out += " ";
        Scalar(out, *i);
        out += "\n";
      }
    }
  } else {
    Scalar(out, n);
    out += "\n";
  }
}

template <class Writer>
void EmitJson(Writer& w, const Node& n) {
  switch (n.kind) {
    case Kind::kNull:
      w.Null();
      break;
    case Kind::kBool:
      w.Bool(n.bool_value);
      break;
    case Kind::kInt:
      w.Int64(n.int_value);
      break;
    case Kind::kFloat:
      if (std::isfinite(n.float_value))
        w.Double(n.float_value);
      else
        w.String(n.text.c_str());
      break;
    case Kind::kString:
      w.String(n.text.data(), static_cast<rapidjson::SizeType>(n.text.size()));
      break;
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
  std::string out;
  if (IsEmptyContainer(root)) return root.IsMap() ? "{}\n" : "[]\n";
  EmitYaml(out, root, 0);
  return out;
}

std::string ToJson(const Node& root) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.SetIndent(' ', 2);
  EmitJson(w, root);
  return std::string(sb.GetString()) + "\n";
}

}  // namespace shoal::stack
