#include "shoal/dispatcher/ingress_table.h"

#include <algorithm>

namespace shoal::dispatcher {

using store::Kind;

std::vector<v1::PortConfig> MeshPorts(const v1::ServiceSpec& spec) {
  std::vector<v1::PortConfig> out;
  for (const v1::PortConfig& p : spec.endpoint().ports()) {
    if (p.mode() != v1::PortConfig::PUBLISH_INGRESS || p.published() == 0) continue;
    if (!p.protocol().empty() && p.protocol() != "tcp") continue;
    out.push_back(p);
  }
  return out;
}

std::string AddrHost(const std::string& addr) {
  if (!addr.empty() && addr.front() == '[') {
    size_t end = addr.find(']');
    return end == std::string::npos ? addr : addr.substr(1, end - 1);
  }
  size_t colon = addr.rfind(':');
  // A bare IPv6 address has several colons and no port.
  if (colon == std::string::npos || addr.find(':') != colon) return addr;
  return addr.substr(0, colon);
}

v1::IngressTable BuildIngressTable(const store::State& state) {
  v1::IngressTable table;
  for (const v1::Mutation* m : state.List(Kind::kService)) {
    v1::IngressService entry;
    if (BuildIngressService(state, m->service(), &entry)) *table.add_services() = std::move(entry);
  }
  return table;
}

bool BuildIngressService(const store::State& state, const v1::Service& svc,
                         v1::IngressService* out) {
  std::vector<v1::PortConfig> ports = MeshPorts(svc.spec());
  if (ports.empty()) return false;
  out->set_service_id(svc.meta().id());
  out->set_service_name(svc.spec().name());
  for (v1::PortConfig& p : ports) *out->add_ports() = std::move(p);
  for (const v1::Mutation* tm : state.Find(Kind::kTask, "service", svc.meta().id())) {
    const v1::Task& t = tm->task();
    // A task being stopped takes no new connection: it is about to go.
    if (t.status().state() != v1::TASK_RUNNING || t.desired_state() != v1::TASK_RUNNING) {
      continue;
    }
    const v1::Node* node = state.Get<v1::Node>(t.node_id());
    if (node == nullptr || node->status().state() == v1::NodeStatus::STATE_DOWN) continue;
    v1::IngressBackend* b = out->add_backends();
    b->set_task_id(t.meta().id());
    b->set_node_id(t.node_id());
    b->set_node_addr(AddrHost(node->status().addr()));
    for (const v1::PortConfig& p : t.status().ports()) *b->add_ports() = p;
  }
  return true;
}

void IngressTracker::Observe(const v1::Mutation& m) {
  if (all_dirty_) return;
  if (m.has_service()) {
    const v1::Service& s = m.service();
    if (services_.count(s.meta().id()) || !MeshPorts(s.spec()).empty()) {
      dirty_.insert(s.meta().id());
    }
  } else if (services_.empty()) {
    return;  // no mesh: nothing else matters
  } else if (m.has_task()) {
    if (services_.count(m.task().service_id())) dirty_.insert(m.task().service_id());
  } else if (m.has_node()) {
    all_dirty_ = true;  // its address or its state (DOWN drops its backends)
  }
}

bool IngressTracker::Refresh(const store::State& state) {
  if (!all_dirty_ && dirty_.empty()) return false;
  std::set<std::string> ids;
  if (all_dirty_) {
    for (const auto& [id, entry] : services_) ids.insert(id);
    for (const v1::Mutation* m : state.List(Kind::kService)) {
      if (!MeshPorts(m->service().spec()).empty()) ids.insert(m->service().meta().id());
    }
  } else {
    ids.swap(dirty_);
  }
  all_dirty_ = false;
  dirty_.clear();
  bool changed = false;
  for (const std::string& id : ids) {
    v1::IngressService entry;
    const v1::Service* svc = state.Get<v1::Service>(id);
    auto it = services_.find(id);
    if (svc == nullptr || !BuildIngressService(state, *svc, &entry)) {
      if (it != services_.end()) {
        services_.erase(it);
        changed = true;
      }
      continue;
    }
    std::string bytes = entry.SerializeAsString();
    if (it != services_.end() && it->second.second == bytes) continue;
    services_[id] = {std::move(entry), std::move(bytes)};
    changed = true;
  }
  if (!changed) return false;
  table_.Clear();
  for (const auto& [id, entry] : services_) *table_.add_services() = entry.first;
  ++version_;
  return true;
}

}  // namespace shoal::dispatcher
