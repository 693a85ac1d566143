// shoal_sim_nodes: one process hosting N simulated worker nodes (issue 4,
// item 10). Each node joins the cluster through Membership.Admit with a worker
// token, exactly as `shoal cluster join` does, and then runs a real
// agent::Agent with a SimExecutor and a GrpcDispatcherClient to the managers,
// each with its own data dir (the agent's LevelDB).
//
//   shoal_sim_nodes --managers A,B,C --token T --nodes N --data DIR
//                   [--prefix sim] [--join-parallel 16] [--stats SECONDS]
//                   [--disk-store] [--poll-ms 1000]
//
// The agents' databases live in memory (AgentOptions::in_memory_store)
// unless --disk-store asks for a LevelDB per node under DIR/<hostname>.
// --poll-ms sets how often each agent polls its executor
// (AgentOptions::poll_interval; 1,000 ms here, 100 ms on a real node): the
// sim executor wakes its agent whenever a task has a step due
// (Executor::SetWakeup), so the periodic poll is only a backstop, and a
// thousand agents polling every 100 ms would be ten thousand thread wake-ups
// a second that 1,000 real nodes would spend on their own CPUs.
//
// Prints timings of each phase on stderr, then "READY <nodes>" on stdout once
// every agent holds a session with the leader. Exits (at once, without
// stopping the agents one by one) when its stdin closes, so a benchmark that
// dies leaves nothing behind. With --stats, prints every SECONDS on stderr how
// many agents are connected, how many tasks they hold, and the process's RSS
// and thread count.

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shoal/agent/agent.h"
#include "shoal/agent/grpc_dispatcher_client.h"
#include "shoal/executor/sim.h"
#include "shoal/manager/join_client.h"
#include "shoal/transport/tls.h"
#include "shoal/v1/cluster.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = shoal::v1;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Flags {
  std::vector<std::string> managers;
  std::string token;
  int nodes = 0;
  std::string data;
  std::string prefix = "sim";
  int join_parallel = 16;
  int stats_s = 0;
  bool disk_store = false;
  int poll_ms = 1000;  // AgentOptions::poll_interval
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

bool Parse(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "shoal_sim_nodes: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--managers") {
      f->managers = Split(value());
    } else if (a == "--token") {
      f->token = value();
    } else if (a == "--nodes") {
      f->nodes = std::atoi(value().c_str());
    } else if (a == "--data") {
      f->data = value();
    } else if (a == "--prefix") {
      f->prefix = value();
    } else if (a == "--join-parallel") {
      f->join_parallel = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--stats") {
      f->stats_s = std::atoi(value().c_str());
    } else if (a == "--disk-store") {
      f->disk_store = true;
    } else if (a == "--poll-ms") {
      f->poll_ms = std::max(1, std::atoi(value().c_str()));
    } else {
      std::fprintf(stderr, "shoal_sim_nodes: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  return !f->managers.empty() && !f->token.empty() && f->nodes > 0 && !f->data.empty();
}

// "VmRSS" or "Threads" from /proc/self/status, as printed there.
std::string ProcStatus(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      size_t p = line.find_first_not_of(" \t", key.size() + 1);
      return p == std::string::npos ? "" : line.substr(p);
    }
  }
  return "?";
}

int OpenFds() {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/self/fd", ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    ++n;
  }
  return n;
}

// The description each node reports, the same at admission and in heartbeats
// (so the dispatcher has no description change to write).
v1::NodeDescription Describe(const std::string& hostname) {
  v1::NodeDescription d;
  d.set_hostname(hostname);
  d.set_os("linux");
  d.set_nano_cpus(4'000'000'000);
  d.set_memory_bytes(16LL << 30);
  d.set_executor("sim");
  return d;
}

struct SimNode {
  std::string hostname;
  std::string node_id;
  std::vector<std::string> managers;
  std::unique_ptr<shoal::executor::SimExecutor> executor;
  std::unique_ptr<shoal::agent::GrpcDispatcherClient> client;
  std::unique_ptr<shoal::agent::Agent> agent;
  shoal::transport::ClientTls tls;  // the node's certificate, as the join issued it
};

// Membership.Admit with the worker token, following "leader at" redirects as
// the daemon's Join does. Empty string and a message on failure.
std::string Admit(const Flags& f, SimNode* n, std::string* error) {
  v1::AdmitRequest req;
  req.set_token(f.token);
  // A simulated node serves nothing: its address is only informational.
  req.set_advertise_addr("127.0.0.1:0");
  *req.mutable_description() = Describe(n->hostname);
  // As `shoal cluster join`: pin the CA, send a CSR, keep the key here.
  shoal::Result<shoal::manager::JoinResult> joined = shoal::Status(shoal::Code::kUnavailable, "");
  for (int attempt = 0; attempt < 10; ++attempt) {
    joined = shoal::manager::JoinCluster(f.managers[attempt % f.managers.size()], f.token, req);
    if (joined.ok() || joined.error().code() != shoal::Code::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!joined.ok()) {
    *error = joined.error().message();
    return "";
  }
  const v1::AdmitReply& out = joined->reply;
  n->tls = shoal::transport::StaticClientTls(joined->root_pem, joined->key_pem, joined->cert_pem);
  n->managers = f.managers;
  for (const auto& m : out.managers()) {
    bool have = false;
    for (const auto& a : n->managers) have = have || a == m.addr();
    if (!have && !m.addr().empty()) n->managers.push_back(m.addr());
  }
  return out.node_id();
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!Parse(argc, argv, &f)) {
    std::fprintf(stderr,
                 "usage: shoal_sim_nodes --managers A,B,C --token T --nodes N --data DIR "
                 "[--prefix sim] [--join-parallel 16] [--stats SECONDS]\n");
    return 2;
  }
  // Before any gRPC thread exists (Agent::Open would do it too).
  shoal::agent::DisableMutexDeadlockDetection();
  // A LevelDB per node holds a few descriptors; ask for the hard limit.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  // Stdin closing (the benchmark exited or died) ends the process at once.
  std::thread([] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    std::_Exit(0);
  }).detach();

  std::error_code ec;
  fs::create_directories(f.data, ec);
  if (ec) {
    std::fprintf(stderr, "shoal_sim_nodes: %s: %s\n", f.data.c_str(), ec.message().c_str());
    return 1;
  }
  std::vector<SimNode> nodes(f.nodes);
  char name[64];
  for (int i = 0; i < f.nodes; ++i) {
    std::snprintf(name, sizeof name, "%s-%04d", f.prefix.c_str(), i);
    nodes[i].hostname = name;
  }

  // 1. Admission, `join_parallel` calls at a time.
  auto t0 = Clock::now();
  std::atomic<int> next{0}, failed{0};
  std::mutex err_mu;
  std::string first_error;
  std::vector<std::thread> joiners;
  for (int j = 0; j < f.join_parallel; ++j) {
    joiners.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < f.nodes;) {
        std::string error;
        nodes[i].node_id = Admit(f, &nodes[i], &error);
        if (nodes[i].node_id.empty()) {
          ++failed;
          std::lock_guard<std::mutex> lock(err_mu);
          if (first_error.empty()) first_error = error;
        }
      }
    });
  }
  for (auto& t : joiners) t.join();
  if (failed > 0) {
    std::fprintf(stderr, "shoal_sim_nodes: %d of %d nodes could not join: %s\n", failed.load(),
                 f.nodes, first_error.c_str());
    return 1;
  }
  double join_s = Since(t0);

  // 2. An agent per node, each with its own LevelDB (in memory, or under
  // DIR/<hostname> with --disk-store).
  auto t1 = Clock::now();
  for (auto& n : nodes) {
    std::string dir = f.data + "/" + n.hostname;
    fs::create_directories(dir, ec);
    n.executor = std::make_unique<shoal::executor::SimExecutor>();
    n.client = std::make_unique<shoal::agent::GrpcDispatcherClient>(
        n.managers, [tls = n.tls](const std::string& addr, const grpc::ChannelArguments& args) {
          return shoal::transport::Dial(addr, tls, args);
        });
    shoal::agent::AgentOptions ao;
    ao.node_id = n.node_id;
    ao.data_dir = dir;
    ao.description = Describe(n.hostname);
    ao.in_memory_store = !f.disk_store;
    ao.poll_interval = std::chrono::milliseconds(f.poll_ms);
    auto a = shoal::agent::Agent::Open(ao, n.executor.get(), n.client.get());
    if (!a.ok()) {
      std::fprintf(stderr, "shoal_sim_nodes: %s: %s\n", n.hostname.c_str(),
                   a.error().ToString().c_str());
      return 1;
    }
    n.agent = std::move(a).value();
  }
  double open_s = Since(t1);
  std::string rss_open = ProcStatus("VmRSS");
  int fds_open = OpenFds();

  // 3. Start them all and wait until each holds a session.
  auto t2 = Clock::now();
  for (auto& n : nodes) n.agent->Start();
  int connected = 0;
  while (Since(t2) < 120) {
    connected = 0;
    for (auto& n : nodes) connected += n.agent->connected() ? 1 : 0;
    if (connected == f.nodes) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  double start_s = Since(t2);
  std::fprintf(stderr,
               "shoal_sim_nodes: %d nodes: admitted in %.2f s, %d agent databases opened in "
               "%.2f s (RSS %s, %d fds), %d connected %.2f s after start; RSS %s, %s threads, "
               "%d fds\n",
               f.nodes, join_s, f.nodes, open_s, rss_open.c_str(), fds_open, connected, start_s,
               ProcStatus("VmRSS").c_str(), ProcStatus("Threads").c_str(), OpenFds());
  if (connected != f.nodes) {
    std::fprintf(stderr, "shoal_sim_nodes: only %d of %d agents connected\n", connected, f.nodes);
    return 1;
  }
  std::printf("READY %d\n", f.nodes);
  std::fflush(stdout);

  while (true) {
    std::this_thread::sleep_for(std::chrono::seconds(f.stats_s > 0 ? f.stats_s : 3600));
    if (f.stats_s <= 0) continue;
    size_t tasks = 0;
    int up = 0;
    for (auto& n : nodes) {
      tasks += n.agent->task_count();
      up += n.agent->connected() ? 1 : 0;
    }
    std::fprintf(stderr, "shoal_sim_nodes: %d/%d connected, %zu tasks, RSS %s, %s threads\n", up,
                 f.nodes, tasks, ProcStatus("VmRSS").c_str(), ProcStatus("Threads").c_str());
  }
}
