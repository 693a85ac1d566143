// The host ports an engine bound for a container's ingress targets, from its
// inspect reply (NetworkSettings.Ports): reported in the task's status so
// that other nodes' ingress proxies reach the task (ingress.h).

#include <rapidjson/document.h>

#include <cstdlib>
#include <set>

#include "ingress.h"

namespace shoal::executor::docker {

std::vector<v1::PortConfig> IngressHostPorts(const std::string& inspect_body,
                                             const std::vector<v1::PortConfig>& ingress) {
  std::vector<v1::PortConfig> out;
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(inspect_body.data(), inspect_body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("NetworkSettings")) return out;
  const rapidjson::Value& ns = d["NetworkSettings"];
  if (!ns.IsObject() || !ns.HasMember("Ports") || !ns["Ports"].IsObject()) return out;
  const rapidjson::Value& ports = ns["Ports"];
  std::vector<std::pair<uint32_t, std::string>> wanted;  // target, protocol
  for (const v1::PortConfig& p : ingress) {
    wanted.emplace_back(p.target(), p.protocol().empty() ? "tcp" : p.protocol());
  }
  if (ingress.empty()) {
    for (const auto& m : ports.GetObject()) {
      const std::string key = m.name.GetString();
      const size_t slash = key.find('/');
      if (slash == std::string::npos) continue;
      wanted.emplace_back(std::strtoul(key.c_str(), nullptr, 10), key.substr(slash + 1));
    }
  }
  std::set<std::string> done;
  for (const auto& [target, proto] : wanted) {
    const std::string key = std::to_string(target) + "/" + proto;
    if (!done.insert(key).second || !ports.HasMember(key.c_str())) continue;
    const rapidjson::Value& binds = ports[key.c_str()];
    if (!binds.IsArray()) continue;  // null: not published (yet)
    for (const auto& b : binds.GetArray()) {
      if (!b.IsObject() || !b.HasMember("HostPort") || !b["HostPort"].IsString()) continue;
      const long host_port = std::strtol(b["HostPort"].GetString(), nullptr, 10);
      if (host_port <= 0 || host_port > 65535) continue;
      v1::PortConfig got;
      got.set_protocol(proto);
      got.set_target(target);
      got.set_published(static_cast<uint32_t>(host_port));
      got.set_mode(v1::PortConfig::PUBLISH_HOST);
      out.push_back(std::move(got));
      break;  // the IPv4 and IPv6 bindings share the port
    }
  }
  return out;
}

}  // namespace shoal::executor::docker
