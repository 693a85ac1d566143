#include "health.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "shoal/common/units.h"
#include "shoal/executor/task_util.h"

namespace shoal::executor::process {
namespace {

// Docker keeps this much of a probe's output; the message shows less.
constexpr size_t kMaxOutput = 4096;
constexpr size_t kMaxShown = 200;

std::chrono::nanoseconds OrDefault(int64_t ns, std::chrono::nanoseconds fallback) {
  return ns > 0 ? std::chrono::nanoseconds(ns) : fallback;
}

// Kills the probe's whole group: a CMD-SHELL probe's children go with it.
void KillGroup(pid_t pid) {
  if (pid > 1) kill(-pid, SIGKILL);
}

// One line of at most kMaxShown characters, for `service ps`.
std::string OneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t first = 0;
  while (first < text.size() && std::isspace(static_cast<unsigned char>(text[first]))) ++first;
  text.erase(0, first);
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

}  // namespace

Result<std::optional<HealthConfig>> ParseHealthCheck(const v1::HealthCheck& check) {
  if (check.test().empty() || check.test(0) == "NONE") return std::optional<HealthConfig>();
  const std::string& kind = check.test(0);
  std::vector<std::string> args(check.test().begin() + 1, check.test().end());
  HealthConfig c;
  if (kind == "CMD") {
    if (args.empty() || args[0].empty()) {
      return InvalidArgument("healthcheck: [\"CMD\", ...] needs a command to run");
    }
    c.argv = std::move(args);
  } else if (kind == "CMD-SHELL") {
    std::string script;
    for (const std::string& a : args) script += (script.empty() ? "" : " ") + a;
    if (script.empty()) return InvalidArgument("healthcheck: [\"CMD-SHELL\", ...] needs a command");
    // Docker runs it with the image's shell; a host process has /bin/sh.
    c.argv = {"/bin/sh", "-c", script};
  } else {
    return InvalidArgument("healthcheck: unknown test kind \"" + kind +
                           "\" (use CMD, CMD-SHELL or NONE)");
  }
  c.interval = OrDefault(check.interval_ns(), c.interval);
  c.timeout = OrDefault(check.timeout_ns(), c.timeout);
  c.start_period = OrDefault(check.start_period_ns(), c.start_period);
  c.start_interval = OrDefault(check.start_interval_ns(), c.start_interval);
  if (check.retries() > 0) c.retries = check.retries();
  return std::optional<HealthConfig>(std::move(c));
}

HealthProber::HealthProber(HealthConfig config, SpawnRequest base, Clock::time_point started,
                           HealthState initial, std::string message)
    : config_(std::move(config)),
      base_(std::move(base)),
      started_(started),
      health_(initial == v1::TaskStatus::HEALTH_NONE ? v1::TaskStatus::HEALTH_STARTING : initial),
      message_(health_ == v1::TaskStatus::HEALTH_UNHEALTHY ? std::move(message) : "") {
  const Clock::time_point now = Clock::now();
  next_probe_ = now + NextInterval(now);
}

HealthProber::~HealthProber() {
  // The probes are the executor's, not the task's: they end with it. Blocking
  // here is brief, since SIGKILL cannot be caught.
  if (probe_ > 0) {
    KillGroup(probe_);
    killed_.push_back(probe_);
  }
  for (pid_t pid : killed_) waitpid(pid, nullptr, 0);
}

HealthProber::Clock::duration HealthProber::NextInterval(Clock::time_point now) const {
  // As Docker: start_interval while the start period lasts and no probe has
  // succeeded yet, interval otherwise.
  if (now - started_ >= config_.start_period) return config_.interval;
  return health_ == v1::TaskStatus::HEALTH_STARTING ? config_.start_interval : config_.interval;
}

void HealthProber::ReapKilled() {
  std::erase_if(killed_, [](pid_t pid) {
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
  });
}

std::string HealthProber::ReadOutput() const {
  int fd = open(base_.log_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out(kMaxOutput, '\0');
  ssize_t n = read(fd, out.data(), out.size());
  close(fd);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool HealthProber::Record(bool success, const std::string& detail, Clock::time_point probe_start) {
  const HealthState before = health_;
  if (success) {
    failing_streak_ = 0;
    health_ = v1::TaskStatus::HEALTH_HEALTHY;
    message_.clear();
    return health_ != before;
  }
  // Docker's rule: while the task has never been healthy, failures of probes
  // started within the start period do not count.
  if (health_ == v1::TaskStatus::HEALTH_STARTING && probe_start - started_ < config_.start_period) {
    return false;
  }
  ++failing_streak_;
  if (failing_streak_ < config_.retries || health_ == v1::TaskStatus::HEALTH_UNHEALTHY) {
    return false;
  }
  health_ = v1::TaskStatus::HEALTH_UNHEALTHY;
  message_ = "health check failed " + std::to_string(failing_streak_) + " time" +
             (failing_streak_ == 1 ? "" : "s") + " in a row: " + detail;
  return true;
}

bool HealthProber::Poll(Clock::time_point now, bool active) {
  bool changed = false;
  ReapKilled();
  if (probe_ > 0) {
    siginfo_t info{};
    int r = waitid(P_PID, probe_, &info, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && info.si_pid == probe_) {
      // Exited: its zombie still holds the group id, so what it left behind
      // can be killed without hitting anyone else.
      KillGroup(probe_);
      int status = 0;
      waitpid(probe_, &status, 0);
      probe_ = 0;
      if (active) {
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        std::string detail = WIFSIGNALED(status) ? SignalMessage(WTERMSIG(status))
                                                 : ExitMessage(WEXITSTATUS(status));
        if (std::string out = OneLine(ReadOutput()); !out.empty()) detail += ": " + out;
        changed = Record(ok, detail, probe_start_);
      }
      next_probe_ = now + NextInterval(now);
    } else if (r != 0) {
      // No longer our child (reaped by someone else): nothing to learn.
      probe_ = 0;
      next_probe_ = now + NextInterval(now);
    } else if (!active || now - probe_start_ >= config_.timeout) {
      KillGroup(probe_);
      killed_.push_back(probe_);
      probe_ = 0;
      if (active) {
        changed = Record(false, "timed out after " + FormatDuration(config_.timeout.count()),
                         probe_start_);
      }
      next_probe_ = now + NextInterval(now);
    }
  }
  if (active && probe_ == 0 && now >= next_probe_) changed = StartProbe(now) || changed;
  return changed;
}

bool HealthProber::StartProbe(Clock::time_point now) {
  probe_start_ = now;
  // A probe that cannot even start is a failure, recorded at once.
  const auto failed = [&](const std::string& why) {
    bool changed = Record(false, why, now);
    next_probe_ = now + NextInterval(now);
    return changed;
  };
  Result<std::string> exe = FindExecutable(config_.argv[0], EnvValue(base_.env, "PATH"));
  if (!exe.ok()) return failed(exe.error().message());
  SpawnRequest req = base_;
  req.executable = *exe;
  req.argv = config_.argv;
  // Each probe's output alone: the file is truncated, not appended to.
  unlink(base_.log_path.c_str());
  Result<pid_t> pid = Spawn(req);
  if (!pid.ok()) return failed(pid.error().message());
  probe_ = *pid;
  return false;
}

}  // namespace shoal::executor::process
