// shoal_cluster_bench: the cluster end to end (issue 4, item 10). Real
// `shoal daemon` processes on loopback with the sim executor, driven through
// the `shoal` CLI and the control API, and shoal_sim_nodes hosting the
// simulated worker nodes. Modes:
//
//   shoal_cluster_bench deploy [--nodes 1000] [--sim-procs 1] [--services 100]
//                              [--replicas 1000] [--runs 1] [--perf DIR]
//       3 managers (cluster init + 2 joins through the CLI), drained so that
//       tasks go to the sim nodes; `--nodes` simulated nodes in `--sim-procs`
//       shoal_sim_nodes processes; then `shoal deploy --detach` of a stack of
//       services x replicas, polled through ListServices/ListTasks on a
//       follower until every task runs. Prints the time to accepted, to all
//       placed (every task has a node and is at least ASSIGNED) and to all
//       running, tasks/s, the CPU seconds each process used meanwhile, and
//       the same for 10 s of steady state afterwards. --scale: deploy the
//       services with 0 replicas first (untimed) and start the clock at
//       concurrent ScaleService calls (no dry run in the write path).
//       --poll-leader polls the leader instead. --perf DIR: `perf record
//       --call-graph dwarf` of the leader and the first sim process, during
//       the deploy and during the steady state.
//   shoal_cluster_bench scheduler [--nodes 1000] [--services 100] [--replicas 1000]
//       The same input in process: the deploy's transaction (BuildDeploy), the
//       deploy's dry-run placement, orchestrator::Reconcile with
//       max_mutations unlimited and with the manager's default (2000, applied
//       pass after pass as the leader does), and scheduler::Schedule alone.
//   shoal_cluster_bench worker-loss [--workers 10] [--services 10] [--replicas 100] [--runs 5]
//                                   [--sim-procs 2 --nodes N]
//       3 drained managers and `--workers` worker daemons (sim executor), or
//       with --sim-procs P > 1, N sim nodes in P processes. After the stack
//       runs, one worker process is killed -9 and the clock runs until every
//       slot has a running task on a live node. Fresh cluster per run; median.
//   shoal_cluster_bench leader-loss [--services 1] [--replicas 30] [--runs 5] [--nodes 0]
//       3 managers running a small stack (or drained, with --nodes sim nodes);
//       the leader is killed -9, and ScaleService calls are sent to the two
//       survivors every 50 ms (overlapping, each with a 10 s deadline) until
//       one is accepted. Fresh cluster per run; median.
//
// Common flags: --dir BASE (default /tmp), --keep (leave the data dirs),
// --timeout S (per wait, default 900), --poll-ms MS (default 100).
// Logs of the daemons and sim processes go to <dir>/shoal-bench-*/<name>.log.
// Every child dies with the benchmark (PDEATHSIG; the sim processes also
// when their stdin closes). Results and analysis: docs/performance.md,
// "Cluster (issue 4)".

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

namespace {

namespace fs = std::filesystem;
namespace v1 = shoal::v1;
using shoal::testing::ChildProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double Secs(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}
double Since(Clock::time_point from) { return Secs(from, Clock::now()); }

// This thread's CPU seconds: what the code costs, whatever else runs beside it.
double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string List(const std::vector<double>& v, const char* fmt = "%.2f") {
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

bool ParseFlags(int argc, char** argv, Options* o) {
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
double CpuSeconds(pid_t pid) {
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
std::pair<double, double> MachineCpu() {
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

std::string TokenFrom(const std::string& out, const std::string& role) {
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
      // DWARF call graphs: the build keeps no frame pointers.
      execlp("perf", "perf", "record", "-F", "49", "--call-graph", "dwarf,16384", "-p", p.c_str(),
             "-o", out.c_str(), static_cast<char*>(nullptr));
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
    std::string cmd = "exec '" + std::string(SHOAL_BINARY) + "' daemon --data-dir '" + data +
                      "' --listen 127.0.0.1:0 --hostname " + name + " --executor sim 2>>'" +
                      Log(name) + "'";
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
    std::string cmd = "exec '" + std::string(SHOAL_SIM_NODES) + "' --managers " + list +
                      " --token " + token + " --nodes " + std::to_string(nodes) + " --data '" +
                      (dir_ / name).string() + "' --prefix " + name + " --stats 10 2>>'" +
                      Log(name) + "'";
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
    std::string cmd = "'" + std::string(SHOAL_BINARY) + "' --host " + Socket(name);
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

std::unique_ptr<grpc::ClientContext> Ctx(int ms) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + milliseconds(ms));
  return c;
}

template <class Pred>
bool WaitFor(Pred pred, int timeout_s, int every_ms = 100) {
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
std::pair<int, int> ReadyNodes(Cluster& c, const std::string& name) {
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
bool StartManagers(Cluster& c, int count, bool drain, Managers* m) {
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
std::pair<uint64_t, std::string> Leader(Cluster& c, const std::string& name, int deadline_ms) {
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
uint64_t Term(Cluster& c, const std::string& name) {
  v1::ClusterInfoReply info;
  if (!c.Control(name).ClusterInfo(Ctx(10000).get(), {}, &info).ok()) return 0;
  return info.raft_term();
}

// A stack of `services` services of `replicas` each, as a user would write it.
std::string WriteStack(const fs::path& dir, int services, int replicas) {
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

// CPU seconds used by each named process between two samples.
struct CpuSample {
  std::map<std::string, double> per;
  std::pair<double, double> machine;
};
CpuSample SampleCpu(Cluster& c) {
  CpuSample s;
  for (const auto& n : c.Names()) s.per[n] = CpuSeconds(c.Pid(n));
  s.machine = MachineCpu();
  return s;
}
std::string CpuReport(const CpuSample& a, const CpuSample& b, double wall,
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

// ---- deploy ----

int Deploy(const Options& o) {
  int nodes = o.nodes < 0 ? 1000 : o.nodes;
  int services = o.services < 0 ? 100 : o.services;
  int replicas = o.replicas < 0 ? 1000 : o.replicas;
  int runs = o.runs < 0 ? 1 : o.runs;
  long total = static_cast<long>(services) * replicas;
  std::vector<double> accepted, placed, running, rates;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    auto t_setup = Clock::now();
    if (!StartManagers(c, 3, true, &m)) return 1;
    double managers_s = Since(t_setup);
    std::vector<std::string> sims;
    auto t_sim = Clock::now();
    for (int p = 0; p < o.sim_procs; ++p) {
      int share = nodes / o.sim_procs + (p < nodes % o.sim_procs ? 1 : 0);
      sims.push_back("sim" + std::to_string(p + 1));
      if (c.StartSim(sims.back(), share, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
    }
    double sim_s = Since(t_sim);
    if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
      std::fprintf(stderr, "not all %d sim nodes became ready\n", nodes);
      return 1;
    }
    double ready_s = Since(t_sim);
    auto [leader_id, leader] = Leader(c, "m1", 10000);
    (void)leader_id;
    std::string follower = leader == "m1" ? "m2" : "m1";
    std::string poll = o.poll_leader ? leader : follower;
    std::printf(
        "run %d: 3 managers up in %.1f s; %d sim nodes in %d process(es) READY in %.1f s, all "
        "ready in the store after %.1f s; leader %s, polling %s\n",
        run, managers_s, nodes, o.sim_procs, sim_s, ready_s, leader.c_str(), poll.c_str());
    std::fflush(stdout);
    std::string file = WriteStack(c.dir(), services, replicas);

    std::vector<std::unique_ptr<PerfRecord>> perf;
    if (!o.perf.empty()) {
      fs::create_directories(o.perf);
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(leader), o.perf + "/leader.data"));
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(sims[0]), o.perf + "/sim.data"));
      std::this_thread::sleep_for(milliseconds(500));
    }
    if (o.scale) {
      // The services first with no replicas (not timed); the clock then runs
      // from the ScaleService calls, which have no dry run.
      std::string zero = WriteStack(c.dir(), services, 0);
      CliResult dep0 = c.Cli(leader, {"deploy", "--detach", "-c", zero, "bench"});
      if (dep0.code != 0) {
        std::fprintf(stderr, "deploy of 0 replicas failed: %s\n", dep0.out.c_str());
        return 1;
      }
    }
    uint64_t term0 = Term(c, leader);
    CpuSample cpu0 = SampleCpu(c);
    auto t0 = Clock::now();
    double t_acc = 0;
    if (o.scale) {
      std::atomic<int> failed{0};
      std::vector<std::thread> calls;
      v1::Control::Stub* stub = &c.Control(leader);
      for (int i = 0; i < services; ++i) {
        calls.emplace_back([&, i, stub] {
          char name[32];
          std::snprintf(name, sizeof name, "bench_svc%03d", i);
          v1::ScaleServiceRequest req;
          req.set_name(name);
          req.set_replicas(replicas);
          v1::ScaleServiceReply reply;
          grpc::Status st = stub->ScaleService(Ctx(60000).get(), req, &reply);
          if (!st.ok()) {
            std::fprintf(stderr, "scale %s: %s\n", name, st.error_message().c_str());
            ++failed;
          }
        });
      }
      for (auto& th : calls) th.join();
      t_acc = Since(t0);
      if (failed > 0) return 1;
    } else {
      CliResult dep = c.Cli(leader, {"deploy", "--detach", "-c", file, "bench"});
      t_acc = Since(t0);
      if (dep.code != 0) {
        std::printf("  the deploy call failed after %.2f s: %s", t_acc, dep.out.c_str());
        // The transaction may still have committed: go on if the stack is there.
        bool there = WaitFor(
            [&] {
              for (const auto& n : m.names) {
                v1::ListServicesRequest lr;
                lr.set_stack("bench");
                v1::ListServicesReply ls;
                if (c.Control(n).ListServices(Ctx(5000).get(), lr, &ls).ok() &&
                    ls.services_size() == services) {
                  return true;
                }
              }
              return false;
            },
            60, 500);
        if (!there) {
          std::printf("run %d: the deploy was not accepted\n", run);
          return 1;
        }
        std::printf("  ... but the stack was committed (seen %.2f s after the start)\n", Since(t0));
        auto [lid2, leader2] = Leader(c, "m1", 10000);
        if (!leader2.empty()) {
          leader = leader2;
          poll = o.poll_leader ? leader : (leader == "m1" ? "m2" : "m1");
        }
      }
    }
    CpuSample cpu_acc = SampleCpu(c);

    // Poll a follower: every poll one ListServices (running counts), and
    // until all are placed, ListTasks of the last service in id order: the
    // orchestrator creates and places services in id order, so when the last
    // one is fully placed, one ListTasks of the whole stack confirms the rest.
    std::set<std::string> done;  // services whose tasks all run
    double t_placed = -1, t_running = -1, slowest_poll = 0, slowest_tasks = 0;
    long last_running = 0;
    auto next_report = Clock::now();
    auto placed_in = [&](const v1::ListTasksReply& tl) {
      long n = 0;
      for (const auto& t : tl.tasks()) {
        if (!t.node_id().empty() && t.status().state() >= v1::TASK_ASSIGNED) ++n;
      }
      return n;
    };
    while (Since(t0) < o.timeout_s) {
      v1::ListServicesRequest lr;
      lr.set_stack("bench");
      v1::ListServicesReply ls;
      auto call0 = Clock::now();
      grpc::Status s = c.Control(poll).ListServices(Ctx(30000).get(), lr, &ls);
      slowest_poll = std::max(slowest_poll, Since(call0));
      if (s.ok()) {
        long run_count = 0;
        for (const auto& sv : ls.services()) {
          run_count += static_cast<long>(sv.running());
          if (sv.running() == sv.desired()) done.insert(sv.service().meta().id());
        }
        last_running = run_count;
        if (t_placed < 0 && ls.services_size() == services) {
          const auto& last = ls.services(services - 1);
          v1::ListTasksRequest tr;
          tr.set_service(last.service().meta().id());
          tr.set_live_only(true);
          v1::ListTasksReply tl;
          auto lt0 = Clock::now();
          bool ok = c.Control(poll).ListTasks(Ctx(30000).get(), tr, &tl).ok();
          slowest_tasks = std::max(slowest_tasks, Since(lt0));
          if (ok && placed_in(tl) >= static_cast<long>(last.desired())) {
            double when = Since(t0);
            v1::ListTasksRequest all;
            all.set_stack("bench");
            all.set_live_only(true);
            v1::ListTasksReply every;
            if (c.Control(poll).ListTasks(Ctx(60000).get(), all, &every).ok() &&
                placed_in(every) == total) {
              t_placed = when;
            }
          }
        }
        if (run_count == total && ls.services_size() == services) {
          t_running = Since(t0);
          if (t_placed < 0) t_placed = t_running;
          break;
        }
      }
      if (Clock::now() >= next_report) {
        std::printf(
            "  %6.1f s: %s, %zu/%d services and %ld/%ld tasks running (slowest "
            "ListServices %.2f s, ListTasks %.2f s)\n",
            Since(t0), t_placed < 0 ? "not all placed" : "all placed", done.size(), services,
            last_running, total, slowest_poll, slowest_tasks);
        slowest_poll = slowest_tasks = 0;
        std::fflush(stdout);
        next_report = Clock::now() + std::chrono::seconds(5);
      }
      std::this_thread::sleep_for(milliseconds(o.poll_ms));
    }
    CpuSample cpu1 = SampleCpu(c);
    for (auto& p : perf) p->Stop();
    if (t_running < 0) {
      std::printf("run %d: did NOT converge within %d s: %ld/%ld running\n", run, o.timeout_s,
                  last_running, total);
      return 1;
    }
    std::printf(
        "run %d: %ld tasks on %d nodes: accepted %.2f s, all placed %.2f s, all running %.2f s: "
        "%.0f tasks/s end to end (%.0f/s after acceptance)\n",
        run, total, nodes, t_acc, t_placed, t_running, total / t_running,
        total / (t_running - t_acc));
    {
      auto [id_now, leader_now] = Leader(c, poll, 10000);
      uint64_t term1 = Term(c, poll);
      if (leader_now != leader || term1 != term0) {
        std::printf("  leadership moved during the run: %s at term %llu, %s at term %llu\n",
                    leader.c_str(), static_cast<unsigned long long>(term0), leader_now.c_str(),
                    static_cast<unsigned long long>(term1));
        if (!leader_now.empty()) leader = leader_now;
      }
    }
    std::printf("  CPU-s until accepted: %s\n", CpuReport(cpu0, cpu_acc, t_acc, leader).c_str());
    std::printf("  CPU-s accepted to running: %s\n",
                CpuReport(cpu_acc, cpu1, t_running - t_acc, leader).c_str());
    // The steady state: what 1,000 agents' heartbeats cost the managers.
    if (!o.perf.empty()) {
      perf.clear();
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(leader), o.perf + "/leader-idle.data"));
      perf.push_back(std::make_unique<PerfRecord>(c.Pid(sims[0]), o.perf + "/sim-idle.data"));
    }
    CpuSample idle0 = SampleCpu(c);
    std::this_thread::sleep_for(std::chrono::seconds(10));
    CpuSample idle1 = SampleCpu(c);
    for (auto& p : perf) p->Stop();
    std::printf("  CPU-s over the next 10 s, everything running: %s\n",
                CpuReport(idle0, idle1, 10, leader).c_str());
    std::fflush(stdout);
    accepted.push_back(t_acc);
    placed.push_back(t_placed);
    running.push_back(t_running);
    rates.push_back(total / t_running);
  }
  if (runs > 1) {
    std::printf(
        "deploy %ld tasks, %d nodes, %d runs: accepted [%s] s, placed [%s] s, running [%s] "
        "s; median %.2f s running, %.0f tasks/s\n",
        total, nodes, runs, List(accepted).c_str(), List(placed).c_str(), List(running).c_str(),
        Median(running), Median(rates));
  }
  return 0;
}

// ---- scheduler (in process) ----

class SeqIds : public shoal::orchestrator::IdSource {
 public:
  std::string NewTaskId() override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "task-%07llu", static_cast<unsigned long long>(++n_));
    return buf;
  }

 private:
  uint64_t n_ = 0;
};

int Scheduler(const Options& o) {
  int nodes = o.nodes < 0 ? 1000 : o.nodes;
  int services = o.services < 0 ? 100 : o.services;
  int replicas = o.replicas < 0 ? 1000 : o.replicas;
  long total = static_cast<long>(services) * replicas;
  fs::path dir = fs::path(o.dir) / ("shoal-sched-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string file = WriteStack(dir, services, replicas);
  uint64_t index = 0;
  int64_t now = 1'000'000'000;
  shoal::store::State state;
  {
    shoal::store::Txn txn;
    v1::Cluster cl;
    cl.mutable_meta()->set_id("cluster");
    cl.set_name("bench");
    cl.set_task_history_per_slot(5);
    txn.Put(cl);
    char host[32];
    for (int i = 0; i < nodes; ++i) {
      std::snprintf(host, sizeof host, "sim-%04d", i);
      v1::Node n;
      n.mutable_meta()->set_id(std::string("node-") + host);
      n.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_WORKER);
      n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
      n.mutable_description()->set_hostname(host);
      n.mutable_description()->set_os("linux");
      n.mutable_description()->set_nano_cpus(4'000'000'000);
      n.mutable_description()->set_memory_bytes(16LL << 30);
      n.mutable_description()->set_executor("sim");
      n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
      txn.Put(n);
    }
    if (!state.Apply(++index, std::move(txn).Build("bench", now), nullptr).ok()) return 1;
  }
  // Wall and CPU seconds of each step: on a shared machine the CPU time is
  // what the code costs, the wall time what it took beside everything else.
  struct Timer {
    Clock::time_point wall = Clock::now();
    double cpu = ThreadCpu();
    std::pair<double, double> Lap() {
      std::pair<double, double> out{Since(wall), ThreadCpu() - cpu};
      wall = Clock::now();
      cpu = ThreadCpu();
      return out;
    }
  };
  auto row = [](const char* what, std::pair<double, double> t, const std::string& extra) {
    std::printf("  %-62s %7.3f s wall %7.3f s CPU%s\n", what, t.first, t.second, extra.c_str());
  };
  auto rate = [](size_t n, double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %zu tasks, %.0f tasks/s of CPU", n, n / s);
    return std::string(buf);
  };
  std::printf("scheduler mode: %d nodes, %d services x %d replicas = %ld tasks\n", nodes, services,
              replicas, total);
  Timer timer;
  shoal::stack::LoadOptions lo;
  lo.files = {file};
  lo.stack_name = "bench";
  auto loaded = shoal::stack::Load(lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s", loaded.error().ToString().c_str());
    return 1;
  }
  row("stack::Load of the stack file (the CLI's side)", timer.Lap(), "");
  v1::DeployRequest req;
  *req.mutable_spec() = loaded->spec;
  std::mt19937_64 rng(42);
  auto change = shoal::manager::BuildDeploy(state, req, rng);
  if (!change.ok()) return 1;
  row("BuildDeploy (the deploy's transaction)", timer.Lap(), "");
  auto unplaced = shoal::manager::DryRunPlacement(state, *change, "bench");
  row("DryRunPlacement (inside the Deploy call, on the leader loop)", timer.Lap(),
      "  " + std::to_string(unplaced.size()) + " unplaced");
  v1::Command cmd;
  for (const auto& m : change->mutations) *cmd.mutable_transaction()->add_mutations() = m;
  if (!state.Apply(++index, cmd, nullptr).ok()) return 1;
  row("State::Apply of the deploy's transaction", timer.Lap(), "");

  // One pass, no cap.
  {
    shoal::store::State copy = state;
    SeqIds ids;
    shoal::orchestrator::Options opts;
    opts.max_mutations = SIZE_MAX;
    timer.Lap();
    auto out = shoal::orchestrator::Reconcile(copy, now, ids, opts);
    auto one = timer.Lap();
    row("Reconcile, max_mutations unlimited (1 pass)", one, rate(out.assigned, one.second));
    // The scheduler alone on the same tasks, in one call.
    std::vector<v1::Node> node_list;
    for (const v1::Mutation* m : copy.List(shoal::store::Kind::kNode)) {
      node_list.push_back(m->node());
    }
    std::vector<v1::Task> pending;
    pending.reserve(out.mutations.size());
    for (const auto& m : out.mutations) {
      if (!m.has_task()) continue;
      // What the orchestrator hands the scheduler: the fields it reads.
      v1::Task task;
      task.mutable_meta()->set_id(m.task().meta().id());
      task.set_service_id(m.task().service_id());
      *task.mutable_resources()->mutable_reservations() = m.task().resources().reservations();
      *task.mutable_endpoint()->mutable_ports() = m.task().endpoint().ports();
      *task.mutable_placement() = m.task().placement();
      pending.push_back(std::move(task));
    }
    timer.Lap();
    auto d = shoal::scheduler::Schedule(node_list, {}, pending);
    auto alone = timer.Lap();
    row("scheduler::Schedule alone, all tasks in one call", alone,
        rate(d.assigned.size(), alone.second));
    // Service by service, as the capped passes call it: 1,000 tasks with the
    // tasks of the earlier services already assigned.
    std::map<std::string, std::string> where;
    for (const auto& a : d.assigned) where[a.task_id] = a.node_id;
    std::vector<v1::Task> assigned;
    double worst = 0;
    timer.Lap();
    for (size_t i = 0; i < pending.size(); i += replicas) {
      std::vector<v1::Task> batch(pending.begin() + i,
                                  pending.begin() + std::min(pending.size(), i + replicas));
      auto one_service = Clock::now();
      auto placed = shoal::scheduler::Schedule(node_list, assigned, batch);
      worst = std::max(worst, Since(one_service));
      std::map<std::string, std::string> at;
      for (const auto& a : placed.assigned) at[a.task_id] = a.node_id;
      for (auto& task : batch) {
        task.set_node_id(at[task.meta().id()]);
        assigned.push_back(std::move(task));
      }
    }
    auto by_service = timer.Lap();
    char extra[96];
    std::snprintf(extra, sizeof extra, "%s (the last call %.3f s)",
                  rate(assigned.size(), by_service.second).c_str(), worst);
    row("scheduler::Schedule service by service, earlier ones assigned", by_service, extra);
  }
  // Capped passes, applied one after the other, as the leader runs them.
  {
    shoal::store::State copy = state;
    SeqIds ids;
    shoal::orchestrator::Options opts;
    std::pair<double, double> reconcile{0, 0}, apply{0, 0};
    double worst = 0;
    int passes = 0;
    size_t assigned = 0;
    uint64_t idx = index;
    while (true) {
      timer.Lap();
      auto out = shoal::orchestrator::Reconcile(copy, now, ids, opts);
      auto pass = timer.Lap();
      reconcile.first += pass.first;
      reconcile.second += pass.second;
      if (out.mutations.empty()) break;
      worst = std::max(worst, pass.second);
      ++passes;
      assigned += out.assigned;
      v1::Command c;
      for (auto& m : out.mutations) *c.mutable_transaction()->add_mutations() = std::move(m);
      c.set_proposer("orchestrator");
      c.set_proposed_at_ns(now);
      timer.Lap();
      if (!copy.Apply(++idx, c, nullptr).ok()) return 1;
      auto ap = timer.Lap();
      apply.first += ap.first;
      apply.second += ap.second;
    }
    char what[96], extra[96];
    std::snprintf(what, sizeof what, "Reconcile, max_mutations %zu (the manager's): %d passes",
                  opts.max_mutations, passes);
    std::snprintf(extra, sizeof extra, "%s (slowest pass %.3f s CPU)",
                  rate(assigned, reconcile.second).c_str(), worst);
    row(what, reconcile, extra);
    row("  + State::Apply of those passes' transactions", apply,
        rate(assigned, reconcile.second + apply.second));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

// ---- worker loss ----

int WorkerLoss(const Options& o) {
  int services = o.services < 0 ? 10 : o.services;
  int replicas = o.replicas < 0 ? 100 : o.replicas;
  int runs = o.runs < 0 ? 5 : o.runs;
  bool sim = o.sim_procs > 1;
  int nodes = sim ? (o.nodes < 0 ? 1000 : o.nodes) : o.workers;
  long total = static_cast<long>(services) * replicas;
  std::vector<double> down_v, placed_v, running_v;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    if (!StartManagers(c, 3, true, &m)) return 1;
    std::vector<std::string> workers;
    if (sim) {
      for (int p = 0; p < o.sim_procs; ++p) {
        int share = nodes / o.sim_procs + (p < nodes % o.sim_procs ? 1 : 0);
        workers.push_back("sim" + std::to_string(p + 1));
        if (c.StartSim(workers.back(), share, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
      }
    } else {
      for (int w = 1; w <= o.workers; ++w) {
        workers.push_back("w" + std::to_string(w));
        if (!c.StartDaemon(workers.back())) return 1;
        CliResult j =
            c.Cli(workers.back(), {"cluster", "join", "--token", m.worker_token, c.Addr("m1")});
        if (j.code != 0) {
          std::fprintf(stderr, "join failed: %s\n", j.out.c_str());
          return 1;
        }
      }
    }
    if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
      std::fprintf(stderr, "not all %d workers became ready\n", nodes);
      return 1;
    }
    std::string file = WriteStack(c.dir(), services, replicas);
    auto [lid, leader] = Leader(c, "m1", 10000);
    CliResult dep = c.Cli(leader, {"deploy", "-c", file, "--timeout", "300", "bench"});
    if (dep.code != 0) {
      std::fprintf(stderr, "deploy failed: %s\n", dep.out.c_str());
      return 1;
    }
    // The victim's node ids: its hostname, or its prefix for a sim process.
    const std::string victim = workers.front();
    std::set<std::string> victim_nodes;
    v1::ListNodesReply nl;
    if (!c.Control(leader).ListNodes(Ctx(10000).get(), {}, &nl).ok()) return 1;
    for (const auto& n : nl.nodes()) {
      const std::string& h = n.description().hostname();
      if (h == victim || (sim && h.rfind(victim + "-", 0) == 0)) victim_nodes.insert(n.meta().id());
    }
    long on_victim = 0;
    {
      v1::ListTasksRequest tr;
      tr.set_stack("bench");
      tr.set_live_only(true);
      v1::ListTasksReply tl;
      if (!c.Control(leader).ListTasks(Ctx(30000).get(), tr, &tl).ok()) return 1;
      for (const auto& t : tl.tasks()) on_victim += victim_nodes.count(t.node_id()) ? 1 : 0;
    }
    auto t0 = Clock::now();
    c.Kill(victim);
    double t_down = -1, t_placed = -1, t_running = -1;
    while (Since(t0) < o.timeout_s) {
      if (t_down < 0) {
        v1::ListNodesReply nr;
        if (c.Control(leader).ListNodes(Ctx(5000).get(), {}, &nr).ok()) {
          bool all = true;
          for (const auto& n : nr.nodes()) {
            if (victim_nodes.count(n.meta().id())) {
              all = all && n.status().state() == v1::NodeStatus::STATE_DOWN;
            }
          }
          if (all) t_down = Since(t0);
        }
      }
      v1::ListTasksRequest tr;
      tr.set_stack("bench");
      tr.set_live_only(true);
      v1::ListTasksReply tl;
      if (c.Control(leader).ListTasks(Ctx(30000).get(), tr, &tl).ok()) {
        long live = 0, assigned = 0, runs_ok = 0;
        for (const auto& t : tl.tasks()) {
          bool elsewhere = !t.node_id().empty() && !victim_nodes.count(t.node_id());
          ++live;
          if (elsewhere && t.status().state() >= v1::TASK_ASSIGNED) ++assigned;
          if (elsewhere && t.status().state() == v1::TASK_RUNNING) ++runs_ok;
        }
        if (t_placed < 0 && live == total && assigned == total) t_placed = Since(t0);
        if (live == total && runs_ok == total) {
          t_running = Since(t0);
          break;
        }
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    if (t_running < 0) {
      std::printf("run %d: the lost tasks did NOT run elsewhere within %d s\n", run, o.timeout_s);
      return 1;
    }
    std::printf(
        "run %d: kill -9 of %s (%zu node(s), %ld of %ld tasks): node down %.2f s, tasks "
        "placed elsewhere %.2f s, all running %.2f s\n",
        run, victim.c_str(), victim_nodes.size(), on_victim, total, t_down, t_placed, t_running);
    std::fflush(stdout);
    down_v.push_back(t_down);
    placed_v.push_back(t_placed);
    running_v.push_back(t_running);
  }
  std::printf(
      "worker-loss, %d runs: down [%s], placed [%s], running [%s] s; median %.2f s to "
      "running elsewhere (min %.2f, max %.2f)\n",
      runs, List(down_v).c_str(), List(placed_v).c_str(), List(running_v).c_str(),
      Median(running_v), *std::min_element(running_v.begin(), running_v.end()),
      *std::max_element(running_v.begin(), running_v.end()));
  return 0;
}

// ---- leader loss ----

int LeaderLoss(const Options& o) {
  int services = o.services < 0 ? 1 : o.services;
  int replicas = o.replicas < 0 ? 30 : o.replicas;
  int runs = o.runs < 0 ? 5 : o.runs;
  int nodes = o.nodes < 0 ? 0 : o.nodes;
  std::vector<double> elected_v, accepted_v;
  for (int run = 1; run <= runs; ++run) {
    Cluster c(o);
    Managers m;
    if (!StartManagers(c, 3, nodes > 0, &m)) return 1;
    if (nodes > 0) {
      if (c.StartSim("sim1", nodes, m.worker_token, m.addrs, o.timeout_s) < 0) return 1;
      if (!WaitFor([&] { return ReadyNodes(c, "m1").second == nodes; }, o.timeout_s, 200)) {
        return 1;
      }
    }
    std::string file = WriteStack(c.dir(), services, replicas);
    CliResult dep = c.Cli("m1", {"deploy", "-c", file, "--timeout", "300", "bench"});
    if (dep.code != 0) {
      std::fprintf(stderr, "deploy failed: %s\n", dep.out.c_str());
      return 1;
    }
    auto [old_id, leader] = Leader(c, "m1", 10000);
    if (leader.empty()) {
      std::fprintf(stderr, "no leader known\n");
      return 1;
    }
    std::vector<std::string> survivors;
    for (const auto& n : m.names) {
      if (n != leader) survivors.push_back(n);
    }
    // Channels up before the clock starts.
    for (const auto& s : survivors) (void)Leader(c, s, 5000);

    std::atomic<bool> accepted{false};
    std::mutex mu;
    Clock::time_point t_accept{};
    std::string accepted_by, last_error;
    int refused = 0;
    std::vector<std::thread> attempts;
    int sent = 0;
    // Stubs made on this thread: Control() is not thread-safe.
    std::vector<v1::Control::Stub*> watch_stubs;
    for (const auto& s : survivors) watch_stubs.push_back(&c.Control(s));
    auto t0 = Clock::now();
    c.Kill(leader);
    std::atomic<double> t_elected{-1};
    // Watches for the new leader on its own thread, so that the attempts
    // below go out every 50 ms whatever the reads cost.
    std::thread watcher([&] {
      while (Since(t0) < 60 && t_elected < 0) {
        for (auto* stub : watch_stubs) {
          v1::ClusterInfoReply info;
          if (stub->ClusterInfo(Ctx(200).get(), {}, &info).ok() && info.raft_leader() != 0 &&
              info.raft_leader() != old_id) {
            t_elected = Since(t0);
            break;
          }
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
    auto next_attempt = t0;
    while (Since(t0) < 60 && !accepted) {
      if (Clock::now() >= next_attempt) {
        const std::string& target = survivors[sent % survivors.size()];
        v1::Control::Stub* stub = &c.Control(target);
        uint64_t want = static_cast<uint64_t>(replicas) + 1 + (sent % 2);
        ++sent;
        attempts.emplace_back([&, stub, target, want] {
          v1::ScaleServiceRequest req;
          req.set_name("bench_svc000");
          req.set_replicas(want);
          v1::ScaleServiceReply reply;
          grpc::Status s = stub->ScaleService(Ctx(10000).get(), req, &reply);
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            ++refused;
            last_error = s.error_message();
            return;
          }
          std::lock_guard<std::mutex> lock(mu);
          if (!accepted) {
            accepted = true;
            t_accept = Clock::now();
            accepted_by = target;
          }
        });
        next_attempt += milliseconds(50);
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    for (auto& th : attempts) th.join();
    watcher.join();
    if (!accepted) {
      std::printf("run %d: no write accepted within 60 s of killing the leader\n", run);
      return 1;
    }
    double t_acc = Secs(t0, t_accept);
    std::printf(
        "run %d: kill -9 of leader %s: new leader seen %.2f s, ScaleService accepted "
        "%.2f s (by %s; %d attempts sent, %d refused%s%s)\n",
        run, leader.c_str(), t_elected.load(), t_acc, accepted_by.c_str(), sent, refused,
        refused ? ", last: " : "", last_error.c_str());
    std::fflush(stdout);
    elected_v.push_back(t_elected.load());
    accepted_v.push_back(t_acc);
  }
  std::printf(
      "leader-loss, %d runs: new leader [%s] s, write accepted [%s] s; median %.2f s "
      "(min %.2f, max %.2f)\n",
      runs, List(elected_v).c_str(), List(accepted_v).c_str(), Median(accepted_v),
      *std::min_element(accepted_v.begin(), accepted_v.end()),
      *std::max_element(accepted_v.begin(), accepted_v.end()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseFlags(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: shoal_cluster_bench deploy|scheduler|worker-loss|leader-loss [flags]\n"
                 "  (see the comment at the top of tests/bench/cluster_bench.cc)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (o.runs == 0) o.runs = 1;
  if (o.mode == "deploy") return Deploy(o);
  if (o.mode == "scheduler") return Scheduler(o);
  if (o.mode == "worker-loss") return WorkerLoss(o);
  if (o.mode == "leader-loss") return LeaderLoss(o);
  std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
  return 2;
}
