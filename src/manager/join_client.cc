#include "shoal/manager/join_client.h"

#include <chrono>
#include <ctime>

#include "shoal/ca/ca.h"
#include "shoal/transport/grpc_transport.h"
#include "shoal/transport/tls.h"

namespace shoal::manager {
namespace {

std::unique_ptr<grpc::ClientContext> Deadline(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

Status Refused(const std::string& target, const grpc::Status& s) {
  Status st = transport::FromGrpc(s);
  return {st.code(), "join via " + target + ": " + s.error_message()};
}

}  // namespace

Result<JoinResult> JoinCluster(const std::string& remote, const std::string& token,
                               v1::AdmitRequest request, int timeout_s) {
  auto parsed = ca::ParseToken(token);
  if (!parsed.ok()) return parsed.error();
  // 1. The root, over TLS that checks nothing: its digest is checked here.
  v1::GetRootCAReply root;
  {
    auto stub = v1::Membership::NewStub(transport::Dial(remote, transport::UnverifiedClientTls()));
    grpc::Status s = stub->GetRootCA(Deadline(timeout_s).get(), v1::GetRootCARequest(), &root);
    if (!s.ok()) return Refused(remote, s);
  }
  std::string digest = ca::Digest(root.root_ca());
  if (digest.empty() || !ca::TokensEqual(digest, parsed->ca_digest)) {
    return Status(Code::kFailedPrecondition,
                  "join via " + remote + ": the cluster's CA (digest " +
                      (digest.empty() ? std::string("none") : digest.substr(0, 16)) +
                      "...) is not the one the join token names (" +
                      parsed->ca_digest.substr(0, 16) +
                      "...): refusing to send the token (wrong address, or a token from "
                      "another cluster?)");
  }
  // 2. A key that stays here, and the token with a CSR, to a server whose
  // certificate the pinned root signed.
  JoinResult out;
  auto key = ca::NewPrivateKey();
  if (!key.ok()) return key.error();
  out.key_pem = std::move(key).value();
  auto csr = ca::CreateCsr(out.key_pem);
  if (!csr.ok()) return csr.error();
  request.set_token(token);
  request.set_csr(*csr);
  transport::ClientTls tls = transport::StaticClientTls(root.root_ca(), "", "");
  std::string target = remote;
  grpc::Status s;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto stub = v1::Membership::NewStub(transport::Dial(target, tls));
    out.reply.Clear();
    s = stub->Admit(Deadline(timeout_s).get(), request, &out.reply);
    auto at = s.error_message().find("leader at ");
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && at != std::string::npos &&
        at + 10 < s.error_message().size()) {
      target = s.error_message().substr(at + 10);
      continue;
    }
    break;
  }
  if (!s.ok()) return Refused(target, s);
  // 3. The certificate must be for this key and chain to the pinned root.
  out.root_pem = out.reply.root_ca();
  out.cert_pem = out.reply.certificate();
  out.via = target;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (!ca::KeyMatches(out.key_pem, out.cert_pem)) {
    return Status(Code::kInternal, "join via " + target + ": the certificate is not for our key");
  }
  if (Status v = ca::Verify(out.cert_pem, root.root_ca(), now); !v.ok()) {
    return Status(v.code(), "join via " + target + ": " + v.message());
  }
  return out;
}

}  // namespace shoal::manager
