// `shoal daemon --dev --executor docker` end to end: a stack of two services
// on a stack network, with a config, a secret and a healthcheck, deployed
// through the CLI; one service reaches the other by name; a killed container
// is replaced; `stack rm` leaves no container and no network behind. And two
// nodes of one cluster sharing the engine: a stack of several services with
// a network, a secret, a config, a named volume, ingress and host ports and a
// healthcheck; a replaced container, an adopting restart, `stack rm --volumes`.
// And the routing mesh: an ingress port answers on a node that runs no task
// of the service (each node on its own --ingress-addr).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <optional>

#include "create.h"
#include "docker_test_util.h"

extern char** environ;

namespace shoal::executor::dtest {
namespace {

struct CmdResult {
  int code = -1;
  std::string out;
};

// Runs a shell command line; its stdout and stderr together.
CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The daemon as a child process, ended with SIGTERM (a dev daemon then stops
// its tasks), SIGKILL if it does not go within 30 s.
class Daemon {
 public:
  Daemon(const fs::path& dir, const std::vector<std::string>& args) : dir_(dir) {
    std::vector<std::string> argv = {SHOAL_BINARY, "daemon"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, (dir / "daemon.out").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, (dir / "daemon.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, SHOAL_BINARY, &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Daemon() { Stop(); }
  bool WaitReady() {
    return Eventually(
        [&] { return ReadFile(dir_ / "daemon.out").find("READY") != std::string::npos; }, 30s);
  }
  std::string Log() const { return ReadFile(dir_ / "daemon.log"); }
  // As a crash: no clean shutdown, containers left running.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    bool gone = Eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, 30s);
    if (!gone) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

// The stack files' common parts: `web` serves index.html (a config) on an
// ingress port with a healthcheck; `cli` prints its secret and fetches web
// by name; the config and secret they use, from files beside the stack.
constexpr const char* kWebService = R"(  web:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    configs:
      - source: index
        target: /www/index.html
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 500ms
    ports:
      - "${INGRESS_PORT}:8080"
    deploy:
      replicas: 2
      restart_policy: {condition: any, delay: 0s}
)";
constexpr const char* kCliService = R"(  cli:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo \"key=$$(cat /run/secrets/key)\"; wget -qO- http://web:8080/; sleep 0.5 & wait; done"]
    secrets:
      - source: key
        mode: 0400
)";
constexpr const char* kStackFiles = R"(configs:
  index:
    file: ./index.html
secrets:
  key:
    file: ./key.txt
)";

std::vector<std::string> StackContainers(const std::string& stack, bool running_only) {
  const std::string filters =
      std::string(R"({"label":[")") + docker::kLabelStack + "=" + stack + R"("]})";
  auto r = Client().Call("GET", std::string("/containers/json?all=") + (running_only ? "0" : "1") +
                                    "&filters=" + docker::UrlEncode(filters));
  std::vector<std::string> ids;
  if (!r.ok() || r->status != 200) return ids;
  size_t pos = 0;
  while ((pos = r->body.find("\"Id\":\"", pos)) != std::string::npos) {
    ids.push_back(r->body.substr(pos + 6, 64));
    pos += 6;
  }
  return ids;
}

// Removes what a test's stack left on the engine (containers, networks, volumes)
// when the test ends, passed or failed: a failed REQUIRE skips the test's own
// clean-up, and a network left behind would hold its subnet against the next
// cluster made on this engine (each cluster allocates from the same pool).
struct StackLeftovers {
  std::string stack;
  ~StackLeftovers() {
    for (const auto& id : StackContainers(stack, false)) {
      (void)Client().Call("DELETE", "/containers/" + id + "?force=1");
    }
    const std::string filters =
        std::string(R"({"label":[")") + docker::kLabelStack + "=" + stack + R"("]})";
    auto r = Client().Call("GET", "/networks?filters=" + docker::UrlEncode(filters));
    if (!r.ok() || r->status != 200) return;
    size_t pos = 0;
    while ((pos = r->body.find("\"Id\":\"", pos)) != std::string::npos) {
      (void)Client().Call("DELETE", "/networks/" + r->body.substr(pos + 6, 64));
      pos += 6;
    }
    for (const char* v : {"_data", "_cache"})
      (void)Client().Call("DELETE", "/volumes/" + stack + v);
  }
};

TEST_CASE("docker: shoal daemon --dev --executor docker runs a stack of containers",
          "[docker][daemon]") {
  const std::string stack = "dd" + std::to_string(getpid());
  StackLeftovers leftovers{stack};
  const fs::path dir = fs::temp_directory_path() / ("shoal-dtest-daemon-" + stack);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "index.html") << "hello from a container\n";
  std::ofstream(dir / "key.txt") << "k3y\n";
  std::ofstream(dir / "stack.yml") << "name: " << stack << R"(
services:
)" << kWebService << kCliService << R"(    volumes:
      - data:/data
)" << kStackFiles << R"(volumes:
  data: {}
)";
  const std::string sock = (dir / "shoal.sock").string();
  Daemon d(dir, {"--dev", "--executor", "docker", "--docker-host", EngineHost(), "--socket", sock});
  REQUIRE(d.WaitReady());
  CHECK(d.Log().find("executor docker") != std::string::npos);
  const std::string cli = std::string("SHOAL_HOST=unix://") + sock + " " + SHOAL_BINARY + " ";

  const int ingress_port = 20000 + (getpid() + 7919) % 20000;
  CmdResult r = Sh("INGRESS_PORT=" + std::to_string(ingress_port) + " " + cli +
                   "deploy --timeout 60 " + (dir / "stack.yml").string());
  INFO(r.out << "\n" << d.Log());
  REQUIRE(r.code == 0);
  CHECK(r.out.find("converged") != std::string::npos);
  CHECK(StackContainers(stack, true).size() == 3);

  // cli reaches web by its service name, and reads its secret.
  CHECK(Eventually(
      [&] {
        std::string logs = Sh(cli + "service logs " + stack + "_cli").out;
        return logs.find("hello from a container") != std::string::npos &&
               logs.find("key=k3y") != std::string::npos;
      },
      20s));

  // The ingress port answers from a task.
  CHECK(Eventually(
      [&] { return HttpGet(ingress_port).find("hello from a container") != std::string::npos; },
      10s));

  // A killed container is replaced.
  std::vector<std::string> before = StackContainers(stack, true);
  REQUIRE_FALSE(before.empty());
  REQUIRE(Client().Call("POST", "/containers/" + before[0] + "/kill?signal=SIGKILL")->status ==
          204);
  CHECK(Eventually(
      [&] {
        auto now = StackContainers(stack, true);
        return now.size() == 3 && std::find(now.begin(), now.end(), before[0]) == now.end();
      },
      30s));

  r = Sh(cli + "stack rm " + stack);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(Eventually([&] { return StackContainers(stack, false).empty(); }, 30s));
  CHECK(Eventually(
      [&] {
        auto n = Client().Call("GET", "/networks/" + stack + "_default");
        return n.ok() && n->status == 404;
      },
      20s));
  // Named volumes outlive `stack rm` (their data is the user's) unless
  // --volumes says otherwise (the two-node test).
  auto vol = Client().Call("GET", "/volumes/" + stack + "_data");
  REQUIRE(vol.ok());
  CHECK(vol->status == 200);
  d.Stop();
  for (const auto& id : StackContainers(stack, false)) {
    (void)Client().Call("DELETE", "/containers/" + id + "?force=1");
  }
  fs::remove_all(dir);
}

// The node ids of the stack's running containers (the executor's label).
std::map<std::string, int> ContainersPerNode(const std::string& stack) {
  std::map<std::string, int> per_node;
  for (const std::string& id : StackContainers(stack, true)) {
    auto r = Client().Call("GET", "/containers/" + id + "/json");
    if (!r.ok() || r->status != 200) continue;
    const std::string key = std::string("\"") + docker::kLabelNode + "\":\"";
    size_t pos = r->body.find(key);
    if (pos == std::string::npos) continue;
    pos += key.size();
    per_node[r->body.substr(pos, r->body.find('"', pos) - pos)]++;
  }
  return per_node;
}

// Two daemons of one cluster on the shared engine, n1 the manager and n2 a
// worker that joined it, with their data and sockets under `dir`.
// `ingress_addr` gives a node its own --ingress-addr (as two hosts would
// have), else the default. REQUIREs each step.
struct TwoNodes {
  TwoNodes(const std::string& stack, const std::string& what,
           std::map<std::string, std::string> ingress = {})
      : stack(stack),
        dir(fs::temp_directory_path() / ("shoal-dtest-" + what + "-" + stack)),
        ingress_addr(std::move(ingress)) {
    fs::remove_all(dir);
    fs::create_directories(dir / "n1");
    fs::create_directories(dir / "n2");
    n1.emplace(dir / "n1", Args("n1"));
    REQUIRE(n1->WaitReady());
    const std::string ready = ReadFile(dir / "n1" / "daemon.out");
    const int port = std::stoi(ready.substr(ready.find("READY ") + 6));
    REQUIRE(
        Sh(Cli("n1") + "cluster init --advertise-addr 127.0.0.1:" + std::to_string(port)).code ==
        0);
    CmdResult token = Sh(Cli("n1") + "cluster join-token worker");
    INFO(token.out);
    const size_t at = token.out.find("SHOAL-1-");
    REQUIRE(at != std::string::npos);
    const std::string t = token.out.substr(at, token.out.find_first_of(" \n", at) - at);
    n2.emplace(dir / "n2", Args("n2"));
    REQUIRE(n2->WaitReady());
    CmdResult join =
        Sh(Cli("n2") + "cluster join --token " + t + " 127.0.0.1:" + std::to_string(port));
    INFO(join.out << "\n" << n2->Log());
    REQUIRE(join.code == 0);
  }
  // The daemon flags of node `n` (also to start it again).
  std::vector<std::string> Args(const std::string& n) const {
    std::vector<std::string> args = {"--data-dir",    (dir / n / "data").string(),
                                     "--listen",      "127.0.0.1:0",
                                     "--hostname",    stack + "-" + n,
                                     "--executor",    "docker",
                                     "--docker-host", EngineHost(),
                                     "--socket",      (dir / n / "shoal.sock").string()};
    if (auto it = ingress_addr.find(n); it != ingress_addr.end()) {
      args.insert(args.end(), {"--ingress-addr", it->second});
    }
    return args;
  }
  // The CLI of node `n`, ready for its arguments.
  std::string Cli(const std::string& n) const {
    return std::string("SHOAL_HOST=unix://") + (dir / n / "shoal.sock").string() + " " +
           SHOAL_BINARY + " ";
  }

  const std::string stack;
  const fs::path dir;
  const std::map<std::string, std::string> ingress_addr;
  std::optional<Daemon> n1, n2;
};

TEST_CASE("docker: two nodes of one cluster share an engine, each running its own tasks",
          "[docker][daemon]") {
  const std::string stack = "dn" + std::to_string(getpid());
  StackLeftovers leftovers{stack};
  TwoNodes nodes(stack, "nodes");
  const fs::path& dir = nodes.dir;
  Daemon& n1 = *nodes.n1;
  Daemon& n2 = *nodes.n2;
  auto cli = [&](const std::string& n) { return nodes.Cli(n); };

  std::ofstream(dir / "index.html") << "hello from a container\n";
  std::ofstream(dir / "key.txt") << "k3y\n";
  std::ofstream(dir / "stack.yml") << "name: " << stack << R"(
services:
  app:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    deploy:
      replicas: 4
      restart_policy: {condition: any, delay: 0s}
    volumes:
      - cache:/cache
)" << kWebService << R"(  edge:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8081 -h /www & wait"]
    configs:
      - source: index
        target: /www/index.html
    ports:
      - target: 8081
        published: ${HOST_PORT}
        mode: host
)" << kCliService << kStackFiles << R"(volumes:
  cache: {}
)";
  const int ingress_port = 20000 + (getpid() + 4001) % 20000;
  const int host_port = 20000 + (getpid() + 9001) % 20000;
  const std::string env =
      "INGRESS_PORT=" + std::to_string(ingress_port) + " HOST_PORT=" + std::to_string(host_port);
  CmdResult r = Sh(env + " " + cli("n1") + "deploy --timeout 90 " + (dir / "stack.yml").string());
  INFO(r.out << "\n" << n1.Log() << "\n" << n2.Log());
  REQUIRE(r.code == 0);
  // Spread over the two nodes, each node's containers labelled with its id.
  auto per_node = ContainersPerNode(stack);
  REQUIRE(per_node.size() == 2);
  int total = 0;
  for (const auto& [node, n] : per_node) total += n;
  CHECK(total == 8);

  // cli reaches web by name (one engine: the nodes share the stack's
  // bridge) and reads its secret; the ingress and host ports answer.
  CHECK(Eventually(
      [&] {
        std::string logs = Sh(cli("n1") + "service logs " + stack + "_cli").out;
        return logs.find("hello from a container") != std::string::npos &&
               logs.find("key=k3y") != std::string::npos;
      },
      30s));
  CHECK(Eventually(
      [&] { return HttpGet(ingress_port).find("hello from a container") != std::string::npos; },
      20s));
  CHECK(Eventually(
      [&] { return HttpGet(host_port).find("hello from a container") != std::string::npos; }, 20s));

  // A container killed on one node is replaced; the others are untouched.
  std::vector<std::string> before = StackContainers(stack, true);
  REQUIRE(before.size() == 8);
  REQUIRE(Client().Call("POST", "/containers/" + before[0] + "/kill?signal=SIGKILL")->status ==
          204);
  CHECK(Eventually(
      [&] {
        auto now = StackContainers(stack, true);
        return now.size() == 8 && std::find(now.begin(), now.end(), before[0]) == now.end();
      },
      30s));
  int kept = 0;
  for (const std::string& id : StackContainers(stack, true)) {
    kept += std::find(before.begin(), before.end(), id) != before.end();
  }
  CHECK(kept == 7);

  // The worker's daemon dies and comes back: it adopts its containers (the
  // same ones keep running) and starts no second copy.
  const std::vector<std::string> running = StackContainers(stack, true);
  n2.Kill();
  Daemon n2b(dir / "n2", nodes.Args("n2"));
  REQUIRE(n2b.WaitReady());
  // For 6 s (several heartbeats and the agent's reconnect) the same eight
  // containers run: nothing is stopped, started twice or replaced.
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  CHECK_FALSE(
      Eventually([&] { return sorted(StackContainers(stack, true)) != sorted(running); }, 6s));
  INFO(n2b.Log());
  CHECK(StackContainers(stack, true).size() == 8);

  REQUIRE(Client().Call("GET", "/volumes/" + stack + "_cache")->status == 200);
  r = Sh(cli("n1") + "stack rm --volumes " + stack);
  CHECK(r.code == 0);
  CHECK(Eventually([&] { return StackContainers(stack, false).empty(); }, 30s));
  // Both nodes used the volume (one engine): the last removal deletes it.
  CHECK(Eventually(
      [&] {
        auto v = Client().Call("GET", "/volumes/" + stack + "_cache");
        auto n = Client().Call("GET", "/networks/" + stack + "_default");
        return v.ok() && v->status == 404 && n.ok() && n->status == 404;
      },
      20s));
  // No secret file is left on the tmpfs of either node.
  for (const auto& [node, n] : per_node) {
    const fs::path secrets = fs::path("/dev/shm") / ("shoal-docker-" + node);
    CHECK((!fs::exists(secrets) || fs::is_empty(secrets)));
  }
  n2b.Stop();
  n1.Stop();
  fs::remove_all(dir);
}

// Whether ip:port refuses a connection (nothing listens there).
bool Refused(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  bool refused = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0;
  close(fd);
  return refused;
}

TEST_CASE("docker: an ingress port answers on every node, also where no task runs",
          "[docker][daemon][ingress]") {
  const std::string stack = "dm" + std::to_string(getpid());
  StackLeftovers leftovers{stack};
  // Each node serves ingress ports on its own loopback address, as two
  // hosts would on theirs.
  const std::map<std::string, std::string> addr = {{"n1", "127.0.0.2"}, {"n2", "127.0.0.3"}};
  TwoNodes nodes(stack, "mesh", addr);
  const fs::path& dir = nodes.dir;
  Daemon& n1 = *nodes.n1;
  Daemon& n2 = *nodes.n2;
  auto cli = [&](const std::string& n) { return nodes.Cli(n); };

  // One replica, pinned to n1.
  // Below the ephemeral range the engine picks host ports from (32768-).
  const int ingress_port = 20000 + (getpid() + 12007) % 12000;
  std::ofstream(dir / "stack.yml") << "name: " << stack << R"(
services:
  web:
    image: shoal-busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /www; echo hello from the mesh > /www/index.html; httpd -f -p 8080 -h /www & wait"]
    ports:
      - ")" << ingress_port << R"(:8080"
    deploy:
      replicas: 1
      restart_policy: {condition: any, delay: 0s}
      placement:
        constraints: ["node.hostname == )"
                                   << stack << R"(-n1"]
)";
  CmdResult r = Sh(cli("n1") + "deploy --timeout 60 " + (dir / "stack.yml").string());
  INFO(r.out << "\n" << n1.Log() << "\n" << n2.Log());
  REQUIRE(r.code == 0);
  auto per_node = ContainersPerNode(stack);
  REQUIRE(per_node.size() == 1);

  // n2 runs no task of web, yet its ingress address answers (forwarded to
  // n1's task through the host port n1's engine bound); so does n1's.
  auto answers = [&](const std::string& n) {
    return HttpGet(addr.at(n), ingress_port).find("hello from the mesh") != std::string::npos;
  };
  CHECK(Eventually([&] { return answers("n2"); }, 20s));
  CHECK(Eventually([&] { return answers("n1"); }, 10s));

  // The task's container is killed: the replacement (on n1 again) is
  // reachable through n2 as well.
  std::vector<std::string> before = StackContainers(stack, true);
  REQUIRE(before.size() == 1);
  REQUIRE(Client().Call("POST", "/containers/" + before[0] + "/kill?signal=SIGKILL")->status ==
          204);
  CHECK(Eventually(
      [&] {
        auto now = StackContainers(stack, true);
        return now.size() == 1 && now[0] != before[0];
      },
      30s));
  CHECK(Eventually([&] { return answers("n2"); }, 20s));
  CHECK(answers("n1"));

  // The service goes: the port stops listening on every node.
  r = Sh(cli("n1") + "stack rm " + stack);
  CHECK(r.code == 0);
  CHECK(Eventually([&] { return Refused(addr.at("n1"), ingress_port); }, 30s));
  CHECK(Eventually([&] { return Refused(addr.at("n2"), ingress_port); }, 30s));
  CHECK(Eventually([&] { return StackContainers(stack, false).empty(); }, 30s));
  n2.Stop();
  n1.Stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shoal::executor::dtest
