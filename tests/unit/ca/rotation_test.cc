// The CA's side of a root rotation (cross-signing, chains with an
// intermediate, splitting a bundle) and the keys it refuses to certify.

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <memory>

#include "shoal/ca/ca.h"

namespace ca = shoal::ca;

namespace {

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// A key of any type as PKCS#8 PEM (the CA's own NewPrivateKey makes P-256 only).
std::string KeyPem(EVP_PKEY* k) {
  REQUIRE(k != nullptr);
  BIO* b = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<size_t>(n));
  BIO_free(b);
  EVP_PKEY_free(k);
  return out;
}

ca::IssueRequest Request(const std::string& csr, const std::string& subject = "node1") {
  ca::IssueRequest r;
  r.csr_pem = csr;
  r.subject = subject;
  r.role = ca::Role::kWorker;
  r.cluster_id = "c1";
  r.now_unix = Now();
  return r;
}

std::string NodeCsr() { return ca::CreateCsr(ca::NewPrivateKey().value()).value(); }

}  // namespace

TEST_CASE("weak keys: only EC P-256/P-384 and RSA >= 2048 are certified") {
  ca::RootCA root = ca::CreateRoot("c1", Now()).value();
  std::string rsa1024 = ca::CreateCsr(KeyPem(EVP_RSA_gen(1024))).value();
  auto refused = ca::Sign(root, Request(rsa1024));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == shoal::Code::kInvalidArgument);
  CHECK(refused.error().message() ==
        "certificate request refused: RSA key of 1024 bits, need >= 2048");
  CHECK(ca::WeakKeyReason(rsa1024) == "RSA key of 1024 bits, need >= 2048");

  std::string k1 = ca::CreateCsr(KeyPem(EVP_EC_gen("secp256k1"))).value();
  auto curve = ca::Sign(root, Request(k1));
  REQUIRE_FALSE(curve.ok());
  CHECK(curve.error().message() ==
        "certificate request refused: EC key on curve secp256k1, need P-256 or P-384");

  CHECK(ca::Sign(root, Request(ca::CreateCsr(KeyPem(EVP_RSA_gen(2048))).value())).ok());
  CHECK(ca::Sign(root, Request(ca::CreateCsr(KeyPem(EVP_EC_gen("P-384"))).value())).ok());
  CHECK(ca::Sign(root, Request(NodeCsr())).ok());
  CHECK(ca::WeakKeyReason(NodeCsr()).empty());
  CHECK(ca::WeakKeyReason("junk") == "unreadable certificate signing request");
}

TEST_CASE("rotation: a leaf from the new key with the cross-signed root verifies against both") {
  int64_t now = Now();
  ca::RootCA old_root = ca::CreateRoot("c1", now).value();
  ca::RootCA new_root = ca::CreateRoot("c1", now, ca::kRootValiditySeconds, "r1").value();
  CHECK(ca::Digest(old_root.cert_pem) != ca::Digest(new_root.cert_pem));
  std::string cross = ca::CrossSign(old_root, new_root.cert_pem, now).value();
  // The cross-signed certificate is a CA chained to the old root.
  CHECK(ca::Verify(cross, old_root.cert_pem, now).ok());
  CHECK_FALSE(ca::Verify(cross, new_root.cert_pem, now).ok());

  ca::RootCA signer = new_root;
  signer.chain_pem = cross;
  std::string chain = ca::Sign(signer, Request(NodeCsr())).value();
  std::vector<std::string> parts = ca::SplitCertificates(chain);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1] == cross);
  CHECK(ca::ParseCertificate(chain).value().subject == "node1");

  // A node still trusting only the old root accepts the chain, not the leaf alone.
  CHECK(ca::Verify(chain, old_root.cert_pem, now).ok());
  CHECK_FALSE(ca::Verify(parts[0], old_root.cert_pem, now).ok());
  // Nodes with the new root (alone or in the transition bundle) accept both.
  CHECK(ca::Verify(parts[0], new_root.cert_pem, now).ok());
  CHECK(ca::Verify(chain, old_root.cert_pem + new_root.cert_pem, now).ok());
  // An old-root leaf is fine during the transition, and refused after it.
  std::string old_leaf = ca::Sign(old_root, Request(NodeCsr())).value();
  CHECK(ca::Verify(old_leaf, old_root.cert_pem + new_root.cert_pem, now).ok());
  CHECK_FALSE(ca::Verify(old_leaf, new_root.cert_pem, now).ok());
  CHECK(ca::SplitCertificates(old_root.cert_pem + new_root.cert_pem).size() == 2);
}

TEST_CASE("rotation: a cross-signature by another cluster's root does not chain to ours") {
  int64_t now = Now();
  ca::RootCA ours = ca::CreateRoot("c1", now).value();
  ca::RootCA theirs = ca::CreateRoot("c2", now).value();
  ca::RootCA fresh = ca::CreateRoot("c2", now, ca::kRootValiditySeconds, "r1").value();
  fresh.chain_pem = ca::CrossSign(theirs, fresh.cert_pem, now).value();
  std::string chain = ca::Sign(fresh, Request(NodeCsr())).value();
  CHECK(ca::Verify(chain, theirs.cert_pem, now).ok());
  CHECK_FALSE(ca::Verify(chain, ours.cert_pem, now).ok());
  // A cross-signing key that is not the old root's yields a certificate that
  // does not verify.
  ca::RootCA impostor{ours.cert_pem, theirs.key_pem, ""};
  std::string bad = ca::CrossSign(impostor, fresh.cert_pem, now).value();
  CHECK_FALSE(ca::Verify(bad, ours.cert_pem, now).ok());
  CHECK_FALSE(ca::CrossSign(ours, "junk", now).ok());
}
