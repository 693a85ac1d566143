// The stack networks of one node: claimed per task, made through the engine
// when a task first needs one (beside the container's create), released and
// removed when the last task using them is gone.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "impl.h"

namespace shoal::executor {

using docker::EngineMessage;
using docker::HttpResponse;

std::vector<docker::NetworkJoin> DockerExecutor::Impl::ClaimNetworks(const v1::Task& task) {
  std::vector<docker::NetworkJoin> out;
  for (const v1::NetworkAttachment& a : task.networks()) {
    docker::NetworkJoin j;
    j.name = a.target();
    j.subnet = a.subnet();
    j.aliases.push_back(ShortServiceName(task));
    for (const auto& alias : a.aliases()) j.aliases.push_back(alias);
    out.push_back(std::move(j));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& j : out) ++net_users[j.name];
  }
  // Known to exist (made or seen by this executor, not removed since): one
  // engine call less per container of a 50-replica service. Not waited for
  // while another worker makes or removes a network: MakeNetworks looks again.
  std::unique_lock<std::mutex> net_lock(net_mu, std::try_to_lock);
  if (net_lock.owns_lock()) {
    for (auto& j : out) {
      if (auto known = nets_known.find(j.name); known != nets_known.end()) j.id = known->second;
    }
  }
  return out;
}

Result<std::vector<docker::NetworkJoin>> DockerExecutor::Impl::MakeNetworks(
    const v1::Task& task, std::vector<docker::NetworkJoin> out) {
  Status made = [&]() -> Status {
    std::lock_guard<std::mutex> net_lock(net_mu);
    for (auto& j : out) {
      if (auto known = nets_known.find(j.name); known != nets_known.end()) {
        j.id = known->second;
        continue;
      }
      // Not listed first: a network that exists already (made by another
      // node sharing the engine, or before a restart) is refused by name
      // (409) and found below, and a new one costs one call less on the
      // first task's way to its start.
      // A bridge network on this engine with the subnet the managers chose.
      // The engine refuses a second network with that subnet, so nodes that
      // share an engine (and race here) end up with one network: the loser's
      // create fails and it finds the winner's below.
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartObject();
      w.Key("Name");
      w.String(j.name.c_str());
      w.Key("Driver");
      w.String("bridge");
      w.Key("CheckDuplicate");
      w.Bool(true);
      if (!j.subnet.empty()) {
        w.Key("IPAM");
        w.StartObject();
        w.Key("Config");
        w.StartArray();
        w.StartObject();
        w.Key("Subnet");
        w.String(j.subnet.c_str());
        w.EndObject();
        w.EndArray();
        w.EndObject();
      }
      w.Key("Labels");
      w.StartObject();
      w.Key(docker::kLabelNetwork);
      w.String(j.name.c_str());
      w.Key(docker::kLabelStack);
      w.String(task.stack().c_str());
      w.EndObject();
      w.EndObject();
      Result<HttpResponse> r = client.Call("POST", "/networks/create", sb.GetString());
      if (r.ok() && r->status == 201 && !j.subnet.empty()) {
        // Made, and the only one of its name: the engine refuses a second
        // network with this subnet, so there is no twin to look for, and
        // the reply's id spares a listing on the first task's way to its
        // create (issue 6 (g)).
        rapidjson::Document d;
        d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
        if (std::string id = d.HasParseError() ? "" : StrMember(d, "Id"); !id.empty()) {
          nets_known[j.name] = id;
          j.id = std::move(id);
          continue;
        }
      }
      if (r.ok()) {
        // Made, or refused because another node sharing the engine is making
        // it (409 for the name, 403 for the subnet): the engine reserves the
        // subnet before it lists the network, so give the other node's create
        // up to 3 s to show under the name.
        for (int attempt = 0; attempt < 30; ++attempt) {
          Result<std::string> made_id = ResolveNetwork(j.name);
          if (made_id.ok() && !made_id->empty()) {
            nets_known[j.name] = *made_id;
            j.id = *made_id;
            break;
          }
          if (r->status == 201) break;  // ours, listed late: join it by name
          {
            // Not at shutdown: the workers hold net_mu here in turn, and
            // StopThreads would wait 3 s for each.
            std::lock_guard<std::mutex> lock(mu);
            if (stopping) break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (!j.id.empty() || r->status == 201) continue;
      }
      return Status(Code::kUnavailable, "creating network " + j.name + ": " +
                                            (r.ok() ? EngineMessage(*r) : r.error().message()));
    }
    return Status::Ok();
  }();
  if (!made.ok()) {
    std::vector<std::string> names;
    for (const auto& n : out) names.push_back(n.name);
    ReleaseNetworks(names);
    return made;
  }
  return out;
}

void DockerExecutor::Impl::ReleaseNetworks(const std::vector<std::string>& names) {
  std::vector<std::string> unused;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& n : names) {
      auto it = net_users.find(n);
      if (it == net_users.end()) continue;
      if (--it->second <= 0) {
        net_users.erase(it);
        unused.push_back(n);
      }
    }
  }
  if (unused.empty()) return;
  std::lock_guard<std::mutex> net_lock(net_mu);
  for (const auto& n : unused) {
    std::string ref = n;
    if (auto known = nets_known.find(n); known != nets_known.end()) {
      ref = known->second;
      nets_known.erase(known);
    }
    {
      // A task that started meanwhile uses it again.
      std::lock_guard<std::mutex> lock(mu);
      if (net_users.count(n)) continue;
    }
    Result<HttpResponse> r = client.Call("GET", "/networks/" + docker::UrlEncode(ref));
    if (!r.ok() || r->status != 200) continue;
    rapidjson::Document d;
    d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
    if (d.HasParseError()) continue;
    // Only networks shoal made, and only when no container (of another node
    // sharing this engine, say) is still attached: the engine refuses then.
    const rapidjson::Value* labels = Member(d, "Labels");
    if (labels == nullptr || StrMember(*labels, docker::kLabelNetwork) != n) continue;
    (void)client.Call("DELETE", "/networks/" + docker::UrlEncode(ref));
  }
}

Result<std::string> DockerExecutor::Impl::ResolveNetwork(const std::string& name) {
  const std::string filters = R"({"name":[")" + name + R"("]})";
  Result<HttpResponse> r = client.Call("GET", "/networks?filters=" + docker::UrlEncode(filters));
  if (!r.ok()) return r.error();
  if (r->status != 200) return Status(Code::kUnavailable, "listing networks: " + EngineMessage(*r));
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(r->body.data(), r->body.size());
  if (d.HasParseError() || !d.IsArray()) {
    return Status(Code::kUnavailable, "listing networks: the engine's answer is not a list");
  }
  std::vector<std::string> ids;  // the name filter matches substrings: exact names only
  for (const auto& n : d.GetArray()) {
    if (!n.IsObject() || StrMember(n, "Name") != name) continue;
    if (std::string id = StrMember(n, "Id"); !id.empty()) ids.push_back(std::move(id));
  }
  if (ids.empty()) return std::string();
  std::sort(ids.begin(), ids.end());
  // Engine 20.10 refuses to start a container on a name that two networks
  // share, even when the container names the network by id: every node
  // keeps the lowest id and removes the others, made in the same instant by
  // another node and still unused (the engine refuses to remove one in use).
  for (size_t i = 1; i < ids.size(); ++i) {
    (void)client.Call("DELETE", "/networks/" + docker::UrlEncode(ids[i]));
  }
  return ids.front();
}

}  // namespace shoal::executor
