#pragma once

// The stack-file engine: reads one or more compose-style files, interpolates,
// merges and validates them, and converts the result into a StackSpec.
//
//   LoadOptions opts;
//   opts.files = {"stacks/demo/stack.yml"};
//   auto stack = shoal::stack::Load(opts);
//   if (!stack.ok()) print(stack.error().ToString());   // every error, with file:line:col
//
// Pure apart from reading the files it is given (and those they name:
// .env, env_file, extends, secret and config files). Thread-compatible.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/stack/diagnostic.h"
#include "shoal/stack/document.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::stack {

struct LoadOptions {
  // Stack files in merge order (the -c flags); the first names the project
  // directory, where .env is read and relative paths start.
  std::vector<std::string> files;
  // --env-file files, weaker than the process environment, stronger than .env.
  std::vector<std::string> env_files;
  // The process environment, strongest source of variables.
  std::map<std::string, std::string> environment;
  // Read ".env" beside the first file.
  bool read_dotenv = true;
  // Stack name; when empty: the top-level `name`, else the first file's directory name.
  std::string stack_name;
  // Read secret and config files into the spec. Off for `shoal config`, which
  // only resolves the file, and for tests over files whose data is absent.
  bool read_file_contents = true;
  // Interpolate ${VAR}. Off to read a file that was already interpolated, such
  // as the output of `docker stack config`, which does not escape `$`.
  bool interpolate = true;
};

struct LoadedStack {
  std::string name;
  // The resolved compose document (interpolated, merged, normalised), as
  // `shoal config` prints it.
  NodePtr document;
  shoal::v1::StackSpec spec;
  // Warnings: unset variables, keys shoal does not apply.
  Diagnostics warnings;
};

// Loads and converts. On failure the Diagnostics hold every error found (and
// the warnings), in file order.
Result<LoadedStack, Diagnostics> Load(const LoadOptions& options);

// Loads and resolves without converting (for `shoal config`): interpolation,
// merging, normalisation, schema and semantic validation, but not the checks
// that only a deployable stack must pass (every service has an image, secret
// files exist).
Result<LoadedStack, Diagnostics> Resolve(const LoadOptions& options);

// The process environment as a map (for LoadOptions::environment).
std::map<std::string, std::string> ProcessEnvironment();

}  // namespace shoal::stack
