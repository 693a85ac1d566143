#pragma once

// DockerExecutor's insides, shared by docker.cc (the Executor methods, the
// worker pool and the event thread), ops.cc (the engine calls each queued
// operation makes) and adopt.cc (what Open finds on the engine).
//
// Locking: `mu` guards every field below it. Engine calls are made without
// it; a worker takes it only to read what a call needs and to record what
// came back. Each task's operations run one at a time, in order (`busy`).

#include <rapidjson/document.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "create.h"
#include "engine.h"
#include "ingress.h"
#include "shoal/executor/docker.h"

namespace shoal::executor {

using SteadyClock = std::chrono::steady_clock;

enum class OpKind { kLaunch, kSignal, kInspect, kDelete };

struct Op {
  OpKind kind;
  std::string signal;  // kSignal
};

struct Ctr {
  std::string task_id;
  std::string container_id;  // "" until the engine made it
  v1::Task task;             // the spec; for an adopted task only after Start
  bool have_spec = false;
  bool tty = false;  // log stream framing
  std::vector<docker::FileBind> binds;
  std::vector<std::string> networks;  // engine names it joins (counted in net_users)
  Observed obs;
  bool finished = false;  // obs.state is terminal
  bool stop_requested = false;
  bool kill_sent = false;
  bool oom = false;
  SteadyClock::time_point kill_at;
  bool ingress = false;  // claims ingress ports (IngressProxy)
  std::string ip;        // its address on its first network, once running
  // The container's Config.StopSignal, once an inspect showed it ("" before):
  // spares the stop an inspect of its own.
  std::string stop_signal;
  bool removed = false;  // forgotten by Remove; its kDelete is queued
  std::deque<Op> ops;
  bool busy = false;
};

class DockerExecutor::Impl {
 public:
  Impl(DockerOptions options, docker::EngineClient client);

  // docker.cc
  void StartThreads();
  void StopThreads();
  bool WaitForEvents(std::chrono::milliseconds timeout);
  void Enqueue(Ctr& c, Op op);
  void WorkerLoop();
  void EventLoop();
  // Applies one /events line (takes mu); true when it changed a task.
  bool HandleEvent(const std::string& line);
  // Calls the agent's wake-up, if any (mu not held).
  void Wake();
  // Records the container's exit (mu held).
  void Finish(Ctr& c, int exit_code);
  void Reject(Ctr& c, v1::TaskState state, const std::string& error);
  std::filesystem::path TaskStateDir(const std::string& task_id) const;
  std::filesystem::path SecretsDir(const std::string& task_id) const;
  std::filesystem::path NodeSecretsRoot() const;

  // ops.cc: each runs on a worker, without mu.
  void Run(Ctr& c, const Op& op);
  void Launch(Ctr& c);
  void Signal(Ctr& c, const std::string& signal);
  void Inspect(Ctr& c);
  void Delete(Ctr& c);
  // Applies GET /containers/{id}/json's reply (mu held).
  void ApplyInspect(Ctr& c, const std::string& body);
  // The task's networks (name, aliases, subnet; the id of those known to
  // exist), each counted in net_users until ReleaseNetworks (mu not held).
  std::vector<docker::NetworkJoin> ClaimNetworks(const v1::Task& task);
  // Makes the networks of `joins` that do not exist yet and fills in every
  // id (mu and net_mu not held; takes net_mu). On failure releases them all
  // (ReleaseNetworks) and returns why. Safe on its own thread beside the
  // container's create.
  Result<std::vector<docker::NetworkJoin>> MakeNetworks(const v1::Task& task,
                                                        std::vector<docker::NetworkJoin> joins);
  void ReleaseNetworks(const std::vector<std::string>& names);
  // Tries to delete each volume of volumes_pending (mu not held): done when
  // deleted or gone; one still in use stays pending for the next container
  // this executor deletes.
  void RemovePendingVolumes();

  // Claims the task's ingress ports (mu not held); an error rejects it.
  Status ClaimIngress(Ctr& c, const v1::Task& task);

  // adopt.cc
  Status Adopt();

  DockerOptions options;
  docker::EngineClient client;

  // Serializes network create/remove against each other (not container
  // calls), and guards nets_known: networks this executor knows exist.
  std::mutex net_mu;
  std::map<std::string, std::string> nets_known;  // name -> the engine's id
  // The id of the network named `name` (the lowest, when nodes sharing the
  // engine made several), "" when there is none. Call with net_mu held.
  Result<std::string> ResolveNetwork(const std::string& name);

  // The agent's wake-up (Executor::SetWakeup), called under wake_mu so that
  // SetWakeup(nullptr) returns only once no call is running. Never taken
  // with mu held, nor mu with it.
  std::mutex wake_mu;
  std::function<void()> wake;

  std::mutex mu;
  std::condition_variable cv;  // workers: ready or stopping; Open: events up
  std::map<std::string, std::unique_ptr<Ctr>> tasks;
  std::deque<Ctr*> ready;                // not busy, ops not empty
  std::map<std::string, int> net_users;  // network -> tasks that use it
  // Named volumes `stack rm --volumes` asked to delete (RemoveVolumes): the
  // agent asks right after Remove(), before the worker deleted the container.
  std::set<std::string> volumes_pending;
  bool stopping = false;
  bool events_up = false;
  uint64_t event_connects = 0;
  docker::LineStream* stream = nullptr;  // the event stream being read
  std::unique_ptr<docker::IngressProxy> ingress =
      std::make_unique<docker::IngressProxy>(options.ingress_addr);
  std::vector<std::thread> workers;
  std::thread event_thread;
};

int64_t UnixNowNs();

// The container's address from its inspect reply: on network `preferred`
// when it is attached there, else any; "" when it has none.
std::string ContainerIp(const std::string& inspect_body, const std::string& preferred);

// The task's `mode: ingress` TCP ports with a published port.
std::vector<v1::PortConfig> IngressPorts(const v1::Task& task);

// Helpers shared by ops.cc and networks.cc (defined in ops.cc).
// A member of a JSON object, or null (also when `v` is not an object).
const rapidjson::Value* Member(const rapidjson::Value& v, const char* key);
// A string member, or "" when absent or not a string.
std::string StrMember(const rapidjson::Value& v, const char* key);
// "<stack>_web" -> "web": the name other services of the stack resolve.
std::string ShortServiceName(const v1::Task& task);

}  // namespace shoal::executor
