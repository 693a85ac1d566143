#pragma once

// Checks of a resolved (merged, normalised) stack document that the JSON Schema
// cannot express: references to undefined networks, volumes, secrets and
// configs; depends_on targets and cycles; duplicate published ports;
// placement constraint syntax; conflicting keys. Also warns, once per key, about
// valid compose keys that shoal does not apply.

#include "shoal/stack/document.h"

namespace shoal::stack {

void ValidateStack(const Node& root, Diagnostics& diags);
void WarnUnsupported(const Node& root, Diagnostics& diags);

// Parses "node.labels.zone == eu" into its parts; false with *error set when
// the operator or the left-hand side is not one shoal understands.
struct Constraint {
  std::string lhs, op, rhs;
};
bool ParseConstraint(std::string_view text, Constraint* out, std::string* error);

}  // namespace shoal::stack
