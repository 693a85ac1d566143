#pragma once

// DispatcherClient over gRPC to the managers. It keeps the list of manager
// addresses (seeded at join, refreshed from heartbeat replies) and moves to
// the next one whenever a call fails or a manager says it is not the leader,
// so an agent follows leadership without configuration.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "shoal/agent/agent.h"
#include "shoal/v1/cluster.grpc.pb.h"

namespace shoal::agent {

class GrpcDispatcherClient : public DispatcherClient {
 public:
  // Opens a channel to a manager: mutual TLS with the node's certificate
  // (transport::Dial with the node's ClientTls). Called with the client's
  // lock held, from the agent's threads.
  using DialFn = std::function<std::shared_ptr<grpc::Channel>(const std::string& addr,
                                                              const grpc::ChannelArguments& args)>;
  GrpcDispatcherClient(std::vector<std::string> managers, DialFn dial);

  // Both block the calling thread until the call ends, as DispatcherClient
  // says; the call itself runs on gRPC's callback API (see the .cc).
  Result<v1::HeartbeatReply> Heartbeat(const v1::HeartbeatRequest& req) override;
  Result<v1::AssignmentsReply> Assignments(const v1::AssignmentsRequest& req) override;
  void Cancel() override;

  std::vector<std::string> managers() const;

 private:
  std::shared_ptr<v1::Dispatcher::Stub> Current(std::string* addr);
  void Failed(const std::string& addr, const grpc::Status& status);

  DialFn dial_;
  mutable std::mutex mu_;
  std::vector<std::string> managers_;
  size_t current_ = 0;
  std::map<std::string, std::shared_ptr<v1::Dispatcher::Stub>> stubs_;
  std::set<grpc::ClientContext*> active_;
  bool cancelled_ = false;
};

}  // namespace shoal::agent
