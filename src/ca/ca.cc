#include "shoal/ca/ca.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace shoal::ca {
namespace {

// Owning handles for OpenSSL objects, so every early return frees them.
template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

// The last OpenSSL error as text (and the queue cleared), for messages.
std::string OpenSslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + ": " + buf;
}

Bio MemIn(std::string_view s) { return Bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size()))); }

std::string Drain(BIO* b) {
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  return n > 0 ? std::string(p, static_cast<size_t>(n)) : std::string();
}

Key ReadKey(std::string_view pem) {
  Bio b = MemIn(pem);
  return Key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

Cert ReadCert(std::string_view pem) {
  Bio b = MemIn(pem);
  return Cert(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

Result<std::string> CertPem(X509* c) {
  Bio out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509(out.get(), c) != 1) return Internal(OpenSslError("PEM write"));
  return Drain(out.get());
}

// A random positive 127-bit serial (RFC 5280 allows up to 20 octets).
bool SetRandomSerial(X509* c) {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof buf) != 1) return false;
  buf[0] &= 0x7f;
  Bn bn(BN_bin2bn(buf, sizeof buf, nullptr));
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c)) != nullptr;
}

bool AddExt(X509* subject, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  bool ok = X509_add_ext(subject, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool AddName(X509_NAME* name, const char* field, std::string_view value) {
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

bool SetValidity(X509* c, int64_t not_before, int64_t not_after) {
  return ASN1_TIME_set(X509_getm_notBefore(c), static_cast<time_t>(not_before)) != nullptr &&
         ASN1_TIME_set(X509_getm_notAfter(c), static_cast<time_t>(not_after)) != nullptr;
}

std::string NameEntry(X509_NAME* name, int nid) {
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

int64_t TimeOf(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

constexpr std::string_view kTokenPrefix = "SHOAL-1-";

// Why the CA does not certify `k` (issue 8: weak keys refused), "" if it does.
std::string WeakKeyReasonOf(EVP_PKEY* k) {
  int id = EVP_PKEY_get_base_id(k);
  if (id == EVP_PKEY_EC) {
    char curve[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(k, curve, sizeof curve, &len) != 1) {
      ERR_clear_error();
      return "EC key on an unnamed curve, need P-256 or P-384";
    }
    std::string name(curve, len);
    if (name == "prime256v1" || name == "P-256" || name == "secp384r1" || name == "P-384") {
      return "";
    }
    return "EC key on curve " + name + ", need P-256 or P-384";
  }
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(k);
    if (bits >= 2048) return "";
    return "RSA key of " + std::to_string(bits) + " bits, need >= 2048";
  }
  const char* type = OBJ_nid2sn(id);
  return std::string(type ? type : "unknown") +
         " keys are not certified, need EC P-256/P-384 or RSA >= 2048";
}

// An X509 stack that frees its certificates.
struct CertStack {
  STACK_OF(X509) * sk = sk_X509_new_null();
  ~CertStack() { sk_X509_pop_free(sk, X509_free); }
  CertStack() = default;
  CertStack(const CertStack&) = delete;
  CertStack& operator=(const CertStack&) = delete;
};

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kManager:
      return "manager";
    case Role::kWorker:
      return "worker";
    case Role::kClient:
      return "client";
  }
  return "worker";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "manager") return Role::kManager;
  if (name == "worker") return Role::kWorker;
  if (name == "client") return Role::kClient;
  return InvalidArgument("unknown role \"" + std::string(name) +
                         "\": expected manager, worker or client");
}

Result<std::string> NewPrivateKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Internal(OpenSslError("EC key generation"));
  Bio out(BIO_new(BIO_s_mem()));
  if (!out ||
      PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal(OpenSslError("PEM write of the key"));
  }
  return Drain(out.get());
}

Result<RootCA> CreateRoot(std::string_view cluster_id, int64_t now_unix, int64_t validity_seconds,
                          std::string_view label) {
  auto key_pem = NewPrivateKey();
  if (!key_pem.ok()) return key_pem.error();
  Key key = ReadKey(*key_pem);
  Cert c(X509_new());
  if (!key || !c) return Internal(OpenSslError("root CA allocation"));
  X509_NAME* name = X509_get_subject_name(c.get());
  bool ok = X509_set_version(c.get(), 2) == 1 && SetRandomSerial(c.get()) &&
            SetValidity(c.get(), now_unix - 3600, now_unix + validity_seconds) &&
            AddName(name, "O", cluster_id) &&
            AddName(name, "CN",
                    "shoal root CA " + std::string(cluster_id) +
                        (label.empty() ? std::string() : " " + std::string(label))) &&
            X509_set_issuer_name(c.get(), name) == 1 && X509_set_pubkey(c.get(), key.get()) == 1 &&
            AddExt(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE") &&
            AddExt(c.get(), c.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
            AddExt(c.get(), c.get(), NID_subject_key_identifier, "hash") &&
            X509_sign(c.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) return Internal(OpenSslError("root CA creation"));
  auto pem = CertPem(c.get());
  if (!pem.ok()) return pem.error();
  return RootCA{std::move(pem).value(), std::move(key_pem).value(), ""};
}

Result<std::string> CrossSign(const RootCA& old_ca, std::string_view new_root_pem,
                              int64_t now_unix) {
  Key old_key = ReadKey(old_ca.key_pem);
  Cert old_cert = ReadCert(old_ca.cert_pem);
  Cert fresh = ReadCert(new_root_pem);
  if (!old_key || !old_cert || !fresh) {
    return InvalidArgument(OpenSslError("cross-signing: unreadable root key or certificate"));
  }
  Key pub(X509_get_pubkey(fresh.get()));
  Cert c(X509_new());
  if (!pub || !c) return Internal(OpenSslError("cross-signed certificate allocation"));
  // Valid from now (not before the new root itself) to the new root's end.
  int64_t not_before = std::max(now_unix - 3600, TimeOf(X509_get0_notBefore(fresh.get())));
  bool ok = X509_set_version(c.get(), 2) == 1 && SetRandomSerial(c.get()) &&
            SetValidity(c.get(), not_before, TimeOf(X509_get0_notAfter(fresh.get()))) &&
            X509_set_subject_name(c.get(), X509_get_subject_name(fresh.get())) == 1 &&
            X509_set_issuer_name(c.get(), X509_get_subject_name(old_cert.get())) == 1 &&
            X509_set_pubkey(c.get(), pub.get()) == 1 &&
            AddExt(c.get(), old_cert.get(), NID_basic_constraints, "critical,CA:TRUE") &&
            AddExt(c.get(), old_cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
            AddExt(c.get(), old_cert.get(), NID_subject_key_identifier, "hash") &&
            AddExt(c.get(), old_cert.get(), NID_authority_key_identifier, "keyid:always") &&
            X509_sign(c.get(), old_key.get(), EVP_sha256()) > 0;
  if (!ok) return Internal(OpenSslError("cross-signing the new root"));
  return CertPem(c.get());
}

Result<std::string> CreateCsr(std::string_view key_pem) {
  Key key = ReadKey(key_pem);
  if (!key) return InvalidArgument(OpenSslError("unreadable private key"));
  Req req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return Internal(OpenSslError("CSR creation"));
  }
  Bio out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509_REQ(out.get(), req.get()) != 1) {
    return Internal(OpenSslError("CSR write"));
  }
  return Drain(out.get());
}

Result<std::string> Sign(const RootCA& ca, const IssueRequest& request) {
  if (request.subject.empty()) return InvalidArgument("certificate subject is empty");
  Bio in = MemIn(request.csr_pem);
  Req req(in ? PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return InvalidArgument(OpenSslError("unreadable certificate signing request"));
  Key pub(X509_REQ_get_pubkey(req.get()));
  if (!pub || X509_REQ_verify(req.get(), pub.get()) != 1) {
    return InvalidArgument(OpenSslError("certificate signing request signature does not verify"));
  }
  if (std::string weak = WeakKeyReasonOf(pub.get()); !weak.empty()) {
    return InvalidArgument("certificate request refused: " + weak);
  }
  Key ca_key = ReadKey(ca.key_pem);
  Cert ca_cert = ReadCert(ca.cert_pem);
  if (!ca_key || !ca_cert) return InvalidArgument(OpenSslError("unreadable CA key or certificate"));
  Cert c(X509_new());
  if (!c) return Internal(OpenSslError("certificate allocation"));
  X509_NAME* name = X509_get_subject_name(c.get());
  std::string role = RoleName(request.role);
  std::string san = "DNS:shoal-" + role;
  // A subject is a node id (base 36) or "client:<name>": only the former is a DNS name.
  if (request.subject.find(':') == std::string::npos) san += ",DNS:" + request.subject;
  bool ok =
      X509_set_version(c.get(), 2) == 1 && SetRandomSerial(c.get()) &&
      SetValidity(c.get(), request.now_unix - std::min<int64_t>(300, request.validity_seconds / 10),
                  request.now_unix + request.validity_seconds) &&
      AddName(name, "O", request.cluster_id) && AddName(name, "OU", role) &&
      AddName(name, "CN", request.subject) &&
      X509_set_issuer_name(c.get(), X509_get_subject_name(ca_cert.get())) == 1 &&
      X509_set_pubkey(c.get(), pub.get()) == 1 &&
      AddExt(c.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
      AddExt(c.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyAgreement") &&
      AddExt(c.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
      AddExt(c.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always") &&
      AddExt(c.get(), ca_cert.get(), NID_subject_alt_name, san.c_str()) &&
      X509_sign(c.get(), ca_key.get(), EVP_sha256()) > 0;
  if (!ok) return Internal(OpenSslError("certificate signing"));
  auto pem = CertPem(c.get());
  if (!pem.ok()) return pem;
  return *pem + ca.chain_pem;
}

std::string WeakKeyReason(std::string_view csr_pem) {
  Bio in = MemIn(csr_pem);
  Req req(in ? PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr) : nullptr);
  Key pub(req ? X509_REQ_get_pubkey(req.get()) : nullptr);
  if (!pub) {
    ERR_clear_error();
    return "unreadable certificate signing request";
  }
  return WeakKeyReasonOf(pub.get());
}

Result<CertInfo> ParseCertificate(std::string_view cert_pem) {
  Cert c = ReadCert(cert_pem);
  if (!c) return InvalidArgument(OpenSslError("not a PEM certificate"));
  CertInfo info;
  X509_NAME* name = X509_get_subject_name(c.get());
  info.subject = NameEntry(name, NID_commonName);
  info.cluster_id = NameEntry(name, NID_organizationName);
  auto role = ParseRole(NameEntry(name, NID_organizationalUnitName));
  if (info.subject.empty() || !role.ok()) {
    return InvalidArgument("certificate is not a shoal node or client certificate");
  }
  info.role = *role;
  Bn bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c.get()), nullptr));
  if (bn) {
    char* hex = BN_bn2hex(bn.get());
    if (hex) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
  }
  info.not_before = TimeOf(X509_get0_notBefore(c.get()));
  info.not_after = TimeOf(X509_get0_notAfter(c.get()));
  return info;
}

Status Verify(std::string_view cert_pem, std::string_view roots_pem, int64_t now_unix) {
  Bio chain_in = MemIn(cert_pem);
  Cert c(chain_in ? PEM_read_bio_X509(chain_in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!c) return InvalidArgument(OpenSslError("not a PEM certificate"));
  // What follows the leaf may help build the chain but is not trusted.
  CertStack untrusted;
  if (!untrusted.sk) return Internal(OpenSslError("X509 stack"));
  while (true) {
    X509* more = PEM_read_bio_X509(chain_in.get(), nullptr, nullptr, nullptr);
    if (!more) break;
    if (sk_X509_push(untrusted.sk, more) <= 0) {
      X509_free(more);
      return Internal(OpenSslError("X509 stack"));
    }
  }
  ERR_clear_error();
  Store store(X509_STORE_new());
  if (!store) return Internal(OpenSslError("X509 store"));
  Bio in = MemIn(roots_pem);
  int roots = 0;
  while (in) {
    Cert root(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    if (!root) break;
    if (X509_STORE_add_cert(store.get(), root.get()) == 1) ++roots;
  }
  ERR_clear_error();  // the read past the last certificate
  if (roots == 0) return InvalidArgument("no trusted root certificate given");
  StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), c.get(), untrusted.sk) != 1) {
    return Internal(OpenSslError("X509 store context"));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(now_unix));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return InvalidArgument(std::string("certificate does not verify against the cluster CA: ") +
                           X509_verify_cert_error_string(err));
  }
  return Status::Ok();
}

std::vector<std::string> SplitCertificates(std::string_view pem) {
  std::vector<std::string> out;
  Bio in = MemIn(pem);
  while (in) {
    Cert c(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    if (!c) break;
    auto one = CertPem(c.get());
    if (one.ok()) out.push_back(std::move(one).value());
  }
  ERR_clear_error();
  return out;
}

bool KeyMatches(std::string_view key_pem, std::string_view cert_pem) {
  Key key = ReadKey(key_pem);
  Cert c = ReadCert(cert_pem);
  bool ok = key && c && X509_check_private_key(c.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string Digest(std::string_view cert_pem) {
  Cert c = ReadCert(cert_pem);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!c || X509_digest(c.get(), EVP_sha256(), md, &n) != 1) {
    ERR_clear_error();
    return "";
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kDigits[md[i] >> 4];
    out += kDigits[md[i] & 15];
  }
  return out;
}

std::string FormatToken(const JoinToken& token) {
  return std::string(kTokenPrefix) + token.ca_digest + "-" + RoleName(token.role) + "-" +
         token.secret;
}

Result<JoinToken> ParseToken(std::string_view text) {
  auto malformed = [](const char* why) {
    return InvalidArgument(std::string("malformed join token (") + why +
                           "): expected SHOAL-1-<CA digest>-<role>-<secret> as printed by "
                           "`shoal cluster join-token`");
  };
  if (text.substr(0, kTokenPrefix.size()) != kTokenPrefix) return malformed("prefix");
  std::string_view rest = text.substr(kTokenPrefix.size());
  size_t a = rest.find('-');
  if (a == std::string_view::npos) return malformed("no role");
  size_t b = rest.find('-', a + 1);
  if (b == std::string_view::npos) return malformed("no secret");
  JoinToken t;
  t.ca_digest = std::string(rest.substr(0, a));
  auto role = ParseRole(rest.substr(a + 1, b - a - 1));
  if (!role.ok() || *role == Role::kClient) return malformed("role");
  t.role = *role;
  t.secret = std::string(rest.substr(b + 1));
  if (t.ca_digest.size() != 64) return malformed("CA digest");
  for (char ch : t.ca_digest) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return malformed("CA digest");
  }
  if (t.secret.empty()) return malformed("secret");
  return t;
}

bool TokensEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int64_t RenewAt(int64_t not_before, int64_t not_after, double fraction) {
  if (fraction < 0) fraction = 0;
  if (fraction >= 1) fraction = 0.999999;
  double span = static_cast<double>(not_after - not_before);
  return not_before + static_cast<int64_t>(span * (0.5 + 0.3 * fraction));
}

}  // namespace shoal::ca
