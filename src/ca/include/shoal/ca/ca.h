#pragma once

// The cluster's certificate authority (issue 8): a self-signed ECDSA P-256
// root, node keys that never leave their node (a node sends a CSR), node
// certificates whose subject names the node (CN) and its role (OU), chain
// checks against the root, and the join tokens that pin the root by digest.
// OpenSSL only; every function is pure apart from its inputs (time and
// randomness are passed in) and may be called from any thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/common/status.h"

namespace shoal::ca {

// What a certificate lets its holder do: managers run Raft and the control
// API, workers only the dispatcher for their own node, clients (a remote CLI)
// only the control API.
enum class Role { kManager, kWorker, kClient };

// "manager" | "worker" | "client".
const char* RoleName(Role role);
// The inverse of RoleName; InvalidArgument for anything else.
Result<Role> ParseRole(std::string_view name);

// Default validities (issue 8: the root lives long, node certs 90 days).
inline constexpr int64_t kRootValiditySeconds = int64_t{20} * 365 * 24 * 3600;
inline constexpr int64_t kNodeValiditySeconds = int64_t{90} * 24 * 3600;

// A fresh ECDSA P-256 private key as PKCS#8 PEM. kInternal if OpenSSL fails.
Result<std::string> NewPrivateKey();

struct RootCA {
  std::string cert_pem;
  std::string key_pem;  // secret: stored sealed in the replicated state
  // Certificates Sign appends after each leaf: during a root rotation the new
  // root cross-signed by the old key, so that peers still trusting only the
  // old root accept the new leaves. Empty otherwise.
  std::string chain_pem;
};

// A self-signed root: CN "shoal root CA <cluster_id>" (then " <label>" when
// given: a rotated root needs a name of its own, or chain building would take
// the old root for the new one's issuer), CA:TRUE, valid from `now_unix` - 1 h
// (clock skew) for `validity_seconds`.
Result<RootCA> CreateRoot(std::string_view cluster_id, int64_t now_unix,
                          int64_t validity_seconds = kRootValiditySeconds,
                          std::string_view label = "");

// The root rotation's bridge: a CA certificate with the subject, key and
// validity of `new_root_pem`, issued by `old_ca` (its name and key). A leaf
// signed by the new key, sent with this certificate, verifies against the old
// root alone. InvalidArgument for unreadable input; kInternal if OpenSSL fails.
Result<std::string> CrossSign(const RootCA& old_ca, std::string_view new_root_pem,
                              int64_t now_unix);

// A certificate signing request for `key_pem` (subject left empty: the CA
// decides the subject). InvalidArgument for an unreadable key.
Result<std::string> CreateCsr(std::string_view key_pem);

struct IssueRequest {
  std::string csr_pem;
  std::string subject;  // CN: the node id, or "client:<name>"
  Role role = Role::kWorker;
  std::string cluster_id;  // O
  int64_t now_unix = 0;
  int64_t validity_seconds = kNodeValiditySeconds;
};

// Signs the CSR (whose self-signature must verify) into a certificate valid
// from now - min(5 min, validity / 10) (clock skew) to now + validity, for
// client and server use, with subject CN/OU/O as requested and the DNS names
// "shoal-<role>" and the subject (what channels check the server against).
// Returns the leaf followed by `ca.chain_pem`. Only EC P-256/P-384 and RSA
// keys of at least 2048 bits are certified: InvalidArgument "certificate
// request refused: ..." otherwise, and for a bad CSR or key; kInternal when
// OpenSSL fails.
Result<std::string> Sign(const RootCA& ca, const IssueRequest& request);

// Why the CSR's key is not one the CA certifies ("RSA key of 1024 bits, need
// >= 2048"), or "" when it is. "unreadable ..." for a CSR that does not parse.
std::string WeakKeyReason(std::string_view csr_pem);

struct CertInfo {
  std::string subject;  // CN
  Role role = Role::kWorker;
  std::string cluster_id;  // O
  std::string serial;      // hex
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;
};

// Reads a node or client certificate (the first one in `cert_pem`).
// InvalidArgument when it is not a PEM certificate or has no CN / known OU.
Result<CertInfo> ParseCertificate(std::string_view cert_pem);

// Checks `cert_pem` (the leaf first; any certificates after it are untrusted
// intermediates, such as a rotation's cross-signed root) against the trusted
// roots in `roots_pem` (one or more PEM certificates) at time `now_unix`.
// InvalidArgument naming the reason ("certificate has expired", "unable to get
// local issuer certificate"...).
Status Verify(std::string_view cert_pem, std::string_view roots_pem, int64_t now_unix);

// Each certificate of a PEM bundle, in order, re-encoded as PEM (anything
// that is not a certificate is dropped).
std::vector<std::string> SplitCertificates(std::string_view pem);

// True when `key_pem` is the private key of `cert_pem`.
bool KeyMatches(std::string_view key_pem, std::string_view cert_pem);

// Lowercase hex SHA-256 of the (first) certificate's DER encoding: what a
// join token pins. "" for something that is not a certificate.
std::string Digest(std::string_view cert_pem);

// SHOAL-1-<ca digest hex>-<role>-<secret>.
struct JoinToken {
  std::string ca_digest;
  Role role = Role::kWorker;
  std::string secret;
};
std::string FormatToken(const JoinToken& token);
// InvalidArgument "malformed join token ..." (never echoing the secret).
Result<JoinToken> ParseToken(std::string_view text);
// Constant-time (CRYPTO_memcmp) comparison of two tokens; false if the
// lengths differ.
bool TokensEqual(std::string_view a, std::string_view b);

// When to renew a certificate valid over [not_before, not_after]: at
// `fraction` in [0,1) of the way from 50% to 80% of its validity (the caller
// draws `fraction` from its injected random source, so renewals spread).
int64_t RenewAt(int64_t not_before, int64_t not_after, double fraction);

}  // namespace shoal::ca
