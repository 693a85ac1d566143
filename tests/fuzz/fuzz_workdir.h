#pragma once

// One scratch directory per fuzz process, reused for every input and removed
// at exit (libFuzzer runs millions of inputs; a directory each would be slow).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace shoal::fuzz {

// `<tmp>/<prefix>-<pid>`, made on the first call; later calls return the
// same path whatever `prefix` they pass.
inline const std::filesystem::path& WorkDir(const char* prefix) {
  namespace fs = std::filesystem;
  // Never destroyed: the atexit handler runs after static destructors
  // registered later, and must still find the path.
  static const fs::path* dir = [prefix] {
    auto* d = new fs::path(fs::temp_directory_path() /
                           (std::string(prefix) + "-" + std::to_string(::getpid())));
    fs::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(*dir, ec);
    });
    return d;
  }();
  return *dir;
}

}  // namespace shoal::fuzz
