#include "shoal/dispatcher/dispatcher.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <set>

namespace shoal::dispatcher {
namespace {

using store::Kind;

// The values a node's tasks refer to: secrets and configs by full name.
void AddFiles(const store::State& state, const v1::Task& task, const Options& options,
              v1::AssignmentsReply* reply, std::set<std::string>* secrets,
              std::set<std::string>* configs) {
  for (const auto& ref : task.spec().secrets()) {
    if (!secrets->insert(ref.name()).second) continue;
    for (const v1::Mutation* m : state.Find(Kind::kSecret, "name", ref.name())) {
      // The state holds the value sealed (issue 8); one that does not unseal is not sent.
      auto value = options.secret_value ? options.secret_value(m->secret())
                                        : Result<std::string>(m->secret().spec().data());
      if (!value.ok()) continue;
      v1::SecretData* d = reply->add_secrets();
      d->set_id(m->secret().meta().id());
      d->set_name(ref.name());
      d->set_data(std::move(value).value());
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

// The fields an agent reports; the timestamp only says when it noticed.
bool SameReport(const v1::TaskStatus& a, const v1::TaskStatus& b) {
  return a.state() == b.state() && a.message() == b.message() && a.error() == b.error() &&
         a.exit_code() == b.exit_code() && a.health() == b.health() &&
         a.container_id() == b.container_id() &&
         std::equal(a.ports().begin(), a.ports().end(), b.ports().begin(), b.ports().end(),
                    [](const v1::PortConfig& x, const v1::PortConfig& y) {
                      return x.SerializeAsString() == y.SerializeAsString();
                    });
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
  RepliesChanged();
  leader_ = true;
  leader_since_ns_ = now_ns;
  sessions_.clear();
  statuses_.clear();
  ingress_ = IngressTracker{};
  ingress_.Refresh(state);
}

void Dispatcher::StepDown() {
  leader_ = false;
  RepliesChanged();
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
  if (s.description_dirty || node->status().state() != v1::NodeStatus::STATE_READY) {
    attention_.insert(req.node_id());
  }
  for (const auto& u : req.updates()) {
    // Whether the task is this node's to report is checked when the report
    // is taken (TakeMutations looks the task up anyway), unless another
    // node's report waits for the same task: then it is settled now.
    auto [it, added] = statuses_.try_emplace(u.task_id());
    Report& r = it->second;
    if (!added && r.node_id != req.node_id()) {
      const v1::Task* t = state.Get<v1::Task>(u.task_id());
      if (t == nullptr || t->node_id() != req.node_id()) continue;  // not this node's to report
      if (!r.node_id.empty()) r = Report{};  // the waiting one was not that node's either
    }
    if (!added && u.status().state() < r.status.state()) continue;  // states only move on
    r.status = u.status();
    r.node_id = req.node_id();
  }
  v1::HeartbeatReply reply;
  reply.set_session_id(s.id);
  reply.set_period_ns(heartbeat_period_ns(state));
  reply.set_role(node->spec().desired_role());
  reply.set_raft_id(node->manager_status().raft_id());
  for (const v1::ManagerAddr& a : Managers(state)) *reply.add_managers() = a;
  return reply;
}

void Dispatcher::RepliesChanged() {
  managers_valid_ = false;
  if (options_.reply_epoch) options_.reply_epoch->fetch_add(1, std::memory_order_acq_rel);
}

void Dispatcher::Heard(const std::string& node_id, const std::string& session_id, int64_t now_ns) {
  if (!leader_) return;
  auto it = sessions_.find(node_id);
  if (it == sessions_.end() || it->second.id != session_id) return;
  it->second.last_heartbeat_ns = std::max(it->second.last_heartbeat_ns, now_ns);
}

const std::vector<v1::ManagerAddr>& Dispatcher::Managers(const store::State& state) {
  if (managers_valid_) return managers_;
  managers_.clear();
  for (const v1::Mutation* m : state.List(Kind::kNode)) {
    const v1::Node& n = m->node();
    if (!n.has_manager_status() || n.manager_status().raft_id() == 0) continue;
    v1::ManagerAddr a;
    a.set_node_id(n.meta().id());
    a.set_raft_id(n.manager_status().raft_id());
    a.set_addr(n.manager_status().addr());
    managers_.push_back(std::move(a));
  }
  managers_valid_ = true;
  return managers_;
}

bool Dispatcher::DiffAll(const store::State& state, const std::string& node_id, bool full,
                         Session& s, v1::AssignmentsReply* reply, std::set<std::string>* secrets,
                         std::set<std::string>* configs) {
  std::unordered_map<std::string, Sent> now;
  bool any = false;
  for (const v1::Mutation* m : state.Find(Kind::kTask, "node", node_id)) {
    const v1::Task& t = m->task();
    // A task the agent may not start yet: not assigned (orchestrator-owned states).
    if (t.status().state() < v1::TASK_ASSIGNED) continue;
    Sent mine{t.desired_state(), t.status().state() >= v1::TASK_COMPLETE};
    now[t.meta().id()] = mine;
    auto it = s.sent.find(t.meta().id());
    // The agent's own status reports change the task's version at every step;
    // sending the task back for those would double the traffic of a deploy.
    if (full || it == s.sent.end() || it->second.desired != mine.desired ||
        it->second.terminal != mine.terminal) {
      *reply->add_tasks() = t;
      AddFiles(state, t, options_, reply, secrets, configs);
      any = true;
    }
  }
  if (!full) {
    std::vector<const std::string*> removed;  // in id order
    for (const auto& [id, sent] : s.sent) {
      if (!now.count(id)) removed.push_back(&id);
    }
    std::sort(removed.begin(), removed.end(),
              [](const std::string* a, const std::string* b) { return *a < *b; });
    for (const std::string* id : removed) reply->add_removed(*id);
    any = any || !removed.empty();
  }
  // Without a reply `now` equals `sent` anyway.
  s.sent = std::move(now);
  s.changed.clear();
  s.walk_all = false;
  return any;
}

bool Dispatcher::DiffChanged(const store::State& state, const std::string& node_id, Session& s,
                             v1::AssignmentsReply* reply, std::set<std::string>* secrets,
                             std::set<std::string>* configs) {
  // The same decisions as DiffAll's, for the tasks Changed() recorded (in id
  // order, as DiffAll sends them): the rest of the node's tasks did not change
  // in any way the agent acts on.
  std::sort(s.changed.begin(), s.changed.end());
  s.changed.erase(std::unique(s.changed.begin(), s.changed.end()), s.changed.end());
  bool any = false;
  for (const std::string& id : s.changed) {
    const v1::Task* t = state.Get<v1::Task>(id);
    auto it = s.sent.find(id);
    if (t == nullptr || t->node_id() != node_id || t->status().state() < v1::TASK_ASSIGNED) {
      if (it != s.sent.end()) {
        reply->add_removed(id);
        s.sent.erase(it);
        any = true;
      }
      continue;
    }
    Sent mine{t->desired_state(), t->status().state() >= v1::TASK_COMPLETE};
    if (it != s.sent.end() && it->second.desired == mine.desired &&
        it->second.terminal == mine.terminal) {
      continue;
    }
    s.sent[id] = mine;
    *reply->add_tasks() = *t;
    AddFiles(state, *t, options_, reply, secrets, configs);
    any = true;
  }
  s.changed.clear();
  return any;
}

bool Dispatcher::Diff(const store::State& state, const std::string& node_id, bool full, Session& s,
                      v1::AssignmentsReply* reply) {
  std::set<std::string> secrets, configs;
  bool any = full || s.walk_all ? DiffAll(state, node_id, full, s, reply, &secrets, &configs)
                                : DiffChanged(state, node_id, s, reply, &secrets, &configs);
  // The routing mesh's table: when it changed since this session's last
  // reply, and in every full reply once there is one.
  if (s.ingress_sent != ingress_.version() || (full && ingress_.version() > 0)) {
    *reply->mutable_ingress() = ingress_.table();
    s.ingress_sent = ingress_.version();
    any = true;
  }
  s.stale = false;
  if (!any && !full) return false;
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
  ingress_.Refresh(state);
  if ((full || s.stale || s.ingress_sent != ingress_.version()) &&
      Diff(state, req.node_id(), full, s, &reply)) {
    return done(Status::Ok(), std::move(reply));
  }
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

template <class Pred>
void Dispatcher::Wake(const store::State& state, Pred wake) {
  std::vector<Waiter> keep;
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) {
    auto it = sessions_.find(w.node_id);
    if (!wake(w.node_id, it == sessions_.end() ? nullptr : &it->second)) {
      keep.push_back(std::move(w));
      continue;
    }
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

void Dispatcher::Changed(const store::State& state) {
  RepliesChanged();
  for (auto& [id, s] : sessions_) {
    s.stale = true;
    s.walk_all = true;  // which tasks changed is not known
  }
  ingress_.Invalidate();
  ingress_.Refresh(state);
  Wake(state, [](const std::string&, const Session*) { return true; });
}

void Dispatcher::Changed(const store::State& state, const std::vector<store::Event>& events) {
  std::vector<const store::Event*> refs;
  refs.reserve(events.size());
  for (const store::Event& e : events) refs.push_back(&e);
  Changed(state, refs);
}

void Dispatcher::Changed(const store::State& state,
                         const std::vector<const store::Event*>& events) {
  bool touched = false;
  for (const store::Event* e : events) {
    const v1::Mutation& m = e->mutation;
    ingress_.Observe(m);
    if (m.has_task()) {
      // A task keeps its node once it has one, so the node it names now is
      // the node that holds (or is to hold) it.
      const v1::Task& t = m.task();
      if (t.node_id().empty()) continue;
      auto sit = sessions_.find(t.node_id());
      if (sit == sessions_.end()) continue;  // no session, so nobody parked
      Session& s = sit->second;
      // Diff's test, on the event: only what the agent acts on counts.
      auto sent = s.sent.find(t.meta().id());
      bool relevant;
      if (m.op() == v1::Mutation::OP_DELETE || t.status().state() < v1::TASK_ASSIGNED) {
        relevant = sent != s.sent.end();  // gone (or not startable): removed
      } else {
        relevant = sent == s.sent.end() || sent->second.desired != t.desired_state() ||
                   sent->second.terminal != (t.status().state() >= v1::TASK_COMPLETE);
      }
      if (!relevant) continue;
      s.stale = true;
      s.changed.push_back(t.meta().id());
      touched = true;
    } else if (m.has_node() || m.has_cluster()) {
      RepliesChanged();
    } else if (m.has_secret() || m.has_config()) {
      // Values go out with the tasks that need them: no task changed here.
    }
  }
  // A new ingress table goes to every node (Diff adds it).
  const bool mesh = ingress_.Refresh(state);
  if ((!touched && !mesh) || waiters_.empty()) return;
  // A parked call's session has changes only from these events: every Diff
  // clears them, and a call parks only after a Diff (or with none pending).
  Wake(state, [&](const std::string&, const Session* s) {
    return mesh || (s != nullptr && !s->changed.empty());
  });
}

void Dispatcher::Tick(const store::State& state, int64_t now_ns) {
  int64_t period = heartbeat_period_ns(state) * std::max(1, options_.assignments_wait_periods);
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

std::vector<v1::Mutation> Dispatcher::TakeMutations(const store::State& state, int64_t now_ns,
                                                    bool sweep) {
  std::vector<v1::Mutation> out;
  if (!leader_) return out;
  for (auto& [task_id, report] : statuses_) {
    const v1::TaskStatus& status = report.status;
    const v1::Task* t = state.Get<v1::Task>(task_id);
    if (t == nullptr || status.state() < t->status().state()) continue;
    // Only a node's own tasks (requeued reports were checked before).
    if (!report.node_id.empty() && t->node_id() != report.node_id) continue;
    if (SameReport(status, t->status())) continue;
    v1::Mutation m;
    m.set_op(v1::Mutation::OP_TASK_STATUS);
    m.mutable_task()->mutable_meta()->set_id(task_id);
    *m.mutable_task()->mutable_status() = status;
    out.push_back(std::move(m));
  }
  statuses_.clear();
  int64_t down_after = node_down_after_ns(state);
  std::vector<const v1::Node*> nodes;
  if (sweep) {
    for (const v1::Mutation* m : state.List(Kind::kNode)) nodes.push_back(&m->node());
  } else {
    for (const std::string& id : attention_) {
      if (const v1::Node* n = state.Get<v1::Node>(id)) nodes.push_back(n);
    }
  }
  attention_.clear();
  for (const v1::Node* np : nodes) {
    const v1::Node& n = *np;
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
    if (describe && google::protobuf::util::MessageDifferencer::Equals(it->second.description,
                                                                       n.description())) {
      // Applied: agents describe themselves once per session, so the
      // description stays queued until the state shows it.
      it->second.description_dirty = false;
      describe = false;
    }
    if (want == n.status().state() && !describe) continue;
    // Until the state shows the change (a proposal may be refused or held
    // back), the next call looks again.
    if (heard) attention_.insert(n.meta().id());
    v1::Node next = n;
    next.mutable_status()->set_state(want);
    next.mutable_status()->set_message(message);
    if (heard) next.mutable_status()->set_last_heartbeat_ns(it->second.last_heartbeat_ns);
    if (describe) *next.mutable_description() = it->second.description;
    v1::Mutation mut;
    mut.set_op(v1::Mutation::OP_PUT);
    mut.set_expected_version(n.meta().version());
    *mut.mutable_node() = std::move(next);
    out.push_back(std::move(mut));
  }
  return out;
}

void Dispatcher::Requeue(const std::vector<v1::Mutation>& statuses) {
  if (!leader_) return;  // a new term starts new sessions: agents report everything again
  for (const v1::Mutation& m : statuses) {
    if (m.op() != v1::Mutation::OP_TASK_STATUS) continue;
    // A report that arrived since is newer than the one that failed.
    statuses_.emplace(m.task().meta().id(), Report{m.task().status(), ""});
  }
}

}  // namespace shoal::dispatcher
