// Who may call what (issue 8, docs/security.md "What each role may do"):
// the rules every service applies to the caller's certificate, checked
// against the current state on each call, so that a removed or demoted node
// is refused at once.

#include <ctime>

#include "daemon_internal.h"

namespace shoal::manager {
namespace {

grpc::Status Denied(const std::string& why) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
}

}  // namespace

// A certificate past its end: the TLS handshake refuses new connections with
// one, but a connection opened before keeps its session.
grpc::Status ExpiredCertificate(const transport::Peer& peer) {
  if (NowUnix() <= peer.cert.not_after) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "the certificate of " + peer.cert.subject +
                          " has expired: renew it (nodes renew by themselves while running; "
                          "a client asks for a new one with `shoal cluster ca --issue-client`)");
}

grpc::Status AuthorizeControl(const transport::Peer& peer, const store::State& state) {
  if (peer.local) return grpc::Status::OK;
  if (!peer.has_cert) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client certificate: the cluster port needs one (issue one with "
                        "`shoal cluster ca --issue-client NAME` on a manager, then use "
                        "`shoal --host tcp://HOST:PORT --tls-dir DIR`)");
  }
  if (grpc::Status s = ExpiredCertificate(peer); !s.ok()) return s;
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
      for (const v1::Mutation* m : state.List(store::Kind::kCluster)) {
        for (const auto& ic : m->cluster().ca().clients()) {
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

}  // namespace shoal::manager
