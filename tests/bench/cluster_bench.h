#pragma once

// What the modes of shoal_cluster_bench share (cluster_bench.cc describes
// them): flags, clocks, the processes of a benchmark cluster, CPU samples.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "shoal/manager/deploy.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/scheduler/scheduler.h"
#include "shoal/stack/loader.h"
#include "shoal/store/state.h"
#include "shoal/store/txn.h"
#include "shoal/v1/control.grpc.pb.h"

namespace cluster_bench {

namespace fs = std::filesystem;
namespace v1 = shoal::v1;
using shoal::testing::ChildProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline double Secs(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}
inline double Since(Clock::time_point from) { return Secs(from, Clock::now()); }

// This thread's CPU seconds: what the code costs, whatever else runs beside it.
inline double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline std::string List(const std::vector<double>& v, const char* fmt = "%.2f") {
  std::string out;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, fmt, x);
    out += (out.empty() ? "" : ", ") + std::string(buf);
  }
  return out;
}

struct Options {
  std::string mode;
  int nodes = -1;  // per mode default
  int sim_procs = 1;
  int services = -1;
  int replicas = -1;
  int workers = 10;
  int runs = -1;
  int poll_ms = 100;
  int timeout_s = 900;
  std::string dir = "/tmp";
  std::string perf;
  bool keep = false;
  bool poll_leader = false;
  bool scale = false;
};

inline bool ParseFlags(int argc, char** argv, Options* o) {
  if (argc < 2) return false;
  o->mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto num = [&] { return std::atoi(next().c_str()); };
    if (a == "--nodes") {
      o->nodes = num();
    } else if (a == "--sim-procs") {
      o->sim_procs = std::max(1, num());
    } else if (a == "--services") {
      o->services = num();
    } else if (a == "--replicas") {
      o->replicas = num();
    } else if (a == "--workers") {
      o->workers = num();
    } else if (a == "--runs") {
      o->runs = num();
    } else if (a == "--poll-ms") {
      o->poll_ms = std::max(10, num());
    } else if (a == "--timeout") {
      o->timeout_s = num();
    } else if (a == "--dir") {
      o->dir = next();
    } else if (a == "--perf") {
      o->perf = next();
    } else if (a == "--scale") {
      o->scale = true;
    } else if (a == "--poll-leader") {
      o->poll_leader = true;
    } else if (a == "--keep") {
      o->keep = true;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

// ---- processes ----

// CPU seconds (user + system) a process has used so far; -1 once it is gone.
inline double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3.. after the command; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Busy and total CPU seconds of the whole machine (/proc/stat), to show what
// else ran beside the benchmark.
inline std::pair<double, double> MachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double total = 0, idle = 0;
  for (int i = 0; i < 8; ++i) {
    double v = 0;
    in >> v;
    total += v;
    if (i == 3 || i == 4) idle += v;  // idle, iowait
  }
  double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(total - idle) / tck, total / tck};
}

struct CliResult {
  int code = -1;
  std::string out;
};

inline std::string TokenFrom(const std::string& out, const std::string& role) {
  size_t pos = 0;
  while ((pos = out.find("SHOAL-1-", pos)) != std::string::npos) {
    size_t end = out.find_first_of(" \n", pos);
    std::string tok = out.substr(pos, end - pos);
    if (tok.find("-" + role + "-") != std::string::npos) return tok;
    pos = end;
  }
  return "";
}

// A `perf record` of one process, stopped (SIGINT) by Stop().
class PerfRecord {
 public:
  PerfRecord(pid_t target, const std::string& out) {
    std::fflush(nullptr);  // else the child writes our buffered output again
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGINT);
      std::string p = std::to_string(target);
      if (!freopen("/dev/null", "w", stdout) || !freopen((out + ".log").c_str(), "w", stderr)) {
        _exit(127);
      }
      // DWARF call graphs: the build keeps no frame pointers. SHOAL_PERF_HZ
      // raises the rate (49 keeps the recording's own cost small).
      const char* hz = std::getenv("SHOAL_PERF_HZ");
      execlp("perf", "perf", "record", "-F", hz != nullptr ? hz : "49", "--call-graph",
             "dwarf,16384", "-p", p.c_str(), "-o", out.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~PerfRecord() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// The programs a run starts: the build's, unless SHOAL_BENCH_SHOAL /
// SHOAL_BENCH_SIM_NODES name others (to compare an older build alternately).
inline std::string ShoalBinary() {
  const char* p = std::getenv("SHOAL_BENCH_SHOAL");
  return p != nullptr && *p != '\0' ? p : SHOAL_BINARY;
}
inline std::string SimNodesBinary() {
  const char* p = std::getenv("SHOAL_BENCH_SIM_NODES");
  return p != nullptr && *p != '\0' ? p : SHOAL_SIM_NODES;
}

// More flags for shoal_sim_nodes (SHOAL_BENCH_SIM_ARGS), for experiments.
inline std::string SimNodesArgs() {
  const char* p = std::getenv("SHOAL_BENCH_SIM_ARGS");
  return p != nullptr ? p : "";
}

// Daemons and sim-node processes under one directory, each with its log.
class Cluster {
 public:
  Cluster(const Options& o) : keep_(o.keep) {
    std::random_device rd;
    dir_ = fs::path(o.dir) / ("shoal-bench-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~Cluster() {
    for (auto& [name, p] : procs_) p.child.Kill();
    std::error_code ec;
    if (!keep_) fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

  // `shoal daemon` for node `name` with the sim executor; false on failure.
  bool StartDaemon(const std::string& name) {
    std::string data = (dir_ / name).string();
    std::string cmd = "exec '" + ShoalBinary() + "' daemon --data-dir '" + data +
                      "' --listen 127.0.0.1:0 --hostname " + name +
                      " --executor sim --join-rate 0 2>>'" + Log(name) + "'";
    auto p = ChildProcess::Spawn({"/bin/sh", "-c", cmd});
    if (!p) return false;
    auto line = p->ReadLine(std::chrono::seconds(30));
    if (!line || line->rfind("READY ", 0) != 0) {
      std::fprintf(stderr, "daemon %s did not start; see %s\n", name.c_str(), Log(name).c_str());
      return false;
    }
    Proc proc{std::move(*p), std::stoi(line->substr(6))};
    procs_.erase(name);
    procs_.emplace(name, std::move(proc));
    return true;
  }

  // shoal_sim_nodes with `nodes` nodes named <name>-NNNN; seconds until READY,
  // or a negative number on failure.
  double StartSim(const std::string& name, int nodes, const std::string& token,
                  const std::vector<std::string>& managers, int timeout_s) {
    std::string list;
    for (const auto& m : managers) list += (list.empty() ? "" : ",") + m;
    std::string cmd = "exec '" + SimNodesBinary() + "' --managers " + list + " --token " + token +
                      " --nodes " + std::to_string(nodes) + " --data '" + (dir_ / name).string() +
                      "' --prefix " + name + " --stats 10 " + SimNodesArgs() + " 2>>'" + Log(name) +
                      "'";
    auto t0 = Clock::now();
    auto p = ChildProcess::Spawn({"/bin/sh", "-c", cmd});
    if (!p) return -1;
    auto line = p->ReadLine(std::chrono::seconds(timeout_s));
    if (!line || line->rfind("READY", 0) != 0) {
      std::fprintf(stderr, "%s did not get ready; its log:\n", name.c_str());
      std::ifstream log(Log(name));
      std::string l;
      while (std::getline(log, l)) std::fprintf(stderr, "  %s\n", l.c_str());
      return -1;
    }
    procs_.erase(name);
    procs_.emplace(name, Proc{std::move(*p), 0});
    return Since(t0);
  }

  void Kill(const std::string& name) { procs_.at(name).child.Kill(); }
  pid_t Pid(const std::string& name) const { return procs_.at(name).child.pid(); }
  std::string Addr(const std::string& name) const {
    return "127.0.0.1:" + std::to_string(procs_.at(name).port);
  }
  std::string Log(const std::string& name) const { return (dir_ / (name + ".log")).string(); }
  std::string Socket(const std::string& name) const {
    return "unix://" + (dir_ / name / "shoal.sock").string();
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (const auto& [n, p] : procs_) out.push_back(n);
    return out;
  }

  // `shoal --host <name's socket> args...`, stdout and stderr together.
  CliResult Cli(const std::string& name, const std::vector<std::string>& args) const {
    std::string cmd = "'" + ShoalBinary() + "' --host " + Socket(name);
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " 2>&1";
    CliResult r;
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    int status = pclose(f);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  // The control API of `name` over its socket, replies of any size.
  v1::Control::Stub& Control(const std::string& name) {
    auto& stub = stubs_[name];
    if (!stub) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      stub = v1::Control::NewStub(
          grpc::CreateCustomChannel(Socket(name), grpc::InsecureChannelCredentials(), args));
    }
    return *stub;
  }

 private:
  struct Proc {
    ChildProcess child;
    int port = 0;
  };
  bool keep_;
  fs::path dir_;
  std::map<std::string, Proc> procs_;
  std::map<std::string, std::unique_ptr<v1::Control::Stub>> stubs_;
};

inline std::unique_ptr<grpc::ClientContext> Ctx(int ms) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + milliseconds(ms));
  return c;
}

template <class Pred>
inline bool WaitFor(Pred pred, int timeout_s, int every_ms = 100) {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(every_ms));
  }
  return true;
}

struct Managers {
  std::vector<std::string> names;  // m1, m2, m3
  std::vector<std::string> addrs;
  std::string worker_token;
};

// Ready nodes as `name` sees them: (managers, workers).
inline std::pair<int, int> ReadyNodes(Cluster& c, const std::string& name) {
  v1::ListNodesReply reply;
  if (!c.Control(name).ListNodes(Ctx(10000).get(), {}, &reply).ok()) return {-1, -1};
  int managers = 0, workers = 0;
  for (const auto& n : reply.nodes()) {
    if (n.status().state() != v1::NodeStatus::STATE_READY) continue;
    (n.spec().desired_role() == v1::NodeSpec::ROLE_MANAGER ? managers : workers)++;
  }
  return {managers, workers};
}

// Starts `count` managers: cluster init on the first, joins of the others
// through the CLI; drained when asked, so tasks go to workers only.
inline bool StartManagers(Cluster& c, int count, bool drain, Managers* m) {
  for (int i = 1; i <= count; ++i) {
    m->names.push_back("m" + std::to_string(i));
    if (!c.StartDaemon(m->names.back())) return false;
    m->addrs.push_back(c.Addr(m->names.back()));
  }
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.Addr("m1")});
  if (init.code != 0) {
    std::fprintf(stderr, "cluster init failed: %s\n", init.out.c_str());
    return false;
  }
  m->worker_token = TokenFrom(init.out, "worker");
  std::string manager_token = TokenFrom(init.out, "manager");
  for (int i = 1; i < count; ++i) {
    CliResult j = c.Cli(m->names[i], {"cluster", "join", "--token", manager_token, c.Addr("m1")});
    if (j.code != 0) {
      std::fprintf(stderr, "join of %s failed: %s\n", m->names[i].c_str(), j.out.c_str());
      return false;
    }
  }
  if (!WaitFor([&] { return ReadyNodes(c, "m1").first == count; }, 30)) {
    std::fprintf(stderr, "the managers did not all become ready\n");
    return false;
  }
  if (drain) {
    for (const auto& n : m->names) {
      CliResult u = c.Cli("m1", {"node", "update", "--availability", "drain", n});
      if (u.code != 0) {
        std::fprintf(stderr, "drain %s failed: %s\n", n.c_str(), u.out.c_str());
        return false;
      }
    }
  }
  return true;
}

// The leader's raft id and name, as `name` sees them ("" when none).
inline std::pair<uint64_t, std::string> Leader(Cluster& c, const std::string& name,
                                               int deadline_ms) {
  v1::ClusterInfoReply info;
  if (!c.Control(name).ClusterInfo(Ctx(deadline_ms).get(), {}, &info).ok()) return {0, ""};
  for (const auto& n : info.managers()) {
    if (n.manager_status().raft_id() == info.raft_leader() && info.raft_leader() != 0) {
      return {info.raft_leader(), n.description().hostname()};
    }
  }
  return {info.raft_leader(), ""};
}

// The Raft term as `name` sees it (0 when it does not answer).
inline uint64_t Term(Cluster& c, const std::string& name) {
  v1::ClusterInfoReply info;
  if (!c.Control(name).ClusterInfo(Ctx(10000).get(), {}, &info).ok()) return 0;
  return info.raft_term();
}

// A stack of `services` services of `replicas` each, as a user would write it.
inline std::string WriteStack(const fs::path& dir, int services, int replicas) {
  std::string y = "services:\n";
  char name[32];
  for (int i = 0; i < services; ++i) {
    std::snprintf(name, sizeof name, "svc%03d", i);
    y += std::string("  ") + name + ":\n    image: registry.example/app:1\n" +
         "    command: [\"serve\", \"--port\", \"8080\"]\n" +
         "    environment:\n      ROLE: " + name + "\n" +
         "    deploy:\n      replicas: " + std::to_string(replicas) + "\n";
  }
  fs::path p = dir / "stack.yml";
  std::ofstream(p) << y;
  return p.string();
}

// Context switches (voluntary and not) of every thread of a process so far,
// from /proc/PID/task/*/status; threads that ended are not counted.
inline long ContextSwitches(pid_t pid) {
  long total = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != fs::end(it); it.increment(ec)) {
    std::ifstream in(it->path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("ctxt_switches:") == std::string::npos) continue;
      total += std::atol(line.c_str() + line.find(':') + 1);
    }
  }
  return total;
}

// Resident memory of a process now and at its peak, in MiB ("412/530").
inline std::string ResidentMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::atol(line.c_str() + 6);
  }
  return std::to_string(rss / 1024) + "/" + std::to_string(hwm / 1024);
}

// CPU seconds used by each named process between two samples.
struct CpuSample {
  std::map<std::string, double> per;
  std::map<std::string, long> switches;  // only with SampleCpu(c, true)
  std::pair<double, double> machine;
};
inline CpuSample SampleCpu(Cluster& c, bool switches = false) {
  CpuSample s;
  for (const auto& n : c.Names()) {
    s.per[n] = CpuSeconds(c.Pid(n));
    if (switches) s.switches[n] = ContextSwitches(c.Pid(n));
  }
  s.machine = MachineCpu();
  return s;
}
// "m1 1,234/s, ...": context switches a second of each process between two
// samples taken with switches.
inline std::string SwitchReport(const CpuSample& a, const CpuSample& b, double wall) {
  std::string out;
  char buf[96];
  for (const auto& [n, v] : b.switches) {
    auto it = a.switches.find(n);
    if (it == a.switches.end() || wall <= 0) continue;
    std::snprintf(buf, sizeof buf, "%s%s %.0f/s", out.empty() ? "" : ", ", n.c_str(),
                  static_cast<double>(v - it->second) / wall);
    out += buf;
  }
  return out;
}
inline std::string CpuReport(const CpuSample& a, const CpuSample& b, double wall,
                             const std::string& leader) {
  std::string out;
  char buf[96];
  double ours = 0;
  for (const auto& [n, v] : b.per) {
    auto it = a.per.find(n);
    if (it == a.per.end() || v < 0 || it->second < 0) continue;
    ours += v - it->second;
    std::snprintf(buf, sizeof buf, "%s%s %.1f", out.empty() ? "" : ", ", n.c_str(), v - it->second);
    out += buf;
    if (n == leader) out += " (leader)";
  }
  double busy = b.machine.first - a.machine.first;
  double total = b.machine.second - a.machine.second;
  std::snprintf(buf, sizeof buf,
                "; machine busy %.1f of %.1f CPU-s (%.0f%%), of which %.1f outside the cluster",
                busy, total, total > 0 ? 100 * busy / total : 0, busy - ours);
  out += buf;
  (void)wall;
  return out;
}

}  // namespace cluster_bench
