#pragma once

// gRPC calls straight at a daemon's cluster port, for tests that must do
// what the CLI does not (a worker's certificate on the control API, several
// streams at once).

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace shoal::testing {

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A mutual-TLS channel with the ca.pem, cert.pem and key.pem of `dir` (a
// node's certs dir or an issued client's). Each channel gets its own
// connection, so that calls on two channels are two peers' calls.
inline std::shared_ptr<grpc::Channel> DialWith(const std::string& addr, const std::string& dir) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Slurp(dir + "/ca.pem");
  o.pem_cert_chain = Slurp(dir + "/cert.pem");
  o.pem_private_key = Slurp(dir + "/key.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("shoal-manager");
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(addr, grpc::SslCredentials(o), args);
}

inline std::unique_ptr<grpc::ClientContext> Deadline(
    std::chrono::seconds after = std::chrono::seconds(10)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + after);
  return ctx;
}

}  // namespace shoal::testing
