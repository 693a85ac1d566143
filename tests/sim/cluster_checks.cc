// The cluster simulation's invariants (cluster_sim_internal.h): checked
// throughout the run, and after healing until the cluster converges; and the
// dump printed with a failure.

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <sstream>

#include "cluster_sim_internal.h"
#include "shoal/scheduler/scheduler.h"

namespace shoal::sim::cluster {

std::string Canonical(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&cos);
  }
  return out;
}

uint64_t Fnv(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string StateName(v1::TaskState s) { return v1::TaskState_Name(s).substr(5); }

// ---- invariants ----

void ClusterSim::CheckLeaders() {
  for (const Host& h : hosts_) {
    if (!h.store) continue;
    auto st = h.store->raft_status();
    if (st.role != Role::kLeader) continue;
    auto [it, inserted] = leader_of_term_.emplace(st.term, h.raft_id);
    if (inserted) {
      ++stats_.elections;
      Trace("leader " + h.hostname + " term " + std::to_string(st.term));
    } else if (it->second != h.raft_id) {
      return Fail("two leaders in term " + std::to_string(st.term) + ": m" +
                  std::to_string(it->second) + " and " + h.hostname);
    }
  }
}

// The store simulation's checks: every committed entry is the same on every
// disk, and equal applied indexes mean equal states.
void ClusterSim::CheckStores() {
  for (Host& h : hosts_) {
    if (!h.store) continue;
    auto st = h.store->raft_status();
    auto disk = h.disk->Load();
    if (!disk.ok()) return Fail("load: " + disk.error().ToString());
    for (const auto& e : disk->entries) {
      if (e.index() > st.commit || e.index() <= disk->snapshot->metadata().index()) continue;
      auto [it, inserted] = committed_.emplace(e.index(), std::make_pair(e.term(), e.data()));
      if (!inserted && (it->second.first != e.term() || it->second.second != e.data())) {
        return Fail(h.hostname + " holds a different committed entry at " +
                    std::to_string(e.index()));
      }
    }
    const store::State& s = h.store->state();
    uint64_t hash = Fnv(Canonical(s.ToSnapshot()));
    auto [it, inserted] = state_hash_at_.emplace(s.applied_index(), hash);
    if (!inserted && it->second != hash) {
      return Fail("states diverge at index " + std::to_string(s.applied_index()) + " (" +
                  h.hostname + ")");
    }
  }
  // Note what the leaders' states show, for the trace and the stats.
  const Host* l = Leader();
  if (!l) return;
  const store::State& s = l->store->state();
  for (const v1::Mutation* m : s.List(Kind::kNode)) {
    const v1::Node& n = m->node();
    auto& prev = node_state_seen_[n.meta().id()];
    if (prev == n.status().state()) continue;
    if (prev == v1::NodeStatus::STATE_READY && n.status().state() == v1::NodeStatus::STATE_DOWN) {
      ++stats_.node_downs;
    }
    prev = n.status().state();
    Trace("store: " + n.meta().id() + " " + v1::NodeStatus::State_Name(n.status().state()) +
          (n.status().message().empty() ? "" : " (" + n.status().message() + ")"));
  }
  for (const v1::Mutation* m : s.List(Kind::kTask)) task_ids_seen_.insert(m->task().meta().id());
}

// Throughout: an agent runs only tasks that the store assigned to its node.
void ClusterSim::CheckAgents() {
  const Host* l = Leader();
  if (!l) return;
  const store::State& s = l->store->state();
  for (const Host& h : hosts_) {
    if (!h.agent) continue;
    for (const auto& [id, obs] : h.agent->seen()) {
      const v1::Task* t = s.Get<v1::Task>(id);
      if (t && t->node_id() != h.node_id) {
        return Fail(h.hostname + " runs task " + id + ", which the store assigns to " +
                    t->node_id());
      }
    }
  }
}

// The state after healing: "" when every invariant holds, else the first
// one that does not.
std::string ClusterSim::CheckFinal() {
  const Host* l = Leader();
  if (!l) return "no leader";
  auto lst = l->store->raft_status();
  if (lst.commit != lst.last_index) return "the leader has uncommitted entries";
  const store::State& s = l->store->state();
  if (s.applied_index() != lst.commit) return "the leader has not applied its commit index";
  if (std::string why = CheckManagersEqual(*l); !why.empty()) return why;
  if (std::string why = CheckNodesAndAgents(s); !why.empty()) return why;
  // What runs where, according to the executors.
  RunningMap running;
  for (const Host& h : hosts_) {
    for (const auto& [id, obs] : h.agent->seen()) {
      if (Running(obs.state)) running[id].push_back(h.node_id);
    }
  }
  std::set<std::string> expected;  // the task ids that must run
  for (const v1::Mutation* m : s.List(Kind::kService)) {
    if (std::string why = CheckService(s, m->service(), running, &expected); !why.empty()) {
      return why;
    }
  }
  // Nothing else runs anywhere: no second task in a slot, nothing retired,
  // nothing of a deleted service.
  for (const auto& [id, nodes] : running) {
    if (expected.count(id)) continue;
    const v1::Task* t = s.Get<v1::Task>(id);
    std::string what = t ? t->service_name() + " slot " + std::to_string(t->slot()) + " task " +
                               id + " (desired " + StateName(t->desired_state()) + ")"
                         : "task " + id + " (not in the store)";
    return what + " still runs on " + nodes[0];
  }
  return CountStuckRetired(s);
}

// Every manager up, at the leader's applied index, with an identical state.
std::string ClusterSim::CheckManagersEqual(const Host& leader) {
  const store::State& s = leader.store->state();
  std::string leader_state = Canonical(s.ToSnapshot());
  for (int m : ManagerHosts()) {
    const Host& h = hosts_[m];
    if (!h.store) return h.hostname + " is down";
    if (h.store->state().applied_index() != s.applied_index()) {
      return h.hostname + " applied " + std::to_string(h.store->state().applied_index()) +
             ", the leader " + std::to_string(s.applied_index());
    }
    if (Canonical(h.store->state().ToSnapshot()) != leader_state) {
      return "the states of " + h.hostname + " and the leader " + leader.hostname +
             " differ at index " + std::to_string(s.applied_index());
    }
  }
  return "";
}

// Every node READY; every agent connected with its full set, holding exactly
// its node's tasks that were handed to it (status ASSIGNED or later), each
// at the store's latest version: the dispatcher's full set and increments
// add up to the store.
std::string ClusterSim::CheckNodesAndAgents(const store::State& s) {
  for (const Host& h : hosts_) {
    const v1::Node* n = s.Get<v1::Node>(h.node_id);
    if (!n) return h.node_id + " has no Node object";
    if (n->status().state() != v1::NodeStatus::STATE_READY) {
      return h.node_id + " is " + v1::NodeStatus::State_Name(n->status().state());
    }
    if (!h.agent || !h.agent->connected() || !h.agent->have_full_set()) {
      return h.hostname + "'s agent is not connected with a full assignment set";
    }
    // The dispatcher sends a task again when what the agent acts on changed
    // (desired state, or a status that became final), not for the agent's
    // own status reports: the agent holds each task with those as the store.
    std::map<std::string, const v1::Task*> want;
    for (const v1::Mutation* m : s.Find(Kind::kTask, "node", h.node_id)) {
      if (m->task().status().state() >= v1::TASK_ASSIGNED) want[m->task().meta().id()] = &m->task();
    }
    const auto& have = h.agent->tasks();
    for (const auto& [id, t] : want) {
      auto it = have.find(id);
      if (it == have.end()) return h.hostname + "'s agent never received task " + id;
      bool final_here = it->second.status().state() >= v1::TASK_COMPLETE;
      bool final_there = t->status().state() >= v1::TASK_COMPLETE;
      if (it->second.desired_state() != t->desired_state() || final_here != final_there) {
        return h.hostname + "'s agent holds version " +
               std::to_string(it->second.meta().version()) + " of task " + id + " (desired " +
               StateName(it->second.desired_state()) + "), the store " +
               std::to_string(t->meta().version()) + " (desired " + StateName(t->desired_state()) +
               ")";
      }
    }
    for (const auto& [id, t] : have) {
      if (!want.count(id)) return h.hostname + "'s agent still holds task " + id;
    }
  }
  return "";
}

// One service: its live tasks are of the current spec, in their desired
// state, on nodes that accept them and running there (and only there); a
// replicated service has `replicas` distinct slots, a global one a task on
// each eligible node. Adds the tasks that must run to *expected.
std::string ClusterSim::CheckService(const store::State& s, const v1::Service& svc,
                                     const RunningMap& running, std::set<std::string>* expected) {
  const std::string& name = svc.spec().name();
  v1::ServiceMode mode = svc.spec().mode();
  bool job = mode == v1::MODE_REPLICATED_JOB || mode == v1::MODE_GLOBAL_JOB;
  std::vector<const v1::Task*> live;
  for (const v1::Mutation* tm : s.Find(Kind::kTask, "service", svc.meta().id())) {
    if (tm->task().desired_state() <= v1::TASK_COMPLETE) live.push_back(&tm->task());
  }
  auto describe = [&](const v1::Task& t) {
    return name + " task " + t.meta().id() + " (slot " + std::to_string(t.slot()) + ", node " +
           t.node_id() + ")";
  };
  for (const v1::Task* t : live) {
    if (t->service_spec_version() != svc.spec_version()) {
      return describe(*t) + " is of spec version " + std::to_string(t->service_spec_version()) +
             ", the service's is " + std::to_string(svc.spec_version());
    }
    v1::TaskState want_desired = job ? v1::TASK_COMPLETE : v1::TASK_RUNNING;
    if (t->desired_state() != want_desired) return describe(*t) + " has a wrong desired state";
    if (job) {
      if (t->status().state() != v1::TASK_COMPLETE) {
        return describe(*t) + " is " + StateName(t->status().state()) + ", not COMPLETE";
      }
      continue;
    }
    if (t->status().state() != v1::TASK_RUNNING) {
      return describe(*t) + " is " + StateName(t->status().state()) + " in the store";
    }
    const auto& test = t->spec().healthcheck().test();
    if (!test.empty() && test[0] != "NONE" &&
        t->status().health() != v1::TaskStatus::HEALTH_HEALTHY) {
      return describe(*t) + " is not HEALTHY in the store";
    }
    const v1::Node* node = s.Get<v1::Node>(t->node_id());
    if (!node) return describe(*t) + " names an unknown node";
    v1::Task probe;
    probe.set_service_id(t->service_id());
    *probe.mutable_placement() = t->placement();
    std::string refusal = scheduler::Explain(*node, {}, probe);
    if (!refusal.empty()) return describe(*t) + " runs on a node that refuses it: " + refusal;
    auto it = running.find(t->meta().id());
    if (it == running.end()) return describe(*t) + " runs in no executor";
    if (it->second.size() != 1 || it->second[0] != t->node_id()) {
      std::string where;
      for (const auto& n : it->second) where += " " + n;
      return describe(*t) + " runs in the executors of" + where;
    }
    for (const Host& h : hosts_) {
      if (h.node_id != t->node_id()) continue;
      v1::TaskState in_executor = h.agent->seen().at(t->meta().id()).state;
      if (in_executor != v1::TASK_RUNNING) {
        return describe(*t) + " is " + StateName(in_executor) + " in its executor";
      }
    }
    expected->insert(t->meta().id());
  }
  if (mode == v1::MODE_REPLICATED || mode == v1::MODE_REPLICATED_JOB) {
    // Slots are identities, not positions: after a scale-down the remaining
    // ones need not be 1..replicas (docs/orchestrator.md).
    std::map<uint64_t, int> slots;
    for (const v1::Task* t : live) ++slots[t->slot()];
    for (const auto& [slot, count] : slots) {
      if (slot == 0) return name + " has a live task without a slot";
      if (count != 1) {
        return name + " slot " + std::to_string(slot) + " has " + std::to_string(count) +
               " live tasks";
      }
    }
    if (slots.size() != svc.spec().replicas()) {
      return name + " has " + std::to_string(slots.size()) + " live tasks, wants " +
             std::to_string(svc.spec().replicas());
    }
    return "";
  }
  // Global: exactly the eligible nodes, one task each.
  v1::Task probe;
  probe.set_service_id(svc.meta().id());
  *probe.mutable_placement() = svc.spec().placement();
  std::map<std::string, int> per_node;
  for (const v1::Task* t : live) ++per_node[t->node_id()];
  for (const v1::Mutation* nm : s.List(Kind::kNode)) {
    const v1::Node& n = nm->node();
    bool eligible = scheduler::Explain(n, {}, probe).empty();
    int have = per_node.count(n.meta().id()) ? per_node[n.meta().id()] : 0;
    if (have != (eligible ? 1 : 0)) {
      return name + " has " + std::to_string(have) + " live tasks on " + n.meta().id() +
             (eligible ? ", which is eligible" : ", which is not eligible");
    }
  }
  return "";
}

// Retired tasks, which by now run nowhere, should end with a terminal status
// so that the reaper can delete them; agent.cc reports nothing for a task it
// never started (or that died with its host), so they stay ASSIGNED or
// RUNNING. Counted; an error only with the agent's proposed fix.
std::string ClusterSim::CountStuckRetired(const store::State& s) {
  stuck_retired_ = 0;
  std::string first;
  for (const v1::Mutation* m : s.List(Kind::kTask)) {
    const v1::Task& t = m->task();
    if (t.desired_state() < v1::TASK_SHUTDOWN || t.status().state() >= v1::TASK_COMPLETE) continue;
    if (t.node_id().empty() || t.status().state() < v1::TASK_ASSIGNED) continue;  // never sent
    if (!s.Get<v1::Node>(t.node_id())) continue;
    ++stuck_retired_;
    if (first.empty()) {
      first = t.service_name() + " task " + t.meta().id() + " on " + t.node_id() +
              " is retired and runs nowhere, but its status stays " + StateName(t.status().state());
    }
  }
  return opts_.agent_reports_unstarted ? first : "";
}

std::string ClusterSim::Dump() {
  std::ostringstream d;
  d << "state:\n";
  for (const Host& h : hosts_) {
    d << "  " << h.hostname << " (" << h.node_id << ")";
    if (!h.up) d << " DOWN";
    if (h.group) d << " partition group " << h.group;
    if (h.store) {
      auto st = h.store->raft_status();
      d << " manager: " << raft::RoleName(st.role) << " term " << st.term << " leader " << st.leader
        << " commit " << st.commit << " applied " << h.store->state().applied_index();
    }
    if (h.agent) {
      d << " agent: " << (h.agent->connected() ? "connected" : "disconnected") << " session '"
        << h.agent->session() << "'" << (h.agent->have_full_set() ? " full-set" : "");
      for (const auto& [id, obs] : h.agent->seen())
        d << "\n      exec " << id << " " << StateName(obs.state);
    }
    d << "\n";
  }
  const Host* l = Leader();
  if (!l) return d.str();
  const store::State& s = l->store->state();
  d << "leader " << l->hostname << "'s store at " << s.applied_index() << ":\n";
  for (const v1::Mutation* m : s.List(Kind::kNode)) {
    const v1::Node& n = m->node();
    d << "  node " << n.meta().id() << " " << v1::NodeStatus::State_Name(n.status().state()) << " "
      << v1::NodeSpec::Availability_Name(n.spec().availability()) << "\n";
  }
  for (const v1::Mutation* m : s.List(Kind::kService)) {
    const v1::Service& svc = m->service();
    d << "  service " << svc.spec().name() << " " << v1::ServiceMode_Name(svc.spec().mode())
      << " replicas " << svc.spec().replicas() << " spec_version " << svc.spec_version();
    for (const auto& c : svc.spec().placement().constraints()) d << " [" << c << "]";
    d << "\n";
  }
  for (const v1::Mutation* m : s.List(Kind::kTask)) {
    const v1::Task& t = m->task();
    d << "  task " << t.meta().id() << " " << t.service_name() << " slot " << t.slot() << " node "
      << (t.node_id().empty() ? "-" : t.node_id()) << " v" << t.service_spec_version()
      << " desired " << StateName(t.desired_state()) << " status " << StateName(t.status().state())
      << " (" << t.status().message() << ")";
    if (!t.scheduling_message().empty()) d << " '" << t.scheduling_message() << "'";
    d << "\n";
  }
  return d.str();
}

}  // namespace shoal::sim::cluster
