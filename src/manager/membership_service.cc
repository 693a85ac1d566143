// Trust (issue 8, docs/security.md): the Membership service (admission with
// a token and a CSR, the root for a joining node, renewals, client
// certificates), the authorization rules every other service applies, and
// the node's own certificate files and their renewal.

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <thread>

#include "daemon_internal.h"
#include "shoal/manager/limits.h"

namespace shoal::manager {
namespace {

// What the CA key is bound to when sealed (ca::Seal's context).
constexpr std::string_view kCaKeyContext = "shoal-ca-key";

ca::Role CaRole(v1::NodeSpec::Role r) {
  return r == v1::NodeSpec::ROLE_MANAGER ? ca::Role::kManager : ca::Role::kWorker;
}

const v1::Cluster* ClusterOf(const store::State& state) {
  auto clusters = state.List(store::Kind::kCluster);
  return clusters.empty() ? nullptr : &clusters.front()->cluster();
}

grpc::Status Denied(const std::string& why) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
}

// A certificate past its end: the TLS handshake refuses new connections with
// one, but a connection opened before keeps its session.
grpc::Status Expired(const transport::Peer& peer) {
  if (NowUnix() <= peer.cert.not_after) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "the certificate of " + peer.cert.subject +
                          " has expired: renew it (nodes renew by themselves while running; "
                          "a client asks for a new one with `shoal cluster ca --issue-client`)");
}

grpc::Status NotLeader(Manager& m) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "not the leader; leader at " + m.LeaderAddress());
}

bool ValidClientName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      return false;
    }
  }
  return true;
}

// Records a node's new certificate serial, reading the node again when a
// concurrent write (a heartbeat's status, a role change) got there first.
// Loop thread.
void RecordSerial(Manager* m, const std::string& node_id, const std::string& serial, int attempts,
                  std::function<void(Status)> done) {
  const v1::Node* n = m->store().state().Get<v1::Node>(node_id);
  if (!n) return done({Code::kNotFound, "node " + node_id + " is not in this cluster"});
  v1::Mutation mut;
  mut.set_expected_version(n->meta().version());
  *mut.mutable_node() = *n;
  mut.mutable_node()->set_certificate_serial(serial);
  m->Propose({mut}, "renew-certificate", [m, node_id, serial, attempts, done](Status s, uint64_t) {
    if (s.ok() || attempts <= 1 || s.code() != Code::kFailedPrecondition) {
      return done(s);
    }
    RecordSerial(m, node_id, serial, attempts - 1, done);
  });
}

class MembershipService final : public v1::Membership::CallbackService {
 public:
  explicit MembershipService(Daemon::Impl* d) : d_(d) {}

  grpc::ServerUnaryReactor* GetRootCA(grpc::CallbackServerContext* ctx, const v1::GetRootCARequest*,
                                      v1::GetRootCAReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    bool posted = m->Post([m, r, reply] {
      const v1::Cluster* c = ClusterOf(m->store().state());
      if (!c || c->ca().root_cert().empty()) {
        return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
      }
      reply->set_root_ca(c->ca().root_cert());
      r->Finish(grpc::Status::OK);
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

  grpc::ServerUnaryReactor* Admit(grpc::CallbackServerContext* ctx, const v1::AdmitRequest* req,
                                  v1::AdmitReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (Status s = Limit(ctx, *req); !s.ok()) {
      r->Finish(Grpc(s));
      return r;
    }
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    v1::AdmitRequest request = *req;
    std::string node_id = NewId(d_->rng_);
    uint64_t raft_id = (d_->rng_() >> 1) | 1;
    Daemon::Impl* d = d_;
    bool posted = m->Post([d, m, r, reply, request, node_id, raft_id] {
      m->Read([d, m, r, reply, request, node_id, raft_id](Status s, const store::State& state) {
        if (!s.ok()) return r->Finish(Grpc(s));
        const v1::Cluster* cp = ClusterOf(state);
        if (!cp) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
        const v1::Cluster& c = *cp;
        v1::NodeSpec::Role role;
        if (ca::TokensEqual(request.token(), c.join_tokens().manager())) {
          role = v1::NodeSpec::ROLE_MANAGER;
        } else if (ca::TokensEqual(request.token(), c.join_tokens().worker())) {
          role = v1::NodeSpec::ROLE_WORKER;
        } else {
          // Nothing is recorded for a refused node.
          return r->Finish(
              Denied("invalid join token: it is not this cluster's current worker or manager token "
                     "(was it rotated? get the current one with `shoal cluster join-token`)"));
        }
        // Certificates are issued only by the leader (and recorded through it).
        if (!m->is_leader()) return r->Finish(NotLeader(*m));
        if (request.csr().empty()) {
          return r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "join request without a certificate signing request"));
        }
        auto cert = d->SignWithClusterCA(c, request.csr(), node_id, CaRole(role));
        if (!cert.ok()) return r->Finish(Grpc(cert.error()));
        auto info = ca::ParseCertificate(*cert);
        if (!info.ok()) return r->Finish(Grpc(info.error()));
        v1::Node node;
        node.mutable_meta()->set_id(node_id);
        node.mutable_spec()->set_desired_role(role);
        *node.mutable_description() = request.description();
        node.mutable_status()->set_state(v1::NodeStatus::STATE_UNKNOWN);
        node.mutable_status()->set_addr(request.advertise_addr());
        node.set_certificate_serial(info->serial);
        if (role == v1::NodeSpec::ROLE_MANAGER) {
          node.mutable_manager_status()->set_raft_id(raft_id);
          node.mutable_manager_status()->set_addr(request.advertise_addr());
        }
        v1::Mutation mut;
        *mut.mutable_node() = node;
        reply->set_node_id(node_id);
        reply->set_role(role);
        reply->set_cluster_id(c.meta().id());
        reply->set_certificate(*cert);
        reply->set_root_ca(c.ca().root_cert());
        if (role == v1::NodeSpec::ROLE_MANAGER) {
          // Over mutual TLS to the holder of a manager token: it will open
          // the sealed state (secrets, the CA key) like every manager.
          auto key = d->at_rest_->DataKeyForJoin();
          if (!key.ok()) return r->Finish(Grpc(key.error()));
          reply->set_data_key(*key);
        }
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

  grpc::ServerUnaryReactor* RenewCertificate(grpc::CallbackServerContext* ctx,
                                             const v1::RenewCertificateRequest* req,
                                             v1::CertificateReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (Status s = Limit(ctx, *req); !s.ok()) {
      r->Finish(Grpc(s));
      return r;
    }
    Manager* m = d_->manager();
    transport::Peer peer = transport::PeerOf(*ctx);
    grpc::Status ok = peer.has_cert ? Expired(peer)
                                    : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                                   "renewal needs the node's current certificate");
    if (ok.ok() && peer.cert.role == ca::Role::kClient) {
      ok = Denied("a client certificate is not renewed: issue a new one");
    }
    if (!ok.ok() || !m) {
      r->Finish(ok.ok() ? NotManager() : ok);
      return r;
    }
    Daemon::Impl* d = d_;
    std::string csr = req->csr();
    bool posted = m->Post([d, m, r, reply, peer, csr] {
      // Any manager renews (each holds the CA key), leader or not: a worker
      // just promoted is already a voter, and until it has a manager's
      // certificate it cannot take part in Raft, so in a cluster of one
      // manager there is no quorum to wait for.
      const store::State& state = m->store().state();
      const v1::Cluster* c = ClusterOf(state);
      const v1::Node* n = state.Get<v1::Node>(peer.cert.subject);
      if (!c) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
      if (!n) return r->Finish(Denied("node " + peer.cert.subject + " is not in this cluster"));
      // The role the cluster records now: a promoted or demoted node's new
      // certificate follows its new role.
      auto cert =
          d->SignWithClusterCA(*c, csr, peer.cert.subject, CaRole(n->spec().desired_role()));
      if (!cert.ok()) return r->Finish(Grpc(cert.error()));
      auto info = ca::ParseCertificate(*cert);
      if (!info.ok()) return r->Finish(Grpc(info.error()));
      reply->set_certificate(*cert);
      reply->set_root_ca(c->ca().root_cert());
      if (n->spec().desired_role() == v1::NodeSpec::ROLE_MANAGER) {
        auto key = d->at_rest_->DataKeyForJoin();
        if (key.ok()) reply->set_data_key(*key);
      }
      r->Finish(grpc::Status::OK);
      // Recorded when Raft can commit it (not waited for: see above).
      std::string subject = peer.cert.subject;
      RecordSerial(m, subject, info->serial, 10, [subject](Status s) {
        if (s.ok()) return;
        std::fprintf(stderr, "shoal daemon: the renewed certificate of %s is not recorded: %s\n",
                     subject.c_str(), s.ToString().c_str());
      });
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

  grpc::ServerUnaryReactor* IssueClientCertificate(grpc::CallbackServerContext* ctx,
                                                   const v1::IssueClientRequest* req,
                                                   v1::CertificateReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    if (!ValidClientName(req->name())) {
      r->Finish(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "client name \"" + req->name() + "\": use 1-64 letters, digits, '-', '_' or '.'"));
      return r;
    }
    transport::Peer peer = transport::PeerOf(*ctx);
    Daemon::Impl* d = d_;
    v1::IssueClientRequest request = *req;
    bool posted = m->Post([d, m, r, reply, peer, request] {
      m->Read([d, m, r, reply, peer, request](Status s, const store::State& state) {
        if (!s.ok()) return r->Finish(Grpc(s));
        if (grpc::Status a = AuthorizeControl(peer, state); !a.ok()) return r->Finish(a);
        const v1::Cluster* cp = ClusterOf(state);
        if (!cp) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
        v1::Cluster c = *cp;
        std::string subject = "client:" + request.name();
        // One certificate per client name: a new one revokes the old.
        auto* clients = c.mutable_ca()->mutable_clients();
        bool found = false;
        for (int i = clients->size() - 1; i >= 0; --i) {
          if (clients->Get(i).subject() != subject) continue;
          clients->DeleteSubrange(i, 1);
          found = true;
        }
        if (request.revoke()) {
          if (!found) {
            return r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                          "no client certificate named " + request.name()));
          }
          v1::Mutation mut;
          mut.set_expected_version(c.meta().version());
          *mut.mutable_cluster() = c;
          return m->Propose({mut}, "revoke-client",
                            [r](Status s, uint64_t) { r->Finish(Grpc(s)); });
        }
        auto cert = d->SignWithClusterCA(c, request.csr(), subject, ca::Role::kClient);
        if (!cert.ok()) return r->Finish(Grpc(cert.error()));
        auto info = ca::ParseCertificate(*cert);
        if (!info.ok()) return r->Finish(Grpc(info.error()));
        v1::IssuedCertificate* ic = clients->Add();
        ic->set_subject(subject);
        ic->set_serial(info->serial);
        ic->set_not_after_ns(info->not_after * 1'000'000'000);
        v1::Mutation mut;
        mut.set_expected_version(c.meta().version());
        *mut.mutable_cluster() = c;
        reply->set_certificate(*cert);
        reply->set_root_ca(c.ca().root_cert());
        m->Propose({mut}, "issue-client", [r](Status s, uint64_t) { r->Finish(Grpc(s)); });
      });
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

 private:
  // Before anything is signed or proposed: the join rate of the caller's
  // address, and the size of a request that carries at most a CSR.
  Status Limit(grpc::CallbackServerContext* ctx, const google::protobuf::Message& req) {
    if (d_->join_limiter_) {
      if (Status s = d_->join_limiter_->Admit(PeerAddress(ctx->peer())); !s.ok()) return s;
    }
    return CheckMessageSize(req, kMaxJoinRequestBytes, "a join request");
  }

  Daemon::Impl* d_;
};

}  // namespace

std::unique_ptr<v1::Membership::CallbackService> MakeMembershipService(Daemon::Impl* d) {
  return std::make_unique<MembershipService>(d);
}

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

Result<std::string> SealCaKey(AtRest& at_rest, const std::string& key_pem) {
  return at_rest.Seal(key_pem, kCaKeyContext);
}

Result<std::string> UnsealCaKey(AtRest& at_rest, const std::string& sealed) {
  return at_rest.Unseal(sealed, kCaKeyContext);
}

std::string NewJoinToken(const v1::ClusterCA& c, v1::NodeSpec::Role role,
                         const std::string& secret) {
  return ca::FormatToken({ca::Digest(c.root_cert()), CaRole(role), secret});
}

grpc::Status AuthorizeControl(const transport::Peer& peer, const store::State& state) {
  if (peer.local) return grpc::Status::OK;
  if (!peer.has_cert) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client certificate: the cluster port needs one (issue one with "
                        "`shoal cluster ca --issue-client NAME` on a manager, then use "
                        "`shoal --host tcp://HOST:PORT --tls-dir DIR`)");
  }
  if (grpc::Status s = Expired(peer); !s.ok()) return s;
  const std::string& who = peer.cert.subject;
  switch (peer.cert.role) {
    case ca::Role::kWorker:
      return Denied("node " + who +
                    " holds a worker certificate: only managers and client certificates may "
                    "use the control API");
    case ca::Role::kManager: {
      const v1::Node* n = state.Get<v1::Node>(who);
      if (!n) return Denied("node " + who + " is not in this cluster (removed?)");
      if (n->spec().desired_role() != v1::NodeSpec::ROLE_MANAGER) {
        return Denied("node " + who + " is no longer a manager of this cluster");
      }
      return grpc::Status::OK;
    }
    case ca::Role::kClient: {
      const v1::Cluster* c = ClusterOf(state);
      if (c) {
        for (const auto& ic : c->ca().clients()) {
          if (ic.subject() == who && ic.serial() == peer.cert.serial) return grpc::Status::OK;
        }
      }
      return Denied("client certificate " + who +
                    " has been revoked or replaced: issue a new one with `shoal cluster ca "
                    "--issue-client`");
    }
  }
  return Denied("unknown certificate role");
}

// Node-to-manager and manager-to-manager connections live long: their
// certificates' dates are checked at the handshake, and the server closes
// every connection after a while (ServerConnectionAge) so that a renewed
// certificate is presented and an expired one stops working.
grpc::Status AuthorizeNode(const transport::Peer& peer, const std::string& node_id) {
  if (peer.local) return grpc::Status::OK;
  if (!peer.has_cert || peer.cert.role == ca::Role::kClient) {
    return Denied("the dispatcher needs the node's own certificate");
  }
  if (peer.cert.subject != node_id) {
    return Denied("the certificate of node " + peer.cert.subject + " may not act for node " +
                  node_id);
  }
  return grpc::Status::OK;
}

grpc::Status AuthorizeRaft(const transport::Peer& peer) {
  if (!peer.has_cert || peer.cert.role != ca::Role::kManager) {
    return Denied("only managers may send Raft messages");
  }
  return grpc::Status::OK;
}

int64_t CertValiditySeconds() {
  const char* env = std::getenv("SHOAL_CERT_VALIDITY");
  if (env && *env) {
    char* end = nullptr;
    long long v = std::strtoll(env, &end, 10);
    if (end && *end == '\0' && v >= 10) return v;
  }
  return ca::kNodeValiditySeconds;
}

std::chrono::milliseconds ServerConnectionAge() {
  int64_t s = std::clamp<int64_t>(CertValiditySeconds() / 10, 1, 3600);
  return std::chrono::milliseconds(s * 1000);
}

Result<std::string> Daemon::Impl::SignWithClusterCA(const v1::Cluster& c, const std::string& csr,
                                                    const std::string& subject, ca::Role role) {
  std::lock_guard<std::mutex> lock(ca_mu_);
  if (ca_sealed_.empty() || ca_sealed_ != c.ca().sealed_key()) {
    auto key = UnsealCaKey(*at_rest_, c.ca().sealed_key());
    if (!key.ok()) return key.error();
    ca_.key_pem = std::move(key).value();
    ca_sealed_ = c.ca().sealed_key();
  }
  ca_.cert_pem = c.ca().root_cert();
  ca::IssueRequest ir;
  ir.csr_pem = csr;
  ir.subject = subject;
  ir.role = role;
  ir.cluster_id = c.meta().id();
  ir.now_unix = NowUnix();
  if (c.ca().cert_validity_ns() > 0)
    ir.validity_seconds = c.ca().cert_validity_ns() / 1'000'000'000;
  return ca::Sign(ca_, ir);
}

transport::ClientTls Daemon::Impl::tls() {
  std::lock_guard<std::mutex> lock(tls_mu_);
  if (!tls_.creds) tls_ = transport::WatchedClientTls(tls_files_);
  return tls_;
}

Status Daemon::Impl::InstallCertificate(const std::string& root_pem, const std::string& key_pem,
                                        const std::string& cert_pem) {
  auto info = ca::ParseCertificate(cert_pem);
  if (!info.ok()) return info.error();
  if (Status s = transport::WriteTlsFiles(tls_files_, root_pem, key_pem, cert_pem); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(tls_mu_);
  double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  renew_at_ = ca::RenewAt(info->not_before, info->not_after, u);
  renew_retry_at_ = 0;
  cert_role_ = info->role;
  return Status::Ok();
}

Status Daemon::Impl::RenewCertificate(std::string* data_key) {
  auto key = ca::NewPrivateKey();
  if (!key.ok()) return key.error();
  auto csr = ca::CreateCsr(*key);
  if (!csr.ok()) return csr.error();
  std::vector<std::string> targets;
  if (dispatcher_client_) targets = dispatcher_client_->managers();
  // Not this node itself: a worker just promoted has no manager's certificate yet.
  std::erase(targets, identity_.advertise_addr());
  if (targets.empty()) {
    for (const auto& m : identity_.managers()) targets.push_back(m.addr());
    if (identity_.role() == v1::NodeSpec::ROLE_MANAGER) {
      targets.push_back(identity_.advertise_addr());
    }
  }
  v1::RenewCertificateRequest req;
  req.set_csr(*csr);
  grpc::Status s(grpc::StatusCode::UNAVAILABLE, "no manager known");
  v1::CertificateReply out;
  std::string via;
  for (size_t i = 0; i < targets.size() && i < 8; ++i) {
    via = targets[i];
    auto stub = v1::Membership::NewStub(transport::Dial(via, tls()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status got = stub->RenewCertificate(&ctx, req, &out);
    // Keep a manager's answer over a failure to reach one.
    if (got.ok() || got.error_code() != grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      s = got;
    }
    if (s.ok()) break;
    auto at = got.error_message().find("leader at ");
    if (got.error_code() == grpc::StatusCode::FAILED_PRECONDITION && at != std::string::npos &&
        at + 10 < got.error_message().size()) {
      targets.push_back(got.error_message().substr(at + 10));
    }
  }
  if (!s.ok())
    return {Code::kUnavailable, "certificate renewal via " + via + ": " + s.error_message()};
  if (!ca::KeyMatches(*key, out.certificate())) {
    return Internal("renewal via " + via + ": the certificate is not for our key");
  }
  if (Status v = ca::Verify(out.certificate(), out.root_ca(), NowUnix()); !v.ok()) return v;
  if (data_key) *data_key = out.data_key();
  return InstallCertificate(out.root_ca(), *key, out.certificate());
}

void Daemon::Impl::WaitServerCertificate(const std::string& cert_pem,
                                         std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string addr = identity_.advertise_addr();
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ChannelArguments args;
    // A fresh connection each time, not one shared with earlier probes.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub =
        v1::Membership::NewStub(transport::Dial(addr, transport::UnverifiedClientTls(), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    v1::GetRootCAReply out;
    (void)stub->GetRootCA(&ctx, v1::GetRootCARequest(), &out);
    if (auto auth = ctx.auth_context()) {
      auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
      if (!pems.empty() && std::string(pems.front().data(), pems.front().size()) == cert_pem) {
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace shoal::manager
