#include "shoal/executor/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "files.h"
#include "health.h"
#include "record.h"
#include "shoal/executor/signals.h"
#include "shoal/executor/task_util.h"
#include "spawn.h"

namespace shoal::executor {
namespace {

namespace fs = std::filesystem;
using process::TaskRecord;
using SteadyClock = std::chrono::steady_clock;

// Docker's default PATH for containers, so that commands written for Docker
// find the same tools.
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kStateFile = "state";
constexpr const char* kLogFile = "output.log";
constexpr const char* kFilesDir = "files";
constexpr const char* kHealthLog = "health.log";  // the last probe's output

int64_t UnixNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Signals the task's process group. Never for pid <= 1: kill(-1) would
// signal every process the agent may signal.
void KillGroup(pid_t pid, int signal) {
  if (pid > 1) kill(-pid, signal);
}

// Signals the task's process group; the leader alone when it has left the
// group (setsid), so a stop still reaches the process the executor started.
void SignalGroup(pid_t pid, int signal) {
  if (pid <= 1) return;
  if (kill(-pid, signal) != 0 && errno == ESRCH) kill(pid, signal);
}

Observed ObservedFrom(const TaskRecord& r) {
  Observed o;
  o.container_id = r.pid > 0 ? std::to_string(r.pid) : "";
  if (v1::TaskStatus::Health_IsValid(r.health)) {
    o.health = static_cast<v1::TaskStatus::Health>(r.health);
    o.health_message = r.health_message;
  }
  if (r.finished) {
    o.state = static_cast<v1::TaskState>(r.state);
    o.exit_code = r.exit_code;
    o.message = r.message;
    o.error = r.error;
  } else {
    o.state = v1::TASK_RUNNING;
    o.message = r.stop_requested ? "stopping" : "started";
  }
  return o;
}

// What the task's process runs with, and its healthcheck probes too: the
// task's env (plus PATH, HOME and SHOAL_* defaults), working dir and
// identity. Errors reject the task. `dir` is the task dir.
Result<process::SpawnRequest> TaskEnvironment(const v1::Task& task, const fs::path& dir) {
  const v1::ContainerSpec& spec = task.spec();
  Result<process::Identity> ident = process::ResolveIdentity(spec.user(), spec.groups());
  if (!ident.ok()) return ident.error();
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : spec.env()) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos ||
        v.find('\0') != std::string::npos) {
      return InvalidArgument("invalid environment variable name \"" + k + "\"");
    }
    env[k] = v;
  }
  env.emplace("PATH", kDefaultPath);
  env.emplace("HOME", ident->home.empty() ? "/" : ident->home);
  env["SHOAL_TASK_ID"] = task.meta().id();
  env["SHOAL_TASK_SLOT"] = std::to_string(task.slot());
  env["SHOAL_SERVICE_NAME"] = task.service_name();
  env["SHOAL_FILES_DIR"] = (dir / kFilesDir).string();

  fs::path working_dir = dir;
  if (!spec.working_dir().empty()) {
    working_dir = spec.working_dir();
    if (!working_dir.is_absolute()) {
      return InvalidArgument("working_dir \"" + spec.working_dir() + "\" is not an absolute path");
    }
    std::error_code ec;
    if (!fs::is_directory(working_dir, ec)) {
      return InvalidArgument("working_dir \"" + spec.working_dir() +
                             "\" is not a directory on this node");
    }
  }
  process::SpawnRequest req;
  for (const auto& [k, v] : env) req.env.push_back(k + "=" + v);
  req.working_dir = working_dir.string();
  req.identity = *ident;
  return req;
}

}  // namespace

struct ProcessExecutor::Proc {
  TaskRecord rec;
  fs::path dir;
  // Started by this object: the pid cannot have been recycled while unreaped,
  // so waitid needs no /proc check first.
  bool own_child = false;
  bool kill_sent = false;
  SteadyClock::time_point kill_at;  // meaningful once rec.stop_requested
  Observed obs;
  // Runs the healthcheck while the task runs; null when it has none, or for
  // an adopted task until the agent's Start hands its spec over again.
  std::unique_ptr<process::HealthProber> health;
};

Result<std::unique_ptr<ProcessExecutor>> ProcessExecutor::Open(fs::path root,
                                                               ProcessOptions options) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return IoError("cannot create " + root.string() + ": " + ec.message());
  root = fs::absolute(root, ec);
  if (ec) return IoError("cannot resolve " + root.string() + ": " + ec.message());
  std::unique_ptr<ProcessExecutor> ex(new ProcessExecutor(root, std::move(options)));
  try {
    ex->Load();
  } catch (const fs::filesystem_error& e) {
    return IoError("cannot list " + root.string() + ": " + e.what());
  }
  return ex;
}

ProcessExecutor::ProcessExecutor(fs::path root, ProcessOptions options)
    : root_(std::move(root)), options_(std::move(options)), boot_id_(process::BootId()) {}

ProcessExecutor::~ProcessExecutor() = default;

std::string ProcessExecutor::Name() const { return "process"; }

fs::path ProcessExecutor::TaskDir(const std::string& task_id) const { return root_ / task_id; }

void ProcessExecutor::Load() {
  for (const fs::directory_entry& entry : fs::directory_iterator(root_)) {
    if (!entry.is_directory() || entry.is_symlink()) continue;
    std::string id = entry.path().filename().string();
    if (!ValidateTaskId(id).ok()) continue;  // not ours
    auto p = std::make_unique<Proc>();
    p->dir = entry.path();
    Result<TaskRecord> rec = process::ReadRecord(p->dir / kStateFile);
    if (rec.ok() && rec->pid > 1) {
      p->rec = std::move(rec).value();
    } else {
      // A crash between making the dir and recording the pid: whatever was
      // forked is unknown. Reported failed so the agent replaces the task.
      p->rec.id = id;
      p->rec.finished = true;
      p->rec.state = v1::TASK_FAILED;
      p->rec.exit_code = -1;
      p->rec.message = rec.ok() || rec.error().code() == Code::kNotFound
                           ? "the agent stopped while starting this task"
                           : "unreadable task state: " + rec.error().message();
      p->rec.error = p->rec.message;
      if (rec.ok()) p->rec.secrets_dir = rec->secrets_dir;
    }
    p->rec.id = id;
    if (p->rec.stop_requested && !p->rec.finished) {
      // The deadline was stored as wall time; carry over what is left of it.
      auto left = std::chrono::nanoseconds(p->rec.kill_at_unix_ns - UnixNowNs());
      p->kill_at = SteadyClock::now() + std::max(left, std::chrono::nanoseconds(0));
    }
    p->obs = ObservedFrom(p->rec);
    if (!p->rec.finished) p->obs.message = p->rec.stop_requested ? "stopping" : "adopted";
    procs_[id] = std::move(p);
  }
}

void ProcessExecutor::Persist(Proc& p) {
  // Best effort: Poll reports from memory either way; a failed write only
  // costs precision if the agent crashes before the next one succeeds.
  (void)process::WriteRecord(p.dir / kStateFile, p.rec);
}

void ProcessExecutor::Check(Proc& p) {
  if (p.rec.finished) return;
  const pid_t pid = p.rec.pid;
  // Is `pid` still the process the record names? Needed before waitid or any
  // signal for processes this object did not start: their pid may have been
  // recycled while no executor was watching.
  const auto same_process = [&](const std::optional<process::ProcStat>& st) {
    return st && st->start_ticks == p.rec.start_ticks && p.rec.boot_id == boot_id_;
  };
  if (!p.own_child) {
    std::optional<process::ProcStat> st = process::ReadProcStat(pid);
    if (!same_process(st)) {
      // No process has the pid any more, so the group id can only still be
      // held by leftovers of this task: end them too.
      if (!st) KillGroup(pid, SIGKILL);
      Finish(p, false, 0);
      return;
    }
  }
  siginfo_t info{};
  int r = waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT);
  if (r == 0 && info.si_pid == pid) {
    // Exited and not yet reaped: the zombie still holds the group id, so the
    // task's leftover children can be killed without hitting anyone else.
    KillGroup(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    Finish(p, true, status);
    return;
  }
  if (r != 0) {
    // Not our child (adopted from an agent that exited): it is alive while
    // /proc shows it and it is not a zombie waiting for its own parent.
    std::optional<process::ProcStat> st = process::ReadProcStat(pid);
    if (!same_process(st)) {
      if (!st) KillGroup(pid, SIGKILL);
      Finish(p, false, 0);
      return;
    }
    if (st->state == 'Z' || st->state == 'X') {
      KillGroup(pid, SIGKILL);
      Finish(p, false, 0);
      return;
    }
  }
  if (p.rec.stop_requested && !p.kill_sent && SteadyClock::now() >= p.kill_at) {
    SignalGroup(pid, SIGKILL);
    p.kill_sent = true;
  }
}

void ProcessExecutor::Finish(Proc& p, bool known, int wait_status) {
  TaskRecord& r = p.rec;
  const bool signaled = known && WIFSIGNALED(wait_status);
  const int signal = signaled ? WTERMSIG(wait_status) : 0;
  // 128 + signal, as shells and Docker report it (137 for SIGKILL).
  const int code = !known ? -1 : signaled ? 128 + signal : WEXITSTATUS(wait_status);
  const std::string what = signaled ? SignalMessage(signal) : ExitMessage(code);
  r.finished = true;
  r.exit_code = code;
  r.error.clear();
  // An exited task has no health; UNHEALTHY stays, to say why it was stopped.
  if (r.health != v1::TaskStatus::HEALTH_UNHEALTHY) {
    r.health = v1::TaskStatus::HEALTH_NONE;
    r.health_message.clear();
  }
  if (r.stop_requested) {
    r.state = v1::TASK_SHUTDOWN;
    if (!known) {
      r.message = "stopped while the agent was down";
    } else {
      r.message = "stopped: " + what;
      if (p.kill_sent && signal == SIGKILL) r.message += " after the grace period";
    }
  } else if (!known) {
    r.state = v1::TASK_FAILED;
    r.message = "exited while the agent was down; exit code unknown";
    r.error = r.message;
  } else if (code == 0) {
    r.state = v1::TASK_COMPLETE;
    r.message = what;
  } else {
    r.state = v1::TASK_FAILED;
    r.message = what;
    r.error = signaled ? "the process was killed by signal " + std::to_string(signal) + " (" +
                             SignalName(signal) + ")"
                       : "the process exited with code " + std::to_string(code);
  }
  Persist(p);
  p.obs = ObservedFrom(r);
}

Status ProcessExecutor::Start(const v1::Task& task, const std::vector<TaskFile>& files) {
  const std::string& id = task.meta().id();
  if (Status s = ValidateTaskId(id); !s.ok()) return s;
  if (auto it = procs_.find(id); it != procs_.end()) {
    RefreshHealth(task, *it->second);
    return Status::Ok();
  }
  auto p = std::make_unique<Proc>();
  p->dir = TaskDir(id);
  p->rec.id = id;
  if (Status s = StartProcess(task, files, *p); !s.ok()) {
    // Nothing runs: leave nothing behind, so a retried Start begins afresh.
    std::error_code ec;
    if (!p->rec.secrets_dir.empty()) fs::remove_all(p->rec.secrets_dir, ec);
    fs::remove_all(p->dir, ec);
    return s;
  }
  procs_[id] = std::move(p);
  return Status::Ok();
}

Status ProcessExecutor::StartProcess(const v1::Task& task, const std::vector<TaskFile>& files,
                                     Proc& p) {
  const v1::ContainerSpec& spec = task.spec();
  const std::string& id = p.rec.id;
  // Everything that can reject the task is checked before anything is made.
  std::vector<std::string> argv = TaskArgv(spec);
  if (argv.empty()) {
    return InvalidArgument("no command: the process executor needs command or entrypoint");
  }
  int stop_signal = SIGTERM;
  if (!spec.stop_signal().empty()) {
    Result<int> sig = ParseSignal(spec.stop_signal());
    if (!sig.ok()) return InvalidArgument("stop_signal: " + sig.error().message());
    stop_signal = *sig;
  }
  Result<std::optional<process::HealthConfig>> health =
      process::ParseHealthCheck(spec.healthcheck());
  if (!health.ok()) return health.error();
  for (const TaskFile& f : files) {
    if (Result<std::string> rel = FileTargetRelativePath(f.target); !rel.ok()) return rel.error();
  }
  Result<process::SpawnRequest> base = TaskEnvironment(task, p.dir);
  if (!base.ok()) return base.error();
  Result<std::string> exe = process::FindExecutable(argv[0], process::EnvValue(base->env, "PATH"));
  if (!exe.ok()) return exe.error();
  const fs::path files_dir = p.dir / kFilesDir;

  // The task dir: a leftover of an unrecorded start is replaced.
  std::error_code ec;
  fs::remove_all(p.dir, ec);
  const gid_t group = base->identity.change ? base->identity.gid : getegid();
  if (Status s = process::MakePrivateDir(p.dir, group); !s.ok()) return s;
  p.rec.image = spec.image();
  p.rec.stop_signal = stop_signal;
  p.rec.boot_id = boot_id_;
  bool any_secret =
      std::any_of(files.begin(), files.end(), [](const TaskFile& f) { return f.secret; });
  if (any_secret && !options_.secrets_tmpfs.empty() &&
      access(options_.secrets_tmpfs.c_str(), W_OK) == 0) {
    fs::path dir = options_.secrets_tmpfs / ("shoal-" + id);
    // Where that fails (a name squatted in a shared tmpfs), the secrets go to
    // the task dir, as when there is no tmpfs.
    if (process::MakePrivateDir(dir, group).ok()) p.rec.secrets_dir = dir.string();
  }
  // Recorded before the fork so that a crash leaves a record to clean up.
  if (Status s = process::WriteRecord(p.dir / kStateFile, p.rec); !s.ok()) return s;
  if (mkdir(files_dir.c_str(), 0755) != 0) {
    return IoError("mkdir " + files_dir.string() + ": " + std::strerror(errno));
  }
  if (Status s = process::WriteTaskFiles(files_dir, p.rec.secrets_dir, files, geteuid() == 0);
      !s.ok()) {
    return s;
  }

  process::SpawnRequest req = *base;
  req.executable = *exe;
  req.argv = std::move(argv);
  req.log_path = (p.dir / kLogFile).string();
  Result<pid_t> pid = process::Spawn(req);
  if (!pid.ok()) return pid.error();

  p.own_child = true;
  p.rec.pid = *pid;
  // Unreaped, the process keeps its /proc entry even if it already exited.
  std::optional<process::ProcStat> st = process::ReadProcStat(*pid);
  p.rec.start_ticks = st ? st->start_ticks : 0;
  p.rec.started_unix_ns = UnixNowNs();
  if (*health) {
    base->log_path = (p.dir / kHealthLog).string();
    p.health = std::make_unique<process::HealthProber>(
        std::move(**health), std::move(*base), SteadyClock::now(), v1::TaskStatus::HEALTH_STARTING);
    p.rec.health = p.health->health();
  }
  Persist(p);
  p.obs = ObservedFrom(p.rec);
  return Status::Ok();
}

void ProcessExecutor::RefreshHealth(const v1::Task& task, Proc& p) {
  // Only an adopted task lacks its prober; a task that is ending needs none.
  if (p.health || p.rec.finished || p.rec.stop_requested) return;
  Result<std::optional<process::HealthConfig>> config =
      process::ParseHealthCheck(task.spec().healthcheck());
  if (!config.ok() || !*config) return;
  // The task runs already: if its probes cannot (its user is gone), its
  // health stays as it was recorded.
  Result<process::SpawnRequest> base = TaskEnvironment(task, p.dir);
  if (!base.ok()) return;
  base->log_path = (p.dir / kHealthLog).string();
  // The start period counts from the process's start, recorded as wall time.
  const auto ran =
      std::chrono::nanoseconds(std::max<int64_t>(UnixNowNs() - p.rec.started_unix_ns, 0));
  p.health = std::make_unique<process::HealthProber>(
      std::move(**config), std::move(*base), SteadyClock::now() - ran,
      static_cast<v1::TaskStatus::Health>(p.rec.health), p.rec.health_message);
  SyncHealth(p);
}

void ProcessExecutor::SyncHealth(Proc& p) {
  if (p.rec.health == p.health->health() && p.rec.health_message == p.health->message()) return;
  p.rec.health = p.health->health();
  p.rec.health_message = p.health->message();
  Persist(p);
  p.obs.health = p.health->health();
  p.obs.health_message = p.health->message();
}

Status ProcessExecutor::Stop(const std::string& task_id, std::chrono::nanoseconds grace) {
  auto it = procs_.find(task_id);
  if (it == procs_.end()) return Status::Ok();
  Proc& p = *it->second;
  Check(p);
  if (p.rec.finished) return Status::Ok();
  // Clamped so the deadline arithmetic cannot overflow (nanoseconds::max()).
  grace = std::clamp<std::chrono::nanoseconds>(grace, std::chrono::nanoseconds(0),
                                               std::chrono::hours(24 * 365));
  const auto deadline = SteadyClock::now() + grace;
  if (p.rec.stop_requested && deadline >= p.kill_at) return Status::Ok();
  const bool first = !p.rec.stop_requested;
  p.rec.stop_requested = true;
  p.kill_at = deadline;
  p.rec.kill_at_unix_ns = UnixNowNs() + grace.count();
  // Recorded before the signal: after a crash the exit must read SHUTDOWN.
  Persist(p);
  if (grace.count() == 0) {
    SignalGroup(p.rec.pid, SIGKILL);
    p.kill_sent = true;
  } else if (first) {
    SignalGroup(p.rec.pid, p.rec.stop_signal);
  }
  p.obs.message = "stopping";
  return Status::Ok();
}

Status ProcessExecutor::Remove(const std::string& task_id) {
  auto it = procs_.find(task_id);
  if (it == procs_.end()) return Status::Ok();
  Proc& p = *it->second;
  Check(p);
  if (!p.rec.finished) {
    return Status(Code::kFailedPrecondition,
                  "task " + task_id + " is still running: stop it and wait for it to exit");
  }
  std::error_code ec;
  if (!p.rec.secrets_dir.empty()) fs::remove_all(p.rec.secrets_dir, ec);
  if (ec) return IoError("cannot delete " + p.rec.secrets_dir + ": " + ec.message());
  fs::remove_all(p.dir, ec);
  if (ec) return IoError("cannot delete " + p.dir.string() + ": " + ec.message());
  procs_.erase(it);
  return Status::Ok();
}

std::map<std::string, Observed> ProcessExecutor::Poll() {
  std::map<std::string, Observed> out;
  const auto now = SteadyClock::now();
  for (auto& [id, p] : procs_) {
    Check(*p);
    if (p->health) {
      // Probes stop once the task is asked to stop or has exited.
      const bool active = !p->rec.finished && !p->rec.stop_requested;
      if (p->health->Poll(now, active) && active) SyncHealth(*p);
    }
    out.emplace(id, p->obs);
  }
  return out;
}

Result<std::string> ProcessExecutor::Logs(const std::string& task_id, uint64_t offset,
                                          size_t max_bytes) {
  auto it = procs_.find(task_id);
  if (it == procs_.end()) return NotFound("no task " + task_id + " on this executor");
  const fs::path path = it->second->dir / kLogFile;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return IoError("open " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    Status s = IoError("stat " + path.string() + ": " + std::strerror(errno));
    close(fd);
    return s;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::string out;
  if (offset < size) {
    out.resize(static_cast<size_t>(std::min<uint64_t>(max_bytes, size - offset)));
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    out.resize(done);
  }
  close(fd);
  return out;
}

}  // namespace shoal::executor
