#pragma once

// Merging of normalised stack trees, used for several -c files (each later file
// overrides the earlier ones) and for `extends`. The compose rules: mappings
// merge key by key; ports, volumes, secrets and configs merge by their target;
// command, entrypoint and healthcheck.test are replaced; other lists append
// the items they do not already hold. A value tagged !reset removes the key;
// !override replaces it whole.

#include <functional>
#include <string>

#include "shoal/stack/document.h"

namespace shoal::stack {

// Merges `over` into `base` in place. `path` is the key path of base (for the
// merge rules that depend on where a list sits).
void MergeInto(Node& base, const Node& over, const std::string& path = "");

// Loads another stack file (normalised, with its own extends resolved) for
// `extends: {file: ...}`; nullptr after reporting an error.
using FileLoader = std::function<NodePtr(const std::string& path, const Mark& from)>;

// Resolves `extends` in every service of a normalised file.
void ResolveExtends(Node& root, const std::string& dir, const FileLoader& load, Diagnostics& diags);

}  // namespace shoal::stack
