#include "shoal/dispatcher/dispatcher.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <set>

namespace shoal::dispatcher {
namespace {

using store::Kind;

// The values a node's tasks refer to: secrets and configs by full name.
void AddFiles(const store::State& state, const v1::Task& task, v1::AssignmentsReply* reply,
              std::set<std::string>* secrets, std::set<std::string>* configs) {
  for (const auto& ref : task.spec().secrets()) {
    if (!secrets->insert(ref.name()).second) continue;
    for (const v1::Mutation* m : state.Find(Kind::kSecret, "name", ref.name())) {
      v1::SecretData* d = reply->add_secrets();
      d->set_id(m->secret().meta().id());
      d->set_name(ref.name());
      d->set_data(m->secret().spec().data());
    }
  }
  for (const auto& ref : task.spec().configs()) {
    if (!configs->insert(ref.name()).second) continue;
    for (const v1::Mutation* m : state.Find(Kind::kConfig, "name", ref.name())) {
      v1::SecretData* d = reply->add_configs();
      d->set_id(m->config().meta().id());
      d->set_name(ref.name());
      d->set_data(m->config().spec().data());
    }
  }
}

}  // namespace

int64_t Dispatcher::heartbeat_period_ns(const store::State& state) const {
  for (const v1::Mutation* m : state.List(Kind::kCluster)) {
    if (m->cluster().heartbeat_period_ns() > 0) return m->cluster().heartbeat_period_ns();
  }
  return options_.heartbeat_period_ns;
}

int64_t Dispatcher::node_down_after_ns(const store::State& state) const {
  for (const v1::Mutation* m : state.List(Kind::kCluster)) {
    if (m->cluster().node_down_grace_ns() > 0) return m->cluster().node_down_grace_ns();
  }
  return options_.node_down_after_ns;
}

void Dispatcher::BecomeLeader(const store::State& state, int64_t now_ns) {
  (void)state;
  leader_ = true;
  leader_since_ns_ = now_ns;
  sessions_.clear();
  statuses_.clear();
}

void Dispatcher::StepDown() {
  leader_ = false;
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) w.done({Code::kUnavailable, "this manager is no longer the leader"}, {});
  sessions_.clear();
  statuses_.clear();
}

Result<v1::HeartbeatReply> Dispatcher::Heartbeat(const store::State& state,
                                                 const v1::HeartbeatRequest& req, int64_t now_ns) {
  if (!leader_) return Status(Code::kFailedPrecondition, "not the leader");
  const v1::Node* node = state.Get<v1::Node>(req.node_id());
  if (node == nullptr) {
    return Status(Code::kNotFound,
                  "node " + req.node_id() + " is not a member of this cluster (removed?)");
  }
  Session& s = sessions_[req.node_id()];
  if (s.id.empty() || s.id != req.session_id()) {
    // A new session: the agent restarted, or this leader is new to it. Its
    // next Assignments call gets a full set.
    s = Session{};
    s.id = std::to_string(leader_since_ns_) + "-" + std::to_string(next_session_++);
  }
  s.last_heartbeat_ns = now_ns;
  if (req.has_description() &&
      !google::protobuf::util::MessageDifferencer::Equals(req.description(), node->description())) {
    s.description = req.description();
    s.description_dirty = true;
  }
  for (const auto& u : req.updates()) {
    const v1::Task* t = state.Get<v1::Task>(u.task_id());
    if (t == nullptr || t->node_id() != req.node_id()) continue;  // not this node's to report
    auto it = statuses_.find(u.task_id());
    if (it != statuses_.end() && u.status().state() < it->second.state()) continue;
    statuses_[u.task_id()] = u.status();
  }
  v1::HeartbeatReply reply;
  reply.set_session_id(s.id);
  reply.set_period_ns(heartbeat_period_ns(state));
  reply.set_role(node->spec().desired_role());
  reply.set_raft_id(node->manager_status().raft_id());
  for (const v1::Mutation* m : state.List(Kind::kNode)) {
    const v1::Node& n = m->node();
    if (!n.has_manager_status() || n.manager_status().raft_id() == 0) continue;
    v1::ManagerAddr* a = reply.add_managers();
    a->set_node_id(n.meta().id());
    a->set_raft_id(n.manager_status().raft_id());
    a->set_addr(n.manager_status().addr());
  }
  return reply;
}

bool Dispatcher::Diff(const store::State& state, const std::string& node_id, bool full, Session& s,
                      v1::AssignmentsReply* reply) {
  std::map<std::string, uint64_t> now;
  std::set<std::string> secrets, configs;
  bool any = false;
  for (const v1::Mutation* m : state.Find(Kind::kTask, "node", node_id)) {
    const v1::Task& t = m->task();
    // A task the agent may not start yet: not assigned (orchestrator-owned states).
    if (t.status().state() < v1::TASK_ASSIGNED) continue;
    now[t.meta().id()] = t.meta().version();
    auto it = s.sent.find(t.meta().id());
    if (full || it == s.sent.end() || it->second != t.meta().version()) {
      *reply->add_tasks() = t;
      AddFiles(state, t, reply, &secrets, &configs);
      any = true;
    }
  }
  if (!full) {
    for (const auto& [id, version] : s.sent) {
      if (!now.count(id)) {
        reply->add_removed(id);
        any = true;
      }
    }
  }
  if (!any && !full) return false;
  s.sent = std::move(now);
  reply->set_full(full);
  reply->set_generation(++s.generation);
  return true;
}

void Dispatcher::Assignments(const store::State& state, const v1::AssignmentsRequest& req,
                             int64_t now_ns, AssignmentsDone done) {
  if (!leader_) return done({Code::kFailedPrecondition, "not the leader"}, {});
  auto it = sessions_.find(req.node_id());
  if (it == sessions_.end() || it->second.id != req.session_id()) {
    return done({Code::kFailedPrecondition, "no session: heartbeat first"}, {});
  }
  Session& s = it->second;
  bool full = req.known_generation() == 0 || req.known_generation() != s.generation;
  v1::AssignmentsReply reply;
  if (Diff(state, req.node_id(), full, s, &reply)) return done(Status::Ok(), std::move(reply));
  // A node has one live poll: an older parked call was abandoned (its
  // connection reset, the agent restarted). Answering it with a change would
  // advance the generation behind the live caller's back.
  std::vector<Waiter> superseded;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->node_id == req.node_id()) {
      superseded.push_back(std::move(*it));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  waiters_.push_back({req.node_id(), req.known_generation(), now_ns, std::move(done)});
  for (auto& w : superseded) w.done({Code::kUnavailable, "superseded by a newer poll"}, {});
}

void Dispatcher::Changed(const store::State& state) {
  std::vector<Waiter> keep;
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) {
    auto it = sessions_.find(w.node_id);
    if (it == sessions_.end()) {
      w.done({Code::kFailedPrecondition, "session ended"}, {});
      continue;
    }
    v1::AssignmentsReply reply;
    // A caller that does not hold the session's generation gets everything.
    bool full = w.known_generation != it->second.generation;
    if (Diff(state, w.node_id, full, it->second, &reply)) {
      w.done(Status::Ok(), std::move(reply));
    } else {
      keep.push_back(std::move(w));
    }
  }
  // Callbacks may have parked new waiters meanwhile.
  for (auto& w : waiters_) keep.push_back(std::move(w));
  waiters_ = std::move(keep);
}

void Dispatcher::Tick(const store::State& state, int64_t now_ns) {
  int64_t period = heartbeat_period_ns(state);
  std::vector<Waiter> keep;
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) {
    if (now_ns - w.since_ns < period) {
      keep.push_back(std::move(w));
      continue;
    }
    // Nothing new: the caller keeps exactly what it had.
    v1::AssignmentsReply reply;
    reply.set_generation(w.known_generation);
    w.done(Status::Ok(), std::move(reply));
  }
  for (auto& w : waiters_) keep.push_back(std::move(w));
  waiters_ = std::move(keep);
}

std::vector<v1::Mutation> Dispatcher::TakeMutations(const store::State& state, int64_t now_ns) {
  std::vector<v1::Mutation> out;
  if (!leader_) return out;
  for (auto& [task_id, status] : statuses_) {
    const v1::Task* t = state.Get<v1::Task>(task_id);
    if (t == nullptr || status.state() < t->status().state()) continue;
    if (google::protobuf::util::MessageDifferencer::Equals(status, t->status())) continue;
    v1::Mutation m;
    m.set_op(v1::Mutation::OP_TASK_STATUS);
    m.mutable_task()->mutable_meta()->set_id(task_id);
    *m.mutable_task()->mutable_status() = status;
    out.push_back(std::move(m));
  }
  statuses_.clear();
  int64_t down_after = node_down_after_ns(state);
  for (const v1::Mutation* m : state.List(Kind::kNode)) {
    const v1::Node& n = m->node();
    auto it = sessions_.find(n.meta().id());
    bool heard = it != sessions_.end() && now_ns - it->second.last_heartbeat_ns < down_after;
    bool grace = now_ns - leader_since_ns_ < down_after;
    v1::NodeStatus::State want = n.status().state();
    std::string message = n.status().message();
    if (heard) {
      want = v1::NodeStatus::STATE_READY;
      message = "";
    } else if (!grace && n.status().state() != v1::NodeStatus::STATE_DOWN) {
      want = v1::NodeStatus::STATE_DOWN;
      message = "no heartbeat for " + std::to_string(down_after / 1'000'000'000) + " s";
    }
    bool describe = heard && it->second.description_dirty;
    if (want == n.status().state() && !describe) continue;
    v1::Node next = n;
    next.mutable_status()->set_state(want);
    next.mutable_status()->set_message(message);
    if (heard) next.mutable_status()->set_last_heartbeat_ns(it->second.last_heartbeat_ns);
    if (describe) {
      *next.mutable_description() = it->second.description;
      it->second.description_dirty = false;
    }
    v1::Mutation mut;
    mut.set_op(v1::Mutation::OP_PUT);
    mut.set_expected_version(n.meta().version());
    *mut.mutable_node() = std::move(next);
    out.push_back(std::move(mut));
  }
  return out;
}

}  // namespace shoal::dispatcher
