#include "validate.h"

#include <functional>
#include <map>
#include <set>

namespace shoal::stack {

namespace {

std::string Trim(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

bool Declared(const Node& root, const char* kind, const std::string& name) {
  const Node* top = root.Get(kind);
  return top && top->IsMap() && top->Get(name);
}

void CheckDependsOn(const Node& services, Diagnostics& diags) {
  std::map<std::string, std::vector<std::string>> edges;
  for (const auto& s : services.entries) {
    const Node* d = s.value->IsMap() ? s.value->Get("depends_on") : nullptr;
    if (!d || !d->IsMap()) continue;
    for (const auto& dep : d->entries) {
      std::string path = "services." + s.key + ".depends_on." + dep.key;
      if (!services.Get(dep.key)) {
        diags.Error(dep.key_mark, path, "depends on an undefined service \"" + dep.key + "\"");
        continue;
      }
      edges[s.key].push_back(dep.key);
    }
  }
  // Depth-first search; each cycle is reported once, at the service that closes it.
  std::map<std::string, int> state;  // 0 new, 1 on stack, 2 done
  std::vector<std::string> stack;
  std::function<void(const std::string&)> visit = [&](const std::string& n) {
    state[n] = 1;
    stack.push_back(n);
    for (const auto& m : edges[n]) {
      if (state[m] == 1) {
        std::string cycle;
        auto it = std::find(stack.begin(), stack.end(), m);
        for (; it != stack.end(); ++it) cycle += *it + " -> ";
        cycle += m;
        const Entry* e = services.Get(n)->Get("depends_on")->GetEntry(m);
        diags.Error(e->key_mark, "services." + n + ".depends_on", "dependency cycle: " + cycle);
      } else if (state[m] == 0) {
        visit(m);
      }
    }
    stack.pop_back();
    state[n] = 2;
  };
  for (const auto& s : services.entries)
    if (state[s.key] == 0) visit(s.key);
}

}  // namespace

bool ParseConstraint(std::string_view text, Constraint* out, std::string* error) {
  std::string s(text);
  size_t pos = s.find("==");
  std::string op = "==";
  if (pos == std::string::npos) {
    pos = s.find("!=");
    op = "!=";
  }
  if (pos == std::string::npos) {
    *error = "constraint \"" + s + "\" has no operator: use == or !=";
    return false;
  }
  out->lhs = Trim(s.substr(0, pos));
  out->rhs = Trim(s.substr(pos + 2));
  out->op = op;
  if (out->rhs.find("==") != std::string::npos || out->rhs.find("!=") != std::string::npos) {
    *error = "constraint \"" + s + "\" has more than one operator";
    return false;
  }
  if (out->lhs.empty() || out->rhs.empty()) {
    *error = "constraint \"" + s + "\" needs a value on both sides of " + op;
    return false;
  }
  static const std::set<std::string> kFixed = {"node.id", "node.hostname", "node.role",
                                               "node.platform.os", "node.platform.arch"};
  bool ok = kFixed.count(out->lhs) ||
            (out->lhs.rfind("node.labels.", 0) == 0 && out->lhs.size() > 12) ||
            (out->lhs.rfind("engine.labels.", 0) == 0 && out->lhs.size() > 14);
  if (!ok) {
    *error = "constraint \"" + s + "\": unknown attribute \"" + out->lhs +
             "\" (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, "
             "node.labels.<key> or engine.labels.<key>)";
    return false;
  }
  if (out->lhs == "node.role" && out->rhs != "manager" && out->rhs != "worker") {
    *error = "constraint \"" + s + "\": node.role is manager or worker";
    return false;
  }
  return true;
}

void ValidateStack(const Node& root, Diagnostics& diags) {
  if (!root.IsMap()) return;
  const Node* services = root.Get("services");
  std::map<std::string, std::string> published;  // "port/proto/ip" -> service
  if (services && services->IsMap()) {
    for (const auto& s : services->entries) {
      const Node& svc = *s.value;
      if (!svc.IsMap()) continue;
      std::string base = "services." + s.key;
      const Entry* nm = svc.GetEntry("network_mode");
      const Entry* nets = svc.GetEntry("networks");
      if (nm && nets) {
        diags.Error(nm->key_mark, base + ".network_mode",
                    "network_mode and networks cannot be combined");
      }
      if (nets && nets->value->IsMap()) {
        for (const auto& n : nets->value->entries) {
          if (n.key != "default" && !Declared(root, "networks", n.key)) {
            diags.Error(n.key_mark, base + ".networks." + n.key,
                        "refers to undefined network \"" + n.key + "\"");
          }
        }
      }
      if (const Node* vols = svc.Get("volumes"); vols && vols->IsSeq()) {
        for (size_t i = 0; i < vols->items.size(); ++i) {
          const Node& v = *vols->items[i];
          const Node* type = v.Get("type");
          const Node* src = v.Get("source");
          if (type && type->ScalarText() == "volume" && src && !src->ScalarText().empty() &&
              !Declared(root, "volumes", src->ScalarText())) {
            diags.Error(v.mark, IndexPath(base + ".volumes", i),
                        "refers to undefined volume \"" + src->ScalarText() + "\"");
          }
        }
      }
      for (const char* kind : {"secrets", "configs"}) {
        const Node* refs = svc.Get(kind);
        if (!refs || !refs->IsSeq()) continue;
        for (size_t i = 0; i < refs->items.size(); ++i) {
          const Node* src = refs->items[i]->Get("source");
          if (src && !Declared(root, kind, src->ScalarText())) {
            diags.Error(refs->items[i]->mark, IndexPath(base + "." + kind, i),
                        std::string("refers to undefined ") +
                            (kind[0] == 's' ? "secret" : "config") + " \"" + src->ScalarText() +
                            "\"");
          }
        }
      }
      if (const Node* ports = svc.Get("ports"); ports && ports->IsSeq()) {
        for (size_t i = 0; i < ports->items.size(); ++i) {
          const Node& p = *ports->items[i];
          const Node* pub = p.Get("published");
          if (!pub || pub->ScalarText().empty()) continue;
          const Node* proto = p.Get("protocol");
          const Node* ip = p.Get("host_ip");
          std::string key = pub->ScalarText() + "/" + (proto ? proto->ScalarText() : "tcp") +
                            (ip ? " on " + ip->ScalarText() : "");
          auto [it, fresh] = published.emplace(key, s.key);
          if (!fresh) {
            diags.Error(p.mark, IndexPath(base + ".ports", i),
                        "port " + key + " is already published by service \"" + it->second + "\"");
          }
        }
      }
      const Node* deploy = svc.Get("deploy");
      const Node* placement = deploy ? deploy->Get("placement") : nullptr;
      if (const Node* cs = placement ? placement->Get("constraints") : nullptr; cs && cs->IsSeq()) {
        for (size_t i = 0; i < cs->items.size(); ++i) {
          Constraint c;
          std::string error;
          if (!ParseConstraint(cs->items[i]->ScalarText(), &c, &error)) {
            diags.Error(cs->items[i]->mark, IndexPath(base + ".deploy.placement.constraints", i),
                        error);
          }
        }
      }
      const Node* res = deploy ? deploy->Get("resources") : nullptr;
      const Node* resv = res ? res->Get("reservations") : nullptr;
      if (const Node* devs = resv ? resv->Get("devices") : nullptr; devs && devs->IsSeq()) {
        for (size_t i = 0; i < devs->items.size(); ++i) {
          const Node& d = *devs->items[i];
          if (d.Get("count") && d.Get("device_ids")) {
            diags.Error(d.mark, IndexPath(base + ".deploy.resources.reservations.devices", i),
                        "\"count\" and \"device_ids\" are exclusive");
          }
        }
      }
    }
    CheckDependsOn(*services, diags);
  }
  for (const char* kind : {"networks", "volumes"}) {
    const Node* top = root.Get(kind);
    if (!top || !top->IsMap()) continue;
    for (const auto& e : top->entries) {
      const Node* ext = e.value->Get("external");
      bool external = ext && ext->kind == Kind::kBool && ext->bool_value;
      if (external && e.value->Get("driver")) {
        diags.Error(e.key_mark, std::string(kind) + "." + e.key,
                    "conflicting keys \"external\" and \"driver\": an external object is not "
                    "created, so it has no driver");
      }
    }
  }
}

void WarnUnsupported(const Node& root, Diagnostics& diags) {
  // Valid compose that shoal does not apply, with the reason a user needs.
  static const std::map<std::string, std::string> kService = {
      {"build", "shoal runs images and never builds them"},
      {"container_name", "task containers are named <service>.<slot>.<task>"},
      {"links", "services reach each other by name on their networks"},
      {"external_links", "services reach each other by name on their networks"},
      {"network_mode", "tasks attach to the stack's networks"},
      {"devices", "device access is not supported"},
      {"privileged", "privileged containers are not supported"},
      {"security_opt", "security options are not supported"},
      {"cgroup_parent", "not applied"},
      {"cgroupns_mode", "not applied"},
      {"cgroup", "not applied"},
      {"domainname", "not applied"},
      {"ipc", "not applied"},
      {"pid", "not applied"},
      {"mac_address", "not applied"},
      {"shm_size", "not applied"},
      {"userns_mode", "not applied"},
      {"expose", "ports on a stack network are reachable without expose"},
      {"profiles", "every service of a stack is deployed"},
      {"develop", "compose watch is not a deploy feature"},
      {"pull_policy", "images are never pulled"},
      {"platform", "use a placement constraint on node.platform.*"},
      {"volumes_from", "not applied"},
      {"isolation", "not applied"},
      {"runtime", "not applied"},
      {"oom_kill_disable", "not applied"},
      {"oom_score_adj", "not applied"},
      {"mem_limit", "use deploy.resources.limits.memory"},
      {"memswap_limit", "not applied"},
      {"mem_reservation", "use deploy.resources.reservations.memory"},
      {"cpus", "use deploy.resources.limits.cpus"},
      {"cpu_shares", "not applied"},
      {"cpu_quota", "use deploy.resources.limits.cpus"},
      {"cpu_period", "not applied"},
      {"cpuset", "not applied"},
      {"cpu_count", "not applied"},
      {"cpu_percent", "not applied"},
      {"cpu_rt_runtime", "not applied"},
      {"cpu_rt_period", "not applied"},
      {"blkio_config", "not applied"},
      {"storage_opt", "not applied"},
      {"pids_limit", "use deploy.resources.limits.pids"},
      {"gpus", "not applied"},
      {"device_cgroup_rules", "not applied"},
      {"annotations", "not applied"},
      {"attach", "not applied"},
      {"label_file", "not applied"},
      {"models", "not applied"},
      {"volume_driver", "set the driver on the named volume"},
      {"use_api_socket", "not applied"},
      {"post_start", "not applied"},
      {"pre_stop", "not applied"},
      {"provider", "not applied"},
      {"credential_spec", "not applied"},
      {"stdin_open", ""},
      {"mem_swappiness", "not applied"},
      {"pull_refresh_after", "images are never pulled"},
      {"uts", "not applied"},
  };
  static const std::set<std::string> kTop = {"include", "models"};
  if (!root.IsMap()) return;
  for (const auto& e : root.entries) {
    if (kTop.count(e.key) && e.key != "include") {
      diags.Warning(e.key_mark, e.key, "ignored: shoal does not apply top-level \"" + e.key + "\"");
    }
  }
  const Node* services = root.Get("services");
  if (!services || !services->IsMap()) return;
  for (const auto& s : services->entries) {
    if (!s.value->IsMap()) continue;
    for (const auto& k : s.value->entries) {
      auto it = kService.find(k.key);
      if (it == kService.end() || it->second.empty()) continue;
      if (k.key == "build" && !s.value->Get("image")) {
        diags.Warning(k.key_mark, "services." + s.key + ".build",
                      "ignored: shoal never builds images; the service runs the image compose "
                      "would have built (<stack>-" +
                          s.key + "), which must exist on the nodes");
        continue;
      }
      diags.Warning(k.key_mark, "services." + s.key + "." + k.key, "ignored: " + it->second);
    }
    const Node* deploy = s.value->Get("deploy");
    const Node* res = deploy ? deploy->Get("resources") : nullptr;
    const Node* resv = res ? res->Get("reservations") : nullptr;
    if (const Entry* d = resv ? resv->GetEntry("devices") : nullptr) {
      diags.Warning(d->key_mark, "services." + s.key + ".deploy.resources.reservations.devices",
                    "ignored: device reservations are not supported");
    }
  }
}

}  // namespace shoal::stack
