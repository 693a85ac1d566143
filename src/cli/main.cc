// shoal: a declarative stack deployer and container orchestrator.

#include <CLI/CLI.hpp>

#include "client.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"shoal: deploy compose-style stacks to a cluster", "shoal"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shoal 0.1.0");
  std::string host;
  app.add_option("-H,--host", host,
                 "Daemon to talk to: unix:///path/shoal.sock or tcp://host:port "
                 "(default: $SHOAL_HOST, else the local daemon's socket)");
  shoal::cli::TlsFlags& tls = shoal::cli::GlobalTlsFlags();
  app.add_option("--tls-dir", tls.dir,
                 "For a tcp:// host: a dir with ca.pem, cert.pem and key.pem, as written by "
                 "`shoal cluster ca --issue-client` (default: $SHOAL_TLS_DIR)");
  app.add_option("--ca", tls.ca, "For a tcp:// host: the cluster's root certificate (PEM)");
  app.add_option("--cert", tls.cert, "For a tcp:// host: the client certificate (PEM)");
  app.add_option("--key", tls.key, "For a tcp:// host: the client key (PEM)");
  int exit_code = 0;
  shoal::cli::AddStackCommands(app, &host, &exit_code);
  shoal::cli::AddClusterCommands(app, &host, &exit_code);
  shoal::cli::AddWorkloadCommands(app, &host, &exit_code);
  shoal::cli::AddLifecycleCommands(app, &host, &exit_code);
  shoal::cli::AddWatchCommands(app, &host, &exit_code);
  shoal::cli::AddSecurityCommands(app, &host, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 exits 0 for --help and 106/109 for usage errors; usage errors are 1 here.
    int code = app.exit(e);
    return code == 0 ? 0 : 1;
  }
  return exit_code;
}
