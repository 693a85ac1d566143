#pragma once

// The daemon's parts, shared by daemon.cc (lifecycle, membership, dispatcher
// service) and the Control handlers (control_service.cc, node_service.cc).

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "shoal/agent/agent.h"
#include "shoal/agent/grpc_dispatcher_client.h"
#include "shoal/ca/ca.h"
#include "shoal/executor/executor.h"
#include "shoal/manager/autolock.h"
#include "shoal/manager/daemon.h"
#include "shoal/manager/limits.h"
#include "shoal/manager/manager.h"
#include "shoal/transport/grpc_transport.h"
#include "shoal/transport/tls.h"
#include "shoal/v1/cluster.grpc.pb.h"
#include "shoal/v1/control.grpc.pb.h"

namespace shoal::manager {

grpc::Status Grpc(const Status& s);
grpc::Status NotManager();

// ReplicatedStore::ProposeConfChange, again after 100 ms while Raft answers
// "retry" (another change pending, a new leader), up to `attempts` times.
// Loop thread only; `done` runs on the loop.
void ConfChangeWithRetry(Manager& m, raft::ConfChange cc, int attempts,
                         std::function<void(Status)> done);
void ChangeRole(Manager& m, const store::State& state, const v1::Node& n, v1::NodeSpec::Role role,
                grpc::ServerUnaryReactor* r, v1::UpdateNodeReply* reply);

class ControlService final : public v1::Control::CallbackService {
 public:
  explicit ControlService(Daemon::Impl* d) : d_(d) {}

  grpc::ServerUnaryReactor* Init(grpc::CallbackServerContext*, const v1::InitRequest*,
                                 v1::InitReply*) override;
  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext*, const v1::JoinClusterRequest*,
                                 v1::JoinClusterReply*) override;
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext*, const v1::LeaveRequest*,
                                  v1::LeaveReply*) override;
  grpc::ServerUnaryReactor* JoinToken(grpc::CallbackServerContext*, const v1::JoinTokenRequest*,
                                      v1::JoinTokenReply*) override;
  grpc::ServerUnaryReactor* ClusterInfo(grpc::CallbackServerContext*, const v1::ClusterInfoRequest*,
                                        v1::ClusterInfoReply*) override;
  grpc::ServerUnaryReactor* Deploy(grpc::CallbackServerContext*, const v1::DeployRequest*,
                                   v1::DeployReply*) override;
  grpc::ServerUnaryReactor* ListStacks(grpc::CallbackServerContext*, const v1::ListStacksRequest*,
                                       v1::ListStacksReply*) override;
  grpc::ServerUnaryReactor* RemoveStack(grpc::CallbackServerContext*, const v1::RemoveStackRequest*,
                                        v1::RemoveStackReply*) override;
  grpc::ServerUnaryReactor* StackHistory(grpc::CallbackServerContext*,
                                         const v1::StackHistoryRequest*,
                                         v1::StackHistoryReply*) override;
  grpc::ServerUnaryReactor* RollbackStack(grpc::CallbackServerContext*,
                                          const v1::RollbackStackRequest*,
                                          v1::DeployReply*) override;
  grpc::ServerUnaryReactor* StackDiff(grpc::CallbackServerContext*, const v1::StackDiffRequest*,
                                      v1::StackDiffReply*) override;
  grpc::ServerUnaryReactor* UpdateService(grpc::CallbackServerContext*,
                                          const v1::UpdateServiceRequest*,
                                          v1::UpdateServiceReply*) override;
  grpc::ServerUnaryReactor* RollbackService(grpc::CallbackServerContext*,
                                            const v1::RollbackServiceRequest*,
                                            v1::RollbackServiceReply*) override;
  grpc::ServerUnaryReactor* RebalanceService(grpc::CallbackServerContext*,
                                             const v1::RebalanceServiceRequest*,
                                             v1::RebalanceServiceReply*) override;
  grpc::ServerUnaryReactor* ListServices(grpc::CallbackServerContext*,
                                         const v1::ListServicesRequest*,
                                         v1::ListServicesReply*) override;
  grpc::ServerUnaryReactor* ScaleService(grpc::CallbackServerContext*,
                                         const v1::ScaleServiceRequest*,
                                         v1::ScaleServiceReply*) override;
  grpc::ServerUnaryReactor* RemoveService(grpc::CallbackServerContext*,
                                          const v1::RemoveServiceRequest*,
                                          v1::RemoveServiceReply*) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext*, const v1::ListTasksRequest*,
                                      v1::ListTasksReply*) override;
  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext*, const v1::ListNodesRequest*,
                                      v1::ListNodesReply*) override;
  grpc::ServerUnaryReactor* InspectNode(grpc::CallbackServerContext*, const v1::InspectNodeRequest*,
                                        v1::InspectNodeReply*) override;
  grpc::ServerUnaryReactor* UpdateNode(grpc::CallbackServerContext*, const v1::UpdateNodeRequest*,
                                       v1::UpdateNodeReply*) override;
  grpc::ServerUnaryReactor* RemoveNode(grpc::CallbackServerContext*, const v1::RemoveNodeRequest*,
                                       v1::RemoveNodeReply*) override;

 private:
  // Runs `fn(manager, reactor)` on the manager's loop after a linearizable
  // read; answers FAILED_PRECONDITION when this node is not a manager.
  grpc::ServerUnaryReactor* OnRead(
      grpc::CallbackServerContext* ctx,
      std::function<void(Manager&, const store::State&, grpc::ServerUnaryReactor*)> fn);
  // A write: fn builds mutations from the read state; they are proposed and
  // `then` runs with the outcome.
  Daemon::Impl* d_;
};

// The Dispatcher service: agents' heartbeats and assignments
// (dispatcher_service.cc).
std::unique_ptr<v1::Dispatcher::CallbackService> MakeDispatcherService(Daemon::Impl* d);
// The Events service (events_service.cc).
std::unique_ptr<v1::Events::Service> MakeEventsService(Daemon::Impl* d);
// The Membership service: admission, the root, renewals, client certificates
// (membership_service.cc).
std::unique_ptr<v1::Membership::CallbackService> MakeMembershipService(Daemon::Impl* d);

// ---- trust (issue 8, docs/security.md; membership_service.cc) ----

// Seconds since the epoch: certificate times.
int64_t NowUnix();
// The CA key as stored in the replicated Cluster object (sealed with the
// cluster data key, context "shoal-ca-key"), and back. kFailedPrecondition
// when this manager is locked or holds no data key.
Result<std::string> SealCaKey(AtRest& at_rest, const std::string& key_pem);
Result<std::string> UnsealCaKey(AtRest& at_rest, const std::string& sealed);
// The join token for `role` with a fresh secret, pinning `c`'s root.
std::string NewJoinToken(const v1::ClusterCA& c, v1::NodeSpec::Role role,
                         const std::string& secret);
// Who may use the Control and Events services: the local admin (unix
// socket); over TCP a manager certificate of a node `state` still lists as a
// manager, or a client certificate `state` lists with this serial.
// UNAUTHENTICATED without a (valid) certificate, PERMISSION_DENIED for a
// worker, a removed node or a revoked client; the message says which.
grpc::Status AuthorizeControl(const transport::Peer& peer, const store::State& state);
// Who may use the dispatcher for `node_id`: that node's own certificate
// (either role). PERMISSION_DENIED otherwise.
grpc::Status AuthorizeNode(const transport::Peer& peer, const std::string& node_id);
// Raft: a manager certificate.
grpc::Status AuthorizeRaft(const transport::Peer& peer);
// OK while the peer's certificate is within its dates; UNAUTHENTICATED,
// saying how to get a new one, past its end.
grpc::Status ExpiredCertificate(const transport::Peer& peer);
// When the certificate in `files` has expired at `now_unix`: why the node
// cannot renew and how to rejoin (names the expiry time and the node id).
// "" while it is valid, or when there is none (not in a cluster).
std::string ExpiredCertificateMessage(const transport::TlsFiles& files, int64_t now_unix);
// Certificate validity for a new cluster: SHOAL_CERT_VALIDITY (seconds; a
// hidden setting for tests of renewal, recorded in the Cluster object like
// every timing), else 90 days.
int64_t CertValiditySeconds();
// How long the server keeps a connection before asking the client to open a
// new one (and so present its current certificate): a tenth of the validity,
// at most an hour.
std::chrono::milliseconds ServerConnectionAge();

class Daemon::Impl {
 public:
  explicit Impl(const DaemonOptions& options);

  Status Open();
  // Points tls_files_ at <data-dir>/certs and schedules the renewal of the
  // certificate found there, or writes a placeholder (not in a cluster yet).
  Status OpenCertificates();
  Status StartServing();
  // Resolves options_.executor "auto" (docker when an engine answers, else
  // process) and says which; InvalidArgument for an unknown executor.
  Status ChooseExecutor();
  // Starts the manager (if the identity says so) and the agent.
  Status StartRoles();
  Status StartManager();
  void Watch();
  Status SaveIdentity();
  void Shutdown();

  // Polls (bounded) until this node's Node object says READY.
  void WaitNodeReady(std::chrono::steady_clock::time_point deadline);
  // Any thread: the manager, or null before the node is one.
  Manager* manager();
  std::string NewSecret();

  // Writes the node's TLS files (the server and the channels reload them)
  // and schedules the next renewal at a random point of the new validity.
  Status InstallCertificate(const std::string& root_pem, const std::string& key_pem,
                            const std::string& cert_pem);
  // A new certificate from the leader for a new key (RenewCertificate), with
  // the role the cluster now records for this node. Watchdog thread.
  // A manager's renewal also brings the cluster data key (`data_key`, may be
  // null), which a promoted node adopts.
  Status RenewCertificate(std::string* data_key = nullptr);
  // Renews when the time drawn for it has come or the node's role changed
  // (retrying every 5 s on failure). Watchdog thread.
  void MaybeRenewCertificate();
  // Root rotation (docs/security.md), from the watchdog: every few seconds
  // asks a manager for the trusted roots; renews at once when the issuing
  // root did not sign this node's certificate, and installs the new bundle
  // (the leaf alone once one root is left). Failures are retried later.
  void CheckRootRotation();
  // On the leader: ends a rotation once every node holds a certificate from
  // the new root (posts to the manager's loop; any thread).
  void MaybeFinishRootRotation();
  // Signs `csr` with the cluster's root, or during a rotation the new one
  // with the cross-signed root appended (key unsealed once and cached).
  // Weak keys are refused (ca::Sign). Loop thread of a manager.
  Result<std::string> SignWithClusterCA(const v1::Cluster& c, const std::string& csr,
                                        const std::string& subject, ca::Role role);
  // Waits (bounded) until this node's server presents `cert_pem` (its file
  // watcher reloads once a second), so that the first connections to it, the
  // local agent's after init, succeed rather than back off.
  void WaitServerCertificate(const std::string& cert_pem, std::chrono::milliseconds timeout);
  // Credentials for dialling managers with this node's certificate.
  transport::ClientTls tls();

  DaemonOptions options_;
  std::string hostname_;
  int port_ = 0;
  std::string socket_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;  // Shutdown() began
  bool stopped_ = false;   // Shutdown() finished
  bool in_cluster_ = false;
  v1::NodeIdentity identity_;
  std::mt19937_64 rng_;
  // Admit and RenewCertificate per peer address (options_.join_rate), null
  // when unlimited.
  std::unique_ptr<RateLimiter> join_limiter_;
  // The cluster's autolock setting (autolock_sync.cc): proposes a change and
  // has this manager follow it (ProposeAutolockFn); any thread. SyncAutolock
  // has this manager follow the replicated setting; watchdog thread only.
  void ProposeAutolock(bool on, bool rotate, std::function<void(Result<AutolockChange>)> done);
  void SyncAutolock();
  std::string autolock_error_;  // the last failure SyncAutolock logged
  // A slot for one more long-lived stream of `peer` (`what` names the kind
  // in the refusal); an empty slot for the local admin socket, which is not
  // counted. kUnavailable past options_.max_streams_per_node. Any thread.
  Result<StreamLimiter::Slot> OpenStream(const transport::Peer& peer, std::string_view what);
  // Open streams per certificate subject (options_.max_streams_per_node).
  StreamLimiter streams_;

  std::unique_ptr<Manager> manager_;
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<agent::GrpcDispatcherClient> dispatcher_client_;
  std::unique_ptr<agent::Agent> agent_;

  std::unique_ptr<ControlService> control_;
  std::unique_ptr<transport::RaftService> raft_service_;
  std::unique_ptr<v1::Membership::CallbackService> membership_;
  std::unique_ptr<v1::Dispatcher::CallbackService> dispatcher_service_;
  // The dispatcher's reply epoch (dispatcher::Options::reply_epoch): the
  // dispatcher service answers a repeated heartbeat from its cache while it
  // holds. Outlives every manager this daemon starts.
  std::atomic<uint64_t> heartbeat_epoch_{0};
  std::unique_ptr<v1::Events::Service> events_;
  std::unique_ptr<AtRest> at_rest_;  // the data key (issue 8); set by Start
  std::unique_ptr<v1::Security::CallbackService> security_;

  transport::TlsFiles tls_files_;  // <data-dir>/certs
  std::mutex tls_mu_;
  transport::ClientTls tls_;  // the watched files; guarded by tls_mu_
  int64_t renew_at_ = 0;      // unix seconds; guarded by tls_mu_
  int64_t renew_retry_at_ = 0;
  int64_t root_check_at_ = 0;          // unix seconds: CheckRootRotation's next look; tls_mu_
  std::optional<ca::Role> cert_role_;  // the role in the installed certificate
  std::mutex ca_mu_;
  std::string ca_sealed_;  // what ca_ was unsealed from
  ca::RootCA ca_;
  std::unique_ptr<grpc::Server> server_;
  std::thread watchdog_;
};

}  // namespace shoal::manager
