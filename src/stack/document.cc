#include "shoal/stack/document.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace shoal::stack {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return "a boolean";
    case Kind::kInt:
      return "an integer";
    case Kind::kFloat:
      return "a number";
    case Kind::kString:
      return "a string";
    case Kind::kMap:
      return "a mapping";
    case Kind::kSeq:
      return "a list";
  }
  return "a value";
}

NodePtr Node::MakeString(std::string s, Mark mark) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kString;
  n->text = std::move(s);
  n->mark = std::move(mark);
  n->quoted = true;
  return n;
}

NodePtr Node::MakeInt(int64_t v, Mark mark) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kInt;
  n->int_value = v;
  n->text = std::to_string(v);
  n->mark = std::move(mark);
  return n;
}

NodePtr Node::MakeBool(bool v, Mark mark) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kBool;
  n->bool_value = v;
  n->text = v ? "true" : "false";
  n->mark = std::move(mark);
  return n;
}

NodePtr Node::MakeMap(Mark mark) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kMap;
  n->mark = std::move(mark);
  return n;
}

NodePtr Node::MakeSeq(Mark mark) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kSeq;
  n->mark = std::move(mark);
  return n;
}

NodePtr Node::MakeNull(Mark mark) {
  auto n = std::make_shared<Node>();
  n->mark = std::move(mark);
  return n;
}

const Entry* Node::GetEntry(std::string_view key) const {
  if (kind != Kind::kMap) return nullptr;
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

Node* Node::Get(std::string_view key) const {
  const Entry* e = GetEntry(key);
  return e ? e->value.get() : nullptr;
}

NodePtr Node::GetPtr(std::string_view key) const {
  const Entry* e = GetEntry(key);
  return e ? e->value : nullptr;
}

void Node::Set(std::string key, NodePtr value, Mark key_mark) {
  for (auto& e : entries) {
    if (e.key == key) {
      e.value = std::move(value);
      return;
    }
  }
  entries.push_back({std::move(key), std::move(key_mark), std::move(value)});
}

bool Node::Erase(std::string_view key) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->key == key) {
      entries.erase(it);
      return true;
    }
  }
  return false;
}

std::string Node::ScalarText() const {
  switch (kind) {
    case Kind::kNull:
      return "";
    case Kind::kBool:
      return bool_value ? "true" : "false";
    default:
      return text;
  }
}

NodePtr Node::Clone() const {
  auto n = std::make_shared<Node>(*this);
  for (auto& e : n->entries) e.value = e.value->Clone();
  for (auto& i : n->items) i = i->Clone();
  return n;
}

bool Node::Equals(const Node& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return bool_value == o.bool_value;
    case Kind::kInt:
      return int_value == o.int_value;
    case Kind::kFloat:
      return float_value == o.float_value;
    case Kind::kString:
      return text == o.text;
    case Kind::kSeq:
      if (items.size() != o.items.size()) return false;
      for (size_t i = 0; i < items.size(); ++i)
        if (!items[i]->Equals(*o.items[i])) return false;
      return true;
    case Kind::kMap:
      if (entries.size() != o.entries.size()) return false;
      for (const auto& e : entries) {
        const Node* other = o.Get(e.key);
        if (!other || !e.value->Equals(*other)) return false;
      }
      return true;
  }
  return false;
}

namespace {

bool ParseInteger(std::string_view s, int64_t* out) {
  bool neg = false;
  std::string_view body = s;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    neg = body[0] == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  // As go-yaml v3 (the compose tools' parser) reads them: 0x hex, 0o and a
  // leading 0 octal (so "mode: 0440" is 288), 0b binary.
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
    base = body[1] == 'x' ? 16 : (body[1] == 'o' ? 8 : 2);
    body.remove_prefix(2);
  } else if (body.size() > 1 && body[0] == '0') {
    base = 8;
    body.remove_prefix(1);
  }
  if (body.empty()) return false;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(body.data(), body.data() + body.size(), v, base);
  if (ec != std::errc() || p != body.data() + body.size()) return false;
  if (neg) {
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) return false;
    *out = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

bool ParseFloat(std::string_view s, double* out) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  bool dot = false;
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  bool exp = false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    exp = true;
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t ed = 0;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++ed;
    if (ed == 0) return false;
  }
  if (i != s.size() || (!dot && !exp)) return false;
  std::string copy(s);
  const char* start = copy.c_str();
  if (*start == '+') ++start;
  *out = std::strtod(start, nullptr);
  return true;
}

}  // namespace

NodePtr ResolvePlainScalar(std::string text, Mark mark) {
  auto n = std::make_shared<Node>();
  n->mark = std::move(mark);
  // Most scalars are names, paths and images: a first character that starts
  // no null, boolean or number settles it without the comparisons below.
  unsigned char first = text.empty() ? '~' : static_cast<unsigned char>(text[0]);
  if (!isdigit(first) && !strchr("-+.~nNtTfF", first)) {
    n->kind = Kind::kString;
    n->text = std::move(text);
    return n;
  }
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    n->kind = Kind::kNull;
  } else if (text == "true" || text == "True" || text == "TRUE") {
    n->kind = Kind::kBool;
    n->bool_value = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    n->kind = Kind::kBool;
    n->bool_value = false;
  } else if (ParseInteger(text, &n->int_value)) {
    n->kind = Kind::kInt;
  } else if (ParseFloat(text, &n->float_value)) {
    n->kind = Kind::kFloat;
  } else {
    n->kind = Kind::kString;
  }
  n->text = std::move(text);
  return n;
}

std::string JoinPath(std::string_view base, std::string_view key) {
  if (base.empty()) return std::string(key);
  std::string s(base);
  s += '.';
  s += key;
  return s;
}

std::string IndexPath(std::string_view base, size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

}  // namespace shoal::stack
