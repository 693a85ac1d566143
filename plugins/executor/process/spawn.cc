#include "spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

namespace shoal::executor::process {
namespace {

namespace bp = boost::process;

constexpr gid_t kNoGroup = 65534;  // "nogroup": the gid of a uid without a passwd entry

// A uid or gid written as a number. 4294967295 is excluded: it is (uid_t)-1,
// which setuid/setgid take as "leave unchanged".
bool IsNumber(const std::string& s) {
  return !s.empty() && s.size() <= 10 && s.find_first_not_of("0123456789") == std::string::npos &&
         std::stoull(s) < 4294967295ULL;
}

struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// getpwnam_r/getpwuid_r: the reentrant forms, because the agent has threads.
std::optional<PasswdEntry> LookUpUser(const std::string& name_or_uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (IsNumber(name_or_uid)) {
    getpwuid_r(static_cast<uid_t>(std::stoul(name_or_uid)), &pw, buf.data(), buf.size(), &found);
  } else {
    getpwnam_r(name_or_uid.c_str(), &pw, buf.data(), buf.size(), &found);
  }
  if (found == nullptr) return std::nullopt;
  return PasswdEntry{pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir ? pw.pw_dir : ""};
}

Result<gid_t> LookUpGroup(const std::string& name_or_gid) {
  if (IsNumber(name_or_gid)) return static_cast<gid_t>(std::stoul(name_or_gid));
  std::vector<char> buf(16384);
  group gr{};
  group* found = nullptr;
  getgrnam_r(name_or_gid.c_str(), &gr, buf.data(), buf.size(), &found);
  if (found == nullptr)
    return InvalidArgument("unknown group \"" + name_or_gid + "\" on this node");
  return gr.gr_gid;
}

std::vector<gid_t> GroupList(const std::string& user, gid_t gid) {
  int n = 64;
  std::vector<gid_t> groups(n);
  while (getgrouplist(user.c_str(), gid, groups.data(), &n) == -1) groups.resize(n);
  groups.resize(n);
  return groups;
}

// What failed between fork and exec: boost reports only the errno, so the
// child also writes one of these indexes to a pipe of its own.
constexpr const char* kSteps[] = {
    "exec", "setpgid", "dup2", "setgroups", "setgid", "setuid", "chdir to the working dir"};

// The child's side, between fork and exec. Only async-signal-safe calls: the
// agent has other threads, whose locks the child inherits held.
struct ChildSetup {
  int step_fd = -1;
  int null_fd = -1;
  int log_fd = -1;
  const char* working_dir = nullptr;
  bool change_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;

  template <class Executor>
  void operator()(Executor& exec) const {
    const auto fail = [&exec, this](char step) {
      const int err = errno;
      (void)!write(step_fd, &step, 1);
      exec.set_error(std::error_code(err, std::system_category()), kSteps[static_cast<int>(step)]);
      _exit(127);
    };
    if (setpgid(0, 0) != 0) fail(1);
    // Dispositions the agent ignores (SIGPIPE) and its blocked mask would
    // otherwise be inherited through exec and change how the task behaves.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
    }
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) fail(2);
    if (change_user) {
      if (setgroups(group_count, groups) != 0) fail(3);
      if (setgid(gid) != 0) fail(4);
      if (setuid(uid) != 0) fail(5);
    }
    if (chdir(working_dir) != 0) fail(6);
    // Boost 1.74 cannot limit inherited handles: mark every descriptor above
    // stderr close-on-exec so the agent's sockets and files do not leak into
    // the task (boost's own error pipe already is).
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      rlimit lim{};
      int max = (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536)
                    ? static_cast<int>(lim.rlim_cur)
                    : 65536;
      for (int fd = 3; fd < max; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<Identity> ResolveIdentity(const std::string& user,
                                 const google::protobuf::RepeatedPtrField<std::string>& groups) {
  const bool root = geteuid() == 0;
  Identity id;
  id.uid = geteuid();
  id.gid = getegid();
  if (auto self = LookUpUser(std::to_string(id.uid))) id.home = self->home;
  if (user.empty() && groups.empty()) return id;

  std::string user_part = user;
  std::string group_part;
  if (size_t colon = user.find(':'); colon != std::string::npos) {
    user_part = user.substr(0, colon);
    group_part = user.substr(colon + 1);
  }
  std::optional<PasswdEntry> entry;
  if (!user_part.empty()) {
    entry = LookUpUser(user_part);
    if (entry) {
      id.uid = entry->uid;
      id.gid = entry->gid;
      id.home = entry->home;
    } else if (IsNumber(user_part)) {
      id.uid = static_cast<uid_t>(std::stoul(user_part));
      id.gid = kNoGroup;
      id.home = "/";
    } else {
      return InvalidArgument("unknown user \"" + user_part + "\" on this node");
    }
  }
  const bool explicit_group = !group_part.empty();
  if (explicit_group) {
    Result<gid_t> g = LookUpGroup(group_part);
    if (!g.ok()) return g.error();
    id.gid = *g;
  }
  id.groups = entry ? GroupList(entry->name, id.gid) : std::vector<gid_t>{id.gid};
  for (const std::string& g : groups) {
    Result<gid_t> extra = LookUpGroup(g);
    if (!extra.ok()) return extra.error();
    id.groups.push_back(*extra);
  }

  if (root) {
    id.change = true;
    return id;
  }
  // Not root: only "run as myself" is possible, and then nothing changes.
  if (id.uid == geteuid() && (!explicit_group || id.gid == getegid()) && groups.empty()) {
    id.change = false;
    return id;
  }
  return InvalidArgument("user \"" + user + "\"" +
                         (groups.empty() ? std::string() : " with extra groups") +
                         ": the agent runs as uid " + std::to_string(geteuid()) +
                         ", not root, so the process executor can only run tasks as that user");
}

Result<std::string> FindExecutable(const std::string& name, const std::string& path) {
  if (name.empty()) return InvalidArgument("empty executable name");
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) != 0) {
      return InvalidArgument("cannot run \"" + name + "\": " + std::strerror(errno));
    }
    return name;
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find(':', pos);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(pos, end - pos);
    pos = end + 1;
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return InvalidArgument("executable file not found in $PATH: \"" + name + "\"");
}

std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  for (const std::string& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return e.substr(key.size() + 1);
    }
  }
  return "";
}

Result<pid_t> Spawn(const SpawnRequest& req) {
  Fd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) {
    return Status(Code::kUnavailable, "open /dev/null: " + std::string(std::strerror(errno)));
  }
  Fd log_fd(open(req.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (log_fd.get() < 0) {
    return Status(Code::kIo, "open " + req.log_path + ": " + std::strerror(errno));
  }
  int step_pipe[2];
  if (pipe2(step_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status(Code::kUnavailable, "pipe: " + std::string(std::strerror(errno)));
  }
  Fd step_read(step_pipe[0]);
  Fd step_write(step_pipe[1]);

  // Everything the child uses is prepared here, in the parent, because the
  // child may not allocate.
  std::vector<char*> envp;
  envp.reserve(req.env.size() + 1);
  for (const std::string& e : req.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::vector<std::string> args(req.argv.begin() + (req.argv.empty() ? 0 : 1), req.argv.end());

  ChildSetup setup;
  setup.step_fd = step_write.get();
  setup.null_fd = null_fd.get();
  setup.log_fd = log_fd.get();
  setup.working_dir = req.working_dir.c_str();
  setup.change_user = req.identity.change;
  setup.uid = req.identity.uid;
  setup.gid = req.identity.gid;
  setup.groups = req.identity.groups.data();
  setup.group_count = req.identity.groups.size();

  std::error_code ec;
  pid_t failed_pid = -1;
  pid_t pid = -1;
  try {
    bp::child child(
        bp::exe = req.executable, bp::args = args,
        bp::extend::on_setup = [&envp](auto& exec) { exec.env = envp.data(); },
        bp::extend::on_exec_setup = setup,
        bp::extend::on_error = [&failed_pid](auto& exec,
                                             const std::error_code&) { failed_pid = exec.pid; },
        ec);
    if (!ec) {
      pid = child.id();
      // Detached: boost's child would otherwise kill the process when it goes
      // out of scope. The executor waits for it itself (waitid in Poll).
      child.detach();
    }
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, std::string("cannot start the process: ") + e.what());
  }
  if (ec) {
    // A child that failed between fork and exec has already exited; reap it.
    if (failed_pid > 0) {
      waitpid(failed_pid, nullptr, 0);
      char step = 0;
      if (read(step_read.get(), &step, 1) != 1 || step < 0 || step > 6) step = 0;
      std::string what = step == 6 ? "cannot change to working dir \"" + req.working_dir + "\""
                                   : "cannot start \"" + req.executable + "\" (" +
                                         kSteps[static_cast<int>(step)] + ")";
      return InvalidArgument(what + ": " + ec.message());
    }
    return Status(Code::kUnavailable, "cannot start \"" + req.executable + "\": " + ec.message());
  }
  return pid;
}

}  // namespace shoal::executor::process
