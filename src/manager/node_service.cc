// Control handlers for nodes: ls, inspect, update (availability, labels,
// role), rm.

#include <chrono>
#include <random>
#include <thread>

#include "daemon_internal.h"
#include "shoal/manager/deploy.h"

namespace shoal::manager {
namespace {

using store::Kind;

// The leader's view of each manager: leader / reachable / unreachable, from
// the dispatcher's heartbeats (every manager also runs an agent).
v1::Node WithManagerStatus(const v1::Node& n, uint64_t leader) {
  v1::Node out = n;
  if (out.manager_status().raft_id() == 0) return out;
  auto* ms = out.mutable_manager_status();
  ms->set_leader(ms->raft_id() == leader);
  ms->set_reachability(n.status().state() == v1::NodeStatus::STATE_DOWN
                           ? v1::ManagerStatus::REACHABILITY_UNREACHABLE
                           : v1::ManagerStatus::REACHABILITY_REACHABLE);
  return out;
}

}  // namespace

grpc::ServerUnaryReactor* ControlService::ListNodes(grpc::CallbackServerContext* ctx,
                                                    const v1::ListNodesRequest*,
                                                    v1::ListNodesReply* reply) {
  std::string self = d_->identity_.node_id();
  return OnRead(ctx,
                [self, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
                  uint64_t leader = m.store().raft_status().leader;
                  for (const v1::Mutation* n : state.List(Kind::kNode)) {
                    *reply->add_nodes() = WithManagerStatus(n->node(), leader);
                  }
                  reply->set_self_id(self);
                  r->Finish(grpc::Status::OK);
                });
}

grpc::ServerUnaryReactor* ControlService::InspectNode(grpc::CallbackServerContext* ctx,
                                                      const v1::InspectNodeRequest* req,
                                                      v1::InspectNodeReply* reply) {
  std::string name = req->node() == "self" ? d_->identity_.node_id() : req->node();
  return OnRead(ctx,
                [name, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
                  const v1::Node* n = FindNode(state, name);
                  if (!n) return r->Finish(Grpc({Code::kNotFound, "node " + name + " not found"}));
                  *reply->mutable_node() = WithManagerStatus(*n, m.store().raft_status().leader);
                  reply->set_tasks(state.Find(Kind::kTask, "node", n->meta().id()).size());
                  r->Finish(grpc::Status::OK);
                });
}

void ConfChangeWithRetry(Manager& m, raft::ConfChange cc, int attempts,
                         std::function<void(Status)> done) {
  m.store().ProposeConfChange(cc, [&m, cc, attempts, done](Status s, uint64_t) {
    // Another change pending, or a leader too new: Raft asks to come back.
    bool retry = s.code() == Code::kFailedPrecondition &&
                 s.message().find("retry") != std::string::npos && attempts > 0;
    if (!retry) return done(s);
    std::thread([&m, cc, attempts, done] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!m.Post([&m, cc, attempts, done] { ConfChangeWithRetry(m, cc, attempts - 1, done); })) {
        done({Code::kUnavailable, "manager stopping"});
      }
    }).detach();
  });
}

// Promotion adds a Raft voter for the node (its daemon starts a manager when
// its heartbeat says so); demotion removes it (the daemon notices it was
// removed and goes on as a worker). Leader only.
void ChangeRole(Manager& m, const store::State& state, const v1::Node& n, v1::NodeSpec::Role role,
                grpc::ServerUnaryReactor* r, v1::UpdateNodeReply* reply) {
  if (!m.is_leader()) {
    return r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  "not the leader; leader at " + m.LeaderAddress()));
  }
  std::string id = n.meta().id();
  if (role == v1::NodeSpec::ROLE_WORKER) {
    uint64_t managers = 0;
    for (const v1::Mutation* x : state.List(Kind::kNode)) {
      if (x->node().manager_status().raft_id() != 0) ++managers;
    }
    if (managers <= 1) {
      return r->Finish(Grpc(
          {Code::kFailedPrecondition, "node " + n.description().hostname() +
                                          " is the last manager: the cluster would have none"}));
    }
    // Refuse a removal after which the reachable managers are no quorum: the
    // cluster would stop accepting writes (Swarm refuses this too).
    size_t remaining = 0, reachable = 0;
    for (const auto& v : m.store().voter_status()) {
      if (v.id == n.manager_status().raft_id()) continue;
      ++remaining;
      if (v.reachability == store::VoterStatus::Reachability::kReachable) ++reachable;
    }
    if (reachable < remaining / 2 + 1) {
      return r->Finish(
          Grpc({Code::kFailedPrecondition,
                "demoting " + n.description().hostname() + " would leave " +
                    std::to_string(reachable) + " reachable of " + std::to_string(remaining) +
                    " managers, not a quorum: demote or remove the unreachable managers first"}));
    }
    // The record first, then the voter: a leader demoting itself can still
    // write before it hands over, and never after.
    uint64_t raft_id = n.manager_status().raft_id();
    v1::Node next = n;
    next.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_WORKER);
    next.clear_manager_status();
    v1::Mutation mut;
    mut.set_expected_version(n.meta().version());
    *mut.mutable_node() = next;
    m.Propose({mut}, "demote", [&m, r, reply, next, raft_id](Status s, uint64_t) {
      if (!s.ok()) return r->Finish(Grpc(s));
      raft::ConfChange cc;
      cc.set_type(v1::CONF_CHANGE_REMOVE_VOTER);
      cc.set_node_id(raft_id);
      ConfChangeWithRetry(m, cc, 30, [r, reply, next](Status s) {
        if (s.ok()) *reply->mutable_node() = next;
        r->Finish(Grpc(s));
      });
    });
    return;
  }
  if (n.status().state() != v1::NodeStatus::STATE_READY) {
    return r->Finish(Grpc({Code::kFailedPrecondition, "node " + n.description().hostname() +
                                                          " is not ready: cannot promote"}));
  }
  std::random_device rd;
  uint64_t raft_id = ((uint64_t{rd()} << 32 | rd()) >> 1) | 1;
  v1::Node next = n;
  next.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_MANAGER);
  next.mutable_manager_status()->set_raft_id(raft_id);
  next.mutable_manager_status()->set_addr(n.status().addr());
  v1::Mutation mut;
  mut.set_expected_version(n.meta().version());
  *mut.mutable_node() = next;
  m.SetAddress(raft_id, n.status().addr());
  m.Propose({mut}, "promote", [&m, r, reply, next, raft_id](Status s, uint64_t) {
    if (!s.ok()) return r->Finish(Grpc(s));
    raft::ConfChange cc;
    cc.set_type(v1::CONF_CHANGE_ADD_VOTER);
    cc.set_node_id(raft_id);
    ConfChangeWithRetry(m, cc, 30, [r, reply, next](Status s) {
      if (s.ok()) *reply->mutable_node() = next;
      r->Finish(Grpc(s));
    });
  });
}

grpc::ServerUnaryReactor* ControlService::UpdateNode(grpc::CallbackServerContext* ctx,
                                                     const v1::UpdateNodeRequest* req,
                                                     v1::UpdateNodeReply* reply) {
  v1::UpdateNodeRequest request = *req;
  return OnRead(ctx, [request, reply](Manager& m, const store::State& state,
                                      grpc::ServerUnaryReactor* r) {
    const v1::Node* n = FindNode(state, request.node());
    if (!n) return r->Finish(Grpc({Code::kNotFound, "node " + request.node() + " not found"}));
    v1::Node next = *n;
    if (request.set_availability()) next.mutable_spec()->set_availability(request.availability());
    if (request.set_role() && request.role() != n->spec().desired_role()) {
      return ChangeRole(m, state, *n, request.role(), r, reply);
    }
    for (const auto& [k, v] : request.label_add()) (*next.mutable_spec()->mutable_labels())[k] = v;
    for (const auto& k : request.label_rm()) {
      if (!next.spec().labels().count(k)) {
        return r->Finish(Grpc({Code::kNotFound, "node " + request.node() + " has no label " + k}));
      }
      next.mutable_spec()->mutable_labels()->erase(k);
    }
    v1::Mutation mut;
    mut.set_expected_version(n->meta().version());
    *mut.mutable_node() = next;
    m.Propose({mut}, "node-update", [r, reply, next](Status s, uint64_t) {
      if (s.ok()) *reply->mutable_node() = next;
      r->Finish(Grpc(s));
    });
  });
}

grpc::ServerUnaryReactor* ControlService::RemoveNode(grpc::CallbackServerContext* ctx,
                                                     const v1::RemoveNodeRequest* req,
                                                     v1::RemoveNodeReply*) {
  v1::RemoveNodeRequest request = *req;
  return OnRead(ctx, [request](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
    const v1::Node* n = FindNode(state, request.node());
    if (!n) return r->Finish(Grpc({Code::kNotFound, "node " + request.node() + " not found"}));
    if (n->manager_status().raft_id() != 0) {
      return r->Finish(Grpc({Code::kFailedPrecondition,
                             "node " + request.node() + " is a manager: demote it first"}));
    }
    if (n->status().state() != v1::NodeStatus::STATE_DOWN && !request.force()) {
      return r->Finish(Grpc({Code::kFailedPrecondition,
                             "node " + request.node() +
                                 " is not down: stop its daemon (shoal cluster leave) or use "
                                 "--force"}));
    }
    v1::Mutation mut;
    mut.set_op(v1::Mutation::OP_DELETE);
    mut.set_expected_version(n->meta().version());
    *mut.mutable_node() = *n;
    m.Propose({mut}, "node-rm", [r](Status s, uint64_t) { r->Finish(Grpc(s)); });
  });
}

}  // namespace shoal::manager
