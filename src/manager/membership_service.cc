// Trust (issue 8, docs/security.md): the Membership service (admission with
// a token and a CSR, the root for a joining node, renewals, client
// certificates, root rotation) and the CA signing on a manager. The rules
// every other service applies are in authorize.cc. The node's own certificate files
// and their renewal are in node_certificates.cc.

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

// What nodes trust: the root, and during a rotation the new root too.
std::string TrustBundle(const v1::ClusterCA& c) {
  return c.has_rotation() ? c.root_cert() + c.rotation().new_root_cert() : c.root_cert();
}

// The root whose key issues certificates now.
const std::string& IssuingRoot(const v1::ClusterCA& c) {
  return c.has_rotation() ? c.rotation().new_root_cert() : c.root_cert();
}

// How far a root rotation has come: nodes whose recorded certificate the new
// root issued, out of every node in the state (a node that is down counts:
// `node rm` it, or start it so that it renews).
void FillRotationStatus(const store::State& state, v1::RootRotationStatus* out) {
  const v1::Cluster* c = ClusterOf(state);
  if (!c) return;
  out->set_root_digest(ca::Digest(c->ca().root_cert()));
  out->set_root_cert(c->ca().root_cert());
  if (!c->ca().has_rotation()) return;
  const v1::RootRotation& rot = c->ca().rotation();
  std::string digest = ca::Digest(rot.new_root_cert());
  out->set_in_progress(true);
  out->set_new_root_digest(digest);
  out->set_started_ns(rot.started_ns());
  for (const v1::Mutation* n : state.List(store::Kind::kNode)) {
    out->set_nodes_total(out->nodes_total() + 1);
    if (n->node().certificate_issuer() == digest) {
      out->set_nodes_done(out->nodes_done() + 1);
    } else {
      out->add_pending_nodes(n->node().meta().id());
    }
  }
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
void RecordSerial(Manager* m, const std::string& node_id, const std::string& serial,
                  const std::string& issuer, int attempts, std::function<void(Status)> done) {
  const v1::Node* n = m->store().state().Get<v1::Node>(node_id);
  if (!n) return done({Code::kNotFound, "node " + node_id + " is not in this cluster"});
  v1::Mutation mut;
  mut.set_expected_version(n->meta().version());
  *mut.mutable_node() = *n;
  mut.mutable_node()->set_certificate_serial(serial);
  mut.mutable_node()->set_certificate_issuer(issuer);
  m->Propose({mut}, "renew-certificate",
             [m, node_id, serial, issuer, attempts, done](Status s, uint64_t) {
               if (s.ok() || attempts <= 1 || s.code() != Code::kFailedPrecondition) {
                 return done(s);
               }
               RecordSerial(m, node_id, serial, issuer, attempts - 1, done);
             });
}

// The cluster object with a root rotation started: a fresh root (key sealed
// like the current one) cross-signed by the current root's key. A rotation in
// progress is replaced: its nodes renew again, and until then the chain they
// present (their leaf and the replaced cross-signed root) still verifies
// against the current root, which stays trusted. Loop thread of a manager.
Result<v1::Cluster> StartRootRotation(Daemon::Impl& d, const v1::Cluster& c) {
  auto old_key = UnsealCaKey(*d.at_rest_, c.ca().sealed_key());
  if (!old_key.ok()) return old_key.error();
  int64_t now = NowUnix();
  uint64_t n = c.ca().rotations() + 1;
  auto fresh =
      ca::CreateRoot(c.meta().id(), now, ca::kRootValiditySeconds, "r" + std::to_string(n));
  if (!fresh.ok()) return fresh.error();
  auto cross = ca::CrossSign({c.ca().root_cert(), *old_key, ""}, fresh->cert_pem, now);
  if (!cross.ok()) return cross.error();
  auto sealed = SealCaKey(*d.at_rest_, fresh->key_pem);
  if (!sealed.ok()) return sealed.error();
  v1::Cluster next = c;
  v1::RootRotation* rot = next.mutable_ca()->mutable_rotation();
  rot->set_new_root_cert(fresh->cert_pem);
  rot->set_new_sealed_key(*sealed);
  rot->set_cross_signed_cert(*cross);
  rot->set_started_ns(now * 1'000'000'000);
  next.mutable_ca()->set_rotations(n);
  return next;
}

// The join token `token` pinning `root_pem` instead, its secret kept (as
// Swarm does at the end of a rotation). The token unchanged if malformed.
std::string Repin(const std::string& token, const std::string& root_pem) {
  auto t = ca::ParseToken(token);
  if (!t.ok()) return token;
  t->ca_digest = ca::Digest(root_pem);
  return ca::FormatToken(*t);
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
      reply->set_trust_bundle(TrustBundle(c->ca()));
      reply->set_issuing_root(IssuingRoot(c->ca()));
      r->Finish(grpc::Status::OK);
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

  grpc::ServerUnaryReactor* RotateRoot(grpc::CallbackServerContext* ctx,
                                       const v1::RotateRootRequest* req,
                                       v1::RootRotationStatus* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return r;
    }
    transport::Peer peer = transport::PeerOf(*ctx);
    Daemon::Impl* d = d_;
    bool rotate = req->rotate();
    bool posted = m->Post([d, m, r, reply, peer, rotate] {
      m->Read([d, m, r, reply, peer, rotate](Status s, const store::State& state) {
        if (!s.ok()) return r->Finish(Grpc(s));
        if (grpc::Status a = AuthorizeControl(peer, state); !a.ok()) return r->Finish(a);
        const v1::Cluster* cp = ClusterOf(state);
        if (!cp || cp->ca().root_cert().empty()) {
          return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
        }
        if (!rotate) {
          FillRotationStatus(state, reply);
          return r->Finish(grpc::Status::OK);
        }
        auto next = StartRootRotation(*d, *cp);
        if (!next.ok()) return r->Finish(Grpc(next.error()));
        v1::Mutation mut;
        mut.set_expected_version(cp->meta().version());
        *mut.mutable_cluster() = std::move(next).value();
        m->Propose({mut}, "rotate-root", [m, r, reply](Status s, uint64_t) {
          if (s.ok()) FillRotationStatus(m->store().state(), reply);
          r->Finish(Grpc(s));
        });
      });
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
    Daemon::Impl* d = d_;
    bool posted = m->Post([d, m, r, reply, request] {
      // Drawn on the loop, like every other use of rng_: gRPC runs calls on
      // several threads, and two joins drawing at once from the unguarded
      // generator were handed the same node id ("node ... already exists").
      std::string node_id = NewId(d->rng_);
      uint64_t raft_id = (d->rng_() >> 1) | 1;
      m->Read([d, m, r, reply, request, node_id, raft_id](Status s, const store::State& state) {
        if (!s.ok()) return r->Finish(Grpc(s));
        const v1::Cluster* cp = ClusterOf(state);
        if (!cp) return r->Finish(Grpc({Code::kUnavailable, "cluster not set up"}));
        const v1::Cluster& c = *cp;
        v1::NodeSpec::Role role;
        if (request.token().empty()) {
          return r->Finish(grpc::Status(
              grpc::StatusCode::UNAUTHENTICATED,
              "join request without a join token: get one with `shoal cluster join-token "
              "worker` (or `manager`) on a manager"));
        }
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
        node.set_certificate_issuer(ca::Digest(IssuingRoot(c.ca())));
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
        reply->set_root_ca(TrustBundle(c.ca()));
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
    grpc::Status ok = peer.has_cert ? ExpiredCertificate(peer)
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
      reply->set_root_ca(TrustBundle(c->ca()));
      if (n->spec().desired_role() == v1::NodeSpec::ROLE_MANAGER) {
        auto key = d->at_rest_->DataKeyForJoin();
        if (key.ok()) reply->set_data_key(*key);
      }
      r->Finish(grpc::Status::OK);
      // Recorded when Raft can commit it (not waited for: see above).
      std::string subject = peer.cert.subject;
      std::string issuer = ca::Digest(IssuingRoot(c->ca()));
      RecordSerial(m, subject, info->serial, issuer, 10, [subject](Status s) {
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
        reply->set_root_ca(TrustBundle(c.ca()));
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
  // During a rotation the new key signs, and the cross-signed root goes
  // with every certificate.
  const v1::ClusterCA& cc = c.ca();
  const std::string& sealed = cc.has_rotation() ? cc.rotation().new_sealed_key() : cc.sealed_key();
  std::lock_guard<std::mutex> lock(ca_mu_);
  if (ca_sealed_.empty() || ca_sealed_ != sealed) {
    auto key = UnsealCaKey(*at_rest_, sealed);
    if (!key.ok()) return key.error();
    ca_.key_pem = std::move(key).value();
    ca_sealed_ = sealed;
  }
  ca_.cert_pem = IssuingRoot(cc);
  ca_.chain_pem = cc.has_rotation() ? cc.rotation().cross_signed_cert() : "";
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

void Daemon::Impl::MaybeFinishRootRotation() {
  Manager* m = manager();
  if (!m) return;
  m->Post([m] {
    if (!m->is_leader()) return;
    const store::State& state = m->store().state();
    const v1::Cluster* c = ClusterOf(state);
    if (!c || !c->ca().has_rotation()) return;
    v1::RootRotationStatus st;
    FillRotationStatus(state, &st);
    if (st.nodes_done() < st.nodes_total()) return;
    // Every node holds a certificate from the new root: it becomes the root,
    // the old one leaves the bundle (nodes see it at their next check), and
    // the join tokens pin the new root with their secrets unchanged.
    v1::Cluster next = *c;
    v1::ClusterCA* cc = next.mutable_ca();
    cc->set_root_cert(c->ca().rotation().new_root_cert());
    cc->set_sealed_key(c->ca().rotation().new_sealed_key());
    cc->clear_rotation();
    next.mutable_join_tokens()->set_worker(Repin(c->join_tokens().worker(), cc->root_cert()));
    next.mutable_join_tokens()->set_manager(Repin(c->join_tokens().manager(), cc->root_cert()));
    v1::Mutation mut;
    mut.set_expected_version(c->meta().version());
    *mut.mutable_cluster() = std::move(next);
    m->Propose({mut}, "finish-root-rotation", [](Status s, uint64_t) {
      // A concurrent change of the cluster (or this same proposal made on the
      // previous tick) fails the version check; the next tick looks again.
      if (s.ok()) {
        std::fprintf(stderr, "shoal daemon: root rotation complete\n");
      } else if (s.code() != Code::kFailedPrecondition) {
        std::fprintf(stderr, "shoal daemon: finishing the root rotation: %s\n",
                     s.ToString().c_str());
      }
    });
  });
}

}  // namespace shoal::manager
