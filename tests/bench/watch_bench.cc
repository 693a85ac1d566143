// GitOps benchmark (issue 7, item 8): a local git repository of S stacks of
// 5 services each, watched by `shoal watch` against a one-node cluster with
// the process executor. Prints the time from a commit that changes one stack
// (announced through the signed webhook) until that stack's new revision
// runs, and the idle watcher's CPU and memory over a period.
//
//   shoal_watch_bench [stacks=200] [idle_seconds=60] [monitor=0s]
//
// Not a test: it prints what it measured.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including
// <utility>, so <utility> must come first, unsorted.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include "proc_stats.h"
#include "shoal/gitops/webhook.h"
#include "shoal_cluster.h"

namespace {

using shoal::testing::ChildProcess;
using shoal::testing::ShoalCluster;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

bool Sh(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

bool Git(const fs::path& repo, const std::string& args) {
  return Sh("cd '" + repo.string() +
            "' && git -c user.name=Bench -c user.email=b@example.test -c init.defaultBranch=main "
            "-c commit.gpgsign=false " +
            args + " >/dev/null 2>&1");
}

// `monitor`: the update's monitor period, which a rollout waits out before
// it counts as complete (and the watcher reports the revision running).
std::string StackYaml(const ShoalCluster& c, const std::string& version,
                      const std::string& monitor) {
  std::string y = "services:\n";
  for (int i = 1; i <= 5; ++i) {
    y += "  s" + std::to_string(i) +
         ":\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
         c.marker() + "\"]\n    environment:\n      VERSION: \"" + version +
         "\"\n    deploy:\n      update_config:\n        monitor: " + monitor + "\n";
  }
  return y;
}

int Post(int port, const std::string& secret) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  boost::system::error_code ec;
  stream.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return -1;
  http::request<http::string_body> req(http::verb::post, "/", 11);
  req.set(http::field::host, "localhost");
  req.set("X-Hub-Signature-256", "sha256=" + shoal::gitops::Sign(secret, "{}"));
  req.body() = "{}";
  req.prepare_payload();
  http::write(stream, req, ec);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res, ec);
  return ec ? -1 : static_cast<int>(res.result_int());
}

// Reads the watcher's log until a line holds `needle` or the deadline passes.
bool WaitFor(ChildProcess& p, const std::string& needle, Clock::duration limit,
             std::string* line_out = nullptr) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    auto line = p.ReadLine(std::chrono::seconds(1));
    if (line && line->find(needle) != std::string::npos) {
      if (line_out) *line_out = *line;
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int stacks = argc > 1 ? std::atoi(argv[1]) : 200;
  const int idle_s = argc > 2 ? std::atoi(argv[2]) : 60;
  const std::string monitor = argc > 3 ? argv[3] : "0s";
  ShoalCluster c;
  if (c.Start("n1") == 0 || c.Cli("n1", {"cluster", "init"}).code != 0) {
    std::cerr << "cannot start a one-node cluster\n";
    return 1;
  }
  const fs::path repo = c.dir() / "repo";
  fs::create_directories(repo);
  if (!Git(repo, "init -q")) return 1;
  auto name = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "st%03d", i);
    return std::string(buf);
  };
  for (int i = 0; i < stacks; ++i) {
    fs::create_directories(repo / "stacks" / name(i));
    std::ofstream(repo / "stacks" / name(i) / "stack.yml") << StackYaml(c, "1", monitor);
  }
  if (!Git(repo, "add -A") || !Git(repo, "commit -q -m initial")) return 1;
  const std::string secret_file = (c.dir() / "secret").string();
  std::ofstream(secret_file) << "bench-secret\n";

  auto watcher = ChildProcess::Spawn(
      {SHOAL_BINARY, "--host", "unix://" + c.Data("n1") + "/shoal.sock", "watch", repo.string(),
       "--state-dir", (c.dir() / "watch").string(), "--webhook-listen", "127.0.0.1:0",
       "--webhook-secret-file", secret_file, "--timeout", "600"});
  if (!watcher) return 1;
  std::string line;
  if (!WaitFor(*watcher, "webhook listening on port ", std::chrono::seconds(30), &line)) return 1;
  const int port = std::stoi(line.substr(line.find("port ") + 5));
  auto t0 = Clock::now();
  // The first sync deploys every stack, one after the other.
  if (!WaitFor(*watcher, "stack " + name(stacks - 1) + ": deployed", std::chrono::minutes(30))) {
    std::cerr << "the initial sync did not finish\n";
    return 1;
  }
  double initial_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "%d stacks x 5 services (%d tasks), update monitor %s: initial sync deployed them in "
      "%.1f s\n",
      stacks, stacks * 5, monitor.c_str(), initial_s);

  const int pid = watcher->pid();
  // Idle: no commits; the watcher polls every 30 s (its default) and plans
  // every stack against the cluster on each poll.
  double cpu0 = shoal::bench::CpuSeconds(pid);
  auto i0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(idle_s));
  double idle_cpu = shoal::bench::CpuSeconds(pid) - cpu0;
  double idle_wall = std::chrono::duration<double>(Clock::now() - i0).count();
  std::printf("idle watcher: %.2f s CPU over %.0f s = %.2f%% of a core, RSS %.1f MiB\n", idle_cpu,
              idle_wall, 100.0 * idle_cpu / idle_wall, shoal::bench::RssMiB(pid));

  for (int round = 2; round <= 4; ++round) {
    const std::string target = name((round * 37) % stacks);
    std::ofstream(repo / "stacks" / target / "stack.yml")
        << StackYaml(c, std::to_string(round), monitor);
    auto t1 = Clock::now();
    if (!Git(repo, "commit -q -am 'change " + target + "'")) return 1;
    int code = Post(port, "bench-secret");
    double cpu1 = shoal::bench::CpuSeconds(pid);
    if (!WaitFor(*watcher, "stack " + target + ": revision", std::chrono::minutes(2))) {
      std::cerr << "the change of " << target << " was not deployed\n";
      return 1;
    }
    double s = std::chrono::duration<double>(Clock::now() - t1).count();
    std::printf(
        "commit changing %s -> webhook (%d) -> its new revision runs: %.2f s (watcher CPU %.2f "
        "s)\n",
        target.c_str(), code, s, shoal::bench::CpuSeconds(pid) - cpu1);
  }
  std::printf("load average %s\n", shoal::bench::Load().c_str());
  return 0;
}
