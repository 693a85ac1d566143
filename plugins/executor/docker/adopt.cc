// What a new DockerExecutor finds on the engine: this node's containers from
// the agent's previous life, adopted or, when they are strays, removed.

#include <rapidjson/document.h>

#include <algorithm>
#include <fstream>

#include "impl.h"
#include "shoal/executor/task_util.h"

namespace shoal::executor {
namespace {

namespace fs = std::filesystem;
using docker::HttpResponse;

struct Found {
  std::string id;
  std::string task_id;
  std::string state;  // created, running, paused, restarting, removing, exited, dead
  int64_t created = 0;
};

// Which of several containers of one task to keep: running first, then the
// newest.
int Rank(const Found& f) {
  if (f.state == "running" || f.state == "restarting" || f.state == "paused") return 3;
  if (f.state == "exited" || f.state == "dead") return 2;
  return 1;
}

// The networks a container is attached to, but the engine's own: counted
// as used, so that the last task's removal removes a stack network.
std::vector<std::string> AttachedNetworks(const std::string& inspect_body) {
  std::vector<std::string> out;
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(inspect_body.data(), inspect_body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("NetworkSettings")) return out;
  const auto& ns = d["NetworkSettings"];
  if (!ns.IsObject() || !ns.HasMember("Networks") || !ns["Networks"].IsObject()) return out;
  for (const auto& m : ns["Networks"].GetObject()) {
    std::string name = m.name.GetString();
    if (name != "bridge" && name != "host" && name != "none") out.push_back(name);
  }
  return out;
}

}  // namespace

Status DockerExecutor::Impl::Adopt() {
  const std::string filters =
      std::string(R"({"label":[")") + docker::kLabelNode + "=" + options.node_id + R"("]})";
  Result<HttpResponse> r =
      client.Call("GET", "/containers/json?all=1&filters=" + docker::UrlEncode(filters));
  if (!r.ok()) return r.error();
  if (r->status != 200) {
    return Status(Code::kUnavailable, "listing containers: " + docker::EngineMessage(*r));
  }
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
  if (d.HasParseError() || !d.IsArray()) {
    return Status(Code::kUnavailable, "listing containers: the engine's reply is not a list");
  }
  std::map<std::string, std::vector<Found>> by_task;
  std::vector<std::string> strays;
  for (const auto& v : d.GetArray()) {
    if (!v.IsObject() || !v.HasMember("Id") || !v["Id"].IsString()) continue;
    Found f;
    f.id = v["Id"].GetString();
    if (v.HasMember("State") && v["State"].IsString()) f.state = v["State"].GetString();
    if (v.HasMember("Created") && v["Created"].IsInt64()) f.created = v["Created"].GetInt64();
    if (v.HasMember("Labels") && v["Labels"].IsObject() &&
        v["Labels"].HasMember(docker::kLabelTask) && v["Labels"][docker::kLabelTask].IsString()) {
      f.task_id = v["Labels"][docker::kLabelTask].GetString();
    }
    if (!ValidateTaskId(f.task_id).ok()) {
      strays.push_back(f.id);  // labelled for this node, but no task of it
      continue;
    }
    by_task[f.task_id].push_back(std::move(f));
  }
  std::vector<std::unique_ptr<Ctr>> adopted;
  for (auto& [task_id, list] : by_task) {
    std::sort(list.begin(), list.end(), [](const Found& a, const Found& b) {
      return std::make_pair(Rank(a), a.created) > std::make_pair(Rank(b), b.created);
    });
    for (size_t i = 1; i < list.size(); ++i) strays.push_back(list[i].id);
    const Found& f = list.front();
    auto c = std::make_unique<Ctr>();
    c->task_id = task_id;
    c->container_id = f.id;
    c->obs.container_id = f.id;
    if (f.state == "created") {
      // Made but never started: the agent died in between. The task is
      // reported failed (the agent replaces it) and its container removed.
      strays.push_back(f.id);
      c->container_id.clear();
      c->finished = true;
      c->obs.state = v1::TASK_FAILED;
      c->obs.exit_code = -1;
      c->obs.message = "the agent stopped while starting this task";
      c->obs.error = c->obs.message;
      adopted.push_back(std::move(c));
      continue;
    }
    // A stop requested before the restart: its SIGKILL deadline stays.
    std::ifstream marker(TaskStateDir(task_id) / "stop");
    int64_t kill_at_unix_ns = 0;
    if (marker >> kill_at_unix_ns) {
      c->stop_requested = true;
      auto left = std::chrono::nanoseconds(std::max<int64_t>(kill_at_unix_ns - UnixNowNs(), 0));
      c->kill_at = SteadyClock::now() + left;
    }
    c->obs.state = v1::TASK_RUNNING;
    c->obs.message = c->stop_requested ? "stopping" : "adopted";
    Result<HttpResponse> ins = client.Call("GET", "/containers/" + f.id + "/json");
    if (ins.ok() && ins->status == 200) {
      ApplyInspect(*c, ins->body);
      c->networks = AttachedNetworks(ins->body);
      c->ip = ContainerIp(ins->body, c->networks.empty() ? std::string() : c->networks.front());
      // Every published target: the spec that says which are ingress comes later.
      c->obs.ports = docker::IngressHostPorts(ins->body, {});
    } else if (ins.ok() && ins->status == 404) {
      continue;  // removed meanwhile
    }
    if (c->finished && c->obs.state != v1::TASK_SHUTDOWN) {
      c->obs.message += " (while the agent was down)";
    }
    adopted.push_back(std::move(c));
  }
  for (const std::string& id : strays) {
    (void)client.Call("DELETE", "/containers/" + id + "?force=1");
  }
  std::error_code ec;
  std::lock_guard<std::mutex> lock(mu);
  for (auto& c : adopted) {
    for (const auto& n : c->networks) ++net_users[n];
    Ctr& ref = *c;
    tasks[c->task_id] = std::move(c);
    // A death between the inspect above and now had no task to land on.
    if (!ref.finished) Enqueue(ref, Op{OpKind::kInspect, {}});
  }
  // Files of tasks that never got a container (the agent died in between).
  for (const fs::path& root : {NodeSecretsRoot(), options.state_dir}) {
    for (const auto& e : fs::directory_iterator(root, ec)) {
      std::string id = e.path().filename().string();
      if (ValidateTaskId(id).ok() && !tasks.count(id)) fs::remove_all(e.path(), ec);
    }
  }
  return Status::Ok();
}

}  // namespace shoal::executor
