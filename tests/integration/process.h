#pragma once

// Child processes for the real-process tests: spawn with pipes, read a line
// with a timeout, kill -9. Every process is killed by the destructor, so a
// failing test leaves nothing running.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace shoal::testing {

class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`; its stdin and stdout are pipes to us, its
  // stderr is inherited. Empty optional when fork or exec fails.
  static std::optional<ChildProcess> Spawn(const std::vector<std::string>& argv);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  // The next line of stdout, without the newline; empty optional at EOF or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // SIGKILL and reap. Idempotent.
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
};

}  // namespace shoal::testing
