// libFuzzer target for the docker executor's side of the Docker Engine API:
// a fake engine on a unix socket answers each request with the next response
// of the input, byte for byte, so the executor's real client code parses it:
// the HTTP/1.1 parser (status line, headers, Content-Length and chunked
// bodies), the event stream, and the JSON of /version, container inspect,
// container list (adoption) and network list. An engine that lies, breaks
// off or sends garbage must give an error or be ignored, never a crash, a
// hang or unbounded memory.
//
// Input: one byte choosing what the executor asks ('0'..'5', modulo 6),
// then the responses, separated by lines "--NEXT--". Requests past the last
// response get the connection closed without an answer.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine.h"
#include "fuzz_workdir.h"
#include "impl.h"
#include "shoal/executor/task_util.h"

namespace {

namespace fs = std::filesystem;
using shoal::executor::Ctr;
using shoal::executor::DockerExecutor;
using shoal::executor::DockerOptions;
namespace docker = shoal::executor::docker;

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "docker_engine_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Serves the queued responses, one per connection, on a thread of its own.
// Made once per process and never destroyed (libFuzzer exits with it
// running).
class FakeEngine {
 public:
  explicit FakeEngine(const fs::path& dir) : path_((dir / "docker.sock").string()) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path_.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      Die("cannot listen on", path_ + ": " + std::strerror(errno));
    }
    std::thread([this] { Loop(); }).detach();
  }

  const std::string& path() const { return path_; }

  void Queue(std::vector<std::string> responses) {
    std::lock_guard<std::mutex> lock(mu_);
    responses_ = std::move(responses);
    next_ = 0;
  }

 private:
  void Loop() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ReadRequest(c);
      std::string answer;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (next_ < responses_.size()) answer = responses_[next_++];
      }
      size_t sent = 0;
      while (sent < answer.size()) {
        ssize_t n = ::send(c, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  // The request's head and its Content-Length body: the client writes the
  // whole request before it reads.
  static void ReadRequest(int c) {
    std::string req;
    char buf[4096];
    size_t need = std::string::npos;
    while (need == std::string::npos || req.size() < need) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;  // libFuzzer's -timeout alarm
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
      if (need == std::string::npos) {
        size_t end = req.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        need = end + 4;
        size_t cl = req.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) need += std::strtoul(req.c_str() + cl + 16, 0, 10);
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  std::vector<std::string> responses_;
  size_t next_ = 0;
};

const fs::path& WorkDir() {
  static const fs::path& dir = []() -> const fs::path& {
    const fs::path& d = shoal::fuzz::WorkDir("shoal-docker-fuzz");
    fs::create_directories(d / "state");
    fs::create_directories(d / "shm");
    return d;
  }();
  return dir;
}

FakeEngine& Engine() {
  static FakeEngine* engine = new FakeEngine(WorkDir());
  return *engine;
}

std::unique_ptr<DockerExecutor::Impl> MakeImpl() {
  DockerOptions o;
  o.host = "unix://" + Engine().path();
  o.node_id = "n1";
  o.state_dir = WorkDir() / "state";
  o.secrets_tmpfs = WorkDir() / "shm";
  o.workers = 1;
  auto client = docker::EngineClient::Make(o.host, std::chrono::seconds(5));
  if (!client.ok()) Die("EngineClient::Make", client.error().ToString());
  return std::make_unique<DockerExecutor::Impl>(std::move(o), std::move(*client));
}

// A task the engine's answers may talk about: "t1" in container "c1".
Ctr& AddTask(DockerExecutor::Impl& impl) {
  auto c = std::make_unique<Ctr>();
  c->task_id = "t1";
  c->container_id = "c1";
  c->obs.state = shoal::v1::TASK_RUNNING;
  Ctr& ref = *c;
  std::lock_guard<std::mutex> lock(impl.mu);
  impl.tasks["t1"] = std::move(c);
  return ref;
}

void CheckObserved(const Ctr& c) {
  if (c.finished && c.obs.state != shoal::v1::TASK_COMPLETE &&
      c.obs.state != shoal::v1::TASK_FAILED && c.obs.state != shoal::v1::TASK_SHUTDOWN &&
      c.obs.state != shoal::v1::TASK_REJECTED) {
    Die("a finished task is not in a final state", std::to_string(c.obs.state));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 6;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> responses;
  while (true) {
    size_t sep = rest.find("\n--NEXT--\n");
    responses.emplace_back(rest.substr(0, sep));
    if (sep == std::string_view::npos) break;
    rest.remove_prefix(sep + 10);
  }
  Engine().Queue(responses);
  auto impl = MakeImpl();

  switch (mode) {
    case 0: {  // GET /version: is this an engine, and new enough?
      std::string description;
      shoal::Status s = impl->client.Check(&description);
      if (!s.ok() && s.message().empty()) Die("Check failed without a message", "");
      break;
    }
    case 1: {  // GET /containers/{id}/json, as Inspect and Launch read it
      Ctr& c = AddTask(*impl);
      auto r = impl->client.Call("GET", "/containers/c1/json");
      if (!r.ok()) break;
      if (docker::EngineMessage(*r).empty()) Die("an empty engine message", "");
      (void)shoal::executor::ContainerIp(r->body, "web_net");
      std::lock_guard<std::mutex> lock(impl->mu);
      impl->ApplyInspect(c, r->body);
      CheckObserved(c);
      break;
    }
    case 2: {  // GET /events: one JSON object per line, for as long as it lasts
      Ctr& c = AddTask(*impl);
      docker::LineStream stream;
      if (!stream.Open(impl->client, "/events").ok()) break;
      for (int i = 0; i < 100'000; ++i) {
        auto line = stream.Next();
        if (!line.ok()) break;
        impl->HandleEvent(*line);
      }
      std::lock_guard<std::mutex> lock(impl->mu);
      CheckObserved(c);
      break;
    }
    case 3: {  // adoption after an agent restart: list, inspect each, remove strays
      (void)impl->Adopt();
      std::lock_guard<std::mutex> lock(impl->mu);
      for (const auto& [id, c] : impl->tasks) {
        if (!shoal::executor::ValidateTaskId(id).ok()) Die("adopted an invalid task id", id);
        CheckObserved(*c);
      }
      break;
    }
    case 4: {  // GET /networks?filters=...: which network a name means
      std::lock_guard<std::mutex> lock(impl->net_mu);
      (void)impl->ResolveNetwork("web_net");
      break;
    }
    case 5: {  // a container's multiplexed log stream, framed by the engine
      std::string all;
      for (const auto& r : responses) all += r;
      std::string out = docker::DemuxLogStream(all);
      if (out.size() > all.size()) Die("the log payload is longer than the stream", "");
      break;
    }
  }
  return 0;
}
