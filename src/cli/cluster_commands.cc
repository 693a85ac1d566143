// Verbs that run or manage the cluster: daemon, cluster, node.

#include <google/protobuf/util/json_util.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <thread>

#include "client.h"
#include "commands.h"
#include "shoal/ca/ca.h"
#include "shoal/manager/daemon.h"
#include "shoal/manager/subnets.h"
#include "shoal/transport/tls.h"

namespace shoal::cli {
namespace {

namespace fs = std::filesystem;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "STATE_READY" -> "ready".
template <class Enum>
std::string EnumName(const std::string& full, const char* prefix) {
  std::string n = full;
  if (n.rfind(prefix, 0) == 0) n = n.substr(std::string(prefix).size());
  return Lower(n);
}

std::string ManagerStatus(const v1::Node& n) {
  if (n.manager_status().raft_id() == 0) return "";
  if (n.manager_status().leader()) return "leader";
  return n.manager_status().reachability() == v1::ManagerStatus::REACHABILITY_UNREACHABLE
             ? "unreachable"
             : "reachable";
}

void PrintJoin(const std::string& role, const std::string& token, const std::string& addr) {
  std::cout << "To add a " << role << " to this cluster, run on that node:\n\n"
            << "    shoal cluster join --token " << token << " " << addr << "\n\n";
}

// Swarm's flags for the subnets of networks that declare none.
struct AddressPoolFlags {
  std::vector<std::string> pools;
  uint32_t mask_length = 0;
  void Add(CLI::App* cmd) {
    cmd->add_option("--default-addr-pool", pools,
                    "Subnets stack networks get theirs from (CIDR, repeatable; "
                    "default " +
                        std::string(manager::kDefaultAddressPool) + ")");
    cmd->add_option("--default-addr-pool-mask-length", mask_length,
                    "Prefix length of each network's subnet (default " +
                        std::to_string(manager::kDefaultSubnetBits) + ")");
  }
  void Fill(v1::InitRequest* req) const {
    for (const auto& p : pools) req->add_default_addr_pools(p);
    req->set_default_addr_pool_mask_length(mask_length);
  }
};

// `init` fills the --dev cluster's InitRequest (address, pool).
int RunDaemon(manager::DaemonOptions o, bool dev, const v1::InitRequest& init) {
  // Signals are taken by a waiting thread, so shutdown runs as normal code.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (dev) {
    std::string tmpl = (fs::temp_directory_path() / "shoal-dev-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::cerr << "error: cannot create a temporary data dir\n";
      return 1;
    }
    o.data_dir = tmpl;
    o.stop_tasks_on_exit = true;
    if (o.socket.empty()) {
      fs::create_directories(DefaultDataDir());
      o.socket = DefaultDataDir() + "/shoal.sock";
    }
  }
  auto d = manager::Daemon::Start(o);
  if (!d.ok()) {
    std::cerr << "error: " << d.error().message() << "\n";
    return 1;
  }
  std::cerr << "shoal daemon: data " << o.data_dir << ", cluster port " << (*d)->port()
            << ", socket " << (*d)->socket_path() << ", executor " << (*d)->executor() << "\n";
  if (dev) {
    Client c = Connect("unix://" + (*d)->socket_path());
    v1::InitRequest req = init;
    if (req.advertise_addr().empty()) req.set_advertise_addr("127.0.0.1:0");
    req.set_cluster_name("dev");
    v1::InitReply reply;
    grpc::Status s = c.stub->Init(Context().get(), req, &reply);
    if (!s.ok()) {
      std::cerr << "error: dev cluster init: " << s.error_message() << "\n";
      (*d)->Shutdown();
      return 1;
    }
    std::cerr << "shoal daemon: dev cluster ready (node " << reply.node_id() << ", "
              << reply.advertise_addr() << ")\n";
  }
  std::printf("READY %d\n", (*d)->port());
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    std::cerr << "shoal daemon: signal " << sig << ", shutting down\n";
    (*d)->Shutdown();
  });
  (*d)->Wait();
  // Wake the waiter if the daemon stopped on its own (cluster leave).
  kill(getpid(), SIGTERM);
  waiter.join();
  if (dev) {
    std::error_code ec;
    fs::remove_all(o.data_dir, ec);
  }
  return 0;
}

v1::NodeSpec::Role ParseRole(const std::string& r) {
  return r == "manager" ? v1::NodeSpec::ROLE_MANAGER : v1::NodeSpec::ROLE_WORKER;
}

}  // namespace

void AddClusterCommands(CLI::App& app, const std::string* host, int* exit_code) {
  // ---- daemon ----
  {
    auto* cmd = app.add_subcommand("daemon", "Run the shoal daemon on this node");
    auto o = std::make_shared<manager::DaemonOptions>();
    o->data_dir = DefaultDataDir();
    if (const char* h = std::getenv("DOCKER_HOST"); h && std::string(h).starts_with("unix://")) {
      o->docker_host = h;
    }
    auto dev = std::make_shared<bool>(false);
    auto advertise = std::make_shared<std::string>();
    auto period = std::make_shared<std::string>("1s");
    auto down = std::make_shared<std::string>("5s");
    cmd->add_option("--data-dir", o->data_dir, "Where the node keeps its state")
        ->capture_default_str();
    cmd->add_option("--listen", o->listen, "Cluster port (gRPC for nodes and remote CLIs)")
        ->capture_default_str();
    cmd->add_option("--socket", o->socket, "The local CLI's unix socket (default: in data dir)");
    cmd->add_option("--join-rate", o->join_rate,
                    "Join and renewal requests per second per address (0: no limit)")
        ->capture_default_str();
    cmd->add_option("--join-burst", o->join_burst, "... of which this many at once")
        ->capture_default_str();
    cmd->add_option("--max-streams-per-node", o->max_streams_per_node,
                    "Long-lived streams a node or client may hold open at once")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    auto* executor = cmd->add_option("--executor", o->executor,
                                     "How tasks run (--dev: docker when an engine answers)")
                         ->check(CLI::IsMember({"process", "docker", "sim"}))
                         ->capture_default_str();
    cmd->add_option("--docker-host", o->docker_host, "The Docker Engine's socket")
        ->capture_default_str();
    cmd->add_option("--ingress-addr", o->ingress_addr,
                    "The address ingress ports listen on (docker executor)")
        ->capture_default_str();
    cmd->add_option("--hostname", o->hostname, "Name shown for this node");
    cmd->add_flag("--dev", *dev,
                  "A one-node cluster (manager and worker) in a temporary dir, on 127.0.0.1");
    cmd->add_option("--advertise-addr", *advertise, "With --dev: the address to advertise");
    auto pool = std::make_shared<AddressPoolFlags>();
    pool->Add(cmd);
    cmd->callback([=] {
      manager::DaemonOptions opts = *o;
      if (*dev && opts.listen == "0.0.0.0:7370") opts.listen = "127.0.0.1:0";
      if (*dev && executor->count() == 0) opts.executor = "auto";
      v1::InitRequest init;
      init.set_advertise_addr(*advertise);
      pool->Fill(&init);
      *exit_code = RunDaemon(opts, *dev, init);
    });
    (void)period;
    (void)down;
  }
  auto* cluster = app.add_subcommand("cluster", "Create, join and leave a cluster");
  cluster->require_subcommand(1);
  // ---- cluster init ----
  {
    auto* cmd =
        cluster->add_subcommand("init", "Make this node the first manager of a new cluster");
    auto addr = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>("default");
    cmd->add_option("--advertise-addr", *addr, "host:port other nodes reach this one at");
    cmd->add_option("--name", *name, "Cluster name");
    auto pool = std::make_shared<AddressPoolFlags>();
    pool->Add(cmd);
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::InitRequest req;
      req.set_advertise_addr(*addr);
      req.set_cluster_name(*name);
      pool->Fill(&req);
      v1::InitReply reply;
      grpc::Status s = c.stub->Init(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "Cluster initialized: node " << reply.node_id() << " is now a manager.\n\n";
      PrintJoin("worker", reply.worker_token(), reply.advertise_addr());
      PrintJoin("manager", reply.manager_token(), reply.advertise_addr());
    });
  }
  // ---- cluster join ----
  {
    auto* cmd = cluster->add_subcommand("join", "Join this node to a cluster");
    auto token = std::make_shared<std::string>();
    auto remote = std::make_shared<std::string>();
    auto addr = std::make_shared<std::string>();
    cmd->add_option("--token", *token, "The join token (shoal cluster join-token)")->required();
    cmd->add_option("MANAGER", *remote, "host:port of a manager")->required();
    cmd->add_option("--advertise-addr", *addr, "host:port other nodes reach this one at");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::JoinClusterRequest req;
      req.set_token(*token);
      req.set_remote_addr(*remote);
      req.set_advertise_addr(*addr);
      v1::JoinClusterReply reply;
      grpc::Status s = c.stub->Join(Context(60).get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "This node joined the cluster as a "
                << (reply.role() == v1::NodeSpec::ROLE_MANAGER ? "manager" : "worker") << " (node "
                << reply.node_id() << ").\n";
    });
  }
  // ---- cluster leave ----
  {
    auto* cmd = cluster->add_subcommand("leave", "Leave the cluster and stop the daemon");
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-f,--force", *force, "Leave even as a manager");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::LeaveRequest req;
      req.set_force(*force);
      v1::LeaveReply reply;
      grpc::Status s = c.stub->Leave(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "Node left the cluster.\n";
    });
  }
  // ---- cluster join-token ----
  {
    auto* cmd = cluster->add_subcommand("join-token", "Show or rotate a join token");
    auto role = std::make_shared<std::string>();
    auto rotate = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    cmd->add_option("ROLE", *role, "worker or manager")
        ->required()
        ->check(CLI::IsMember({"worker", "manager"}));
    cmd->add_flag("--rotate", *rotate, "Replace the token; the old one stops working at once");
    cmd->add_flag("-q,--quiet", *quiet, "Print the token only");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::JoinTokenRequest req;
      req.set_role(ParseRole(*role));
      req.set_rotate(*rotate);
      v1::JoinTokenReply reply;
      grpc::Status s = c.stub->JoinToken(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      if (*quiet) {
        std::cout << reply.token() << "\n";
      } else {
        if (*rotate) std::cout << "Rotated the " << *role << " join token.\n\n";
        PrintJoin(*role, reply.token(), reply.manager_addr());
      }
    });
  }
  // ---- cluster info ----
  {
    auto* cmd = cluster->add_subcommand("info", "Show this node's view of the cluster");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ClusterInfoReply reply;
      grpc::Status s = c.stub->ClusterInfo(Context().get(), {}, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      if (!reply.in_cluster()) {
        std::cout << "This node is not in a cluster (data dir " << reply.data_dir() << ").\n";
        return;
      }
      std::cout << "Node:      " << reply.node_id() << " ("
                << (reply.role() == v1::NodeSpec::ROLE_MANAGER ? "manager" : "worker") << ")\n"
                << "Data dir:  " << reply.data_dir() << "\nExecutor:  " << reply.executor() << "\n";
      if (reply.locked()) {
        std::cout << "Locked:    yes (autolock): this manager serves nothing until "
                     "`shoal cluster unlock` gives it the unlock key\n";
      } else if (reply.role() == v1::NodeSpec::ROLE_MANAGER) {
        std::cout << "Autolock:  " << (reply.autolock() ? "on" : "off") << "\n";
      }
      if (reply.has_cluster()) {
        std::cout << "Cluster:   " << reply.cluster().name() << " (" << reply.cluster().meta().id()
                  << ")\n"
                  << "Raft:      member " << reply.raft_id() << ", term " << reply.raft_term()
                  << ", leader " << reply.raft_leader() << ", applied index "
                  << reply.applied_index() << "\n"
                  << "Heartbeat: " << reply.cluster().heartbeat_period_ns() / 1'000'000
                  << " ms, node down after " << reply.cluster().node_down_grace_ns() / 1'000'000
                  << " ms\n";
        const v1::AddressPool& pool = reply.cluster().address_pool();
        std::cout << "Subnets:   ";
        if (pool.cidrs().empty()) std::cout << manager::kDefaultAddressPool;
        for (int i = 0; i < pool.cidrs_size(); ++i) std::cout << (i ? ", " : "") << pool.cidrs(i);
        std::cout << " in /"
                  << (pool.subnet_bits() ? static_cast<int>(pool.subnet_bits())
                                         : manager::kDefaultSubnetBits)
                  << " steps (stack networks without a declared subnet)\n"
                  << "Managers:\n";
        for (const auto& m : reply.managers()) {
          std::cout << "  " << m.meta().id() << "  " << m.manager_status().addr() << "\n";
        }
      }
    });
  }
  // ---- node ----
  auto* node = app.add_subcommand("node", "List and manage the cluster's nodes");
  node->require_subcommand(1);
  {
    auto* cmd = node->add_subcommand("ls", "List nodes");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListNodesReply reply;
      grpc::Status s = c.stub->ListNodes(Context().get(), {}, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << std::left << std::setw(28) << "ID" << std::setw(20) << "HOSTNAME" << std::setw(9)
                << "ROLE" << std::setw(9) << "STATUS" << std::setw(14) << "AVAILABILITY"
                << "MANAGER STATUS\n";
      for (const auto& n : reply.nodes()) {
        std::string id = n.meta().id() + (n.meta().id() == reply.self_id() ? " *" : "");
        std::cout << std::setw(28) << id << std::setw(20) << n.description().hostname()
                  << std::setw(9)
                  << (n.spec().desired_role() == v1::NodeSpec::ROLE_MANAGER ? "manager" : "worker")
                  << std::setw(9)
                  << EnumName<int>(v1::NodeStatus::State_Name(n.status().state()), "STATE_")
                  << std::setw(14)
                  << EnumName<int>(v1::NodeSpec::Availability_Name(n.spec().availability()),
                                   "AVAILABILITY_")
                  << ManagerStatus(n) << "\n";
      }
    });
  }
  {
    auto* cmd = node->add_subcommand("inspect", "Show a node in detail");
    auto name = std::make_shared<std::string>("self");
    cmd->add_option("NODE", *name, "Node id or hostname (default: self)");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::InspectNodeRequest req;
      req.set_node(*name);
      v1::InspectNodeReply reply;
      grpc::Status s = c.stub->InspectNode(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::string json;
      google::protobuf::util::JsonPrintOptions jo;
      jo.add_whitespace = true;
      (void)google::protobuf::util::MessageToJsonString(reply, &json, jo);
      std::cout << json;
    });
  }
  {
    auto* cmd = node->add_subcommand("update", "Change a node's availability or labels");
    auto name = std::make_shared<std::string>();
    auto avail = std::make_shared<std::string>();
    auto add = std::make_shared<std::vector<std::string>>();
    auto rm = std::make_shared<std::vector<std::string>>();
    cmd->add_option("NODE", *name, "Node id or hostname")->required();
    cmd->add_option("--availability", *avail, "active, pause or drain")
        ->check(CLI::IsMember({"active", "pause", "drain"}));
    cmd->add_option("--label-add", *add, "key=value");
    cmd->add_option("--label-rm", *rm, "key");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::UpdateNodeRequest req;
      req.set_node(*name);
      if (!avail->empty()) {
        req.set_set_availability(true);
        req.set_availability(*avail == "drain"   ? v1::NodeSpec::AVAILABILITY_DRAIN
                             : *avail == "pause" ? v1::NodeSpec::AVAILABILITY_PAUSE
                                                 : v1::NodeSpec::AVAILABILITY_ACTIVE);
      }
      for (const auto& kv : *add) {
        auto eq = kv.find('=');
        (*req.mutable_label_add())[kv.substr(0, eq)] =
            eq == std::string::npos ? "" : kv.substr(eq + 1);
      }
      for (const auto& k : *rm) req.add_label_rm(k);
      v1::UpdateNodeReply reply;
      grpc::Status s = c.stub->UpdateNode(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << reply.node().meta().id() << "\n";
    });
  }
  for (const char* verb : {"promote", "demote"}) {
    auto* cmd =
        node->add_subcommand(verb, std::string(verb) == "promote" ? "Make a worker a manager"
                                                                  : "Make a manager a worker");
    auto name = std::make_shared<std::string>();
    cmd->add_option("NODE", *name, "Node id or hostname")->required();
    bool promote = std::string(verb) == "promote";
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::UpdateNodeRequest req;
      req.set_node(*name);
      req.set_set_role(true);
      req.set_role(promote ? v1::NodeSpec::ROLE_MANAGER : v1::NodeSpec::ROLE_WORKER);
      v1::UpdateNodeReply reply;
      grpc::Status s = c.stub->UpdateNode(Context().get(), req, &reply);
      // Role changes are made by the leader: follow the redirect once.
      auto at = s.error_message().find("leader at ");
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && at != std::string::npos &&
          at + 10 < s.error_message().size()) {
        c = Connect("tcp://" + s.error_message().substr(at + 10));
        s = c.stub->UpdateNode(Context().get(), req, &reply);
      }
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "node " << *name << (promote ? " promoted to manager" : " demoted to worker")
                << "\n";
    });
  }
  {
    auto* cmd = node->add_subcommand("rm", "Remove a node from the cluster");
    auto name = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    cmd->add_option("NODE", *name, "Node id or hostname")->required();
    cmd->add_flag("-f,--force", *force, "Remove a node that is not down");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RemoveNodeRequest req;
      req.set_node(*name);
      req.set_force(*force);
      v1::RemoveNodeReply reply;
      grpc::Status s = c.stub->RemoveNode(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << *name << "\n";
    });
  }
}

}  // namespace shoal::cli
