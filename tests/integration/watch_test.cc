// Real-process tests of `shoal watch` (issue 7): a one-node cluster, stacks in
// a directory and in a git repository, drift, self-heal, pruning, a broken
// file, the webhook trigger, and a restarted watcher resuming.

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including
// <utility>, so <utility> must come first, unsorted.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on
#include <catch2/catch.hpp>

#include "shoal/gitops/webhook.h"
#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;
namespace http = boost::beast::http;

std::string Stack(const ShoalCluster& c, const std::string& greeting, int replicas) {
  return "services:\n"
         "  app:\n"
         "    image: busybox\n"
         "    command: [\"/bin/sh\", \"-c\", \"sleep 3600; echo " +
         c.marker() +
         "\"]\n"
         "    environment:\n"
         "      GREETING: " +
         greeting + "\n    deploy:\n      replicas: " + std::to_string(replicas) + "\n";
}

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

int Sh(const std::string& cmd) {
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void Git(const fs::path& repo, const std::string& args) {
  std::string cmd = "cd '" + repo.string() +
                    "' && git -c user.name=Tester -c user.email=t@example.test "
                    "-c init.defaultBranch=main -c commit.gpgsign=false " +
                    args + " >/dev/null 2>&1";
  INFO(cmd);
  REQUIRE(Sh(cmd) == 0);
}

int Post(uint16_t port, const std::string& secret, const std::string& body) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req(http::verb::post, "/", 11);
  req.set(http::field::host, "localhost");
  req.set("X-Hub-Signature-256", "sha256=" + gitops::Sign(secret, body));
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(stream, buf, res, ec);
  return ec ? -1 : static_cast<int>(res.result_int());
}

}  // namespace

TEST_CASE("watch a directory: deploy, drift, self-heal, a broken file, prune, status") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  const fs::path src = c.dir() / "src";
  const std::string state = (c.dir() / "watch-state").string();
  Write(src / "stacks/web/stack.yml", Stack(c, "hello", 1));
  Write(src / "stacks/api/stack.yml", Stack(c, "api", 1));
  auto watch = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"watch", src.string(), "--once", "--state-dir",
                                     state,   "--timeout",  "60"};
    args.insert(args.end(), extra.begin(), extra.end());
    return c.Cli("n1", args);
  };

  CliResult plan = watch({"--dry-run"});
  INFO(plan.out);
  CHECK(plan.code == 2);
  CHECK(plan.out.find("web_app") != std::string::npos);
  CHECK(c.Cli("n1", {"stack", "ls"}).out.find("web") == std::string::npos);

  CliResult first = watch({});
  INFO(first.out);
  REQUIRE(first.code == 0);
  CHECK(first.out.find("stack web: deployed revision 1") != std::string::npos);
  CHECK(c.CountTasks() == 2);
  CHECK(watch({"--dry-run"}).code == 0);

  // A manual change is drift: reported (exit 2), kept without --self-heal.
  REQUIRE(c.Cli("n1", {"service", "scale", "web_app=2"}).code == 0);
  CliResult drift = watch({});
  INFO(drift.out);
  CHECK(drift.code == 2);
  CHECK(drift.out.find("stack web: drift") != std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 3; }, seconds(30)));
  CliResult healed = watch({"--self-heal"});
  INFO(healed.out);
  CHECK(healed.code == 0);
  CHECK(Eventually([&] { return c.CountTasks() == 2; }, seconds(30)));

  // A syntax error fails that stack alone, names the place, and changes nothing.
  Write(src / "stacks/web/stack.yml", "services:\n  app:\n    image: [busybox\n");
  Write(src / "stacks/api/stack.yml", Stack(c, "api-v2", 1));
  CliResult broken = watch({});
  INFO(broken.out);
  CHECK(broken.code == 1);
  CHECK(broken.out.find("stacks/web/stack.yml:") != std::string::npos);
  CHECK(broken.out.find("stack api: deployed revision 2") != std::string::npos);
  CliResult status = c.Cli("n1", {"watch", "status", "--state-dir", state});
  INFO(status.out);
  CHECK(status.out.find("failed") != std::string::npos);
  CHECK(c.CountTasks() == 2);

  // Gone from the source: kept without --prune, removed with it.
  fs::remove_all(src / "stacks/web");
  CliResult kept = watch({});
  CHECK(kept.code == 2);
  CHECK(kept.out.find("stack web: not in source") != std::string::npos);
  CliResult pruned = watch({"--prune"});
  INFO(pruned.out);
  CHECK(pruned.code == 0);
  CHECK(pruned.out.find("stack web: removed") != std::string::npos);
  CHECK(Eventually([&] { return c.CountTasks() == 1; }, seconds(30)));
}

TEST_CASE("watch a git repository: a signed webhook deploys a new commit at once") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init"}).code == 0);
  const fs::path repo = c.dir() / "repo";
  fs::create_directories(repo);
  Git(repo, "init -q");
  Write(repo / "stacks/web/stack.yml", Stack(c, "one", 1));
  Git(repo, "add -A");
  Git(repo, "commit -q -m 'web: first'");
  const std::string secret_file = (c.dir() / "secret").string();
  Write(secret_file, "hook-secret\n");
  const std::string state = (c.dir() / "watch-state").string();

  auto watcher = ChildProcess::Spawn(
      {SHOAL_BINARY, "--host", "unix://" + c.Data("n1") + "/shoal.sock", "watch", repo.string(),
       "--interval", "10m", "--state-dir", state, "--webhook-listen", "127.0.0.1:0",
       "--webhook-secret-file", secret_file, "--timeout", "60"});
  REQUIRE(watcher);
  int port = 0;
  bool deployed = false;
  auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while ((!port || !deployed) && std::chrono::steady_clock::now() < deadline) {
    auto line = watcher->ReadLine(seconds(5));
    if (!line) continue;
    UNSCOPED_INFO(*line);
    if (auto p = line->find("webhook listening on port "); p != std::string::npos) {
      port = std::stoi(line->substr(p + 26));
    }
    if (line->find("stack web: deployed revision 1") != std::string::npos) deployed = true;
  }
  REQUIRE(port != 0);
  REQUIRE(deployed);

  Write(repo / "stacks/web/stack.yml", Stack(c, "two", 2));
  Git(repo, "commit -q -am 'web: two replicas'");
  CHECK(Post(static_cast<uint16_t>(port), "wrong-secret", "{}") == 401);
  CHECK(Post(static_cast<uint16_t>(port), "hook-secret", "{}") == 204);
  bool second = false;
  deadline = std::chrono::steady_clock::now() + seconds(60);
  while (!second && std::chrono::steady_clock::now() < deadline) {
    auto line = watcher->ReadLine(seconds(5));
    if (!line) continue;
    UNSCOPED_INFO(*line);
    if (line->find("stack web: deployed revision 2") != std::string::npos) second = true;
  }
  CHECK(second);  // long before the 10 minute poll
  CHECK(Eventually([&] { return c.CountTasks() == 2; }, seconds(30)));
  CliResult hist = c.Cli("n1", {"stack", "history", "web"});
  INFO(hist.out);
  CHECK(hist.out.find("two replicas") != std::string::npos);

  // SIGTERM stops it cleanly; a new run resumes from its state: in sync.
  ::kill(watcher->pid(), SIGTERM);
  CHECK(
      Eventually([&] { return !watcher->ReadLine(std::chrono::milliseconds(200)); }, seconds(10)));
  CliResult again = c.Cli("n1", {"watch", repo.string(), "--once", "--state-dir", state});
  INFO(again.out);
  CHECK(again.code == 0);
  CHECK(again.out.find("stack web: in sync") != std::string::npos);
}

}  // namespace shoal::testing
