#pragma once

// Real `shoal daemon` processes on loopback for the cluster tests: each node
// has its own data dir and socket under one temporary dir, and the `shoal`
// CLI is run against a node's socket. Daemons are killed by the destructor
// (and die with the test through PDEATHSIG); task processes are found by a
// marker in their command line and killed too.

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

namespace shoal::testing {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Whether `word` stands alone in `text` (a hostname column of `node ls`), not
// inside another word: node ids are random base-36, so one may hold "w1".
inline bool HasWord(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

template <class Pred>
inline bool Eventually(Pred pred, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return true;
}

struct CliResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

class ShoalCluster {
 public:
  ShoalCluster() {
    std::random_device rd;
    marker_ = "shoaltask" + std::to_string(rd());
    dir_ = fs::temp_directory_path() / ("shoal-it-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~ShoalCluster() {
    for (auto& [name, p] : nodes_) p.Kill();
    KillTasks();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A marker to put in task commands, so that the test can find (and kill)
  // the processes its tasks started.
  const std::string& marker() const { return marker_; }
  fs::path dir() const { return dir_; }

  // Starts `shoal daemon` for node `name`; returns its cluster port or 0.
  // `port` 0 picks a free one; a restart passes the old one, which the node's
  // identity advertises.
  int Start(const std::string& name, const std::vector<std::string>& extra = {}, int port = 0) {
    std::vector<std::string> argv = {SHOAL_BINARY, "daemon",   "--data-dir",
                                     Data(name),   "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--hostname", name,       "--executor",
                                     "process"};
    for (const auto& e : extra) argv.push_back(e);
    auto p = ChildProcess::Spawn(argv);
    if (!p) return 0;
    auto line = p->ReadLine(std::chrono::seconds(20));
    if (!line || line->rfind("READY ", 0) != 0) return 0;
    int bound = std::stoi(line->substr(6));
    ports_[name] = bound;
    nodes_.erase(name);
    nodes_.emplace(name, std::move(*p));
    return bound;
  }
  void Kill(const std::string& name) { nodes_.at(name).Kill(); }
  int port(const std::string& name) const { return ports_.at(name); }
  std::string addr(const std::string& name) const {
    return "127.0.0.1:" + std::to_string(ports_.at(name));
  }

  // Runs `shoal --host <name's socket> args...`.
  // `prefix` runs before the binary, e.g. "timeout 3" for a streaming verb.
  CliResult Cli(const std::string& name, const std::vector<std::string>& args,
                const std::string& prefix = "") const {
    std::vector<std::string> all = {"--host", "unix://" + Data(name) + "/shoal.sock"};
    all.insert(all.end(), args.begin(), args.end());
    return Run(all, prefix);
  }

  // Runs `shoal args...` as given (a remote CLI: --host tcp://... --tls-dir DIR).
  CliResult Run(const std::vector<std::string>& args, const std::string& prefix = "") const {
    std::string cmd = prefix + " " + std::string(SHOAL_BINARY);
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " 2>&1";
    CliResult r;
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    int status = pclose(f);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  // Writes a stack file under the test dir and returns its path.
  std::string WriteStack(const std::string& file, const std::string& yaml) const {
    fs::path p = dir_ / file;
    std::ofstream(p) << yaml;
    return p.string();
  }

  // Processes whose command line holds the marker (the tasks' processes).
  int CountTasks(const std::string& extra = "") const {
    // "[s]hoaltask..." matches the tasks but not this shell's own command line.
    std::string cmd =
        "pgrep -f '[" + marker_.substr(0, 1) + "]" + marker_.substr(1) + extra + "' | wc -l";
    FILE* f = popen(cmd.c_str(), "r");
    int n = 0;
    if (f) {
      if (fscanf(f, "%d", &n) != 1) n = 0;
      pclose(f);
    }
    return n;
  }
  void KillTasks() const {
    std::string cmd =
        "pkill -9 -f '[" + marker_.substr(0, 1) + "]" + marker_.substr(1) + "' >/dev/null 2>&1";
    (void)std::system(cmd.c_str());
  }

  std::string Data(const std::string& name) const { return (dir_ / name).string(); }
  // The node's TLS files (ca.pem, cert.pem, key.pem), as a --tls-dir.
  std::string Certs(const std::string& name) const { return Data(name) + "/certs"; }

 private:
  std::string marker_;
  fs::path dir_;
  std::map<std::string, ChildProcess> nodes_;
  std::map<std::string, int> ports_;
};

// The token line printed by `cluster init` / `join-token`.
inline std::string TokenFrom(const std::string& out, const std::string& role) {
  std::string key = "SHOAL-1-";
  size_t pos = 0;
  while ((pos = out.find(key, pos)) != std::string::npos) {
    size_t end = out.find_first_of(" \n", pos);
    std::string tok = out.substr(pos, end - pos);
    if (tok.find("-" + role + "-") != std::string::npos) return tok;
    pos = end;
  }
  return "";
}

}  // namespace shoal::testing
