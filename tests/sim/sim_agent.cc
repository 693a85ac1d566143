#include "sim_agent.h"

#include <utility>

namespace shoal::sim {
namespace {

bool Terminal(v1::TaskState s) { return s >= v1::TASK_COMPLETE; }

}  // namespace

SimAgent::SimAgent(const SimAgentOptions& options, executor::SimExecutor* executor,
                   std::map<std::string, v1::Task>* db, AgentNetwork* net,
                   std::function<void(const std::string&)> trace)
    : options_(options),
      executor_(executor),
      db_(db),
      net_(net),
      trace_(std::move(trace)),
      managers_(options.managers),
      period_ns_(options.heartbeat_period_ns),
      tasks_(*db) {}  // Agent::Load

// ---- the client (GrpcDispatcherClient) ----

const std::string& SimAgent::CurrentManager() const {
  return managers_[current_ % managers_.size()];
}

void SimAgent::Failed(const std::string& addr, const Status& status) {
  if (managers_.empty()) return;
  // "not the leader; leader at ADDR": go there directly.
  const std::string& msg = status.message();
  auto at = msg.find("leader at ");
  if (status.code() == Code::kFailedPrecondition && at != std::string::npos) {
    std::string leader = msg.substr(at + 10);
    if (leader.empty()) {  // an election is under way: try the next one
      current_ = (current_ + 1) % managers_.size();
      return;
    }
    for (size_t i = 0; i < managers_.size(); ++i) {
      if (managers_[i] == leader) {
        current_ = i;
        return;
      }
    }
    managers_.push_back(leader);
    current_ = managers_.size() - 1;
    return;
  }
  if (managers_[current_ % managers_.size()] == addr) current_ = (current_ + 1) % managers_.size();
}

// FromGrpc: what the agent sees of a server's status after gRPC carried it.
Status SimAgent::FromServer(const std::string& addr, const Status& s) const {
  Code code = Code::kUnavailable;
  if (s.code() == Code::kNotFound) code = Code::kNotFound;
  if (s.code() == Code::kFailedPrecondition) code = Code::kFailedPrecondition;
  if (s.code() == Code::kInvalidArgument) code = Code::kInvalidArgument;
  return {code, "manager " + addr + ": " + s.message()};
}

void SimAgent::LearnManagers(const v1::HeartbeatReply& reply) {
  for (const auto& m : reply.managers()) {
    if (m.addr().empty()) continue;
    bool have = false;
    for (const auto& a : managers_) have = have || a == m.addr();
    if (!have) managers_.push_back(m.addr());
  }
}

std::vector<SimAgent::Call> SimAgent::Outstanding() const {
  std::vector<Call> out;
  if (hb_call_) out.push_back(*hb_call_);
  if (assign_call_) out.push_back(*assign_call_);
  return out;
}

// ---- stepping ----

void SimAgent::Step(int64_t now_ns) {
  // gRPC deadlines.
  if (hb_call_ && now_ns >= hb_call_->deadline_ns) {
    std::string addr = hb_call_->addr;
    Failed(addr, {Code::kUnavailable, "deadline exceeded"});
    FinishHeartbeat(FromServer(addr, {Code::kUnavailable, "deadline exceeded"}), now_ns);
  }
  if (assign_call_ && now_ns >= assign_call_->deadline_ns) {
    std::string addr = assign_call_->addr;
    Failed(addr, {Code::kUnavailable, "deadline exceeded"});
    FinishAssignments(FromServer(addr, {Code::kUnavailable, "deadline exceeded"}), now_ns);
  }
  PollStep(now_ns);
  WorkStep(now_ns);
}

void SimAgent::OnHeartbeatReply(uint64_t call, Result<v1::HeartbeatReply> reply, int64_t now_ns) {
  if (!hb_call_ || hb_call_->id != call) return;
  std::string addr = hb_call_->addr;
  if (!reply.ok()) {
    Status raw = reply.error();
    Failed(addr, raw);
    return FinishHeartbeat(FromServer(addr, raw), now_ns);
  }
  LearnManagers(*reply);
  FinishHeartbeat(std::move(reply), now_ns);
}

void SimAgent::OnAssignmentsReply(uint64_t call, Result<v1::AssignmentsReply> reply,
                                  int64_t now_ns) {
  if (!assign_call_ || assign_call_->id != call) return;
  std::string addr = assign_call_->addr;
  if (!reply.ok()) {
    Status raw = reply.error();
    Failed(addr, raw);
    return FinishAssignments(FromServer(addr, raw), now_ns);
  }
  FinishAssignments(std::move(reply), now_ns);
}

// Agent::PollLoop, one wake-up at a time.
void SimAgent::PollStep(int64_t now_ns) {
  if (assign_call_ || now_ns < poll_wait_until_) return;
  // Wait for a session from the heartbeat before asking (woken when it comes).
  if (session_id_.empty()) return;
  if (session_id_ != poll_session_) {
    poll_session_ = session_id_;
    generation_ = 0;  // a new session starts with a full set
  }
  v1::AssignmentsRequest req;
  req.set_node_id(options_.node_id);
  req.set_session_id(poll_session_);
  req.set_known_generation(generation_);
  assign_call_ = Call{Call::kAssignments, net_->NextCallId(), CurrentManager(),
                      now_ns + options_.assignments_deadline_ns};
  net_->SendAssignments(assign_call_->id, assign_call_->addr, req);
}

void SimAgent::FinishAssignments(Result<v1::AssignmentsReply> reply, int64_t now_ns) {
  assign_call_.reset();
  if (!reply.ok()) {
    // The session is gone (new leader): heartbeat again for a new one.
    if (reply.error().code() != Code::kUnavailable) session_id_.clear();
    generation_ = 0;
    poll_wait_until_ = now_ns + options_.retry_wait_ns;
    Trace("assignments failed: " + reply.error().ToString());
    return;
  }
  if (reply->generation() != 0) generation_ = reply->generation();
  if (reply->full() || reply->tasks_size() > 0 || reply->removed_size() > 0) {
    std::string ids;
    for (const auto& t : reply->tasks()) ids += " " + t.meta().id().substr(0, 6);
    Trace("assignments generation " + std::to_string(reply->generation()) +
          (reply->full() ? " (full):" : ":") + ids +
          (reply->removed_size() ? " removed " + std::to_string(reply->removed_size()) : ""));
    inbox_.push_back(std::move(reply).value());
  }
}

// Agent::WorkLoop, one wake-up at a time. Blocked while its heartbeat is out.
void SimAgent::WorkStep(int64_t now_ns) {
  if (hb_call_) return;
  if (inbox_.empty() && now_ns < next_poll_ && now_ns < next_heartbeat_) return;
  std::vector<v1::AssignmentsReply> inbox;
  inbox.swap(inbox_);
  for (const auto& r : inbox) Apply(r);
  if (!inbox.empty() || now_ns >= next_poll_) {
    Reconcile(now_ns);
    next_poll_ = now_ns + options_.poll_interval_ns;
  }
  if (report_now_ || now_ns >= next_heartbeat_) {
    report_now_ = false;
    StartHeartbeat(now_ns);
  }
}

void SimAgent::Apply(const v1::AssignmentsReply& reply) {
  if (reply.full()) {
    std::map<std::string, v1::Task> next;
    for (const auto& t : reply.tasks()) next[t.meta().id()] = t;
    for (const auto& [id, t] : tasks_) {
      if (!next.count(id)) Forget(id);
    }
    tasks_ = std::move(next);
    for (const auto& [id, t] : tasks_) Persist(t);
    if (!have_full_set_) Trace("full assignment set: " + std::to_string(tasks_.size()) + " tasks");
    have_full_set_ = true;
    return;
  }
  for (const auto& t : reply.tasks()) {
    tasks_[t.meta().id()] = t;
    Persist(t);
  }
  for (const auto& id : reply.removed()) {
    tasks_.erase(id);
    Forget(id);
  }
}

// Agent::Reconcile: start what should run, stop what should not, remove what
// is no longer assigned once it has exited, and note what changed.
void SimAgent::Reconcile(int64_t now_ns) {
  std::map<std::string, executor::Observed> seen = executor_->Poll();
  seen_ = seen;  // for the checks: the executor as this reconcile leaves it
  for (const auto& [id, task] : tasks_) {
    auto it = seen.find(id);
    bool known = it != seen.end();
    bool exited = known && Terminal(it->second.state);
    bool should_run =
        task.desired_state() <= v1::TASK_RUNNING ||
        (task.desired_state() == v1::TASK_COMPLETE && task.status().state() < v1::TASK_COMPLETE);
    if (should_run && known && !exited && !started_[id]) {
      // Adopted from this agent's previous life: Start once more, so that
      // the executor has the spec again (its healthcheck). It starts nothing
      // for a task it knows, and its status comes from the poll below.
      started_[id] = true;
      (void)executor_->Start(task, {});
    }
    if (should_run && !known && !Terminal(task.status().state()) && !started_[id]) {
      started_[id] = true;
      Status s = executor_->Start(task, {});
      v1::TaskStatus st;
      st.set_timestamp_ns(now_ns);
      if (s.ok()) {
        st.set_state(v1::TASK_STARTING);
        st.set_message("starting");
        seen_[id].state = v1::TASK_STARTING;
      } else {
        st.set_state(v1::TASK_REJECTED);
        st.set_message("rejected");
        st.set_error(s.message());
      }
      Trace("start " + id + " (" + task.service_name() + " slot " + std::to_string(task.slot()) +
            ")");
      Observe(id, st);
      continue;
    }
    if (!should_run && known && !exited) {
      Trace("stop " + id + " (" + task.service_name() + " slot " + std::to_string(task.slot()) +
            ")");
      (void)executor_->Stop(id, std::chrono::seconds(10));
      seen_[id].state = v1::TASK_SHUTDOWN;
    }
    if (options_.report_unstarted && !should_run && !known && !Terminal(task.status().state())) {
      auto prev = observed_.find(id);
      if (prev == observed_.end() || !Terminal(prev->second.state())) {
        v1::TaskStatus st;
        st.set_state(v1::TASK_SHUTDOWN);
        st.set_message("not running here");
        st.set_timestamp_ns(now_ns);
        Observe(id, st);
      }
    }
  }
  // Strays: running here but not assigned. Only with a full set in hand, so a
  // restarted agent does not kill what the managers still want.
  for (const auto& [id, obs] : seen) {
    if (tasks_.count(id)) continue;
    if (!have_full_set_) continue;
    if (!Terminal(obs.state)) {
      Trace("stop stray " + id);
      (void)executor_->Stop(id, std::chrono::seconds(10));
      seen_[id].state = v1::TASK_SHUTDOWN;
    } else {
      (void)executor_->Remove(id);
      seen_.erase(id);
      started_.erase(id);
      observed_.erase(id);
      unreported_.erase(id);
    }
  }
  for (const auto& [id, obs] : seen) {
    if (!tasks_.count(id)) continue;
    v1::TaskStatus st;
    st.set_state(obs.state);
    st.set_exit_code(obs.exit_code);
    st.set_message(obs.message);
    st.set_error(obs.error);
    st.set_container_id(obs.container_id);
    st.set_health(obs.health);
    // Why it is unhealthy shows where `service ps` shows errors.
    if (obs.health == v1::TaskStatus::HEALTH_UNHEALTHY && st.error().empty()) {
      st.set_error(obs.health_message);
    }
    auto prev = observed_.find(id);
    if (prev != observed_.end() && prev->second.state() == st.state() &&
        prev->second.message() == st.message() && prev->second.error() == st.error() &&
        prev->second.health() == st.health()) {
      continue;
    }
    st.set_timestamp_ns(now_ns);
    Observe(id, st);
  }
}

void SimAgent::Observe(const std::string& id, const v1::TaskStatus& st) {
  observed_[id] = st;
  unreported_.insert(id);
  if (hb_call_) changed_in_flight_.insert(id);
  report_now_ = true;
}

void SimAgent::StartHeartbeat(int64_t now_ns) {
  v1::HeartbeatRequest req;
  req.set_node_id(options_.node_id);
  req.set_session_id(session_id_);
  // The description until a heartbeat of this session is answered; the
  // statuses not yet carried by an answered heartbeat of this session (all
  // of them in a new one). A report lost with a failed call is sent again.
  if (!described_) *req.mutable_description() = options_.description;
  hb_sent_.clear();
  hb_session_ = session_id_;
  for (const auto& [id, st] : observed_) {
    if (!tasks_.count(id)) continue;
    if (!report_all_ && !unreported_.count(id)) continue;
    v1::TaskStatusUpdate* u = req.add_updates();
    u->set_task_id(id);
    *u->mutable_status() = st;
    hb_sent_.push_back(id);
  }
  hb_call_ = Call{Call::kHeartbeat, net_->NextCallId(), CurrentManager(),
                  now_ns + options_.heartbeat_deadline_ns};
  net_->SendHeartbeat(hb_call_->id, hb_call_->addr, req);
}

void SimAgent::FinishHeartbeat(Result<v1::HeartbeatReply> reply, int64_t now_ns) {
  hb_call_.reset();
  next_heartbeat_ = now_ns + period_ns_;
  if (!reply.ok()) {
    if (connected_) Trace("heartbeat failed: " + reply.error().ToString());
    connected_ = false;
    return;
  }
  if (!connected_) Trace("connected to " + CurrentManager());
  connected_ = true;
  if (reply->period_ns() > 0) {
    // agent.cc keeps the period in milliseconds.
    period_ns_ = reply->period_ns() / 1'000'000 * 1'000'000;
    next_heartbeat_ = now_ns + period_ns_;
  }
  if (reply->session_id() != hb_session_) {
    // A new session: the next heartbeat (at once) carries everything.
    described_ = false;
    report_all_ = true;
    report_now_ = true;
  } else {
    described_ = true;
    report_all_ = false;
    // Statuses observed while the call was out are newer than those it
    // carried: they stay unreported.
    for (const std::string& id : hb_sent_) {
      if (!changed_in_flight_.count(id)) unreported_.erase(id);
    }
  }
  changed_in_flight_.clear();
  if (reply->session_id() != session_id_) {
    Trace("session " + reply->session_id());
    session_id_ = reply->session_id();
  }
}

}  // namespace shoal::sim
