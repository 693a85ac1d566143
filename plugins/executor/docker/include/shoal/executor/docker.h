#pragma once

// The docker executor: runs each task as a container of the local Docker
// Engine, through its API over a unix socket (design.md section 5;
// docs/executors.md, "Docker executor").
//
// Containers are named `<service>.<slot>.<task id>` (the node id instead of
// the slot for global tasks) and labelled shoal.node.id, shoal.task.id,
// shoal.service.id, shoal.service.name, shoal.stack and shoal.task.slot, so
// that a new executor for the same node adopts them after an agent restart.
// Several nodes may share one engine: an executor only ever touches
// containers labelled with its own node id.
//
// Threads: like every Executor, one caller thread, whose calls never wait
// for the engine except Logs (one short request). Inside, a pool of workers
// runs the engine calls (each task's in order), and one thread follows the
// engine's event stream, so a container's death or health change is in the
// next Poll() at once.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "shoal/executor/executor.h"

namespace shoal::executor {

struct DockerOptions {
  // The engine's socket: "unix:///var/run/docker.sock" or a bare path.
  std::string host = "unix:///var/run/docker.sock";
  // This node's id: labels every container, and bounds what is adopted and
  // what is cleaned up. Required.
  std::string node_id;
  // Per task `<state_dir>/<task id>/`: the configs bound into its container
  // and a `stop` marker (so that an exit after a stop reads SHUTDOWN after a
  // restart). Never a secret. Required.
  std::filesystem::path state_dir;
  // A tmpfs where each task's secrets get a dir `shoal-<task id>`, bound
  // file by file into the container. A task with secrets is REJECTED when
  // this is not a writable tmpfs: secrets never reach a disk.
  std::filesystem::path secrets_tmpfs = "/dev/shm";
  // Engine calls in flight at once (creates and starts of different tasks).
  int workers = 16;
  // The longest a single engine call may take.
  std::chrono::milliseconds request_timeout{60'000};
  // Where `mode: ingress` ports listen (the routing mesh): every address,
  // or one of this host's, so that nodes sharing a host each serve the
  // ports on their own (127.0.0.2, 127.0.0.3 in tests).
  std::string ingress_addr = "0.0.0.0";
};

// Ok when a Docker Engine answers at `host` with API 1.41 or later;
// `*description` then says which ("Docker Engine 20.10.24 (API 1.41)").
// kUnavailable or kFailedPrecondition with the reason otherwise. Used by
// `shoal daemon --dev` to pick its executor. Blocks for one request.
Status ProbeDockerEngine(const std::string& host, std::string* description = nullptr);

class DockerExecutor final : public Executor {
 public:
  // Checks the engine (ProbeDockerEngine's errors), follows its events, and
  // adopts this node's containers: running ones are watched again, exited
  // ones reported with their exit code. Strays are removed: this node's
  // containers that were created but never started (the agent died between
  // create and start), duplicates of one task, and containers without a
  // task id label. Blocks for a few engine calls.
  static Result<std::unique_ptr<DockerExecutor>> Open(DockerOptions options);

  // Leaves every container running, by design (an agent restart must not
  // take its tasks down); waits for engine calls in flight to finish.
  ~DockerExecutor() override;

  DockerExecutor(const DockerExecutor&) = delete;
  DockerExecutor& operator=(const DockerExecutor&) = delete;

  // "docker".
  std::string Name() const override;

  // Writes the task's files (secrets on the tmpfs, configs under state_dir)
  // and queues the create and start. Errors (-> REJECTED) for what is
  // wrong before any engine call: no image, a bad stop_signal, healthcheck
  // kind, mount type or file target, secrets without a tmpfs. The engine's
  // own refusals come later through Poll(): a create it refuses (an image
  // that is not present: "No such image: x:1") is REJECTED, a start it
  // refuses is FAILED, each with the engine's message.
  Status Start(const v1::Task& task, const std::vector<TaskFile>& files) override;

  // Queues the stop signal now (a kill through the engine) and SIGKILL at
  // the first Poll after `grace`. A stop before the start ends the task
  // SHUTDOWN without starting it.
  Status Stop(const std::string& task_id, std::chrono::nanoseconds grace) override;

  // Forgets an exited task at once and queues the removal of its container
  // and its files.
  Status Remove(const std::string& task_id) override;

  // Copies the latest observations (events and engine replies as they came
  // in); sends the SIGKILLs that are due. Never waits for the engine.
  std::map<std::string, Observed> Poll() override;

  // Calls `wake` after each change it sees on its own threads: a death,
  // removal or health change on the event stream, and a create, start,
  // inspect or signal a worker finished. Called without the executor's
  // locks but under one of its own, which SetWakeup takes.
  void SetWakeup(std::function<void()> wake) override;

  // The container's stdout and stderr from the engine (its json-file or
  // local log driver), sliced at `offset`. One engine request.
  Result<std::string> Logs(const std::string& task_id, uint64_t offset, size_t max_bytes) override;

  // Deletes each named volume that carries shoal's stack label (made through
  // a task's mount), now or, while a container still uses it, after each
  // container this executor deletes. Never waits for containers to go.
  void RemoveVolumes(const std::vector<std::string>& names) override;

  // Serves every ingress port of the table on ingress_addr and forwards to
  // the tasks of every node (ingress.h). Never waits for the engine.
  void SetIngress(const v1::IngressTable& table) override;

  class Impl;

 private:
  explicit DockerExecutor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::executor
