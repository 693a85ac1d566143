#pragma once

// Helpers for the tests that need a Docker Engine: where it is (the CTest
// fixture's setup_engine.sh writes <engine dir>/engine.env), tasks that run
// busybox commands, waiting with deadlines, and a cleanup of everything one
// test's node made on the engine.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "engine.h"
#include "shoal/executor/docker.h"

namespace shoal::executor::dtest {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr const char* kImage = "shoal-busybox:latest";

// DOCKER_HOST from the engine dir's engine.env, "" when the engine is not up.
std::string EngineHost();
// Why the engine is not up (the fixture's `unavailable` file).
std::string EngineUnavailableReason();

inline docker::EngineClient Client() { return docker::EngineClient::Make(EngineHost()).value(); }

// A node id unique to this process and test, so that tests never see each
// other's containers.
inline std::string NodeId(const std::string& name) {
  return "n" + std::to_string(getpid()) + "-" + name;
}

struct Env {
  explicit Env(const std::string& name);
  ~Env();
  DockerOptions Options() const;
  std::unique_ptr<DockerExecutor> Open() const;

  std::string node;
  fs::path dir;
};

inline v1::Task ShellTask(const std::string& id, const std::string& script) {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_name("st_svc");
  t.set_stack("st");
  t.set_service_id("svc-" + id);
  t.set_slot(1);
  t.mutable_spec()->set_image(kImage);
  t.mutable_spec()->add_entrypoint("/bin/sh");
  t.mutable_spec()->add_command("-c");
  t.mutable_spec()->add_command(script);
  return t;
}

inline std::optional<Observed> WaitFor(Executor& ex, const std::string& id,
                                       const std::function<bool(const Observed&)>& pred,
                                       std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto all = ex.Poll();
    auto it = all.find(id);
    if (it != all.end() && pred(it->second)) return it->second;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

inline Observed WaitState(Executor& ex, const std::string& id, v1::TaskState state,
                          std::chrono::milliseconds timeout = 20s) {
  auto o = WaitFor(
      ex, id, [&](const Observed& o) { return o.state >= state; }, timeout);
  if (!o) {
    auto all = ex.Poll();
    auto it = all.find(id);
    FAIL("task " << id << " did not reach state " << v1::TaskState_Name(state) << "; it is "
                 << (it == all.end() ? std::string("unknown")
                                     : v1::TaskState_Name(it->second.state) + " " +
                                           it->second.message + " " + it->second.error));
  }
  return *o;
}

inline std::string WaitForLog(Executor& ex, const std::string& id, const std::string& text,
                              std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    Result<std::string> log = ex.Logs(id, 0, 1 << 20);
    REQUIRE(log.ok());
    if (log->find(text) != std::string::npos) return *log;
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL("no \"" << text << "\" in the output of " << id << ":\n" << *log);
    }
    std::this_thread::sleep_for(10ms);
  }
}

// Ends and removes `id` (stop, wait, remove, wait until the engine forgot it).
void StopAndRemove(Executor& ex, const std::string& id);

// Ids of the engine's containers labelled with `node` (all states).
std::vector<std::string> NodeContainers(const std::string& node);

// GET / from 127.0.0.1:port (or ip:port); "" when nothing answers.
std::string HttpGet(int port);
std::string HttpGet(const std::string& ip, int port);

// Runs `until` every 10 ms until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& until, std::chrono::milliseconds timeout = 20s);

}  // namespace shoal::executor::dtest
