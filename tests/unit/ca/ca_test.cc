#include "shoal/ca/ca.h"

#include <catch2/catch.hpp>
#include <ctime>

namespace ca = shoal::ca;

namespace {

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

struct Fixture {
  ca::RootCA root = ca::CreateRoot("c1", Now()).value();
  std::string key = ca::NewPrivateKey().value();
  std::string csr = ca::CreateCsr(key).value();

  std::string Issue(const std::string& subject, ca::Role role, int64_t now = Now(),
                    int64_t validity = ca::kNodeValiditySeconds) {
    ca::IssueRequest r;
    r.csr_pem = csr;
    r.subject = subject;
    r.role = role;
    r.cluster_id = "c1";
    r.now_unix = now;
    r.validity_seconds = validity;
    return ca::Sign(root, r).value();
  }
};

}  // namespace

TEST_CASE("a signed node certificate names its node and role and verifies against the root") {
  Fixture f;
  std::string cert = f.Issue("node1abc", ca::Role::kManager);
  auto info = ca::ParseCertificate(cert);
  REQUIRE(info.ok());
  CHECK(info->subject == "node1abc");
  CHECK(info->role == ca::Role::kManager);
  CHECK(info->cluster_id == "c1");
  CHECK(!info->serial.empty());
  CHECK(info->not_after - info->not_before == ca::kNodeValiditySeconds + 300);
  CHECK(ca::Verify(cert, f.root.cert_pem, Now()).ok());
  CHECK(ca::KeyMatches(f.key, cert));
  CHECK_FALSE(ca::KeyMatches(ca::NewPrivateKey().value(), cert));
  // The root is a CA and is no node certificate.
  CHECK_FALSE(ca::ParseCertificate(f.root.cert_pem).ok());
}

TEST_CASE("serials differ between certificates") {
  Fixture f;
  auto a = ca::ParseCertificate(f.Issue("n", ca::Role::kWorker)).value();
  auto b = ca::ParseCertificate(f.Issue("n", ca::Role::kWorker)).value();
  CHECK(a.serial != b.serial);
}

TEST_CASE("verification refuses another cluster's CA, an expired and a not yet valid cert") {
  Fixture f;
  std::string cert = f.Issue("n", ca::Role::kWorker, Now(), 3600);
  auto other = ca::CreateRoot("c2", Now()).value();
  shoal::Status s = ca::Verify(cert, other.cert_pem, Now());
  CHECK(s.code() == shoal::Code::kInvalidArgument);
  CHECK(s.message().find("local issuer") != std::string::npos);
  // Expired: checked at an injected time past the end.
  s = ca::Verify(cert, f.root.cert_pem, Now() + 7200);
  CHECK(s.message().find("expired") != std::string::npos);
  s = ca::Verify(cert, f.root.cert_pem, Now() - 7200);
  CHECK(s.message().find("not yet valid") != std::string::npos);
  // Both roots trusted (a root rotation's transition): verifies.
  CHECK(ca::Verify(cert, other.cert_pem + f.root.cert_pem, Now()).ok());
  CHECK_FALSE(ca::Verify(cert, "", Now()).ok());
  CHECK_FALSE(ca::Verify("junk", f.root.cert_pem, Now()).ok());
}

TEST_CASE("a certificate signed by a key that is not the CA's does not verify") {
  Fixture f;
  ca::RootCA forged = f.root;
  forged.key_pem = ca::NewPrivateKey().value();
  ca::IssueRequest r;
  r.csr_pem = f.csr;
  r.subject = "n";
  r.cluster_id = "c1";
  r.now_unix = Now();
  std::string cert = ca::Sign(forged, r).value();
  CHECK_FALSE(ca::Verify(cert, f.root.cert_pem, Now()).ok());
}

TEST_CASE("signing refuses a tampered or unreadable CSR and an empty subject") {
  Fixture f;
  ca::IssueRequest r;
  r.subject = "n";
  r.now_unix = Now();
  r.csr_pem = "not a csr";
  CHECK(ca::Sign(f.root, r).error().code() == shoal::Code::kInvalidArgument);
  r.csr_pem = f.csr;
  r.subject = "";
  CHECK_FALSE(ca::Sign(f.root, r).ok());
  CHECK_FALSE(ca::CreateCsr("not a key").ok());
}

TEST_CASE("the root digest is a stable SHA-256 hex of the certificate") {
  Fixture f;
  std::string d = ca::Digest(f.root.cert_pem);
  CHECK(d.size() == 64);
  CHECK(d == ca::Digest(f.root.cert_pem));
  CHECK(d != ca::Digest(ca::CreateRoot("c1", Now()).value().cert_pem));
  CHECK(ca::Digest("junk").empty());
}

TEST_CASE("join tokens format, parse and compare") {
  ca::JoinToken t{std::string(64, 'a'), ca::Role::kManager, "s3cr3t"};
  std::string text = ca::FormatToken(t);
  CHECK(text == "SHOAL-1-" + std::string(64, 'a') + "-manager-s3cr3t");
  auto back = ca::ParseToken(text);
  REQUIRE(back.ok());
  CHECK(back->ca_digest == t.ca_digest);
  CHECK(back->role == ca::Role::kManager);
  CHECK(back->secret == "s3cr3t");
  CHECK_FALSE(ca::ParseToken("SHOAL-1-abc-worker-x").ok());
  CHECK_FALSE(ca::ParseToken("SHOAL-1-" + std::string(64, 'a') + "-client-x").ok());
  CHECK_FALSE(ca::ParseToken("SHOAL-1-" + std::string(64, 'a') + "-worker-").ok());
  CHECK_FALSE(ca::ParseToken("SHOAL-2-" + std::string(64, 'a') + "-worker-x").ok());
  auto bad = ca::ParseToken("SHOAL-1-" + std::string(64, 'G') + "-worker-topsecret");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("topsecret") == std::string::npos);
  CHECK(ca::TokensEqual(text, text));
  CHECK_FALSE(ca::TokensEqual(text, text + "x"));
  CHECK_FALSE(ca::TokensEqual("", ""));
}

TEST_CASE("renewal falls between 50% and 80% of the validity") {
  CHECK(ca::RenewAt(1000, 2000, 0.0) == 1500);
  CHECK(ca::RenewAt(1000, 2000, 0.5) == 1650);
  CHECK(ca::RenewAt(1000, 2000, 0.9999) < 1800);
  CHECK(ca::RenewAt(1000, 2000, 5) < 1800);
  CHECK(ca::RenewAt(1000, 2000, -1) == 1500);
}
