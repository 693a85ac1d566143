#pragma once

// Validates a stack file tree against the compose specification's JSON Schema
// (schema/stack/compose-spec.json, compiled in) with rapidjson's validator, and
// turns its findings into diagnostics that name the file, line, column and key
// path in words a user understands ("unknown key", "expected an integer").
//
// rapidjson stops at the first error; to report every error of a file at once
// the checker validates, records the error, sets the offending value aside and
// validates again, up to a limit.

#include "shoal/stack/document.h"

namespace shoal::stack {

// Adds one diagnostic per schema violation of `root` to diags. Thread-safe.
void CheckComposeSchema(const Node& root, Diagnostics& diags);

}  // namespace shoal::stack
