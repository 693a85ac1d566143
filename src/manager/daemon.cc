#include "shoal/manager/daemon.h"

#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "daemon_internal.h"
#include "shoal/executor/process.h"
#include "shoal/executor/sim.h"

namespace shoal::manager {
namespace {

namespace fs = std::filesystem;

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

// "host:port" with the port replaced by `port` when it is 0 or missing, and
// 127.0.0.1 when the host is empty or a wildcard.
std::string Advertise(const std::string& requested, const std::string& listen, int port) {
  std::string addr = requested.empty() ? listen : requested;
  std::string host = addr;
  std::string p;
  if (auto colon = addr.rfind(':'); colon != std::string::npos) {
    host = addr.substr(0, colon);
    p = addr.substr(colon + 1);
  }
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  if (p.empty() || p == "0") p = std::to_string(port);
  return host + ":" + p;
}

const char* RoleName(v1::NodeSpec::Role r) {
  return r == v1::NodeSpec::ROLE_MANAGER ? "manager" : "worker";
}

// A join token names its cluster and its role: SHOAL-1-<cluster>-<role>-<secret>.
std::string MakeToken(const std::string& cluster_id, v1::NodeSpec::Role role,
                      const std::string& secret) {
  return "SHOAL-1-" + cluster_id + "-" + RoleName(role) + "-" + secret;
}

}  // namespace

grpc::Status Grpc(const Status& s) { return transport::ToGrpc(s); }

grpc::Status NotManager() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node is not a manager of a cluster: run `shoal cluster init`, or "
                      "`shoal cluster join` with a manager token, or point --host at a manager");
}

Daemon::Impl::Impl(const DaemonOptions& options) : options_(options), rng_(std::random_device{}()) {
  char host[256] = {};
  hostname_ = options.hostname;
  if (hostname_.empty() && gethostname(host, sizeof host - 1) == 0) hostname_ = host;
  socket_ = options.socket.empty() ? options.data_dir + "/shoal.sock" : options.socket;
}

std::string Daemon::Impl::NewSecret() {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof buf) != 1) {
    // OpenSSL's generator failing is not something to paper over with a weak one.
    std::fprintf(stderr, "shoal: RAND_bytes failed\n");
    std::abort();
  }
  return Hex(buf, sizeof buf);
}

void Daemon::Impl::WaitNodeReady(std::chrono::steady_clock::time_point deadline) {
  Manager* m = manager();
  while (m && std::chrono::steady_clock::now() < deadline) {
    bool ready = false;
    m->RunSync([&] {
      const v1::Node* n = m->store().state().Get<v1::Node>(identity_.node_id());
      ready = n && n->status().state() == v1::NodeStatus::STATE_READY;
    });
    if (ready) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Manager* Daemon::Impl::manager() {
  std::lock_guard<std::mutex> lock(mu_);
  return manager_.get();
}

Status Daemon::Impl::Open() {
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec) return {Code::kIo, "data dir " + options_.data_dir + ": " + ec.message()};
  std::string path = options_.data_dir + "/identity";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Ok();  // not in a cluster yet
  std::stringstream ss;
  ss << in.rdbuf();
  if (!identity_.ParseFromString(ss.str()) || identity_.node_id().empty()) {
    return {Code::kCorruption, path + ": unreadable node identity"};
  }
  in_cluster_ = true;
  return Status::Ok();
}

Status Daemon::Impl::SaveIdentity() {
  std::string path = options_.data_dir + "/identity";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << identity_.SerializeAsString();
    out.flush();
    if (!out) return {Code::kIo, "cannot write " + tmp};
  }
  // Renamed into place so a crash leaves the old identity or the new one.
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return {Code::kIo, "cannot write " + path + ": " + ec.message()};
  return Status::Ok();
}

Status Daemon::Impl::StartManager() {
  std::map<uint64_t, std::string> seeds;
  seeds[identity_.raft_id()] = identity_.advertise_addr();
  for (const auto& m : identity_.managers()) {
    if (m.raft_id() != 0) seeds[m.raft_id()] = m.addr();
  }
  ManagerOptions mo;
  mo.data_dir = options_.data_dir;
  mo.raft_id = identity_.raft_id();
  // Only the founding member bootstraps; a joined one learns from the leader.
  if (identity_.managers_size() == 0) mo.bootstrap_peers = {identity_.raft_id()};
  mo.seed_addresses = seeds;
  mo.dispatcher = options_.dispatcher;
  auto m = Manager::Open(mo);
  if (!m.ok()) return m.error();
  std::lock_guard<std::mutex> lock(mu_);
  manager_ = std::move(m).value();
  return Status::Ok();
}

Status Daemon::Impl::StartRoles() {
  std::vector<std::string> manager_addrs;
  if (identity_.role() == v1::NodeSpec::ROLE_MANAGER) {
    manager_addrs.push_back(identity_.advertise_addr());
    if (Status s = StartManager(); !s.ok()) return s;
  }
  for (const auto& m : identity_.managers()) {
    if (m.addr() != identity_.advertise_addr()) manager_addrs.push_back(m.addr());
  }
  if (options_.executor == "sim") {
    executor_ = std::make_unique<executor::SimExecutor>();
  } else if (options_.executor == "process") {
    auto pe = executor::ProcessExecutor::Open(options_.data_dir + "/tasks");
    if (!pe.ok()) return pe.error();
    executor_ = std::move(pe).value();
  } else {
    return {Code::kInvalidArgument,
            "--executor " + options_.executor + ": expected process or sim"};
  }
  dispatcher_client_ = std::make_unique<agent::GrpcDispatcherClient>(manager_addrs);
  agent::AgentOptions ao;
  ao.node_id = identity_.node_id();
  ao.data_dir = options_.data_dir;
  ao.description.set_hostname(hostname_);
  ao.description.set_os("linux");
  ao.description.set_nano_cpus(static_cast<int64_t>(std::thread::hardware_concurrency()) *
                               1'000'000'000);
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) ao.description.set_memory_bytes(int64_t{pages} * page);
  ao.description.set_executor(executor_->Name());
  auto a = agent::Agent::Open(ao, executor_.get(), dispatcher_client_.get());
  if (!a.ok()) return a.error();
  agent_ = std::move(a).value();
  agent_->Start();
  if (!watchdog_.joinable()) watchdog_ = std::thread([this] { Watch(); });
  return Status::Ok();
}

// Acts on what the cluster decided about this node: a promoted worker starts
// a manager, a demoted (removed) manager stops its own and goes on as a
// worker. Polls every 200 ms until shutdown.
void Daemon::Impl::Watch() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return shutdown_; })) return;
    }
    Manager* m = manager();
    if (m != nullptr) {
      bool removed = false;
      m->RunSync([&] { removed = m->store().removed(); });
      if (!removed) continue;
      std::fprintf(stderr,
                   "shoal daemon: this node is no longer a manager; going on as a worker\n");
      std::unique_ptr<Manager> old;
      {
        std::lock_guard<std::mutex> lock(mu_);
        old = std::move(manager_);
      }
      old->Stop();
      identity_.set_role(v1::NodeSpec::ROLE_WORKER);
      identity_.set_raft_id(0);
      (void)SaveIdentity();
      // Its Raft directories would confuse a later promotion: that gets a new id.
      std::error_code ec;
      fs::remove_all(options_.data_dir + "/raft", ec);
      fs::remove_all(options_.data_dir + "/state", ec);
      continue;
    }
    if (!agent_) continue;
    v1::HeartbeatReply hb = agent_->last_heartbeat();
    if (hb.role() != v1::NodeSpec::ROLE_MANAGER || hb.raft_id() == 0) continue;
    std::fprintf(stderr, "shoal daemon: promoted to manager (raft id %llu)\n",
                 static_cast<unsigned long long>(hb.raft_id()));
    identity_.set_role(v1::NodeSpec::ROLE_MANAGER);
    identity_.set_raft_id(hb.raft_id());
    identity_.clear_managers();
    for (const auto& ma : hb.managers()) {
      if (ma.raft_id() != hb.raft_id()) *identity_.add_managers() = ma;
    }
    (void)SaveIdentity();
    if (Status s = StartManager(); !s.ok()) {
      std::fprintf(stderr, "shoal daemon: cannot start the manager: %s\n", s.ToString().c_str());
    }
  }
}

namespace {

// Membership.Admit: a node asks to join with a token.
class MembershipService final : public v1::Membership::CallbackService {
 public:
  explicit MembershipService(Daemon::Impl* d) : d_(d) {}

  grpc::ServerUnaryReactor* Admit(grpc::CallbackServerContext* ctx, const v1::AdmitRequest* req,
                                  v1::AdmitReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    v1::AdmitRequest request = *req;
    std::string node_id = NewId(d_->rng_);
    uint64_t raft_id = (d_->rng_() >> 1) | 1;
    bool posted = m->Post([m, r, reply, request, node_id, raft_id] {
      m->Read([m, r, reply, request, node_id, raft_id](Status s, const store::State& state) {
        if (!s.ok()) return r->Finish(Grpc(s));
        auto clusters = state.List(store::Kind::kCluster);
        if (clusters.empty()) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
        const v1::Cluster& c = clusters.front()->cluster();
        v1::NodeSpec::Role role;
        if (!request.token().empty() && request.token() == c.join_tokens().manager()) {
          role = v1::NodeSpec::ROLE_MANAGER;
        } else if (!request.token().empty() && request.token() == c.join_tokens().worker()) {
          role = v1::NodeSpec::ROLE_WORKER;
        } else {
          // Nothing is recorded for a refused node.
          return r->Finish(grpc::Status(
              grpc::StatusCode::PERMISSION_DENIED,
              "invalid join token: it is not this cluster's current worker or manager token "
              "(was it rotated? get the current one with `shoal cluster join-token`)"));
        }
        if (role == v1::NodeSpec::ROLE_MANAGER && !m->is_leader()) {
          std::string leader = m->LeaderAddress();
          return r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                        "not the leader; leader at " + leader));
        }
        v1::Node node;
        node.mutable_meta()->set_id(node_id);
        node.mutable_spec()->set_desired_role(role);
        *node.mutable_description() = request.description();
        node.mutable_status()->set_state(v1::NodeStatus::STATE_UNKNOWN);
        node.mutable_status()->set_addr(request.advertise_addr());
        if (role == v1::NodeSpec::ROLE_MANAGER) {
          node.mutable_manager_status()->set_raft_id(raft_id);
          node.mutable_manager_status()->set_addr(request.advertise_addr());
        }
        v1::Mutation mut;
        *mut.mutable_node() = node;
        reply->set_node_id(node_id);
        reply->set_role(role);
        reply->set_cluster_id(c.meta().id());
        for (const v1::Mutation* n : state.List(store::Kind::kNode)) {
          const auto& ms = n->node().manager_status();
          if (ms.raft_id() == 0) continue;
          v1::ManagerAddr* a = reply->add_managers();
          a->set_node_id(n->node().meta().id());
          a->set_raft_id(ms.raft_id());
          a->set_addr(ms.addr());
        }
        m->Propose({mut}, "admit", [m, r, reply, role, raft_id, request](Status s, uint64_t) {
          if (!s.ok()) return r->Finish(Grpc(s));
          if (role != v1::NodeSpec::ROLE_MANAGER) return r->Finish(grpc::Status::OK);
          m->SetAddress(raft_id, request.advertise_addr());
          reply->set_raft_id(raft_id);
          raft::ConfChange cc;
          cc.set_type(v1::CONF_CHANGE_ADD_VOTER);
          cc.set_node_id(raft_id);
          ConfChangeWithRetry(*m, cc, 30, [r](Status s) { r->Finish(Grpc(s)); });
        });
      });
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

 private:
  Daemon::Impl* d_;
};

class DispatcherService final : public v1::Dispatcher::CallbackService {
 public:
  explicit DispatcherService(Daemon::Impl* d) : d_(d) {}

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    bool posted = m->Post([m, r, req, reply] {
      if (!m->is_leader()) return r->Finish(NotLeader(*m));
      auto out = m->dispatcher().Heartbeat(m->store().state(), *req, Manager::NowNs());
      if (!out.ok()) return r->Finish(Grpc(out.error()));
      *reply = std::move(out).value();
      r->Finish(grpc::Status::OK);
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

  grpc::ServerUnaryReactor* Assignments(grpc::CallbackServerContext* ctx,
                                        const v1::AssignmentsRequest* req,
                                        v1::AssignmentsReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    bool posted = m->Post([m, r, req, reply] {
      if (!m->is_leader()) return r->Finish(NotLeader(*m));
      m->dispatcher().Assignments(m->store().state(), *req, Manager::NowNs(),
                                  [r, reply](Status s, v1::AssignmentsReply out) {
                                    if (s.ok()) *reply = std::move(out);
                                    r->Finish(Grpc(s));
                                  });
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

 private:
  static grpc::Status NotLeader(Manager& m) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "not the leader; leader at " + m.LeaderAddress());
  }
  Daemon::Impl* d_;
};

}  // namespace

Status Daemon::Impl::StartServing() {
  control_ = std::make_unique<ControlService>(this);
  raft_service_ = std::make_unique<transport::RaftService>([this](std::vector<v1::Message> msgs) {
    Manager* m = manager();
    if (!m) return;
    (void)m->Post([m, msgs = std::move(msgs)] {
      for (const auto& msg : msgs) (void)m->store().Step(msg);
    });
  });
  membership_ = std::make_unique<MembershipService>(this);
  dispatcher_service_ = std::make_unique<DispatcherService>(this);
  events_ = MakeEventsService(this);
  std::error_code ec;
  fs::remove(socket_, ec);
  grpc::ServerBuilder b;
  b.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
  b.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
  b.SetMaxReceiveMessageSize(64 << 20);
  b.RegisterService(control_.get());
  b.RegisterService(raft_service_.get());
  b.RegisterService(membership_.get());
  b.RegisterService(dispatcher_service_.get());
  b.RegisterService(events_.get());
  server_ = b.BuildAndStart();
  if (!server_ || port_ == 0) {
    return {Code::kIo, "cannot listen on " + options_.listen + " and unix:" + socket_ +
                           " (in use? another shoal daemon?)"};
  }
  // The socket is the admin path: owner and group only.
  chmod(socket_.c_str(), 0660);
  return Status::Ok();
}

void Daemon::Impl::Shutdown() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (shutdown_) {
      // Another thread is shutting down: return once it is done, so the
      // caller may destroy the daemon.
      cv_.wait(lock, [&] { return stopped_; });
      return;
    }
    shutdown_ = true;
  }
  cv_.notify_all();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (watchdog_.joinable()) watchdog_.join();
  if (agent_) {
    agent_->Stop();
    if (options_.stop_tasks_on_exit) agent_->StopAllTasks(std::chrono::seconds(10));
  }
  std::unique_ptr<Manager> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m = std::move(manager_);
  }
  if (m) {
    // Hand leadership over first, so the cluster does not wait an election
    // timeout to notice this manager is gone.
    bool leading = false;
    m->RunSync([&] { leading = m->is_leader() && m->store().StepDown().ok(); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (leading && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      m->RunSync([&] { leading = m->is_leader(); });
    }
    m->Stop();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() { Shutdown(); }

Result<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (Status s = impl->Open(); !s.ok()) return s;
  if (Status s = impl->StartServing(); !s.ok()) return s;
  if (impl->in_cluster_) {
    if (Status s = impl->StartRoles(); !s.ok()) return s;
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

int Daemon::port() const { return impl_->port_; }
const std::string& Daemon::socket_path() const { return impl_->socket_; }

void Daemon::Wait() {
  std::unique_lock<std::mutex> lock(impl_->mu_);
  impl_->cv_.wait(lock, [&] { return impl_->stopped_; });
}

void Daemon::Shutdown() { impl_->Shutdown(); }

// ---- cluster lifecycle handlers (Control) ----

grpc::ServerUnaryReactor* ControlService::Init(grpc::CallbackServerContext* ctx,
                                               const v1::InitRequest* req, v1::InitReply* reply) {
  auto* r = ctx->DefaultReactor();
  v1::InitRequest request = *req;
  // Waiting for the first election and commit takes a moment: off the gRPC thread.
  std::thread([this, r, reply, request] {
    Daemon::Impl* d = d_;
    {
      std::lock_guard<std::mutex> lock(d->mu_);
      if (d->in_cluster_) {
        return r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "this node is already in a cluster (shoal cluster info)"));
      }
      d->in_cluster_ = true;
    }
    d->identity_.set_node_id(NewId(d->rng_));
    d->identity_.set_cluster_id(NewId(d->rng_).substr(0, 12));
    d->identity_.set_role(v1::NodeSpec::ROLE_MANAGER);
    d->identity_.set_raft_id((d->rng_() >> 1) | 1);
    d->identity_.set_advertise_addr(
        Advertise(request.advertise_addr(), d->options_.listen, d->port_));
    if (Status s = d->SaveIdentity(); !s.ok()) return r->Finish(Grpc(s));
    if (Status s = d->StartRoles(); !s.ok()) return r->Finish(Grpc(s));
    v1::Cluster c;
    c.mutable_meta()->set_id(d->identity_.cluster_id());
    c.set_name(request.cluster_name().empty() ? "default" : request.cluster_name());
    c.mutable_join_tokens()->set_worker(
        MakeToken(c.meta().id(), v1::NodeSpec::ROLE_WORKER, d->NewSecret()));
    c.mutable_join_tokens()->set_manager(
        MakeToken(c.meta().id(), v1::NodeSpec::ROLE_MANAGER, d->NewSecret()));
    c.set_heartbeat_period_ns(d->options_.dispatcher.heartbeat_period_ns);
    c.set_node_down_grace_ns(d->options_.dispatcher.node_down_after_ns);
    c.set_task_history_per_slot(5);
    v1::Node n;
    n.mutable_meta()->set_id(d->identity_.node_id());
    n.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_MANAGER);
    // Managers run tasks too unless drained, as in Swarm.
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
    n.mutable_description()->set_hostname(d->hostname_);
    n.mutable_status()->set_addr(d->identity_.advertise_addr());
    n.mutable_manager_status()->set_raft_id(d->identity_.raft_id());
    n.mutable_manager_status()->set_addr(d->identity_.advertise_addr());
    std::vector<v1::Mutation> muts(2);
    *muts[0].mutable_cluster() = c;
    *muts[1].mutable_node() = n;
    // The single member elects itself at once; retry the proposal until then.
    Manager* m = d->manager();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      std::promise<Status> done;
      auto fut = done.get_future();
      bool posted = m->Post([m, muts, &done] {
        if (!m->is_leader()) return done.set_value({Code::kUnavailable, "no leader yet"});
        m->Propose(muts, "init", [&done](Status s, uint64_t) { done.set_value(s); });
      });
      Status s = posted ? fut.get() : Status(Code::kUnavailable, "stopping");
      if (s.ok()) break;
      if (std::chrono::steady_clock::now() > deadline) return r->Finish(Grpc(s));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Answer once this node takes tasks (its agent's first heartbeat), so a
    // deploy right after init is placed here rather than reported unplaceable.
    d->WaitNodeReady(deadline);
    reply->set_node_id(d->identity_.node_id());
    reply->set_cluster_id(c.meta().id());
    reply->set_worker_token(c.join_tokens().worker());
    reply->set_manager_token(c.join_tokens().manager());
    reply->set_advertise_addr(d->identity_.advertise_addr());
    r->Finish(grpc::Status::OK);
  }).detach();
  return r;
}

grpc::ServerUnaryReactor* ControlService::Join(grpc::CallbackServerContext* ctx,
                                               const v1::JoinClusterRequest* req,
                                               v1::JoinClusterReply* reply) {
  auto* r = ctx->DefaultReactor();
  v1::JoinClusterRequest request = *req;
  std::thread([this, r, reply, request] {
    Daemon::Impl* d = d_;
    {
      std::lock_guard<std::mutex> lock(d->mu_);
      if (d->in_cluster_) {
        return r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "this node is already in a cluster (shoal cluster leave)"));
      }
    }
    v1::AdmitRequest admit;
    admit.set_token(request.token());
    std::string advertise = Advertise(request.advertise_addr(), d->options_.listen, d->port_);
    admit.set_advertise_addr(advertise);
    admit.mutable_description()->set_hostname(d->hostname_);
    std::string target = request.remote_addr();
    v1::AdmitReply out;
    grpc::Status s;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto stub =
          v1::Membership::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
      grpc::ClientContext cc;
      cc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
      s = stub->Admit(&cc, admit, &out);
      auto at = s.error_message().find("leader at ");
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && at != std::string::npos) {
        target = s.error_message().substr(at + 10);
        continue;
      }
      break;
    }
    if (!s.ok()) {
      return r->Finish(
          grpc::Status(s.error_code(), "join via " + target + ": " + s.error_message()));
    }
    {
      std::lock_guard<std::mutex> lock(d->mu_);
      d->in_cluster_ = true;
    }
    d->identity_.set_node_id(out.node_id());
    d->identity_.set_cluster_id(out.cluster_id());
    d->identity_.set_role(out.role());
    d->identity_.set_raft_id(out.raft_id());
    d->identity_.set_advertise_addr(advertise);
    *d->identity_.mutable_managers() = out.managers();
    if (Status st = d->SaveIdentity(); !st.ok()) return r->Finish(Grpc(st));
    if (Status st = d->StartRoles(); !st.ok()) return r->Finish(Grpc(st));
    // Answer once the agent holds a session with the leader.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!d->agent_->connected() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    reply->set_node_id(out.node_id());
    reply->set_role(out.role());
    r->Finish(grpc::Status::OK);
  }).detach();
  return r;
}

grpc::ServerUnaryReactor* ControlService::Leave(grpc::CallbackServerContext* ctx,
                                                const v1::LeaveRequest* req, v1::LeaveReply*) {
  auto* r = ctx->DefaultReactor();
  Daemon::Impl* d = d_;
  bool manager = d->identity_.role() == v1::NodeSpec::ROLE_MANAGER;
  if (manager && !req->force()) {
    r->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                           "this node is a manager: demote it first (shoal node demote), or use "
                           "--force to demote it and leave"));
    return r;
  }
  std::thread([d, r, manager] {
    if (Manager* m = d->manager(); manager && m) {
      // Leave the Raft group properly, through the leader, so the others do
      // not keep counting this member toward their quorum.
      std::string leader;
      m->RunSync([&] { leader = m->LeaderAddress(); });
      v1::UpdateNodeRequest demote;
      demote.set_node(d->identity_.node_id());
      demote.set_set_role(true);
      demote.set_role(v1::NodeSpec::ROLE_WORKER);
      v1::UpdateNodeReply out;
      grpc::Status s(grpc::StatusCode::UNAVAILABLE, "no leader known");
      if (!leader.empty()) {
        auto stub =
            v1::Control::NewStub(grpc::CreateChannel(leader, grpc::InsecureChannelCredentials()));
        grpc::ClientContext cc;
        cc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
        s = stub->UpdateNode(&cc, demote, &out);
      }
      if (!s.ok()) {
        std::fprintf(stderr, "shoal daemon: leaving without demotion: %s\n",
                     s.error_message().c_str());
      }
    }
    if (d->agent_) d->agent_->Stop();
    std::error_code ec;
    fs::remove(d->options_.data_dir + "/identity", ec);
    r->Finish(grpc::Status::OK);
    // The daemon exits; the node shows as down until `shoal node rm` on a manager.
    d->Shutdown();
  }).detach();
  return r;
}

grpc::ServerUnaryReactor* ControlService::JoinToken(grpc::CallbackServerContext* ctx,
                                                    const v1::JoinTokenRequest* req,
                                                    v1::JoinTokenReply* reply) {
  v1::JoinTokenRequest request = *req;
  std::string secret = d_->NewSecret();
  std::string addr = d_->identity_.advertise_addr();
  return OnRead(ctx, [request, reply, secret, addr](Manager& m, const store::State& state,
                                                    grpc::ServerUnaryReactor* r) {
    auto clusters = state.List(store::Kind::kCluster);
    if (clusters.empty()) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
    v1::Cluster c = clusters.front()->cluster();
    bool manager = request.role() == v1::NodeSpec::ROLE_MANAGER;
    reply->set_manager_addr(addr);
    if (!request.rotate()) {
      reply->set_token(manager ? c.join_tokens().manager() : c.join_tokens().worker());
      return r->Finish(grpc::Status::OK);
    }
    std::string token = MakeToken(c.meta().id(), request.role(), secret);
    if (manager)
      c.mutable_join_tokens()->set_manager(token);
    else
      c.mutable_join_tokens()->set_worker(token);
    v1::Mutation mut;
    mut.set_expected_version(c.meta().version());
    *mut.mutable_cluster() = c;
    m.Propose({mut}, "join-token", [r, reply, token](Status s, uint64_t) {
      if (s.ok()) reply->set_token(token);
      r->Finish(Grpc(s));
    });
  });
}

grpc::ServerUnaryReactor* ControlService::ClusterInfo(grpc::CallbackServerContext* ctx,
                                                      const v1::ClusterInfoRequest*,
                                                      v1::ClusterInfoReply* reply) {
  Daemon::Impl* d = d_;
  reply->set_data_dir(d->options_.data_dir);
  reply->set_executor(d->options_.executor);
  {
    std::lock_guard<std::mutex> lock(d->mu_);
    reply->set_in_cluster(d->in_cluster_);
  }
  reply->set_node_id(d->identity_.node_id());
  reply->set_role(d->identity_.role());
  reply->set_raft_id(d->identity_.raft_id());
  if (!d->manager()) {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  return OnRead(ctx, [reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
    auto st = m.store().raft_status();
    reply->set_raft_term(st.term);
    reply->set_raft_leader(st.leader);
    reply->set_applied_index(state.applied_index());
    auto clusters = state.List(store::Kind::kCluster);
    if (!clusters.empty()) {
      *reply->mutable_cluster() = clusters.front()->cluster();
      reply->mutable_cluster()->clear_join_tokens();
    }
    for (const v1::Mutation* n : state.List(store::Kind::kNode)) {
      if (n->node().manager_status().raft_id() != 0) *reply->add_managers() = n->node();
    }
    r->Finish(grpc::Status::OK);
  });
}

grpc::ServerUnaryReactor* ControlService::OnRead(
    grpc::CallbackServerContext* ctx,
    std::function<void(Manager&, const store::State&, grpc::ServerUnaryReactor*)> fn) {
  auto* r = ctx->DefaultReactor();
  Manager* m = d_->manager();
  if (!m) {
    r->Finish(NotManager());
    return r;
  }
  bool posted = m->Post([m, r, fn = std::move(fn)] {
    m->Read([m, r, fn](Status s, const store::State& state) {
      if (!s.ok()) return r->Finish(Grpc(s));
      fn(*m, state, r);
    });
  });
  if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
  return r;
}

}  // namespace shoal::manager
