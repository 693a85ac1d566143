#pragma once

// Variable interpolation as the compose specification defines it: $VAR, ${VAR},
// ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt},
// ${VAR+alt}, defaults that themselves contain ${...}, and $$ for a literal $.
// Swarm's own templates ({{.Node.Hostname}}) contain no $ and pass through.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/stack/document.h"

namespace shoal::stack {

// Returns the value of a variable, or nullopt when it is not set.
using VariableLookup = std::function<std::optional<std::string>(std::string_view)>;

struct InterpolationError {
  std::string message;
};

// Interpolates one string. Variables that are unset and have no default are
// appended to *unset (they expand to ""). Returns false with *error set for a
// malformed expression or a required variable that is missing.
bool InterpolateString(std::string_view in, const VariableLookup& lookup, std::string* out,
                       std::vector<std::string>* unset, std::string* error);

// Interpolates every string value of the tree in place (keys are not
// interpolated, as in compose). Errors and "variable is not set" warnings go to
// diags with the place of the value.
void InterpolateTree(Node& root, const VariableLookup& lookup, Diagnostics& diags);

}  // namespace shoal::stack
