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
#include "shoal/executor/docker.h"
#include "shoal/executor/process.h"
#include "shoal/executor/sim.h"
#include "shoal/manager/limits.h"

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

}  // namespace

grpc::Status Grpc(const Status& s) { return transport::ToGrpc(s); }

grpc::Status NotManager() {
  if (ManagerLocked()) return LockedStatus();
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node is not a manager of a cluster: run `shoal cluster init`, or "
                      "`shoal cluster join` with a manager token, or point --host at a manager");
}

Daemon::Impl::Impl(const DaemonOptions& options)
    : options_(options),
      rng_(std::random_device{}()),
      streams_(std::max<size_t>(1, options.max_streams_per_node)) {
  if (options_.join_rate > 0) {
    join_limiter_ = std::make_unique<RateLimiter>(
        RateLimiter::Options{.rate_per_second = options_.join_rate,
                             .burst = std::max(1.0, options_.join_burst),
                             .what = "join requests"},
        [] { return std::chrono::steady_clock::now(); });
  }
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
  if (Status s = OpenCertificates(); !s.ok()) return s;
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

void Daemon::Impl::MaybeRenewCertificate() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!in_cluster_ || !agent_) return;
  }
  // A root rotation: the leader ends it, every node follows it.
  MaybeFinishRootRotation();
  ca::Role want =
      identity_.role() == v1::NodeSpec::ROLE_MANAGER ? ca::Role::kManager : ca::Role::kWorker;
  int64_t now = NowUnix();
  bool renew = false;
  {
    std::lock_guard<std::mutex> lock(tls_mu_);
    bool due = renew_at_ != 0 && now >= renew_at_;
    // A demoted node's certificate still says manager: it asks for a worker's.
    bool role_changed = cert_role_ && *cert_role_ != want;
    renew = (due || role_changed) && now >= renew_retry_at_;
  }
  if (!renew) return CheckRootRotation();
  if (Status s = RenewCertificate(); !s.ok()) {
    // An expired certificate (kFailedPrecondition): the message says how to rejoin.
    std::fprintf(stderr, "shoal daemon: certificate renewal failed (%s): %s\n",
                 s.code() == Code::kFailedPrecondition ? "looking again in 5 s" : "retrying in 5 s",
                 s.message().c_str());
    std::lock_guard<std::mutex> lock(tls_mu_);
    renew_retry_at_ = now + 5;
  }
}

Status Daemon::Impl::OpenCertificates() {
  tls_files_ = transport::TlsFilesIn(options_.data_dir + "/certs");
  std::string root, key, cert;
  if (transport::ReadTlsFiles(tls_files_, &root, &key, &cert).ok()) {
    auto info = ca::ParseCertificate(cert);
    if (info.ok()) {
      std::lock_guard<std::mutex> lock(tls_mu_);
      double u = std::uniform_real_distribution<double>(0, 1)(rng_);
      renew_at_ = ca::RenewAt(info->not_before, info->not_after, u);
      cert_role_ = info->role;
      return Status::Ok();
    }
  }
  // Not in a cluster yet: the TLS server needs some key pair to start with,
  // so a throwaway CA signs a placeholder that no cluster member trusts.
  // `cluster init` / `join` replace the files and the server reloads them.
  auto throwaway = ca::CreateRoot("unjoined", NowUnix());
  if (!throwaway.ok()) return throwaway.error();
  auto node_key = ca::NewPrivateKey();
  if (!node_key.ok()) return node_key.error();
  auto csr = ca::CreateCsr(*node_key);
  if (!csr.ok()) return csr.error();
  ca::IssueRequest ir;
  ir.csr_pem = *csr;
  ir.subject = "unjoined";
  ir.cluster_id = "unjoined";
  ir.now_unix = NowUnix();
  // Named like a manager's, so a probe of this server (WaitServerCertificate)
  // sees the placeholder without a name mismatch; no one trusts its CA.
  ir.role = ca::Role::kManager;
  auto placeholder = ca::Sign(*throwaway, ir);
  if (!placeholder.ok()) return placeholder.error();
  return transport::WriteTlsFiles(tls_files_, throwaway->cert_pem, *node_key, *placeholder);
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
  mo.tls = tls();
  if (Status s = at_rest_->EnsureKey(); !s.ok()) return s;
  mo.dispatcher.secret_value = at_rest_->SecretValueFn();
  mo.dispatcher.reply_epoch = &heartbeat_epoch_;
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
  } else if (options_.executor == "docker") {
    executor::DockerOptions dopts;
    dopts.host = options_.docker_host;
    dopts.ingress_addr = options_.ingress_addr;
    dopts.node_id = identity_.node_id();
    dopts.state_dir = options_.data_dir + "/docker";
    auto de = executor::DockerExecutor::Open(dopts);
    if (!de.ok()) return de.error();
    executor_ = std::move(de).value();
  } else {
    return {Code::kInvalidArgument,
            "--executor " + options_.executor + ": expected process, docker or sim"};
  }
  dispatcher_client_ = std::make_unique<agent::GrpcDispatcherClient>(
      manager_addrs, [this](const std::string& addr, const grpc::ChannelArguments& args) {
        return transport::Dial(addr, tls(), args);
      });
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
    MaybeRenewCertificate();
    Manager* m = manager();
    if (m != nullptr) {
      bool removed = false;
      m->RunSync([&] { removed = m->store().removed(); });
      if (!removed) {
        SyncAutolock();
        continue;
      }
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
    // A manager's certificate first: other managers and agents only talk to
    // a server whose certificate says manager.
    std::string data_key;
    if (Status s = RenewCertificate(&data_key); !s.ok()) {
      std::fprintf(stderr, "shoal daemon: no manager certificate yet: %s\n", s.ToString().c_str());
    }
    // The cluster's data key, to open the sealed state as every manager does.
    if (!data_key.empty()) {
      if (Status s = at_rest_->Adopt(data_key); !s.ok()) {
        std::fprintf(stderr, "shoal daemon: cannot keep the cluster data key: %s\n",
                     s.ToString().c_str());
      }
    }
    if (Status s = StartManager(); !s.ok()) {
      std::fprintf(stderr, "shoal daemon: cannot start the manager: %s\n", s.ToString().c_str());
    }
  }
}

Result<StreamLimiter::Slot> Daemon::Impl::OpenStream(const transport::Peer& peer,
                                                     std::string_view what) {
  if (peer.local) return StreamLimiter::Slot();
  // Authorization ran first, so a remote caller has a certificate; its
  // subject is the node id or the client's name.
  return streams_.Open(peer.has_cert ? peer.cert.subject : "unauthenticated", what);
}

Status Daemon::Impl::StartServing() {
  control_ = std::make_unique<ControlService>(this);
  raft_service_ = std::make_unique<transport::RaftService>([this](std::vector<v1::Message> msgs) {
    Manager* m = manager();
    if (!m) return;
    (void)m->Post([m, msgs = std::move(msgs)] {
      for (const auto& msg : msgs) (void)m->store().Step(msg);
    });
  });
  raft_service_->set_authorize(
      [](const grpc::ServerContextBase& ctx) { return AuthorizeRaft(transport::PeerOf(ctx)); });
  membership_ = MakeMembershipService(this);
  dispatcher_service_ = MakeDispatcherService(this);
  events_ = MakeEventsService(this);
  security_ = MakeSecurityService(
      at_rest_.get(), [this] { return StartRoles(); },
      [this](bool on, bool rotate, std::function<void(Result<AutolockChange>)> done) {
        ProposeAutolock(on, rotate, std::move(done));
      });
  std::error_code ec;
  fs::remove(socket_, ec);
  grpc::ServerBuilder b;
  // The cluster port is mutual TLS only; the unix socket is the admin path.
  b.AddListeningPort(options_.listen, transport::WatchedServerCredentials(tls_files_), &port_);
  b.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
  b.SetMaxReceiveMessageSize(static_cast<int>(kMaxServerReceiveBytes));
  // Old connections take no new calls (GOAWAY), so every call soon runs on a
  // connection whose handshake saw the client's current certificate; calls
  // and streams in progress finish (no grace limit).
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                       static_cast<int>(ServerConnectionAge().count()));
  // No bandwidth-delay probes (a ping and its ack on every connection now
  // and then): a thousand agents' connections carry small calls, and the
  // probes cost a third of the leader's context switches in the steady
  // state. Large Raft messages between managers flow in the default window.
  b.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  b.RegisterService(control_.get());
  b.RegisterService(raft_service_.get());
  b.RegisterService(membership_.get());
  b.RegisterService(dispatcher_service_.get());
  b.RegisterService(events_.get());
  b.RegisterService(security_.get());
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

Status Daemon::Impl::ChooseExecutor() {
  std::string& e = options_.executor;
  if (e == "auto") {
    // Asked once at start: a node keeps one executor for its whole life.
    std::string engine;
    Status s = executor::ProbeDockerEngine(options_.docker_host, &engine);
    e = s.ok() ? "docker" : "process";
    std::fprintf(stderr, "shoal daemon: executor %s: %s\n", e.c_str(),
                 s.ok() ? (engine + " at " + options_.docker_host).c_str()
                        : ("no usable Docker Engine (" + s.message() + ")").c_str());
  }
  if (e != "process" && e != "docker" && e != "sim") {
    return {Code::kInvalidArgument, "--executor " + e + ": expected process, docker or sim"};
  }
  return Status::Ok();
}

Result<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (Status s = impl->ChooseExecutor(); !s.ok()) return s;
  if (Status s = impl->Open(); !s.ok()) return s;
  auto at_rest = AtRest::Open(options.data_dir);
  if (!at_rest.ok()) return at_rest.error();
  impl->at_rest_ = std::move(at_rest).value();
  if (Status s = impl->StartServing(); !s.ok()) return s;
  if (impl->in_cluster_ && impl->at_rest_->locked()) {
    std::fprintf(stderr,
                 "shoal daemon: locked (autolock): serving nothing but unlock on %s until "
                 "`shoal cluster unlock`\n",
                 impl->socket_.c_str());
  } else if (impl->in_cluster_) {
    if (Status s = impl->StartRoles(); !s.ok()) return s;
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

int Daemon::port() const { return impl_->port_; }
const std::string& Daemon::socket_path() const { return impl_->socket_; }
const std::string& Daemon::executor() const { return impl_->options_.executor; }

void Daemon::Wait() {
  std::unique_lock<std::mutex> lock(impl_->mu_);
  impl_->cv_.wait(lock, [&] { return impl_->stopped_; });
}

void Daemon::Shutdown() { impl_->Shutdown(); }

}  // namespace shoal::manager
