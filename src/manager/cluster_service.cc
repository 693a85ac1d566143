// Control handlers for the node's place in a cluster: init, join, leave,
// join tokens and cluster info, and the read helper every handler uses.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "daemon_internal.h"
#include "shoal/manager/daemon.h"
#include "shoal/manager/join_client.h"
#include "shoal/manager/subnets.h"

namespace shoal::manager {
namespace {

namespace fs = std::filesystem;

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

// Node-local operations (init, join, leave) come over the unix socket only.
bool RefuseRemote(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* r) {
  if (transport::PeerOf(*ctx).local) return false;
  r->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                         "init, join and leave are only accepted on the node's local socket"));
  return true;
}

}  // namespace

grpc::ServerUnaryReactor* ControlService::Init(grpc::CallbackServerContext* ctx,
                                               const v1::InitRequest* req, v1::InitReply* reply) {
  auto* r = ctx->DefaultReactor();
  if (RefuseRemote(ctx, r)) return r;
  v1::InitRequest request = *req;
  const std::vector<std::string> pools(request.default_addr_pools().begin(),
                                       request.default_addr_pools().end());
  auto pool = MakeAddressPool(pools, request.default_addr_pool_mask_length());
  if (!pool.ok()) {
    r->Finish(Grpc(pool.error()));
    return r;
  }
  // Waiting for the first election and commit takes a moment: off the gRPC thread.
  std::thread([this, r, reply, request, address_pool = *pool] {
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
    // The cluster's root CA, and this node's certificate from it.
    int64_t validity = CertValiditySeconds();
    auto root = ca::CreateRoot(d->identity_.cluster_id(), NowUnix());
    if (!root.ok()) return r->Finish(Grpc(root.error()));
    auto node_key = ca::NewPrivateKey();
    if (!node_key.ok()) return r->Finish(Grpc(node_key.error()));
    auto csr = ca::CreateCsr(*node_key);
    if (!csr.ok()) return r->Finish(Grpc(csr.error()));
    ca::IssueRequest ir;
    ir.csr_pem = *csr;
    ir.subject = d->identity_.node_id();
    ir.role = ca::Role::kManager;
    ir.cluster_id = d->identity_.cluster_id();
    ir.now_unix = NowUnix();
    ir.validity_seconds = validity;
    auto cert = ca::Sign(*root, ir);
    if (!cert.ok()) return r->Finish(Grpc(cert.error()));
    if (Status s = d->InstallCertificate(root->cert_pem, *node_key, *cert); !s.ok()) {
      return r->Finish(Grpc(s));
    }
    d->WaitServerCertificate(*cert, std::chrono::milliseconds(2000));
    if (Status s = d->SaveIdentity(); !s.ok()) return r->Finish(Grpc(s));
    if (Status s = d->StartRoles(); !s.ok()) return r->Finish(Grpc(s));
    v1::Cluster c;
    c.mutable_meta()->set_id(d->identity_.cluster_id());
    c.set_name(request.cluster_name().empty() ? "default" : request.cluster_name());
    c.mutable_ca()->set_root_cert(root->cert_pem);
    auto sealed = SealCaKey(*d->at_rest_, root->key_pem);
    if (!sealed.ok()) return r->Finish(Grpc(sealed.error()));
    c.mutable_ca()->set_sealed_key(*sealed);
    c.mutable_ca()->set_cert_validity_ns(validity * 1'000'000'000);
    c.mutable_join_tokens()->set_worker(
        NewJoinToken(c.ca(), v1::NodeSpec::ROLE_WORKER, d->NewSecret()));
    c.mutable_join_tokens()->set_manager(
        NewJoinToken(c.ca(), v1::NodeSpec::ROLE_MANAGER, d->NewSecret()));
    c.set_heartbeat_period_ns(d->options_.dispatcher.heartbeat_period_ns);
    c.set_node_down_grace_ns(d->options_.dispatcher.node_down_after_ns);
    c.set_task_history_per_slot(5);
    *c.mutable_address_pool() = address_pool;
    v1::Node n;
    n.mutable_meta()->set_id(d->identity_.node_id());
    n.mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_MANAGER);
    // Managers run tasks too unless drained, as in Swarm.
    n.mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_ACTIVE);
    n.mutable_description()->set_hostname(d->hostname_);
    n.mutable_status()->set_addr(d->identity_.advertise_addr());
    n.mutable_manager_status()->set_raft_id(d->identity_.raft_id());
    n.mutable_manager_status()->set_addr(d->identity_.advertise_addr());
    if (auto info = ca::ParseCertificate(*cert); info.ok()) n.set_certificate_serial(info->serial);
    n.set_certificate_issuer(ca::Digest(root->cert_pem));
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
  if (RefuseRemote(ctx, r)) return r;
  v1::JoinClusterRequest request = *req;
  std::thread([this, r, reply, request] {
    Daemon::Impl* d = d_;
    {
      std::lock_guard<std::mutex> lock(d->mu_);
      if (d->in_cluster_) {
        // An expired certificate: say how to rejoin rather than just "leave".
        std::string expired = ExpiredCertificateMessage(d->tls_files_, NowUnix());
        return r->Finish(grpc::Status(
            grpc::StatusCode::FAILED_PRECONDITION,
            expired.empty() ? "this node is already in a cluster (shoal cluster leave)" : expired));
      }
    }
    v1::AdmitRequest admit;
    std::string advertise = Advertise(request.advertise_addr(), d->options_.listen, d->port_);
    admit.set_advertise_addr(advertise);
    admit.mutable_description()->set_hostname(d->hostname_);
    // Pins the CA by the token's digest before the token leaves this node.
    auto joined = JoinCluster(request.remote_addr(), request.token(), admit);
    if (!joined.ok()) return r->Finish(Grpc(joined.error()));
    const v1::AdmitReply& out = joined->reply;
    if (Status st = d->InstallCertificate(joined->root_pem, joined->key_pem, joined->cert_pem);
        !st.ok()) {
      return r->Finish(Grpc(st));
    }
    d->identity_.set_advertise_addr(advertise);
    d->WaitServerCertificate(joined->cert_pem, std::chrono::milliseconds(2000));
    if (!out.data_key().empty()) {
      if (Status st = d->at_rest_->Adopt(out.data_key()); !st.ok()) return r->Finish(Grpc(st));
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
  if (RefuseRemote(ctx, r)) return r;
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
        auto stub = v1::Control::NewStub(transport::Dial(leader, d->tls()));
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
    std::string token = NewJoinToken(c.ca(), request.role(), secret);
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
  if (!transport::PeerOf(*ctx).local && !d->manager()) {
    auto* r = ctx->DefaultReactor();
    r->Finish(NotManager());
    return r;
  }
  reply->set_data_dir(d->options_.data_dir);
  reply->set_executor(d->options_.executor);
  {
    std::lock_guard<std::mutex> lock(d->mu_);
    reply->set_in_cluster(d->in_cluster_);
  }
  reply->set_node_id(d->identity_.node_id());
  reply->set_role(d->identity_.role());
  reply->set_raft_id(d->identity_.raft_id());
  if (d->at_rest_) {
    reply->set_locked(d->at_rest_->locked());
    reply->set_autolock(d->at_rest_->autolocked());
  }
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
      reply->mutable_cluster()->mutable_ca()->clear_sealed_key();
      reply->mutable_cluster()->mutable_autolock()->clear_sealed_unlock_key();
      if (reply->cluster().ca().has_rotation()) {
        reply->mutable_cluster()->mutable_ca()->mutable_rotation()->clear_new_sealed_key();
      }
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
  // Who calls is checked against the state of this very read, so a node
  // removed a moment ago is refused at once.
  transport::Peer peer = transport::PeerOf(*ctx);
  bool posted = m->Post([m, r, peer, fn = std::move(fn)] {
    m->Read([m, r, peer, fn](Status s, const store::State& state) {
      if (!s.ok()) return r->Finish(Grpc(s));
      if (grpc::Status a = AuthorizeControl(peer, state); !a.ok()) return r->Finish(a);
      fn(*m, state, r);
    });
  });
  if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
  return r;
}

}  // namespace shoal::manager
