#pragma once

// Which stacks a source holds. Two layouts (docs/gitops.md):
//   - an index file `shoal-stacks.yml` at the root:
//       stacks:
//         web: [web/stack.yml, web/prod.yml]   # files in merge order
//         db: db/stack.yml
//   - otherwise every `stacks/<name>/stack.yml`, with `stack.override.yml`
//     merged after it when present and `.env` read beside it.

#include <string>
#include <vector>

#include "shoal/common/status.h"

namespace shoal::gitops {

inline constexpr const char* kIndexFile = "shoal-stacks.yml";

struct StackEntry {
  std::string name;
  // Absolute paths, in merge order.
  std::vector<std::string> files;
};

// The stacks under `root`, sorted by name. An index file that does not parse,
// names a missing file or an invalid stack name fails with the index's
// file:line:column; a root with neither layout is an empty list.
Result<std::vector<StackEntry>> Discover(const std::string& root);

}  // namespace shoal::gitops
