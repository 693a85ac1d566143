#pragma once

// Prints a resolved stack document, as `shoal config` shows it.

#include <string>

#include "shoal/stack/document.h"

namespace shoal::stack {

// YAML in block style. Strings that would read back as another type ("true", "8080") are quoted,
// and "$" is escaped as "$$", so that the output loads to the same document.
std::string ToYaml(const Node& root);

// JSON, indented.
std::string ToJson(const Node& root);

}  // namespace shoal::stack
