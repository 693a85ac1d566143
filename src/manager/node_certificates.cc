// A node's own certificate (issue 8, docs/security.md): its TLS files,
// renewal through a manager, an expired certificate's way out, and following
// a root rotation. Watchdog thread unless said otherwise.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "daemon_internal.h"

namespace shoal::manager {
namespace {

// The managers a node asks for a certificate or the trust bundle: those its
// agent knows, else those of its identity (and itself, when a manager).
std::vector<std::string> ManagerTargets(Daemon::Impl& d) {
  std::vector<std::string> targets;
  if (d.dispatcher_client_) targets = d.dispatcher_client_->managers();
  // Not this node itself: a worker just promoted has no manager's certificate yet.
  std::erase(targets, d.identity_.advertise_addr());
  if (targets.empty()) {
    for (const auto& m : d.identity_.managers()) targets.push_back(m.addr());
    if (d.identity_.role() == v1::NodeSpec::ROLE_MANAGER) {
      targets.push_back(d.identity_.advertise_addr());
    }
  }
  return targets;
}

// How often a node asks a manager whether the cluster's roots changed (a
// root rotation): one small unary call per node.
constexpr int64_t kRootCheckPeriodSeconds = 5;

std::string UtcTime(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

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
  // An expired certificate opens no connection, so it cannot authorize its
  // own renewal: as in Swarm, the node joins again with a token.
  if (std::string expired = ExpiredCertificateMessage(tls_files_, NowUnix()); !expired.empty()) {
    return {Code::kFailedPrecondition, expired};
  }
  auto key = ca::NewPrivateKey();
  if (!key.ok()) return key.error();
  auto csr = ca::CreateCsr(*key);
  if (!csr.ok()) return csr.error();
  std::vector<std::string> targets = ManagerTargets(*this);
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

std::string ExpiredCertificateMessage(const transport::TlsFiles& files, int64_t now_unix) {
  std::string root, key, cert;
  if (!transport::ReadTlsFiles(files, &root, &key, &cert).ok()) return "";
  auto info = ca::ParseCertificate(cert);
  if (!info.ok() || info->subject == "unjoined" || now_unix < info->not_after) return "";
  return "this node's certificate expired at " + UtcTime(info->not_after) +
         "; an expired certificate cannot renew itself: rejoin with `shoal cluster leave "
         "--force` on this node, then `shoal cluster join --token TOKEN MANAGER` (and `shoal "
         "node rm " +
         info->subject + "` on a manager for the old entry)";
}

void Daemon::Impl::CheckRootRotation() {
  int64_t now = NowUnix();
  {
    std::lock_guard<std::mutex> lock(tls_mu_);
    if (now < root_check_at_) return;
    root_check_at_ = now + kRootCheckPeriodSeconds;
  }
  v1::GetRootCAReply out;
  bool got = false;
  std::vector<std::string> targets = ManagerTargets(*this);
  for (size_t i = 0; i < targets.size() && i < 3 && !got; ++i) {
    auto stub = v1::Membership::NewStub(transport::Dial(targets[i], tls()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    got = stub->GetRootCA(&ctx, v1::GetRootCARequest(), &out).ok();
  }
  // A manager from before rotations existed answers without a bundle.
  if (!got || out.trust_bundle().empty() || out.issuing_root().empty()) return;
  std::string root, key, cert;
  if (!transport::ReadTlsFiles(tls_files_, &root, &key, &cert).ok()) return;
  std::vector<std::string> chain = ca::SplitCertificates(cert);
  if (chain.empty()) return;
  if (!ca::Verify(chain.front(), out.issuing_root(), now).ok()) {
    // A root rotation: a certificate from the new key at once.
    if (Status s = RenewCertificate(); !s.ok()) {
      std::fprintf(stderr, "shoal daemon: renewal for the root rotation failed: %s\n",
                   s.ToString().c_str());
      std::lock_guard<std::mutex> lock(tls_mu_);
      root_check_at_ = now + 1;
    }
    return;
  }
  // The rotation is over: trust the new root only, and send the leaf alone
  // (the cross-signed root was for peers that trusted only the old one).
  std::string leaf_only =
      ca::SplitCertificates(out.trust_bundle()).size() == 1 ? chain.front() : cert;
  if (root == out.trust_bundle() && leaf_only == cert) return;
  if (!ca::Verify(leaf_only, out.trust_bundle(), now).ok()) return;
  if (Status s = transport::WriteTlsFiles(tls_files_, out.trust_bundle(), key, leaf_only);
      !s.ok()) {
    std::fprintf(stderr, "shoal daemon: updating the trusted roots: %s\n", s.ToString().c_str());
  }
}

void Daemon::Impl::WaitServerCertificate(const std::string& cert_pem,
                                         std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string addr = identity_.advertise_addr();
  // The server presents the leaf (a rotation's chain has the cross-signed root after it).
  std::vector<std::string> chain = ca::SplitCertificates(cert_pem);
  std::string leaf = chain.empty() ? cert_pem : chain.front();
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
      if (!pems.empty() && std::string(pems.front().data(), pems.front().size()) == leaf) {
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace shoal::manager
