// The ingress proxy (the routing mesh) without an engine: listeners made
// from the cluster's table forward to other nodes' tasks (here: a plain TCP
// server on loopback standing in for a node's published host port), skip a
// backend that refuses, stop when the table drops the port, and keep
// conflicts clear errors. And the host ports read from an inspect reply.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <set>
#include <thread>
#include <tuple>

#include "ingress.h"

namespace shoal::executor::docker {
namespace {

using namespace std::chrono_literals;

// A loopback TCP listener (port 0: the kernel picks); -1 on failure.
int ListenLoopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// A port nothing listens on (bound, read, closed).
uint16_t FreePort() {
  uint16_t port = 0;
  int fd = ListenLoopback(&port);
  close(fd);
  return port;
}

// Answers every connection with `reply` and closes it, until destroyed.
class Backend {
 public:
  explicit Backend(std::string reply) : reply_(std::move(reply)) {
    fd_ = ListenLoopback(&port_);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        if (!stop_) (void)!write(c, reply_.data(), reply_.size());
        close(c);
      }
    });
  }
  ~Backend() {
    stop_ = true;
    // Wakes the accept with a connection of our own.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    close(fd);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What 127.0.0.1:port sends before it closes; "" when it refuses.
std::string ReadFrom(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

bool Eventually(const std::function<bool()>& until) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!until()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

v1::PortConfig Port(uint32_t target, uint32_t published) {
  v1::PortConfig p;
  p.set_target(target);
  p.set_published(published);
  p.set_protocol("tcp");
  return p;
}

// A table of one service published on `port` -> 80, with a backend per
// (task, node, host port).
v1::IngressTable Table(const std::string& service, uint16_t port,
                       std::vector<std::tuple<std::string, std::string, uint16_t>> backends) {
  v1::IngressTable t;
  v1::IngressService* s = t.add_services();
  s->set_service_id(service);
  s->set_service_name("st_" + service);
  *s->add_ports() = Port(80, port);
  for (const auto& [task, node, host_port] : backends) {
    v1::IngressBackend* b = s->add_backends();
    b->set_task_id(task);
    b->set_node_id(node);
    b->set_node_addr("127.0.0.1");
    *b->add_ports() = Port(80, host_port);
  }
  return t;
}

}  // namespace

TEST_CASE("ingress proxy: every listed port answers, from other nodes' tasks", "[docker]") {
  Backend one("from one\n"), two("from two\n");
  const uint16_t dead = FreePort();  // a task that just died: refuses
  const uint16_t port = FreePort();
  IngressProxy proxy("127.0.0.1");
  proxy.SetTable(Table("s1", port, {{"t0", "nB", dead}, {"t1", "nB", one.port()}}), "nA");
  REQUIRE(proxy.Listening().count(port));
  // The refusing backend is skipped: every connection reaches a live one.
  for (int i = 0; i < 4; ++i) CHECK(ReadFrom(port) == "from one\n");

  // A new table: round robin over both live backends.
  proxy.SetTable(Table("s1", port, {{"t1", "nB", one.port()}, {"t2", "nC", two.port()}}), "nA");
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i) seen.insert(ReadFrom(port));
  CHECK(seen == std::set<std::string>{"from one\n", "from two\n"});

  // No backend anywhere: the port still listens, and closes at once.
  proxy.SetTable(Table("s1", port, {}), "nA");
  CHECK(ReadFrom(port).empty());
  CHECK(proxy.Listening().count(port));

  // The service is gone from the table: the port stops listening.
  proxy.SetTable(v1::IngressTable(), "nA");
  CHECK(proxy.Listening().empty());
  CHECK(Eventually([&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool refused = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0;
    close(fd);
    return refused;
  }));
}

TEST_CASE("ingress proxy: local claims and the table together, and the conflicts", "[docker]") {
  Backend remote("remote\n");
  const uint16_t port = FreePort();
  IngressProxy proxy("127.0.0.1");
  // A task of this node claims the port before any table came.
  REQUIRE(proxy.Claim(port, 80, "s1", "local1").ok());
  // Another service cannot have it here.
  Status s = proxy.Claim(port, 80, "s2", "other");
  CHECK(s.code() == Code::kFailedPrecondition);
  // The table adds another node's task (the local one has no address yet:
  // its container is not running).
  proxy.SetTable(Table("s1", port, {{"r1", "nB", remote.port()}}), "nA");
  CHECK(ReadFrom(port) == "remote\n");
  // The table drops the service while the local task still claims it: it
  // keeps listening until the task is released.
  proxy.SetTable(v1::IngressTable(), "nA");
  CHECK(proxy.Listening().count(port));
  proxy.Release("local1");
  CHECK(proxy.Listening().empty());

  // Another program holds a port: a clear error.
  uint16_t held = 0;
  int fd = ListenLoopback(&held);
  REQUIRE(fd >= 0);
  s = proxy.Claim(held, 80, "s3", "t3");
  CHECK(s.code() == Code::kUnavailable);
  CHECK(s.message().find("cannot listen") != std::string::npos);
  // From the table it is retried later, and not listed meanwhile.
  proxy.SetTable(Table("s3", held, {}), "nA");
  CHECK_FALSE(proxy.Listening().count(held));
  close(fd);
  proxy.SetTable(Table("s3", held, {}), "nA");
  CHECK(proxy.Listening().count(held));

  // A listen address that is not an address.
  IngressProxy bad("not-an-ip");
  CHECK(bad.Claim(FreePort(), 80, "s1", "t1").code() == Code::kInvalidArgument);
}

TEST_CASE("ingress: host ports from an inspect reply", "[docker]") {
  const std::string body = R"({"NetworkSettings":{"Ports":{
      "80/tcp":[{"HostIp":"0.0.0.0","HostPort":"49153"},{"HostIp":"::","HostPort":"49153"}],
      "81/tcp":null,
      "53/udp":[{"HostIp":"0.0.0.0","HostPort":"49154"}]}}})";
  std::vector<v1::PortConfig> got = IngressHostPorts(body, {Port(80, 8080), Port(81, 8081)});
  REQUIRE(got.size() == 1);
  CHECK(got[0].target() == 80);
  CHECK(got[0].published() == 49153);
  CHECK(got[0].protocol() == "tcp");
  // Without the spec (an adopted container): every bound target.
  got = IngressHostPorts(body, {});
  REQUIRE(got.size() == 2);
  CHECK(got[0].target() == 80);  // in the reply's order
  CHECK(got[1].target() == 53);
  CHECK(got[1].protocol() == "udp");
  CHECK(IngressHostPorts("not json", {}).empty());
}

}  // namespace shoal::executor::docker
