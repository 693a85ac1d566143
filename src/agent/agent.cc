#include "shoal/agent/agent.h"

#include <absl/synchronization/mutex.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <thread>

namespace shoal::agent {
namespace {

constexpr char kTaskPrefix[] = "task/";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Terminal(v1::TaskState s) { return s >= v1::TASK_COMPLETE; }

// Waits on `cv` (with `mu` held) until `done` holds or `deadline` passes.
template <class Done>
void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, std::chrono::steady_clock::time_point deadline,
               Done done) {
  while (!done()) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    cv.WaitWithTimeout(&mu, absl::FromChrono(left));
  }
}

}  // namespace

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

Agent::Agent(const AgentOptions& options, executor::Executor* executor, DispatcherClient* client)
    : options_(options), executor_(executor), client_(client), period_(options.heartbeat_period) {}

Result<std::unique_ptr<Agent>> Agent::Open(const AgentOptions& options,
                                           executor::Executor* executor, DispatcherClient* client) {
  DisableMutexDeadlockDetection();
  std::unique_ptr<Agent> agent(new Agent(options, executor, client));
  if (Status s = agent->Load(); !s.ok()) return s;
  return agent;
}

Agent::~Agent() { Stop(); }

Status Agent::Load() {
  leveldb::Options o;
  o.create_if_missing = true;
  o.paranoid_checks = true;
  if (options_.in_memory_store) {
    mem_env_.reset(leveldb::NewMemEnv(leveldb::Env::Default()));
    o.env = mem_env_.get();
  }
  std::string path = options_.data_dir + "/agent";
  leveldb::DB* db = nullptr;
  leveldb::Status s = leveldb::DB::Open(o, path, &db);
  if (!s.ok()) {
    return {s.IsCorruption() ? Code::kCorruption : Code::kIo,
            "agent database " + path + ": " + s.ToString()};
  }
  db_.reset(db);
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(kTaskPrefix); it->Valid() && it->key().starts_with(kTaskPrefix); it->Next()) {
    v1::Task t;
    if (!t.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return {Code::kCorruption,
              "agent database " + path + ": unreadable task " + it->key().ToString()};
    }
    tasks_[t.meta().id()] = std::move(t);
  }
  return Status::Ok();
}

void Agent::Persist(const v1::Task& task, leveldb::WriteBatch* batch) {
  batch->Put(kTaskPrefix + task.meta().id(), task.SerializeAsString());
}

void Agent::Forget(const std::string& task_id, leveldb::WriteBatch* batch) {
  batch->Delete(kTaskPrefix + task_id);
}

void Agent::Write(leveldb::WriteBatch* batch) {
  // Not synced: a lost write only means the executor's adoption finds a task
  // the agent does not remember, which the next full assignment set settles.
  if (batch->ApproximateSize() > leveldb::WriteBatch().ApproximateSize()) {
    (void)db_->Write(leveldb::WriteOptions(), batch);
  }
}

void Agent::Start() {
  {
    // A change the executor sees on its own threads (a container's death)
    // wakes the work loop, which polls after wake_coalesce.
    std::lock_guard<std::mutex> exec_lock(exec_mu_);
    executor_->SetWakeup([this] {
      absl::MutexLock lock(&mu_);
      if (exec_woken_) return;
      exec_woken_ = true;
      work_cv_.Signal();
    });
  }
  poll_thread_ = std::thread([this] { PollLoop(); });
  work_thread_ = std::thread([this] { WorkLoop(); });
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    poll_cv_.SignalAll();
  }
  client_->Cancel();
  if (poll_thread_.joinable()) poll_thread_.join();
  if (work_thread_.joinable()) work_thread_.join();
  // The executor outlives the agent: it must not call into a gone one.
  std::lock_guard<std::mutex> exec_lock(exec_mu_);
  executor_->SetWakeup(nullptr);
}

void Agent::StopAllTasks(std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(exec_mu_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& [id, obs] : executor_->Poll()) {
    if (!Terminal(obs.state)) (void)executor_->Stop(id, timeout / 2);
  }
  while (std::chrono::steady_clock::now() < deadline) {
    bool running = false;
    for (const auto& [id, obs] : executor_->Poll()) running = running || !Terminal(obs.state);
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const auto& [id, obs] : executor_->Poll()) (void)executor_->Remove(id);
}

size_t Agent::task_count() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

Result<std::string> Agent::Logs(const std::string& task_id, uint64_t offset, size_t max_bytes) {
  std::lock_guard<std::mutex> lock(exec_mu_);
  return executor_->Logs(task_id, offset, max_bytes);
}

void Agent::PollLoop() {
  uint64_t generation = 0;
  std::string session;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // Wait for a session from the heartbeat before asking.
      WaitUntil(poll_cv_, mu_, std::chrono::steady_clock::now() + std::chrono::milliseconds(200),
                [&] { return stopping_ || !session_id_.empty(); });
      if (stopping_) return;
      if (session_id_.empty()) continue;
      if (session_id_ != session) {
        session = session_id_;
        generation = 0;  // a new session starts with a full set
      }
    }
    v1::AssignmentsRequest req;
    req.set_node_id(options_.node_id);
    req.set_session_id(session);
    req.set_known_generation(generation);
    auto reply = client_->Assignments(req);
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (!reply.ok()) {
      // The session is gone (new leader): heartbeat again for a new one.
      if (reply.error().code() != Code::kUnavailable) session_id_.clear();
      generation = 0;
      WaitUntil(poll_cv_, mu_, std::chrono::steady_clock::now() + std::chrono::milliseconds(200),
                [&] { return stopping_; });
      continue;
    }
    if (reply->generation() != 0) generation = reply->generation();
    if (reply->full() || reply->tasks_size() > 0 || reply->removed_size() > 0 ||
        reply->has_ingress()) {
      inbox_.push_back(std::move(reply).value());
      work_cv_.Signal();
    }
  }
}

void Agent::Apply(v1::AssignmentsReply&& reply) {
  for (const auto& s : reply.secrets()) secrets_[s.name()] = s.data();
  for (const auto& c : reply.configs()) configs_[c.name()] = c.data();
  // The routing mesh's table; a full set without one means an empty table.
  if (reply.has_ingress() || reply.full()) {
    std::lock_guard<std::mutex> exec_lock(exec_mu_);
    executor_->SetIngress(reply.ingress());
  }
  // The reply's tasks are moved, not copied, into tasks_, and written to the
  // database in one batch (one log record, one memtable pass).
  leveldb::WriteBatch batch;
  if (reply.full()) {
    // A full set also comes after every change of leader: write only what
    // differs from what the database already holds.
    std::map<std::string, v1::Task> next;
    std::vector<const v1::Task*> changed;
    for (v1::Task& t : *reply.mutable_tasks()) {
      auto old = tasks_.find(t.meta().id());
      bool same = old != tasks_.end() && old->second.meta().version() == t.meta().version();
      std::string id = t.meta().id();
      v1::Task& kept = next[id] = std::move(t);
      if (!same) changed.push_back(&kept);
    }
    for (const auto& [id, t] : tasks_) {
      if (!next.count(id)) Forget(id, &batch);
    }
    {
      absl::MutexLock lock(&mu_);
      tasks_ = std::move(next);  // map nodes move: `changed` stays valid
    }
    for (const v1::Task* t : changed) Persist(*t, &batch);
    Write(&batch);
    have_full_set_ = true;
    all_dirty_ = true;
    return;
  }
  {
    absl::MutexLock lock(&mu_);  // tasks_ (task_count() reads it)
    for (v1::Task& t : *reply.mutable_tasks()) {
      std::string id = t.meta().id();
      v1::Task& kept = tasks_[id] = std::move(t);
      Persist(kept, &batch);
      dirty_.insert(std::move(id));
    }
    for (const auto& id : reply.removed()) {
      tasks_.erase(id);
      Forget(id, &batch);
      dirty_.insert(id);
    }
  }
  Write(&batch);
}

std::vector<executor::TaskFile> Agent::TaskFiles(const v1::Task& task) {
  std::vector<executor::TaskFile> files;
  for (const auto& ref : task.spec().secrets()) {
    executor::TaskFile f;
    f.target = ref.target().empty() ? "/run/secrets/" + ref.source() : ref.target();
    f.data = secrets_[ref.name()];
    f.mode = ref.mode() ? ref.mode() : 0444;
    f.secret = true;
    files.push_back(std::move(f));
  }
  for (const auto& ref : task.spec().configs()) {
    executor::TaskFile f;
    f.target = ref.target().empty() ? "/" + ref.source() : ref.target();
    f.data = configs_[ref.name()];
    f.mode = ref.mode() ? ref.mode() : 0444;
    files.push_back(std::move(f));
  }
  return files;
}

void Agent::Observe(const std::string& id, v1::TaskStatus st) {
  // An exit of a task that should still run goes out at once: the managers
  // replace it, and batching would only add report_delay to the restart.
  auto assigned = tasks_.find(id);
  const bool urgent = Terminal(st.state()) && assigned != tasks_.end() &&
                      assigned->second.desired_state() <= v1::TASK_RUNNING;
  observed_[id] = std::move(st);
  unreported_.insert(id);
  if (urgent) {
    report_now_ = true;
    report_at_ = std::chrono::steady_clock::now();
  } else if (!report_now_) {
    // A short wait lets a quick STARTING -> RUNNING go out as one report
    // (only the latest status of a task is sent): half the status writes of
    // a deploy.
    report_now_ = true;
    report_at_ = std::chrono::steady_clock::now() + options_.report_delay;
  }
}

// Makes the executor match the assignments: start what should run, stop what
// should not, and remove what is no longer assigned once it has exited. Only
// the tasks whose assignment or observation changed are looked at, except
// after a full set and every full_reconcile_every polls.
void Agent::Reconcile() {
  std::lock_guard<std::mutex> exec_lock(exec_mu_);
  for (auto& [id, obs] : executor_->PollChanges()) {
    dirty_.insert(id);
    seen_[id] = std::move(obs);
  }
  if (++polls_ >= options_.full_reconcile_every) all_dirty_ = true;
  std::set<std::string> ids;
  if (all_dirty_) {
    polls_ = 0;
    all_dirty_ = false;
    dirty_.clear();
    for (const auto& [id, task] : tasks_) ids.insert(id);
    for (const auto& [id, obs] : seen_) ids.insert(id);
  } else {
    ids.swap(dirty_);
  }
  for (const std::string& id : ids) ReconcileOne(id);
}

void Agent::ReconcileOne(const std::string& id) {
  auto seen = seen_.find(id);
  bool known = seen != seen_.end();
  auto assigned = tasks_.find(id);
  if (assigned == tasks_.end()) {
    // A stray: running here but not assigned. Only with a full set in hand,
    // so a restarted agent does not kill what the managers still want.
    if (!known || !have_full_set_) return;
    if (!Terminal(seen->second.state)) {
      (void)executor_->Stop(id, std::chrono::seconds(10));
    } else {
      if (executor_->Remove(id).ok()) {
        if (auto v = volumes_on_remove_.find(id); v != volumes_on_remove_.end()) {
          executor_->RemoveVolumes(v->second);
          volumes_on_remove_.erase(v);
        }
      }
      seen_.erase(seen);
      started_.erase(id);
      observed_.erase(id);
      unreported_.erase(id);
    }
    return;
  }
  const v1::Task& task = assigned->second;
  if (task.remove_volumes() && !volumes_on_remove_.count(id)) {
    std::vector<std::string>& names = volumes_on_remove_[id];
    for (const v1::Mount& m : task.spec().mounts()) {
      if (m.type() == v1::Mount::TYPE_VOLUME && !m.source().empty()) names.push_back(m.source());
    }
  }
  bool exited = known && Terminal(seen->second.state);
  bool should_run =
      task.desired_state() <= v1::TASK_RUNNING ||
      (task.desired_state() == v1::TASK_COMPLETE && task.status().state() < v1::TASK_COMPLETE);
  if (should_run && known && !exited && !started_[id]) {
    // Adopted from this agent's previous life: Start once more, so that
    // the executor has the spec again (its healthcheck). It starts nothing
    // for a task it knows, and its status comes from the observation below.
    started_[id] = true;
    (void)executor_->Start(task, TaskFiles(task));
  }
  if (should_run && !known && !Terminal(task.status().state()) && !started_[id]) {
    started_[id] = true;
    Status s = executor_->Start(task, TaskFiles(task));
    v1::TaskStatus st;
    st.set_timestamp_ns(NowNs());
    if (s.ok()) {
      st.set_state(v1::TASK_STARTING);
      st.set_message("starting");
    } else {
      st.set_state(v1::TASK_REJECTED);
      st.set_message("rejected");
      st.set_error(s.message());
    }
    Observe(id, std::move(st));
    return;
  }
  if (!should_run && !known && have_full_set_ && !Terminal(task.status().state())) {
    // Retired before it started here, or it died with this host: nothing
    // runs, and saying so lets the managers finish and reap it.
    auto prev = observed_.find(id);
    if (prev == observed_.end() || prev->second.state() != v1::TASK_SHUTDOWN) {
      v1::TaskStatus st;
      st.set_state(v1::TASK_SHUTDOWN);
      st.set_message("not running here");
      st.set_timestamp_ns(NowNs());
      Observe(id, std::move(st));
    }
    return;
  }
  if (!should_run && known && !exited) {
    int64_t grace = 10'000'000'000;
    if (task.spec().stop_grace_period_ns() > 0) grace = task.spec().stop_grace_period_ns();
    (void)executor_->Stop(id, std::chrono::nanoseconds(grace));
  }
  if (!known) return;
  const executor::Observed& obs = seen->second;
  v1::TaskStatus st;
  st.set_state(obs.state);
  st.set_exit_code(obs.exit_code);
  st.set_message(obs.message);
  st.set_error(obs.error);
  st.set_container_id(obs.container_id);
  st.set_health(obs.health);
  for (const v1::PortConfig& p : obs.ports) *st.add_ports() = p;
  // Why it is unhealthy shows where `service ps` shows errors.
  if (obs.health == v1::TaskStatus::HEALTH_UNHEALTHY && st.error().empty()) {
    st.set_error(obs.health_message);
  }
  auto prev = observed_.find(id);
  if (prev != observed_.end() && prev->second.state() == st.state() &&
      prev->second.message() == st.message() && prev->second.error() == st.error() &&
      prev->second.health() == st.health()) {
    return;
  }
  st.set_timestamp_ns(NowNs());
  Observe(id, std::move(st));
}

void Agent::SendHeartbeat() {
  v1::HeartbeatRequest req;
  req.set_node_id(options_.node_id);
  {
    absl::MutexLock lock(&mu_);
    req.set_session_id(session_id_);
  }
  // The description once per session, until a heartbeat of that session is
  // answered.
  if (!described_) *req.mutable_description() = options_.description;
  // Statuses not yet carried by an answered heartbeat of this session; all of
  // them in a new session (the leader may be new and know nothing). A report
  // lost with a failed call is simply sent again.
  std::vector<std::string> sent;
  auto add = [&](const std::string& id, const v1::TaskStatus& st) {
    if (!tasks_.count(id)) return;
    v1::TaskStatusUpdate* u = req.add_updates();
    u->set_task_id(id);
    *u->mutable_status() = st;
    sent.push_back(id);
  };
  if (report_all_) {
    for (const auto& [id, st] : observed_) add(id, st);
  } else {
    for (const std::string& id : unreported_) {
      if (auto it = observed_.find(id); it != observed_.end()) add(id, it->second);
    }
  }
  auto reply = client_->Heartbeat(req);
  absl::MutexLock lock(&mu_);
  if (!reply.ok()) {
    connected_ = false;
    if (reply.error().code() == Code::kNotFound) removed_ = true;
    return;
  }
  connected_ = true;
  last_reply_ = *reply;
  if (reply->period_ns() > 0) {
    period_ = std::chrono::milliseconds(reply->period_ns() / 1'000'000);
  }
  if (reply->session_id() != req.session_id()) {
    // A new session: the next heartbeat (at once) carries everything.
    described_ = false;
    report_all_ = true;
    report_now_ = true;
    report_at_ = std::chrono::steady_clock::now();
  } else {
    described_ = true;
    report_all_ = false;
    for (const std::string& id : sent) unreported_.erase(id);
  }
  if (reply->session_id() != session_id_) {
    session_id_ = reply->session_id();
    poll_cv_.Signal();
  }
}

void Agent::WorkLoop() {
  auto next_poll = std::chrono::steady_clock::now();
  while (true) {
    std::vector<v1::AssignmentsReply> inbox;
    {
      absl::MutexLock lock(&mu_);
      if (exec_woken_) {
        // The first wake-up sets the poll; later ones until then ride along.
        exec_woken_ = false;
        next_poll = std::min(next_poll, std::chrono::steady_clock::now() + options_.wake_coalesce);
      }
      auto wake = std::min(next_poll, next_heartbeat_);
      if (report_now_) wake = std::min(wake, report_at_);
      WaitUntil(work_cv_, mu_, wake, [&] { return stopping_ || !inbox_.empty() || exec_woken_; });
      if (stopping_) return;
      inbox.swap(inbox_);
    }
    for (auto& r : inbox) Apply(std::move(r));
    auto now = std::chrono::steady_clock::now();
    if (!inbox.empty() || now >= next_poll) {
      Reconcile();
      next_poll = now + options_.poll_interval;
    }
    if ((report_now_ && now >= report_at_) || now >= next_heartbeat_) {
      report_now_ = false;
      SendHeartbeat();
      absl::MutexLock lock(&mu_);
      next_heartbeat_ = std::chrono::steady_clock::now() + period_;
    }
  }
}

}  // namespace shoal::agent
