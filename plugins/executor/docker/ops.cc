// The engine calls behind each queued operation of a task (impl.h). They run
// on a worker thread without `mu`, taking it only to read their inputs and
// to record what the engine said.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "impl.h"
#include "shoal/executor/task_util.h"

namespace shoal::executor {
namespace {

namespace fs = std::filesystem;
using docker::EngineMessage;
using docker::HttpResponse;

// The last probe's output on one line, at most 200 characters.
std::string OneLine(std::string s) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() > 200) s = s.substr(0, 200) + "...";
  return s;
}

}  // namespace

const rapidjson::Value* Member(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

std::string StrMember(const rapidjson::Value& v, const char* key) {
  const rapidjson::Value* m = Member(v, key);
  return m != nullptr && m->IsString() ? m->GetString() : "";
}

// "<stack>_web" -> "web": the name other services of the stack resolve.
std::string ShortServiceName(const v1::Task& task) {
  const std::string& full = task.service_name();
  const std::string prefix = task.stack() + "_";
  if (!task.stack().empty() && full.starts_with(prefix)) return full.substr(prefix.size());
  return full;
}

void DockerExecutor::Impl::Run(Ctr& c, const Op& op) {
  switch (op.kind) {
    case OpKind::kLaunch:
      Launch(c);
      break;
    case OpKind::kSignal:
      Signal(c, op.signal);
      break;
    case OpKind::kInspect:
      Inspect(c);
      break;
    case OpKind::kDelete:
      Delete(c);
      break;
  }
}

void DockerExecutor::Impl::Launch(Ctr& c) {
  v1::Task task;
  std::vector<docker::FileBind> binds;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (c.stop_requested) {
      c.finished = true;
      c.obs.state = v1::TASK_SHUTDOWN;
      c.obs.message = "stopped before it started";
      return;
    }
    task = c.task;
    binds = c.binds;
  }
  // Networks are counted as used from here until Delete, so that a network
  // is not removed between its check and the container's create.
  std::vector<docker::NetworkJoin> joins = ClaimNetworks(task);
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& n : joins) c.networks.push_back(n.name);
  }
  // A network this executor does not know yet is made while the container's
  // create runs: the engine takes a create that names a network it does not
  // have yet and looks the name up only at the start. The first task of a
  // stack saves the network's create (20-100 ms) on its way to running
  // (issue 6 (g)). std::async's future waits in its destructor, so `task`
  // outlives the call on every return below.
  std::future<Result<std::vector<docker::NetworkJoin>>> making;
  if (std::any_of(joins.begin(), joins.end(), [](const auto& j) { return j.id.empty(); })) {
    making =
        std::async(std::launch::async, [this, &task, joins] { return MakeNetworks(task, joins); });
  }
  if (Status s = ClaimIngress(c, task); !s.ok()) {
    // A failed MakeNetworks released the networks already.
    const bool released = making.valid() && !making.get().ok();
    std::lock_guard<std::mutex> lock(mu);
    if (released) c.networks.clear();
    Reject(c, v1::TASK_REJECTED, s.message());
    return;
  }
  const std::string name = docker::ContainerName(task);
  const std::string body = docker::CreateBody(task, options.node_id, binds, joins);
  Result<HttpResponse> r =
      client.Call("POST", "/containers/create?name=" + docker::UrlEncode(name), body);
  std::string cid;
  if (r.ok() && r->status == 201) {
    rapidjson::Document d;
    d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
    if (!d.HasParseError()) cid = StrMember(d, "Id");
  } else if (r.ok() && r->status == 409) {
    // The name is taken: by this very task when a previous create reached
    // the engine but not the executor (e.g. a timed-out reply).
    Result<HttpResponse> existing = client.Call("GET", "/containers/" + name + "/json");
    if (existing.ok() && existing->status == 200) {
      rapidjson::Document d;
      d.Parse<rapidjson::kParseIterativeFlag>(existing->body.data(), existing->body.size());
      const rapidjson::Value* config = d.HasParseError() ? nullptr : Member(d, "Config");
      const rapidjson::Value* labels = config ? Member(*config, "Labels") : nullptr;
      if (labels != nullptr && StrMember(*labels, docker::kLabelTask) == task.meta().id() &&
          StrMember(*labels, docker::kLabelNode) == options.node_id) {
        cid = StrMember(d, "Id");
      }
    }
  }
  Result<std::vector<docker::NetworkJoin>> made = joins;
  if (making.valid()) made = making.get();
  std::unique_lock<std::mutex> lock(mu);
  if (!made.ok()) {
    // MakeNetworks released them; Delete removes the container, if made.
    c.networks.clear();
    c.container_id = cid;
    c.obs.container_id = cid;
    Reject(c, v1::TASK_REJECTED, made.error().message());
    return;
  }
  const std::vector<docker::NetworkJoin>& nets = *made;
  if (cid.empty()) {
    // The engine's refusal as it worded it: "No such image: x:1".
    Reject(c, v1::TASK_REJECTED,
           r.ok() ? EngineMessage(*r) : "creating the container: " + r.error().message());
    return;
  }
  c.container_id = cid;
  c.obs.container_id = cid;
  if (c.stop_requested) {
    c.finished = true;
    c.obs.state = v1::TASK_SHUTDOWN;
    c.obs.message = "stopped before it started";
    return;
  }
  c.obs.message = "starting container";
  // Further networks join before the start (the create takes only one).
  std::vector<docker::NetworkJoin> more(nets.begin() + (nets.empty() ? 0 : 1), nets.end());
  lock.unlock();
  std::string start_error;
  for (const docker::NetworkJoin& n : more) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("Container");
    w.String(cid.c_str());
    w.Key("EndpointConfig");
    w.StartObject();
    w.Key("Aliases");
    w.StartArray();
    for (const auto& a : n.aliases) w.String(a.c_str());
    w.EndArray();
    w.EndObject();
    w.EndObject();
    Result<HttpResponse> j =
        client.Call("POST", "/networks/" + docker::UrlEncode(n.Ref()) + "/connect", sb.GetString());
    if (!j.ok() || j->status != 200) {
      start_error =
          "joining network " + n.name + ": " + (j.ok() ? EngineMessage(*j) : j.error().message());
      break;
    }
  }
  Result<HttpResponse> s = start_error.empty()
                               ? client.Call("POST", "/containers/" + cid + "/start")
                               : Result<HttpResponse>(HttpResponse{});
  if (start_error.empty() && (!s.ok() || (s->status != 204 && s->status != 304))) {
    start_error = "starting the container: " + (s.ok() ? EngineMessage(*s) : s.error().message());
  }
  const v1::ContainerSpec& spec = task.spec();
  const bool inherit_health = spec.healthcheck().test_size() == 0;
  const bool has_ingress = !IngressPorts(task).empty();
  Result<HttpResponse> ins = Result<HttpResponse>(HttpResponse{});
  if (!start_error.empty() || inherit_health || has_ingress) {
    // The exit code of a failed start, the image's own healthcheck, or the
    // address the ingress port forwards to.
    ins = client.Call("GET", "/containers/" + cid + "/json");
  }
  lock.lock();
  if (!start_error.empty()) {
    if (ins.ok() && ins->status == 200) ApplyInspect(c, ins->body);
    if (!c.finished) Reject(c, v1::TASK_FAILED, start_error);
    // A die event may have finished it first, with a bare "exit 127".
    if (c.obs.state == v1::TASK_FAILED) c.obs.error = start_error;
    return;
  }
  if (c.finished) return;  // it already died (the event came first)
  c.obs.state = v1::TASK_RUNNING;
  c.obs.message = "started";
  if (!inherit_health && spec.healthcheck().test(0) != "NONE" &&
      c.obs.health == v1::TaskStatus::HEALTH_NONE) {
    c.obs.health = v1::TaskStatus::HEALTH_STARTING;
  }
  if (inherit_health && ins.ok() && ins->status == 200) ApplyInspect(c, ins->body);
  if (has_ingress && ins.ok() && ins->status == 200) {
    c.ip = ContainerIp(ins->body, nets.empty() ? std::string() : nets.front().name);
    c.obs.ports = docker::IngressHostPorts(ins->body, IngressPorts(task));
    if (!c.finished && !c.ip.empty()) ingress->SetBackend(c.task_id, c.ip);
  }
}

Status DockerExecutor::Impl::ClaimIngress(Ctr& c, const v1::Task& task) {
  std::vector<v1::PortConfig> ports = IngressPorts(task);
  if (ports.empty()) return Status::Ok();
  {
    std::lock_guard<std::mutex> lock(mu);
    c.ingress = true;
  }
  for (const v1::PortConfig& p : ports) {
    Status s = ingress->Claim(static_cast<uint16_t>(p.published()),
                              static_cast<uint16_t>(p.target()), task.service_id(), c.task_id);
    if (!s.ok()) {
      ingress->Release(c.task_id);
      return s;
    }
  }
  return Status::Ok();
}

std::vector<v1::PortConfig> IngressPorts(const v1::Task& task) {
  std::vector<v1::PortConfig> out;
  for (const v1::PortConfig& p : task.endpoint().ports()) {
    if (p.mode() != v1::PortConfig::PUBLISH_INGRESS || p.published() == 0) continue;
    if (!p.protocol().empty() && p.protocol() != "tcp") continue;  // TCP only
    out.push_back(p);
  }
  return out;
}

std::string ContainerIp(const std::string& inspect_body, const std::string& preferred) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(inspect_body.data(), inspect_body.size());
  const rapidjson::Value* ns = d.HasParseError() ? nullptr : Member(d, "NetworkSettings");
  if (ns == nullptr) return "";
  if (const rapidjson::Value* nets = Member(*ns, "Networks"); nets && nets->IsObject()) {
    if (const rapidjson::Value* n = Member(*nets, preferred.c_str()); n != nullptr) {
      std::string ip = StrMember(*n, "IPAddress");
      if (!ip.empty()) return ip;
    }
    for (const auto& m : nets->GetObject()) {
      std::string ip = StrMember(m.value, "IPAddress");
      if (!ip.empty()) return ip;
    }
  }
  return StrMember(*ns, "IPAddress");
}

void DockerExecutor::Impl::Signal(Ctr& c, const std::string& signal_in) {
  std::string cid;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (c.finished || c.container_id.empty()) return;
    cid = c.container_id;
  }
  std::string signal = signal_in;
  if (signal.empty()) {
    std::lock_guard<std::mutex> lock(mu);
    signal = c.stop_signal;
  }
  if (signal.empty()) {
    // The container's own StopSignal (the image's, or SIGTERM).
    Result<HttpResponse> r = client.Call("GET", "/containers/" + cid + "/json");
    if (r.ok() && r->status == 200) {
      rapidjson::Document d;
      d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
      if (!d.HasParseError() && Member(d, "Config")) signal = StrMember(d["Config"], "StopSignal");
    }
    if (signal.empty()) signal = "SIGTERM";
  }
  Result<HttpResponse> r =
      client.Call("POST", "/containers/" + cid + "/kill?signal=" + docker::UrlEncode(signal));
  if (r.ok() && r->status == 404) {
    std::lock_guard<std::mutex> lock(mu);
    Finish(c, -1);
    c.obs.message = "stopped: the container is gone";
  }
  // 409 "is not running": it exited meanwhile; its die event says how.
}

void DockerExecutor::Impl::Inspect(Ctr& c) {
  std::string cid;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (c.finished || c.container_id.empty()) return;
    cid = c.container_id;
  }
  Result<HttpResponse> r = client.Call("GET", "/containers/" + cid + "/json");
  if (!r.ok()) return;
  std::lock_guard<std::mutex> lock(mu);
  if (r->status == 404) {
    Finish(c, -1);
    c.obs.message = "the container was removed outside shoal";
    if (c.obs.state == v1::TASK_FAILED) c.obs.error = c.obs.message;
    return;
  }
  if (r->status == 200) ApplyInspect(c, r->body);
}

void DockerExecutor::Impl::ApplyInspect(Ctr& c, const std::string& body) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (d.HasParseError() || !d.IsObject()) return;
  if (const auto* config = Member(d, "Config"); config && Member(*config, "Tty")) {
    c.tty = (*config)["Tty"].IsBool() && (*config)["Tty"].GetBool();
  }
  if (const auto* config = Member(d, "Config"); config != nullptr) {
    // Fixed at create: the spec's, else the image's (the engine fills it
    // in), else SIGTERM, as Signal() would find it.
    c.stop_signal = StrMember(*config, "StopSignal");
    if (c.stop_signal.empty()) c.stop_signal = "SIGTERM";
  }
  const rapidjson::Value* state = Member(d, "State");
  if (state == nullptr || c.finished) return;
  if (const auto* oom = Member(*state, "OOMKilled"); oom && oom->IsBool() && oom->GetBool()) {
    c.oom = true;
  }
  const std::string status = StrMember(*state, "Status");
  if (const rapidjson::Value* h = Member(*state, "Health"); h != nullptr) {
    const std::string hs = StrMember(*h, "Status");
    if (hs == "starting") {
      c.obs.health = v1::TaskStatus::HEALTH_STARTING;
    } else if (hs == "healthy") {
      c.obs.health = v1::TaskStatus::HEALTH_HEALTHY;
      c.obs.health_message.clear();
    } else if (hs == "unhealthy" && c.obs.health != v1::TaskStatus::HEALTH_UNHEALTHY) {
      c.obs.health = v1::TaskStatus::HEALTH_UNHEALTHY;
      std::string msg = "health check failed";
      const rapidjson::Value* streak = Member(*h, "FailingStreak");
      if (streak && streak->IsInt()) {
        msg += " " + std::to_string(streak->GetInt()) + " times in a row";
      }
      const rapidjson::Value* log = Member(*h, "Log");
      if (log && log->IsArray() && !log->Empty()) {
        const rapidjson::Value& last = (*log)[log->Size() - 1];
        if (const auto* code = Member(last, "ExitCode"); code && code->IsInt()) {
          msg += ": exit " + std::to_string(code->GetInt());
        }
        std::string out = OneLine(StrMember(last, "Output"));
        if (!out.empty()) msg += ": " + out;
      }
      c.obs.health_message = msg;
    }
  }
  if (status == "exited" || status == "dead") {
    const rapidjson::Value* code = Member(*state, "ExitCode");
    Finish(c, code && code->IsInt() ? code->GetInt() : -1);
  }
}

void DockerExecutor::Impl::Delete(Ctr& c) {
  std::string cid;
  std::vector<std::string> nets;
  {
    std::lock_guard<std::mutex> lock(mu);
    cid = c.container_id;
    nets = c.networks;
  }
  if (!cid.empty()) {
    // force: a container the agent saw exit is stopped; force only covers a
    // restart the engine made on its own. Volumes stay (v=0).
    Result<HttpResponse> r = client.Call("DELETE", "/containers/" + cid + "?force=1");
    (void)r;  // a container left behind is adopted and removed as a stray later
  }
  ingress->Release(c.task_id);
  std::error_code ec;
  fs::remove_all(SecretsDir(c.task_id), ec);
  fs::remove_all(TaskStateDir(c.task_id), ec);
  ReleaseNetworks(nets);
  RemovePendingVolumes();
}

void DockerExecutor::Impl::RemovePendingVolumes() {
  std::set<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu);
    names = volumes_pending;
  }
  for (const std::string& name : names) {
    const std::string path = "/volumes/" + docker::UrlEncode(name);
    Result<HttpResponse> r = client.Call("GET", path);
    if (!r.ok()) continue;  // the engine is away: try again later
    bool done = r->status == 404;
    if (r->status == 200) {
      rapidjson::Document d;
      d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
      // Only volumes shoal made: an external volume a stack mounts is the
      // operator's, and stays.
      const rapidjson::Value* labels = d.HasParseError() ? nullptr : Member(d, "Labels");
      if (labels == nullptr || !labels->IsObject() || !labels->HasMember(docker::kLabelStack)) {
        done = true;
      } else {
        Result<HttpResponse> del = client.Call("DELETE", path);
        done = del.ok() && (del->status == 204 || del->status == 404);  // 409: in use
      }
    }
    if (done) {
      std::lock_guard<std::mutex> lock(mu);
      volumes_pending.erase(name);
    }
  }
}

}  // namespace shoal::executor
