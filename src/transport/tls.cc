#include "shoal/transport/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace shoal::transport {
namespace {

namespace fs = std::filesystem;

// gRPC's file watcher checks the files this often (its minimum).
constexpr unsigned kRefreshSeconds = 1;

Status WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    out.flush();
    if (!out) return IoError("cannot write " + tmp);
  }
  if (chmod(tmp.c_str(), mode) != 0) return IoError("cannot chmod " + tmp);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return IoError("cannot write " + path + ": " + ec.message());
  return Status::Ok();
}

Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return Status::Ok();
}

}  // namespace

TlsFiles TlsFilesIn(const std::string& dir) {
  return {dir + "/ca.pem", dir + "/key.pem", dir + "/cert.pem"};
}

Status WriteTlsFiles(const TlsFiles& where, const std::string& root_pem, const std::string& key_pem,
                     const std::string& cert_pem) {
  std::error_code ec;
  fs::path dir = fs::path(where.key).parent_path();
  fs::create_directories(dir, ec);
  if (ec) return IoError("cannot create " + dir.string() + ": " + ec.message());
  chmod(dir.c_str(), 0700);
  // The key goes first: a watcher reading between the two renames sees a
  // key that does not match the old certificate, refuses the pair, and
  // picks up the matching one at its next look.
  if (Status s = WriteFile(where.root, root_pem, 0644); !s.ok()) return s;
  if (Status s = WriteFile(where.key, key_pem, 0600); !s.ok()) return s;
  return WriteFile(where.cert, cert_pem, 0644);
}

Status ReadTlsFiles(const TlsFiles& where, std::string* root_pem, std::string* key_pem,
                    std::string* cert_pem) {
  if (Status s = ReadFile(where.cert, cert_pem); !s.ok()) return s;
  if (Status s = ReadFile(where.key, key_pem); !s.ok()) return s;
  return ReadFile(where.root, root_pem);
}

ClientTls WatchedClientTls(const TlsFiles& files) {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.root, kRefreshSeconds);
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(provider);
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  o.set_verify_server_certs(true);
  o.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  // Channels name the role (kManagerName), not the host they dial.
  o.set_check_call_host(false);
  return {grpc::experimental::TlsCredentials(o), kManagerName};
}

ClientTls StaticClientTls(const std::string& root_pem, const std::string& key_pem,
                          const std::string& cert_pem) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = root_pem;
  o.pem_private_key = key_pem;
  o.pem_cert_chain = cert_pem;
  return {grpc::SslCredentials(o), kManagerName};
}

ClientTls UnverifiedClientTls() {
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);
  o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  o.set_check_call_host(false);
  // The name is not checked (no-op verifier); naming the role keeps gRPC
  // from logging a name mismatch against the dialled address.
  return {grpc::experimental::TlsCredentials(o), kManagerName};
}

std::shared_ptr<grpc::Channel> Dial(const std::string& addr, const ClientTls& tls,
                                    grpc::ChannelArguments args) {
  // Never plaintext: without credentials, TLS without a client certificate
  // (servers then answer only what needs none).
  if (!tls.creds) return Dial(addr, UnverifiedClientTls(), std::move(args));
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(addr, tls.creds, args);
}

std::shared_ptr<grpc::ServerCredentials> WatchedServerCredentials(const TlsFiles& files) {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.root, kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions o(provider);
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  // Requested, and verified when sent: a joining node has none yet, and the
  // handlers refuse certificate-less callers except where a join needs it.
  o.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(o);
}

Peer PeerOf(const grpc::ServerContextBase& ctx) {
  Peer p;
  if (ctx.peer().rfind("unix:", 0) == 0) {
    p.local = true;
    return p;
  }
  auto auth = ctx.auth_context();
  if (!auth) return p;
  auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return p;
  std::string pem(pems.front().data(), pems.front().size());
  // Every call on a connection carries the same certificate: parse it once.
  static std::mutex mu;
  static std::unordered_map<std::string, ca::CertInfo> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(pem); it != cache.end()) {
      p.has_cert = true;
      p.cert = it->second;
      return p;
    }
  }
  auto info = ca::ParseCertificate(pem);
  if (!info.ok()) return p;
  p.has_cert = true;
  p.cert = *info;
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() > 4096) cache.clear();
  cache.emplace(std::move(pem), *info);
  return p;
}

}  // namespace shoal::transport
