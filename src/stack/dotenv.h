#pragma once

// The .env / env_file format of compose: KEY=VALUE lines, "export" prefixes,
// comments, single quotes (literal), double quotes (escapes, ${} expansion),
// and a bare KEY that takes its value from the environment.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "interpolate.h"

namespace shoal::stack {

struct DotenvEntry {
  std::string key;
  std::optional<std::string> value;  // nullopt for a bare KEY
  int line = 0;
};

// Parses text. Values may refer to earlier entries and to `lookup` through
// ${...}. Malformed lines are reported in diags against `file`, and skipped.
std::vector<DotenvEntry> ParseDotenv(std::string_view text, const std::string* file,
                                     const VariableLookup& lookup, Diagnostics& diags);

}  // namespace shoal::stack
