#pragma once

// Helpers for the executor tests: temporary roots, tasks, and waiting for a
// state with a deadline (never a bare sleep).

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shoal/executor/executor.h"
#include "shoal/executor/process.h"

namespace shoal::executor::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A task id unique to this test process, so concurrent runs never share one.
inline std::string TaskId(const std::string& name) {
  return "t" + std::to_string(getpid()) + "-" + name;
}

inline v1::Task ShellTask(const std::string& id, const std::string& script) {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_name("svc");
  t.set_slot(3);
  t.mutable_spec()->set_image("busybox:latest");
  t.mutable_spec()->add_entrypoint("/bin/sh");
  t.mutable_spec()->add_command("-c");
  t.mutable_spec()->add_command(script);
  return t;
}

// Polls `ex` until `pred` holds for task `id`, or `timeout` passes.
inline std::optional<Observed> WaitFor(Executor& ex, const std::string& id,
                                       const std::function<bool(const Observed&)>& pred,
                                       std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto all = ex.Poll();
    auto it = all.find(id);
    if (it != all.end() && pred(it->second)) return it->second;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

inline Observed WaitEnded(Executor& ex, const std::string& id,
                          std::chrono::milliseconds timeout = 10s) {
  auto o = WaitFor(
      ex, id, [](const Observed& o) { return o.state >= v1::TASK_COMPLETE; }, timeout);
  REQUIRE(o.has_value());
  return *o;
}

// Waits until the task's output holds `text`; returns the whole output.
inline std::string WaitForLog(Executor& ex, const std::string& id, const std::string& text,
                              std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    Result<std::string> log = ex.Logs(id, 0, 1 << 20);
    REQUIRE(log.ok());
    if (log->find(text) != std::string::npos) return *log;
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL("no \"" << text << "\" in the output of " << id << ":\n" << *log);
    }
    ex.Poll();
    std::this_thread::sleep_for(10ms);
  }
}

// True when no process has `pid`, or it is a zombie (PID 1 in a container may
// never reap orphans, so a zombie counts as gone).
inline bool ProcessGone(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return true;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] == 'Z' ||
         text[close + 2] == 'X';
}

inline bool WaitGone(pid_t pid, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ProcessGone(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A temporary executor root (and secrets tmpfs stand-in) that stops every
// task still running and deletes everything when the test ends.
class ProcessFixture {
 public:
  ProcessFixture() {
    std::string tmpl = (fs::temp_directory_path() / "shoal-exec-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    // Traversable, as a real data dir is, for tasks that run as another user.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    fs::create_directories(dir_ / "shm");
    options.secrets_tmpfs = dir_ / "shm";
    Reopen();
  }

  ~ProcessFixture() {
    if (ex) StopAll(*ex);
    ex.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  ProcessFixture(const ProcessFixture&) = delete;
  ProcessFixture& operator=(const ProcessFixture&) = delete;

  // Drops the executor without stopping anything (an agent crash, as far as
  // its processes can tell) and opens a new one over the same root.
  void Reopen() {
    ex.reset();
    auto opened = ProcessExecutor::Open(root(), options);
    REQUIRE(opened.ok());
    ex = std::move(opened).value();
  }

  // Kills whatever still runs and waits until the executor saw it exit.
  static void StopAll(Executor& e) {
    for (const auto& [id, o] : e.Poll()) {
      if (o.state < v1::TASK_COMPLETE) (void)e.Stop(id, 0ns);
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      bool running = false;
      for (const auto& [id, o] : e.Poll()) running |= o.state < v1::TASK_COMPLETE;
      if (!running) return;
      std::this_thread::sleep_for(10ms);
    }
  }

  fs::path root() const { return dir_ / "tasks"; }
  fs::path shm() const { return dir_ / "shm"; }
  fs::path dir() const { return dir_; }

  ProcessOptions options;
  std::unique_ptr<ProcessExecutor> ex;

 private:
  fs::path dir_;
};

inline std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The value after "key=" on a line of `text`; "" when absent.
inline std::string LineValue(const std::string& text, const std::string& key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    pos = end + 1;
  }
  return "";
}

}  // namespace shoal::executor::testing
