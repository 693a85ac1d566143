#pragma once

// The stack file as a tree of YAML values that remember where they came from.
// The loader reads YAML into this tree, then interpolates, merges and validates
// it in place; conversion turns it into a StackSpec. It is a value tree: no
// node is shared between two parents (aliases are copied on read), so each
// step may mutate freely.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/stack/diagnostic.h"

namespace shoal::stack {

class Node;
using NodePtr = std::shared_ptr<Node>;

enum class Kind { kNull, kBool, kInt, kFloat, kString, kMap, kSeq };

const char* KindName(Kind kind);  // "null", "a boolean", "an integer", ... for messages

struct Entry {
  std::string key;
  Mark key_mark;
  NodePtr value;
};

class Node {
 public:
  Kind kind = Kind::kNull;
  Mark mark;
  // Scalar source text, or the string value for kString.
  std::string text;
  bool bool_value = false;
  int64_t int_value = 0;
  double float_value = 0;
  // Explicit YAML tag such as "!reset" or "!override"; empty when none.
  std::string tag;
  // The scalar was quoted or a block scalar in the source: never re-typed.
  bool quoted = false;
  std::vector<Entry> entries;  // kMap, in source order
  std::vector<NodePtr> items;  // kSeq

  static NodePtr MakeString(std::string s, Mark mark = {});
  static NodePtr MakeInt(int64_t v, Mark mark = {});
  static NodePtr MakeBool(bool v, Mark mark = {});
  static NodePtr MakeMap(Mark mark = {});
  static NodePtr MakeSeq(Mark mark = {});
  static NodePtr MakeNull(Mark mark = {});

  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSeq() const { return kind == Kind::kSeq; }
  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind != Kind::kMap && kind != Kind::kSeq; }

  // Map access; nullptr when absent or when this is not a map.
  Node* Get(std::string_view key) const;
  NodePtr GetPtr(std::string_view key) const;
  const Entry* GetEntry(std::string_view key) const;
  // Sets or replaces key (keeps its position when it exists).
  void Set(std::string key, NodePtr value, Mark key_mark = {});
  bool Erase(std::string_view key);

  // Scalar as text as the compose tools print it: strings as is, numbers in
  // their source spelling, booleans "true"/"false", null "".
  std::string ScalarText() const;
  // Deep copy.
  NodePtr Clone() const;
  // Structural equality of values (marks and tags ignored).
  bool Equals(const Node& other) const;
};

// Resolves a plain (unquoted) YAML scalar to its type under the YAML 1.2 core
// schema, as compose tools do: null, true/false, integers, floats, else string.
NodePtr ResolvePlainScalar(std::string text, Mark mark);

// Appends ".key" or "[i]" to a key path for messages.
std::string JoinPath(std::string_view base, std::string_view key);
std::string IndexPath(std::string_view base, size_t index);

}  // namespace shoal::stack
