#pragma once

// Each group of verbs registers its subcommands on the root app. A subcommand's
// callback stores its exit code in *exit_code; main returns it.

#include <CLI/CLI.hpp>

namespace shoal::cli {

void AddStackCommands(CLI::App& app, int* exit_code);

}  // namespace shoal::cli
