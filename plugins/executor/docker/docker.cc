#include <rapidjson/document.h>

#include <algorithm>
#include <fstream>

#include "files.h"
#include "impl.h"
#include "shoal/executor/task_util.h"

namespace shoal::executor {
namespace {

namespace fs = std::filesystem;
using docker::EngineClient;

}  // namespace

int64_t UnixNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status ProbeDockerEngine(const std::string& host, std::string* description) {
  Result<EngineClient> client = EngineClient::Make(host, std::chrono::seconds(5));
  if (!client.ok()) return client.error();
  return client->Check(description);
}

DockerExecutor::Impl::Impl(DockerOptions o, EngineClient c)
    : options(std::move(o)), client(std::move(c)) {}

fs::path DockerExecutor::Impl::TaskStateDir(const std::string& task_id) const {
  return options.state_dir / task_id;
}

fs::path DockerExecutor::Impl::NodeSecretsRoot() const {
  // Per node: several nodes on one host share the tmpfs and the engine.
  return options.secrets_tmpfs / ("shoal-docker-" + options.node_id);
}

fs::path DockerExecutor::Impl::SecretsDir(const std::string& task_id) const {
  return NodeSecretsRoot() / task_id;
}

void DockerExecutor::Impl::StartThreads() {
  event_thread = std::thread([this] { EventLoop(); });
  for (int i = 0; i < std::max(1, options.workers); ++i) {
    workers.emplace_back([this] { WorkerLoop(); });
  }
}

void DockerExecutor::Impl::StopThreads() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    if (stream != nullptr) stream->Interrupt();
  }
  cv.notify_all();
  for (std::thread& t : workers) t.join();
  workers.clear();
  if (event_thread.joinable()) event_thread.join();
  // The node's secrets dir goes once its last task was removed.
  std::error_code ec;
  fs::remove(NodeSecretsRoot(), ec);  // fails, harmlessly, while not empty
}

bool DockerExecutor::Impl::WaitForEvents(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu);
  return cv.wait_for(lock, timeout, [&] { return events_up; });
}

void DockerExecutor::Impl::Enqueue(Ctr& c, Op op) {
  c.ops.push_back(std::move(op));
  if (!c.busy && c.ops.size() == 1) {
    ready.push_back(&c);
    cv.notify_all();
  }
}

void DockerExecutor::Impl::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu);
  while (true) {
    cv.wait(lock, [&] { return stopping || !ready.empty(); });
    if (ready.empty()) return;  // stopping
    Ctr* c = ready.front();
    ready.pop_front();
    Op op = std::move(c->ops.front());
    c->ops.pop_front();
    if (stopping && op.kind != OpKind::kDelete) {
      // At shutdown only removals are finished (Remove promised them); the
      // rest is dropped: a later executor adopts what the engine has, and
      // the agent starts again what never got created.
      if (!c->ops.empty()) ready.push_back(c);
      continue;
    }
    c->busy = true;
    lock.unlock();
    Run(*c, op);
    // What a create, start, inspect or signal found (RUNNING, REJECTED, an
    // exit) reaches the agent at once. A delete changes nothing it polls.
    if (op.kind != OpKind::kDelete) Wake();
    lock.lock();
    c->busy = false;
    if (op.kind == OpKind::kDelete && c->ops.empty()) {
      tasks.erase(c->task_id);
    } else if (!c->ops.empty()) {
      ready.push_back(c);
    }
  }
}

void DockerExecutor::Impl::EventLoop() {
  // Only what changes a task's state: not the exec_* events of every probe.
  const std::string filters =
      std::string(R"({"type":["container"],"event":["die","oom","health_status","destroy"],)") +
      R"("label":[")" + docker::kLabelNode + "=" + options.node_id + R"("]})";
  const std::string path = "/events?filters=" + docker::UrlEncode(filters);
  while (true) {
    docker::LineStream s;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
      stream = &s;
    }
    Status st = s.Open(client, path);
    if (st.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      events_up = true;
      // After a break, what died meanwhile is only known by asking.
      if (++event_connects > 1) {
        for (auto& [id, c] : tasks) {
          if (!c->finished && !c->removed && !c->container_id.empty()) {
            Enqueue(*c, Op{OpKind::kInspect, {}});
          }
        }
      }
      cv.notify_all();
    }
    while (st.ok()) {
      Result<std::string> line = s.Next();
      if (!line.ok()) break;
      // A death wakes the agent now rather than at its next poll: the
      // managers replace the container one poll interval sooner, and deaths
      // that come together go out in one report (issue 6 (e)).
      if (HandleEvent(*line)) Wake();
    }
    std::unique_lock<std::mutex> lock(mu);
    stream = nullptr;
    events_up = false;
    if (cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping; })) return;
  }
}

void DockerExecutor::Impl::Wake() {
  std::lock_guard<std::mutex> lock(wake_mu);
  if (wake) wake();
}

bool DockerExecutor::Impl::HandleEvent(const std::string& line) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("Action") || !d["Action"].IsString() ||
      !d.HasMember("Actor") || !d["Actor"].IsObject()) {
    return false;
  }
  const std::string action = d["Action"].GetString();
  const auto& actor = d["Actor"];
  if (!actor.HasMember("Attributes") || !actor["Attributes"].IsObject()) return false;
  const auto& attrs = actor["Attributes"];
  auto attr = [&](const char* k) -> std::string {
    return attrs.HasMember(k) && attrs[k].IsString() ? attrs[k].GetString() : "";
  };
  const std::string task_id = attr(docker::kLabelTask);
  const std::string cid =
      actor.HasMember("ID") && actor["ID"].IsString() ? actor["ID"].GetString() : "";
  std::lock_guard<std::mutex> lock(mu);
  auto it = tasks.find(task_id);
  if (it == tasks.end()) return false;
  Ctr& c = *it->second;
  if (c.removed || c.container_id != cid) return false;
  if (action == "die") {
    int code = -1;
    try {
      code = std::stoi(attr("exitCode"));
    } catch (const std::exception&) {
    }
    Finish(c, code);
  } else if (action == "oom") {
    c.oom = true;
    return false;  // shows with the death that follows
  } else if (action == "health_status: healthy") {
    if (c.finished || c.stop_requested) return false;
    c.obs.health = v1::TaskStatus::HEALTH_HEALTHY;
    c.obs.health_message.clear();
  } else if (action == "health_status: unhealthy") {
    // The reason (the last probe's output) is in the container's state: the
    // inspect's worker wakes the agent.
    if (!c.finished) Enqueue(c, Op{OpKind::kInspect, {}});
    return false;
  } else if (action == "destroy" && !c.finished) {
    // Removed behind shoal's back (docker rm -f): no exit code to report.
    Finish(c, -1);
    c.obs.message = "the container was removed outside shoal";
    if (c.obs.state == v1::TASK_FAILED) c.obs.error = c.obs.message;
  } else {
    return false;
  }
  return true;
}

void DockerExecutor::Impl::Finish(Ctr& c, int code) {
  if (c.finished) return;
  c.finished = true;
  if (c.ingress) ingress->DropBackend(c.task_id);
  Observed& o = c.obs;
  o.exit_code = code;
  o.error.clear();
  if (o.health != v1::TaskStatus::HEALTH_UNHEALTHY) {
    o.health = v1::TaskStatus::HEALTH_NONE;
    o.health_message.clear();
  }
  const std::string what = ExitMessage(code);
  if (c.stop_requested) {
    o.state = v1::TASK_SHUTDOWN;
    o.message = "stopped: " + what;
    if (c.kill_sent && code == 137) o.message += " after the grace period";
  } else if (code == 0) {
    o.state = v1::TASK_COMPLETE;
    o.message = what;
  } else {
    o.state = v1::TASK_FAILED;
    o.message = what + (c.oom ? " (out of memory)" : "");
    o.error = "the container exited with code " + std::to_string(code) +
              (c.oom ? "; the kernel killed it for lack of memory" : "");
  }
}

void DockerExecutor::Impl::Reject(Ctr& c, v1::TaskState state, const std::string& error) {
  if (c.finished) return;
  c.finished = true;
  if (c.ingress) ingress->DropBackend(c.task_id);
  c.obs.state = state;
  c.obs.message = state == v1::TASK_REJECTED ? "rejected" : "failed";
  c.obs.error = error;
  c.obs.health = v1::TaskStatus::HEALTH_NONE;
  c.obs.health_message.clear();
}

Result<std::unique_ptr<DockerExecutor>> DockerExecutor::Open(DockerOptions options) {
  if (Status s = ValidateTaskId(options.node_id); !s.ok()) {
    return InvalidArgument("docker executor: node id: " + s.message());
  }
  if (options.state_dir.empty()) return InvalidArgument("docker executor: no state dir");
  std::error_code ec;
  fs::create_directories(options.state_dir, ec);
  if (ec) return IoError("cannot create " + options.state_dir.string() + ": " + ec.message());
  Result<EngineClient> client = EngineClient::Make(options.host, options.request_timeout);
  if (!client.ok()) return client.error();
  if (Status s = client->Check(); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(client).value());
  impl->StartThreads();
  // Adopting before the event stream is up could miss a death in between.
  if (!impl->WaitForEvents(std::chrono::seconds(10))) {
    impl->StopThreads();
    return Status(Code::kUnavailable,
                  "the Docker Engine at " + impl->client.host() + " did not stream its events");
  }
  if (Status s = impl->Adopt(); !s.ok()) {
    impl->StopThreads();
    return s;
  }
  return std::unique_ptr<DockerExecutor>(new DockerExecutor(std::move(impl)));
}

DockerExecutor::DockerExecutor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DockerExecutor::~DockerExecutor() { impl_->StopThreads(); }

std::string DockerExecutor::Name() const { return "docker"; }

Status DockerExecutor::Start(const v1::Task& task, const std::vector<TaskFile>& files) {
  Impl& m = *impl_;
  const std::string& id = task.meta().id();
  if (Status s = ValidateTaskId(id); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto it = m.tasks.find(id);
    if (it != m.tasks.end()) {
      Ctr& c = *it->second;
      if (c.removed) {
        return Status(Code::kFailedPrecondition, "task " + id + " is being removed");
      }
      // Adopted: keep the spec (the engine runs the healthcheck itself), and
      // publish its ingress ports again, which went with the old agent.
      if (!c.have_spec) {
        c.task = task;
        c.have_spec = true;
        if (!c.finished && !IngressPorts(task).empty()) {
          c.ingress = true;
          for (const v1::PortConfig& p : IngressPorts(task)) {
            // A port lost meanwhile only costs this task its ingress.
            (void)m.ingress->Claim(static_cast<uint16_t>(p.published()),
                                   static_cast<uint16_t>(p.target()), task.service_id(), id);
          }
          if (!c.ip.empty()) m.ingress->SetBackend(id, c.ip);
        }
      }
      return Status::Ok();
    }
  }
  if (Status s = docker::ValidateSpec(task); !s.ok()) return s;
  if (Status s = docker::CheckFiles(files, m.options.secrets_tmpfs); !s.ok()) return s;
  const fs::path state_dir = m.TaskStateDir(id);
  std::error_code ec;
  fs::remove(state_dir / "stop", ec);
  Result<std::vector<docker::FileBind>> binds =
      docker::WriteFiles(files, m.SecretsDir(id), state_dir / "configs");
  if (!binds.ok()) return binds.error();

  auto c = std::make_unique<Ctr>();
  c->task_id = id;
  c->task = task;
  c->have_spec = true;
  c->tty = task.spec().tty();
  c->binds = std::move(binds).value();
  c->obs.state = v1::TASK_STARTING;
  c->obs.message = "creating container";
  std::lock_guard<std::mutex> lock(m.mu);
  Ctr& ref = *c;
  m.tasks[id] = std::move(c);
  m.Enqueue(ref, Op{OpKind::kLaunch, {}});
  return Status::Ok();
}

Status DockerExecutor::Stop(const std::string& task_id, std::chrono::nanoseconds grace) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.tasks.find(task_id);
  if (it == m.tasks.end()) return Status::Ok();
  Ctr& c = *it->second;
  if (c.removed || c.finished) return Status::Ok();
  grace = std::clamp<std::chrono::nanoseconds>(grace, std::chrono::nanoseconds(0),
                                               std::chrono::hours(24 * 365));
  const auto deadline = SteadyClock::now() + grace;
  if (c.stop_requested && deadline >= c.kill_at) return Status::Ok();
  const bool first = !c.stop_requested;
  c.stop_requested = true;
  c.kill_at = deadline;
  {
    // Recorded before the signal, so an exit seen after an agent restart
    // still reads SHUTDOWN. Best effort: Poll reports from memory anyway.
    std::error_code ec;
    fs::create_directories(m.TaskStateDir(task_id), ec);
    std::ofstream(m.TaskStateDir(task_id) / "stop") << (UnixNowNs() + grace.count()) << "\n";
  }
  c.obs.message = "stopping";
  if (grace.count() == 0) {
    c.kill_sent = true;
    m.Enqueue(c, Op{OpKind::kSignal, "SIGKILL"});
  } else if (first) {
    std::string sig = c.have_spec && !c.task.spec().stop_signal().empty()
                          ? c.task.spec().stop_signal()
                          : std::string();  // "" = the container's StopSignal
    m.Enqueue(c, Op{OpKind::kSignal, sig});
  }
  return Status::Ok();
}

Status DockerExecutor::Remove(const std::string& task_id) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.tasks.find(task_id);
  if (it == m.tasks.end() || it->second->removed) return Status::Ok();
  Ctr& c = *it->second;
  if (!c.finished) {
    return Status(Code::kFailedPrecondition,
                  "task " + task_id + " is still running: stop it and wait for it to exit");
  }
  c.removed = true;
  m.Enqueue(c, Op{OpKind::kDelete, {}});
  return Status::Ok();
}

std::map<std::string, Observed> DockerExecutor::Poll() {
  Impl& m = *impl_;
  std::map<std::string, Observed> out;
  const auto now = SteadyClock::now();
  std::lock_guard<std::mutex> lock(m.mu);
  for (auto& [id, c] : m.tasks) {
    if (c->removed) continue;
    if (c->stop_requested && !c->kill_sent && !c->finished && now >= c->kill_at) {
      c->kill_sent = true;
      m.Enqueue(*c, Op{OpKind::kSignal, "SIGKILL"});
    }
    out.emplace(id, c->obs);
  }
  return out;
}

void DockerExecutor::RemoveVolumes(const std::vector<std::string>& names) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->volumes_pending.insert(names.begin(), names.end());
  }
  // The containers may be gone already (their delete ran before this call);
  // otherwise the worker that deletes them tries again.
  impl_->RemovePendingVolumes();
}

void DockerExecutor::SetWakeup(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(impl_->wake_mu);
  impl_->wake = std::move(wake);
}

void DockerExecutor::SetIngress(const v1::IngressTable& table) {
  impl_->ingress->SetTable(table, impl_->options.node_id);
}

Result<std::string> DockerExecutor::Logs(const std::string& task_id, uint64_t offset,
                                         size_t max_bytes) {
  Impl& m = *impl_;
  std::string cid;
  bool tty = false;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto it = m.tasks.find(task_id);
    if (it == m.tasks.end() || it->second->removed) {
      return NotFound("no task " + task_id + " on this executor");
    }
    cid = it->second->container_id;
    tty = it->second->tty;
  }
  if (cid.empty()) return std::string();
  Result<docker::HttpResponse> r =
      m.client.Call("GET", "/containers/" + cid + "/logs?stdout=1&stderr=1");
  if (!r.ok()) return r.error();
  if (r->status != 200) {
    return Status(Code::kUnavailable, "logs of " + task_id + ": " + docker::EngineMessage(*r));
  }
  std::string all = tty ? std::move(r->body) : docker::DemuxLogStream(r->body);
  if (offset >= all.size()) return std::string();
  return all.substr(offset, max_bytes);
}

}  // namespace shoal::executor
