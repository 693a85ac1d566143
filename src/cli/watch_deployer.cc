#include "watch_deployer.h"

#include <map>
#include <string>

#include "client.h"
#include "commands.h"
#include "wait.h"

namespace shoal::cli {
namespace {

Status FromGrpc(const grpc::Status& s) {
  Code code = Code::kInternal;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = Code::kUnavailable;
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = Code::kInvalidArgument;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = Code::kNotFound;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      code = Code::kFailedPrecondition;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = Code::kAlreadyExists;
      break;
    default:
      break;
  }
  return Status(code, s.error_message());
}

class ControlDeployer final : public gitops::Deployer {
 public:
  ControlDeployer(const std::string& host, int timeout_s)
      : client_(Connect(host)), timeout_s_(timeout_s) {}

  Result<std::vector<gitops::LiveStack>> ListStacks() override {
    v1::ListStacksReply reply;
    grpc::Status s = client_.stub->ListStacks(Context().get(), v1::ListStacksRequest(), &reply);
    if (!s.ok()) return FromGrpc(s);
    std::vector<gitops::LiveStack> out;
    for (const auto& st : reply.stacks()) out.push_back({st.name(), st.revision(), st.source()});
    return out;
  }

  Result<gitops::PlanResult> Plan(const v1::StackSpec& spec) override {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    req.set_dry_run(true);
    v1::DeployReply reply;
    grpc::Status s = client_.stub->Deploy(Context(60).get(), req, &reply);
    if (!s.ok()) return FromGrpc(s);
    gitops::PlanResult plan;
    plan.changed = reply.changed();
    plan.plan_text = reply.plan_text();
    for (const auto& u : reply.unplaced()) {
      plan.unplaced.push_back(
          u.service() +
          (u.node_id().empty() ? " slot " + std::to_string(u.slot()) : " on " + u.node_id()) +
          ": " + u.message());
    }
    return plan;
  }

  Result<uint64_t> Deploy(const v1::StackSpec& spec, const v1::Source& source,
                          uint64_t check_version) override {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    *req.mutable_source() = source;
    req.set_check_version(check_version);
    req.set_created_by("shoal watch");
    v1::DeployReply reply;
    grpc::Status s = client_.stub->Deploy(Context(60).get(), req, &reply);
    if (!s.ok()) return FromGrpc(s);
    // The rollouts it started, so that the wait reports one that paused or
    // was rolled back as a failure.
    rollouts_[spec.name()] = {reply.rollouts().begin(), reply.rollouts().end()};
    return reply.revision();
  }

  Status WaitConverged(const std::string& stack, uint64_t) override {
    std::string cause;
    WaitTarget target;
    target.stack = stack;
    target.rollouts = std::move(rollouts_[stack]);
    rollouts_.erase(stack);
    if (cli::WaitConverged(client_, target, timeout_s_, &cause) != 0) {
      return Status(Code::kFailedPrecondition, cause.empty() ? "did not converge" : cause);
    }
    return Status::Ok();
  }

  Status Rollback(const std::string& stack, uint64_t to) override {
    v1::RollbackStackRequest req;
    req.set_name(stack);
    req.set_to_revision(to);
    v1::DeployReply reply;
    grpc::Status s = client_.stub->RollbackStack(Context(60).get(), req, &reply);
    return s.ok() ? Status::Ok() : FromGrpc(s);
  }

  Status Remove(const std::string& stack) override {
    v1::RemoveStackRequest req;
    req.set_name(stack);
    v1::RemoveStackReply reply;
    grpc::Status s = client_.stub->RemoveStack(Context(60).get(), req, &reply);
    return s.ok() ? Status::Ok() : FromGrpc(s);
  }

 private:
  Client client_;
  int timeout_s_;
  // Stack -> the rollouts its last Deploy started (service -> spec_version).
  std::map<std::string, std::map<std::string, uint64_t>> rollouts_;
};

}  // namespace

std::unique_ptr<gitops::Deployer> NewControlDeployer(const std::string& host, int timeout_s) {
  return std::make_unique<ControlDeployer>(host, timeout_s);
}

}  // namespace shoal::cli
