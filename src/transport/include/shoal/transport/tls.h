#pragma once

// Mutual TLS for every cluster connection (issue 8, docs/security.md). A node
// keeps its key, its certificate and the roots it trusts as files under
// <data-dir>/certs/; servers and channels built from those files reload them
// when they change (gRPC's file watcher, once a second), so a renewed
// certificate or a new root is picked up without a restart. Servers request a
// client certificate and verify it when one is sent: calls without one reach
// only the handlers that allow that (Membership.GetRootCA and Admit); every
// other handler asks PeerOf() who is calling and decides by role.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "shoal/ca/ca.h"
#include "shoal/common/status.h"

namespace shoal::transport {

// The DNS name every manager certificate carries, which channels to managers
// check the server's certificate against (a worker cannot pose as a manager).
inline constexpr const char* kManagerName = "shoal-manager";

struct TlsFiles {
  std::string root;  // trusted roots, PEM
  std::string key;   // this node's private key, PEM (0600)
  std::string cert;  // this node's certificate, PEM
};

// <dir>/ca.pem, <dir>/key.pem, <dir>/cert.pem: a node's certs dir and a
// client's TLS dir (`shoal --tls-dir`) look the same.
TlsFiles TlsFilesIn(const std::string& dir);

// Writes the three files (key 0600, the directory 0700), each through a
// temporary file renamed into place, the key first. kIo naming the path.
Status WriteTlsFiles(const TlsFiles& where, const std::string& root_pem, const std::string& key_pem,
                     const std::string& cert_pem);
// Reads them back; kNotFound when the certificate is missing.
Status ReadTlsFiles(const TlsFiles& where, std::string* root_pem, std::string* key_pem,
                    std::string* cert_pem);

// How a client dials managers: credentials, and the name the server's
// certificate must carry. There is no plaintext: `creds` null dials TLS
// without a client certificate, which servers refuse for all but a join.
struct ClientTls {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  std::string server_name = kManagerName;
};

// Credentials from the files, reloaded when they change.
ClientTls WatchedClientTls(const TlsFiles& files);
// Credentials from PEM text (a remote CLI, a join in progress). `key_pem` and
// `cert_pem` empty: no client certificate (a join).
ClientTls StaticClientTls(const std::string& root_pem, const std::string& key_pem,
                          const std::string& cert_pem);
// TLS that does not check the server at all: only for Membership.GetRootCA,
// whose answer the caller checks against the digest in its join token.
ClientTls UnverifiedClientTls();

// A channel to `addr` with `tls` (and `args`, to which the TLS name is added).
std::shared_ptr<grpc::Channel> Dial(const std::string& addr, const ClientTls& tls,
                                    grpc::ChannelArguments args = {});

// Server credentials from the files (reloaded when they change): a client
// certificate is requested, and verified against the roots when sent.
std::shared_ptr<grpc::ServerCredentials> WatchedServerCredentials(const TlsFiles& files);

// Who is calling, from the call's TLS session.
struct Peer {
  bool local = false;  // over the unix socket: the node's admin (file permissions)
  bool has_cert = false;
  ca::CertInfo cert;  // when has_cert
};
// Thread-safe; parses the peer certificate (a small cache keeps repeated
// calls on one connection cheap).
Peer PeerOf(const grpc::ServerContextBase& ctx);

}  // namespace shoal::transport
