#pragma once

// How the CLI reaches a daemon: --host, else $SHOAL_HOST, else the local
// daemon's unix socket in the default data dir.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "shoal/v1/cluster.grpc.pb.h"
#include "shoal/v1/control.grpc.pb.h"

namespace shoal::cli {

// /var/lib/shoal as root, else ~/.shoal.
std::string DefaultDataDir();
// "unix://<default data dir>/shoal.sock".
std::string DefaultHost();

struct Client {
  std::string host;
  std::unique_ptr<v1::Control::Stub> stub;
  std::unique_ptr<v1::Events::Stub> events;
  std::unique_ptr<v1::Membership::Stub> membership;
  std::string tls_note;  // which certificate a TCP connection presents, for errors
};

// How the CLI proves itself on a manager's TCP port (mutual TLS). Files
// given one by one win over --tls-dir (ca.pem, cert.pem, key.pem, as
// `shoal cluster ca --issue-client` writes them), which wins over
// $SHOAL_TLS_DIR, which wins over the certificates of the node whose local
// socket this CLI used before (a redirect to the leader).
struct TlsFlags {
  std::string dir;
  std::string ca;
  std::string cert;
  std::string key;
};
// The process-wide flags, filled by main before any command runs.
TlsFlags& GlobalTlsFlags();

// `host` "" picks $SHOAL_HOST or DefaultHost(). "unix://path" is the local
// admin socket (no TLS: file permissions guard it); "tcp://h:p" and "h:p"
// dial TCP with mutual TLS (GlobalTlsFlags()).
Client Connect(const std::string& host);

// A deadline for one call.
std::unique_ptr<grpc::ClientContext> Context(int seconds = 30);

// Prints "error: <message>" (with a hint when the daemon is not running) and
// returns 1.
int Fail(const Client& c, const grpc::Status& s);

// A write refused because an object changed between the manager's read and
// its commit (optimistic concurrency; the orchestrator writes a service's
// rollout status too). Nothing was applied: a declarative request can be
// sent again as is.
bool IsConflict(const grpc::Status& s);

// "3 seconds ago" style ages, "running" style states.
std::string Ago(int64_t then_ns);
std::string StateName(int state);

}  // namespace shoal::cli
