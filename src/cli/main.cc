// shoal: a declarative stack deployer and container orchestrator.

#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"shoal: deploy compose-style stacks to a cluster", "shoal"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shoal 0.1.0");
  int exit_code = 0;
  shoal::cli::AddStackCommands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 0 for --help and 106/109 for usage errors; usage errors are 1 here.
    int code = app.exit(e);
    return code == 0 ? 0 : 1;
  }
  return exit_code;
}
