#pragma once

// SHA-256 helpers shared by the sources and the sync.

#include <string>

#include "shoal/common/status.h"

namespace shoal::gitops::internal {

// Hex SHA-256 of `bytes`.
std::string Sha256Hex(const std::string& bytes);

// Hex SHA-256 over every regular file under `dir` (paths relative to it, in
// sorted order, each with its size and bytes), skipping `.git`. Changes when
// any file is added, removed, renamed or edited. kIo naming the file that
// cannot be read.
Result<std::string> HashTree(const std::string& dir);

}  // namespace shoal::gitops::internal
