#pragma once

// Healthchecks of the process executor, run as Docker runs them
// (docs/executors.md): a probe is a child process with the task's env,
// working dir and user, in its own process group; exit 0 is a success,
// anything else (or running past the timeout) a failure. No threads: the
// executor's Poll() drives each prober, which starts, times out and reaps its
// probes without ever waiting for one.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/objects.pb.h"
#include "spawn.h"

namespace shoal::executor::process {

using HealthState = v1::TaskStatus::Health;

// A healthcheck with Docker's defaults applied to the fields left at 0.
struct HealthConfig {
  std::vector<std::string> argv;  // CMD: its args; CMD-SHELL: /bin/sh -c "<args>"
  std::chrono::nanoseconds interval = std::chrono::seconds(30);
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds start_period{0};
  std::chrono::nanoseconds start_interval = std::chrono::seconds(5);
  uint64_t retries = 3;
};

// The healthcheck `check` asks for: nullopt when there is none (an empty
// test, which would inherit an image's, and a host process has no image) or
// it is disabled (["NONE"]). InvalidArgument for a test the executor cannot
// run: an unknown kind, or CMD/CMD-SHELL without a command.
Result<std::optional<HealthConfig>> ParseHealthCheck(const v1::HealthCheck& check);

// Runs the probes of one task and keeps its health. Owns the probe processes:
// the destructor kills (and reaps) a probe still running.
class HealthProber {
 public:
  using Clock = std::chrono::steady_clock;

  // `base` carries the task's env, working dir and identity, and as
  // log_path the file each probe's output goes to (truncated per probe).
  // `started` is when the task started (the start period counts from it);
  // `initial` the health to report until a probe decides otherwise
  // (STARTING for a new task, the recorded health for an adopted one).
  HealthProber(HealthConfig config, SpawnRequest base, Clock::time_point started,
               HealthState initial, std::string message = "");
  ~HealthProber();

  HealthProber(const HealthProber&) = delete;
  HealthProber& operator=(const HealthProber&) = delete;

  // One step, never blocking: reaps a probe that exited and records its
  // result, kills one past its timeout (a failure), and starts the next one
  // when it is due. With `active` false (the task is stopping or ended) it
  // only kills a running probe and starts none. True when health() or
  // message() changed.
  bool Poll(Clock::time_point now, bool active);

  HealthState health() const { return health_; }
  // Why the task is unhealthy; "" unless health() is UNHEALTHY.
  const std::string& message() const { return message_; }

 private:
  Clock::duration NextInterval(Clock::time_point now) const;
  bool StartProbe(Clock::time_point now);
  bool Record(bool success, const std::string& detail, Clock::time_point probe_start);
  std::string ReadOutput() const;
  void ReapKilled();

  HealthConfig config_;
  SpawnRequest base_;
  Clock::time_point started_;
  HealthState health_;
  std::string message_;
  uint64_t failing_streak_ = 0;
  Clock::time_point next_probe_;
  pid_t probe_ = 0;  // the probe running now, 0 when none
  Clock::time_point probe_start_;
  std::vector<pid_t> killed_;  // killed probes not yet reaped
};

}  // namespace shoal::executor::process
