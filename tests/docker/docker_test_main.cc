// The main of shoal_docker_tests: runs the tests when the CTest fixture's
// engine is up, and otherwise says why they are skipped and exits 77, which
// CTest reports as "Skipped" (SKIP_RETURN_CODE), never as a silent pass.

#define CATCH_CONFIG_RUNNER
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <iostream>

#include "create.h"
#include "docker_test_util.h"

namespace shoal::executor::dtest {

std::string EngineHost() {
  std::ifstream in(fs::path(SHOAL_DOCKER_ENGINE_DIR) / "engine.env");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("DOCKER_HOST=", 0) == 0) return line.substr(12);
  }
  return "";
}

std::string EngineUnavailableReason() {
  std::ifstream in(fs::path(SHOAL_DOCKER_ENGINE_DIR) / "unavailable");
  std::string reason;
  std::getline(in, reason);
  return reason.empty() ? "tests/docker/setup_engine.sh " SHOAL_DOCKER_ENGINE_DIR " did not run"
                        : reason;
}

Env::Env(const std::string& name) : node(NodeId(name)) {
  dir = fs::temp_directory_path() / ("shoal-dtest-" + node);
  fs::remove_all(dir);
  fs::create_directories(dir);
}

Env::~Env() {
  // Whatever the test left on the engine goes, so tests stay independent.
  auto client = Client();
  for (const auto& id : NodeContainers(node)) {
    (void)client.Call("DELETE", "/containers/" + id + "?force=1");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::remove_all(fs::path("/dev/shm") / ("shoal-docker-" + node), ec);
}

DockerOptions Env::Options() const {
  DockerOptions o;
  o.host = EngineHost();
  o.node_id = node;
  o.state_dir = dir / "docker";
  return o;
}

std::unique_ptr<DockerExecutor> Env::Open() const {
  auto ex = DockerExecutor::Open(Options());
  if (!ex.ok()) FAIL("DockerExecutor::Open: " << ex.error().message());
  return std::move(ex).value();
}

void StopAndRemove(Executor& ex, const std::string& id) {
  REQUIRE(ex.Stop(id, 0s).ok());
  WaitState(ex, id, v1::TASK_COMPLETE);
  REQUIRE(ex.Remove(id).ok());
}

std::vector<std::string> NodeContainers(const std::string& node) {
  const std::string filters =
      std::string(R"({"label":[")") + docker::kLabelNode + "=" + node + R"("]})";
  auto r = Client().Call("GET", "/containers/json?all=1&filters=" + docker::UrlEncode(filters));
  std::vector<std::string> ids;
  if (!r.ok() || r->status != 200) return ids;
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  if (d.HasParseError() || !d.IsArray()) return ids;
  for (const auto& v : d.GetArray()) ids.push_back(v["Id"].GetString());
  return ids;
}

std::string HttpGet(int port) { return HttpGet("127.0.0.1", port); }

std::string HttpGet(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

bool Eventually(const std::function<bool()>& until, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!until()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace shoal::executor::dtest

int main(int argc, char** argv) {
  using namespace shoal::executor;
  if (dtest::EngineHost().empty()) {
    std::cout << "SKIPPED: the Docker tests need a Docker Engine, and none could be started: "
              << dtest::EngineUnavailableReason() << "\n";
    return 77;
  }
  shoal::Status s = ProbeDockerEngine(dtest::EngineHost());
  if (!s.ok()) {
    std::cout << "SKIPPED: the test engine does not answer: " << s.message() << "\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
