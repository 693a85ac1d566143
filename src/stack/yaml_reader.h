#pragma once

// Reads YAML bytes into a Node tree: encodings, anchors and aliases, merge keys,
// duplicate and non-string keys, and limits that keep hostile input from
// exhausting memory or the stack. yaml-cpp exceptions stop here.

#include <istream>
#include <string>
#include <string_view>

#include "shoal/stack/document.h"

namespace shoal::stack {

struct ReadLimits {
  size_t max_bytes = 64u << 20;  // larger files are refused before parsing
  size_t max_nodes = 2'000'000;  // after alias expansion
  // Values copied through aliases: real files copy a few thousand at most; a
  // "billion laughs" document is refused before it costs memory.
  size_t max_alias_values = 250'000;
  int max_depth = 128;  // compose files nest a dozen levels at most
};

// Converts UTF-16 (with a byte-order mark) to UTF-8, drops a UTF-8 BOM and turns
// CRLF and lone CR line ends into LF. Returns false with *error set for
// malformed UTF-16.
bool DecodeText(std::string_view bytes, std::string* out, std::string* error);

// Reads all of `in` (the file `name`) into *out, at most max_bytes of it: a
// longer file, or an endless one such as /dev/zero named by env_file or a
// secret, is an error instead of exhausting memory.
bool ReadBounded(std::istream& in, const std::string& name, std::string* out, std::string* error,
                 size_t max_bytes = ReadLimits{}.max_bytes);

// Parses one YAML document. Returns the root (a kNull node for an empty
// document) or nullptr after adding at least one error to diags.
NodePtr ReadYaml(std::string_view text, const std::string* file, Diagnostics& diags,
                 const ReadLimits& limits = {});

}  // namespace shoal::stack
