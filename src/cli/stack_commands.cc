// Verbs on stack files: config and diff (offline), and deploy (to the cluster;
// its --dry-run falls back to a plan against an empty cluster when no daemon
// answers).

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "shoal/plan/plan.h"
#include "shoal/plan/render.h"
#include "shoal/stack/emit.h"
#include "shoal/stack/loader.h"

namespace shoal::cli {

namespace {

namespace fs = std::filesystem;

struct FileFlags {
  std::vector<std::string> files;
  std::vector<std::string> env_files;
};

void AddFileFlags(CLI::App* cmd, FileFlags* f) {
  // One value per flag, so that `-c FILE STACK` leaves STACK to the positional.
  cmd->add_option("-c,--compose-file", f->files,
                  "Stack file; repeat to merge several, later files override earlier ones")
      ->allow_extra_args(false);
  cmd->add_option("--env-file", f->env_files,
                  "File of VAR=value lines for interpolation (the environment still wins)")
      ->allow_extra_args(false);
}

// Without -c, the files docker compose looks for in the current directory.
std::vector<std::string> DefaultFiles() {
  for (const char* name : {"stack.yml", "stack.yaml", "compose.yaml", "compose.yml",
                           "docker-compose.yml", "docker-compose.yaml"}) {
    std::error_code ec;
    if (fs::is_regular_file(name, ec)) return {name};
  }
  return {};
}

stack::LoadOptions OptionsFor(const FileFlags& f, std::string stack_name, bool contents) {
  stack::LoadOptions o;
  o.files = f.files.empty() ? DefaultFiles() : f.files;
  o.env_files = f.env_files;
  o.environment = stack::ProcessEnvironment();
  o.stack_name = std::move(stack_name);
  o.read_file_contents = contents;
  return o;
}

bool UseColor() { return isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr; }

void PrintDiagnostics(const stack::Diagnostics& d) { std::cerr << d.ToString(); }

using LoadResult = Result<stack::LoadedStack, stack::Diagnostics>;

// Loads, prints warnings and errors; returns false on errors.
bool LoadOrReport(const LoadResult& r) {
  if (!r.ok()) {
    PrintDiagnostics(r.error());
    std::cerr << r.error().ErrorCount() << " error(s); nothing was deployed\n";
    return false;
  }
  PrintDiagnostics(r->warnings);
  return true;
}

int PrintPlan(const Result<plan::Plan>& p, const std::string& format) {
  if (!p.ok()) {
    std::cerr << "error: " << p.error().message() << "\n";
    return 1;
  }
  if (format == "json") {
    std::cout << plan::RenderJson(*p);
  } else {
    std::cout << plan::RenderText(*p, {UseColor(), false});
  }
  return plan::PlanExitCode(*p);
}

}  // namespace

void AddStackCommands(CLI::App& app, const std::string* host, int* exit_code) {
  // ---- config ----
  {
    auto* cmd = app.add_subcommand(
        "config",
        "Print the resolved stack (interpolated, merged, normalised), as docker stack config does");
    auto flags = std::make_shared<FileFlags>();
    auto format = std::make_shared<std::string>("yaml");
    AddFileFlags(cmd, flags.get());
    cmd->add_option("--format", *format, "Output format")->check(CLI::IsMember({"yaml", "json"}));
    cmd->callback([=] {
      // Resolve, not Load: like docker stack config, print override files and
      // services without an image; only a deploy needs a complete stack.
      LoadResult r = stack::Resolve(OptionsFor(*flags, "", /*contents=*/false));
      if (!LoadOrReport(r)) {
        *exit_code = 1;
        return;
      }
      std::cout << (*format == "json" ? stack::ToJson(*r->document) : stack::ToYaml(*r->document));
      *exit_code = 0;
    });
  }
  // ---- diff ----
  {
    auto* cmd = app.add_subcommand(
        "diff", "Show what changes between two stack files, as a deploy of NEW over OLD would");
    auto old_file = std::make_shared<std::string>();
    auto new_file = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>("text");
    auto env_files = std::make_shared<std::vector<std::string>>();
    auto name = std::make_shared<std::string>();
    cmd->add_option("OLD", *old_file, "The stack file as deployed")->required();
    cmd->add_option("NEW", *new_file, "The stack file to deploy")->required();
    cmd->add_option("--env-file", *env_files, "File of VAR=value lines for interpolation");
    cmd->add_option("--name", *name, "Stack name (default: from the files)");
    cmd->add_option("--format", *format, "Output format")->check(CLI::IsMember({"text", "json"}));
    cmd->callback([=] {
      FileFlags of{{*old_file}, *env_files}, nf{{*new_file}, *env_files};
      LoadResult o = stack::Load(OptionsFor(of, *name, true));
      if (!LoadOrReport(o)) {
        *exit_code = 1;
        return;
      }
      // Both sides are compared under one name, so renaming a file is no change.
      LoadResult n = stack::Load(OptionsFor(nf, name->empty() ? o->name : *name, true));
      if (!LoadOrReport(n)) {
        *exit_code = 1;
        return;
      }
      *exit_code = PrintPlan(plan::Diff(&o->spec, n->spec), *format);
    });
  }
  // ---- deploy ----
  {
    auto* cmd = app.add_subcommand(
        "deploy", "Deploy a stack and wait until it runs (or --dry-run: show the plan)");
    auto flags = std::make_shared<FileFlags>();
    auto dflags = std::make_shared<DeployFlags>();
    auto stack_arg = std::make_shared<std::string>();
    AddFileFlags(cmd, flags.get());
    cmd->add_option(
        "STACK", *stack_arg,
        "Stack name (default: the file's `name`, else its directory); a path to a stack "
        "file is taken as -c FILE");
    cmd->add_flag("--dry-run", dflags->dry_run,
                  "Print the plan and change nothing (exit 0: no changes, 2: changes, 1: error)");
    cmd->add_flag("--prune", dflags->prune,
                  "Remove services, networks, secrets and configs the stack no longer declares");
    cmd->add_flag("-d,--detach", dflags->detach, "Return once accepted; do not wait");
    cmd->add_flag("--rebalance", dflags->rebalance,
                  "Also spread the replicated services' tasks again over the nodes (moves "
                  "running tasks, update_config.parallelism at a time)");
    cmd->add_option("--timeout", dflags->timeout_s, "Seconds to wait for convergence")
        ->capture_default_str();
    cmd->add_option("--check-version", dflags->check_version,
                    "Refuse unless the stack is at this revision (0: no check)");
    cmd->add_option("--format", dflags->format, "Plan format")
        ->check(CLI::IsMember({"text", "json"}));
    cmd->callback([=] {
      FileFlags f = *flags;
      std::string name = *stack_arg;
      std::error_code ec;
      if (!name.empty() && f.files.empty() && fs::is_regular_file(name, ec)) {
        f.files = {name};
        name.clear();
      }
      stack::LoadOptions lo = OptionsFor(f, name, true);
      LoadResult r = stack::Load(lo);
      if (!LoadOrReport(r)) {
        *exit_code = 1;
        return;
      }
      bool unreachable = false;
      *exit_code = DeployToCluster(*host, r->spec, lo.files, *dflags, &unreachable);
      if (!unreachable) return;
      if (!dflags->dry_run) {
        std::cerr << "error: no shoal daemon answers at "
                  << (host->empty() ? std::string("the default socket") : *host)
                  << "; start one (shoal daemon --dev) or pass --host\n";
        *exit_code = 1;
        return;
      }
      std::cerr << "note: no cluster reachable; planning against an empty cluster\n";
      *exit_code = PrintPlan(plan::Diff(nullptr, r->spec), dflags->format);
    });
  }
}

}  // namespace shoal::cli
