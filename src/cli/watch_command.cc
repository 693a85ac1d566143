// `shoal watch`: GitOps (design.md section 7, docs/gitops.md). Keeps the
// cluster true to a directory or a git repository: each change of the source,
// each poll, and each signed webhook call runs one gitops::Sync.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "client.h"
#include "commands.h"
#include "shoal/common/units.h"
#include "shoal/gitops/source.h"
#include "shoal/gitops/state.h"
#include "shoal/gitops/sync.h"
#include "shoal/gitops/webhook.h"
#include "shoal/stack/loader.h"
#include "watch_deployer.h"

namespace shoal::cli {
namespace {
namespace fs = std::filesystem;

struct WatchFlags {
  std::string source;
  std::string ref;
  bool once = false;
  bool dry_run = false;
  bool prune = false;
  bool self_heal = false;
  std::string interval = "30s";
  std::string debounce = "500ms";
  std::string webhook_listen;
  std::string webhook_secret_file;
  std::string state_dir;  // default: <data dir>/watch
  int timeout_s = 300;
};

std::string Timestamp() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%H:%M:%S");
  return out.str();
}

void Log(const std::string& line) { std::cout << Timestamp() << " " << line << "\n" << std::flush; }

bool IsGit(const std::string& source) {
  std::error_code ec;
  if (source.find("://") != std::string::npos || source.ends_with(".git")) return true;
  if (source.find('@') != std::string::npos && source.find(':') != std::string::npos) return true;
  // A local path: a repository if it has .git (or is a bare one).
  return fs::exists(fs::path(source) / ".git", ec) || fs::exists(fs::path(source) / "HEAD", ec);
}

// One directory per source under the state dir: the watch state, and for git
// the clone. Named by a digest of the source's description, so two watchers
// of different sources never share one.
std::string SourceDir(const WatchFlags& f, const std::string& describe) {
  return (fs::path(f.state_dir) / gitops::SourceKey(describe)).string();
}

void PrintReport(const gitops::SyncReport& r, const gitops::Snapshot& snap, bool dry_run) {
  if (!r.error.empty()) Log("error: " + r.error);
  for (const gitops::StackReport& s : r.stacks) {
    std::string line = "stack " + s.name + ": " + gitops::OutcomeName(s.outcome);
    if (s.outcome == gitops::Outcome::kDeployed) {
      line += " revision " + std::to_string(s.revision) + " from " + snap.revision.substr(0, 12);
    }
    if (!s.error.empty()) line += ": " + s.error;
    Log(line);
    if (dry_run && s.outcome == gitops::Outcome::kDrift && !s.plan_text.empty()) {
      std::cout << s.plan_text << (s.plan_text.ends_with("\n") ? "" : "\n");
    }
  }
}

int RunWatch(const std::string& host, WatchFlags f) {
  auto interval = ParseDuration(f.interval);
  auto debounce = ParseDuration(f.debounce);
  if (!interval.ok() || !debounce.ok()) {
    std::cerr << "error: --interval/--debounce: "
              << (!interval.ok() ? interval.error() : debounce.error()).message() << "\n";
    return 1;
  }
  if (f.state_dir.empty()) f.state_dir = DefaultDataDir() + "/watch";

  // Signals go to one thread that stops the loop and wakes its wait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const bool git = IsGit(f.source);
  std::string describe =
      (git ? "git " : "directory ") + f.source + (f.ref.empty() ? "" : "@" + f.ref);
  const std::string dir = SourceDir(f, describe);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::cerr << "error: " << dir << ": " << ec.message() << "\n";
    return 1;
  }
  Result<std::unique_ptr<gitops::Source>> opened =
      git ? gitops::OpenGit({f.source, f.ref, dir + "/git"})
          : gitops::OpenDirectory({f.source, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::nanoseconds(*debounce))});
  if (!opened.ok()) {
    std::cerr << "error: " << opened.error().message() << "\n";
    return 1;
  }
  gitops::Source& source = **opened;

  const std::string state_path = dir + "/watch-state.json";
  gitops::WatchState state;
  if (auto loaded = gitops::LoadWatchState(state_path); loaded.ok()) {
    state = std::move(*loaded);
  } else {
    Log("warning: " + loaded.error().message() + "; starting with an empty state");
  }
  state.source = source.Describe();

  // Set by the webhook: a sync in progress stops its drift checks early.
  std::atomic<bool> triggered{false};
  std::unique_ptr<gitops::WebhookServer> webhook;
  if (!f.webhook_listen.empty()) {
    std::ifstream in(f.webhook_secret_file);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (f.webhook_secret_file.empty() || !in) {
      std::cerr << "error: --webhook-listen needs --webhook-secret-file with the shared secret\n";
      return 1;
    }
    gitops::WebhookOptions wo;
    wo.listen = f.webhook_listen;
    wo.secret = secret;
    wo.on_trigger = [&source, &triggered] {
      triggered = true;
      source.Interrupt();
    };
    wo.log = Log;
    auto started = gitops::StartWebhook(wo);
    if (!started.ok()) {
      std::cerr << "error: " << started.error().message() << "\n";
      return 1;
    }
    webhook = std::move(*started);
    Log("webhook listening on port " + std::to_string(webhook->port()));
  }

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stop = true;
    source.Interrupt();
  });

  auto deployer = NewControlDeployer(host, f.timeout_s);
  gitops::SyncOptions so;
  so.dry_run = f.dry_run;
  so.prune = f.prune;
  so.self_heal = f.self_heal;
  so.environment = stack::ProcessEnvironment();
  so.log = Log;
  so.interrupted = [&triggered] { return triggered.load(); };

  Log("watching " + source.Describe() + (f.once ? " (once)" : ", every " + f.interval));
  int code = 0;
  while (!stop) {
    triggered = false;  // this fetch serves every trigger so far
    auto snap = source.Fetch();
    if (!snap.ok()) {
      // The last deployed state stays; the next poll tries again.
      Log("error: " + snap.error().message());
      code = 1;
    } else {
      for (const std::string& w : snap->warnings) Log("warning: " + w);
      if (snap->revision != state.last_revision) {
        Log("source at " + snap->revision.substr(0, 12) +
            (snap->source.message().empty() ? "" : " \"" + snap->source.message() + "\""));
      }
      gitops::SyncReport report = gitops::Sync(*snap, *deployer, so, state);
      PrintReport(report, *snap, f.dry_run);
      if (!f.dry_run) {
        if (Status s = gitops::SaveWatchState(state_path, state); !s.ok()) {
          Log("error: saving the watch state: " + s.message());
        }
      }
      code = report.ExitCode();
    }
    if (f.once) break;
    source.WaitForChange(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(*interval)));
  }
  webhook.reset();
  if (!stop) ::kill(::getpid(), SIGTERM);  // ends the signal thread (the signal is blocked)
  signal_thread.join();
  return f.once ? code : 0;
}

int RunWatchStatus(const std::string& state_dir_flag) {
  const std::string root = state_dir_flag.empty() ? DefaultDataDir() + "/watch" : state_dir_flag;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    std::cout << "no watcher has run here (" << root << ")\n";
    return 0;
  }
  std::cout << std::left << std::setw(16) << "STACK" << std::setw(13) << "STATE" << std::setw(14)
            << "COMMIT" << std::setw(10) << "REVISION" << std::setw(16) << "UPDATED"
            << "LAST ERROR\n";
  int code = 0;
  for (const fs::directory_entry& d : fs::directory_iterator(root, ec)) {
    auto st = gitops::LoadWatchState((d.path() / "watch-state.json").string());
    if (!st.ok()) {
      std::cerr << "error: " << st.error().message() << "\n";
      code = 1;
      continue;
    }
    if (st->source.empty()) continue;
    std::cout << "# " << st->source << "\n";
    for (const auto& [name, s] : st->stacks) {
      std::string error = s.last_error.substr(0, s.last_error.find('\n'));
      std::cout << std::setw(16) << name << std::setw(13) << gitops::SyncStateName(s.state)
                << std::setw(14) << s.commit.substr(0, 12) << std::setw(10) << s.revision
                << std::setw(16) << Ago(s.time_ns) << error << "\n";
    }
  }
  return code;
}

}  // namespace

void AddWatchCommands(CLI::App& app, const std::string* host, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "watch",
      "Deploy the stacks of a directory or git repository and keep the cluster true to it");
  auto f = std::make_shared<WatchFlags>();
  cmd->add_option("SOURCE", f->source, "A directory, or a git URL or repository path");
  cmd->add_option("--ref", f->ref, "Branch, tag or commit to follow (default: the default branch)");
  cmd->add_flag("--once", f->once, "Sync once and exit: 0 in sync, 2 drift, 1 errors");
  cmd->add_flag("--dry-run", f->dry_run, "Plan only: deploy and remove nothing");
  cmd->add_flag("--prune", f->prune, "Remove stacks this source deployed that it no longer holds");
  cmd->add_flag("--self-heal", f->self_heal, "Also undo manual changes (drift) to the stacks");
  cmd->add_option("--interval", f->interval, "Poll interval")->capture_default_str();
  cmd->add_option("--debounce", f->debounce, "Quiet time after file events (directories)")
      ->capture_default_str();
  cmd->add_option("--webhook-listen", f->webhook_listen,
                  "Serve a push webhook on HOST:PORT (HMAC-SHA256 signed)");
  cmd->add_option("--webhook-secret-file", f->webhook_secret_file,
                  "File holding the webhook's shared secret");
  cmd->add_option("--state-dir", f->state_dir, "Where the watcher keeps its state and clones");
  cmd->add_option("--timeout", f->timeout_s, "Seconds to wait for each deploy to converge")
      ->capture_default_str();

  auto* status = cmd->add_subcommand("status", "Show what each watched stack last did");
  status->add_option("--state-dir", f->state_dir, "Where the watcher keeps its state");
  status->callback([f, exit_code] { *exit_code = RunWatchStatus(f->state_dir); });

  cmd->callback([cmd, f, host, exit_code] {
    if (cmd->got_subcommand("status")) return;
    if (f->source.empty()) {
      std::cerr << "error: watch: SOURCE is required (a directory or a git URL)\n";
      *exit_code = 1;
      return;
    }
    *exit_code = RunWatch(*host, *f);
  });
}

}  // namespace shoal::cli
