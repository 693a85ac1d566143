#pragma once

// The joining side of admission (issue 8, docs/security.md): pin the
// cluster's CA by the digest in the token before sending anything secret,
// then send the token with a CSR for a key made here, and check what comes
// back. Used by `shoal cluster join` (the daemon) and the simulated nodes of
// the cluster benchmark.

#include <string>

#include "shoal/common/status.h"
#include "shoal/v1/cluster.grpc.pb.h"

namespace shoal::manager {

struct JoinResult {
  v1::AdmitReply reply;
  std::string root_pem;  // the trusted root(s)
  std::string key_pem;   // this node's new key: never sent
  std::string cert_pem;
  std::string via;  // the manager that admitted the node (the leader)
};

// Joins through the manager at `remote` ("host:port"), following "leader at"
// redirects. `request` carries the advertise address and description; the
// token and CSR are filled in here. Errors: InvalidArgument for a malformed
// token; kFailedPrecondition when the cluster's CA does not match the token's
// digest (nothing secret was sent); kInvalidArgument / kUnavailable / ... as
// the manager answered (a refused token is "invalid join token ...").
// Blocks up to about `timeout_s` seconds per attempt; any thread.
Result<JoinResult> JoinCluster(const std::string& remote, const std::string& token,
                               v1::AdmitRequest request, int timeout_s = 15);

}  // namespace shoal::manager
