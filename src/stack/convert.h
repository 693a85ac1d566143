#pragma once

// Converts a resolved, validated stack document into the StackSpec model:
// full names ("<stack>_<name>"), the stack label on every object, units parsed
// (durations, sizes, CPUs), defaults written out and order-free lists sorted,
// so that two files that mean the same thing give equal specs.

#include <string>

#include "interpolate.h"
#include "shoal/stack/document.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::stack {

// The label docker stack deploy puts on every object of a stack.
inline constexpr const char* kStackLabel = "com.docker.stack.namespace";

struct ConvertOptions {
  std::string stack_name;
  bool read_file_contents = true;
  VariableLookup lookup;  // for secrets and configs taken from `environment:`
};

void ConvertStack(const Node& root, const ConvertOptions& options, shoal::v1::StackSpec* out,
                  Diagnostics& diags);

}  // namespace shoal::stack
