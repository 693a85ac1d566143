// libFuzzer target for what a joining node sends a manager before it is
// trusted: the join token, and the certificate signing request the CA signs.
// Also the certificates a node reads back. Any bytes must give a value or an
// InvalidArgument, never a crash, and:
//   - a parsed token prints back as a token that parses to the same fields;
//   - an error never echoes the token's secret;
//   - a CSR the CA signs gives a certificate with the subject and role the
//     CA chose (never ones from the request), that verifies against the root.
//
// Input: one byte choosing the decoder ('0' token, '1' CSR, '2'
// certificate, modulo 3), then the text.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shoal/ca/ca.h"

namespace {

using namespace shoal;

constexpr int64_t kNow = 1'800'000'000;

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "join_token_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

const ca::RootCA& Root() {
  static const ca::RootCA root = [] {
    auto r = ca::CreateRoot("fuzz-cluster", kNow - 3600);
    if (!r.ok()) Die("CreateRoot", r.error().ToString());
    return *r;
  }();
  return root;
}

void Token(std::string_view text) {
  auto t = ca::ParseToken(text);
  if (!t.ok()) {
    if (t.error().code() != Code::kInvalidArgument)
      Die("not InvalidArgument", t.error().ToString());
    // The text after the last '-' is where a secret would be.
    size_t dash = text.rfind('-');
    if (dash != std::string_view::npos && text.size() - dash > 8) {
      std::string secret(text.substr(dash + 1));
      // Text the message holds anyway (its fixed wording) is not an echo:
      // the same token with another secret must not show it either.
      std::string other =
          std::string(text.substr(0, dash + 1)) + std::string(secret.size(), '\x01');
      auto o = ca::ParseToken(other);
      bool in_template = !o.ok() && o.error().message().find(secret) != std::string::npos;
      if (!in_template && t.error().message().find(secret) != std::string::npos) {
        Die("an error echoes the secret", t.error().message());
      }
    }
    return;
  }
  std::string again = ca::FormatToken(*t);
  auto back = ca::ParseToken(again);
  if (!back.ok()) Die("a formatted token does not parse", again);
  if (back->ca_digest != t->ca_digest || back->role != t->role || back->secret != t->secret) {
    Die("a formatted token parses to other fields", again);
  }
  if (!ca::TokensEqual(again, again)) Die("a token does not equal itself", again);
}

void Csr(std::string_view pem) {
  ca::IssueRequest req;
  req.csr_pem = std::string(pem);
  req.subject = "node-1";
  req.role = ca::Role::kWorker;
  req.cluster_id = "fuzz-cluster";
  req.now_unix = kNow;
  auto cert = ca::Sign(Root(), req);
  if (std::getenv("SHOAL_FUZZ_VERBOSE")) {
    std::fprintf(stderr, "%s\n", cert.ok() ? "signed" : cert.error().ToString().c_str());
  }
  if (!cert.ok()) {
    if (cert.error().message().empty()) Die("Sign failed without a message", "");
    return;
  }
  auto info = ca::ParseCertificate(*cert);
  if (!info.ok()) Die("a certificate the CA signed does not parse", info.error().ToString());
  if (info->subject != "node-1" || info->role != ca::Role::kWorker ||
      info->cluster_id != "fuzz-cluster") {
    Die("the request chose the certificate's subject or role", info->subject);
  }
  if (Status s = ca::Verify(*cert, Root().cert_pem, kNow); !s.ok()) {
    Die("a certificate the CA signed does not verify", s.ToString());
  }
}

void Certificate(std::string_view pem) {
  auto info = ca::ParseCertificate(pem);
  Status v = ca::Verify(pem, Root().cert_pem, kNow);
  if (v.ok() && !info.ok()) Die("a certificate verifies but does not parse", "");
  (void)ca::Digest(pem);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (64 << 10)) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      Token(text);
      break;
    case 1:
      Csr(text);
      break;
    case 2:
      Certificate(text);
      break;
  }
  return 0;
}
