#include "shoal/agent/grpc_dispatcher_client.h"

#include <absl/synchronization/notification.h>

#include <chrono>

namespace shoal::agent {
namespace {

Status FromGrpc(const grpc::Status& s, const std::string& addr) {
  Code code = Code::kUnavailable;
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) code = Code::kNotFound;
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) code = Code::kFailedPrecondition;
  if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) code = Code::kInvalidArgument;
  return {code, "manager " + addr + ": " + s.error_message()};
}

// Starts a call through gRPC's callback API and waits for its end. The
// reply is read on gRPC's own polling threads, and the caller is woken once:
// a blocking call instead has its thread take turns at polling every
// connection of the process, with wake-ups to hand that role on (1,000
// agents in one process: 5% less CPU for them, and the leader, whose own
// agent took that role for the server's connections too, 15% less).
//
// absl::Notification, not a std::mutex and condition_variable: a thread
// woken from the latter takes the mutex back marked contended, and its
// unlock is one more futex wake (glibc), per call. The notification is safe
// to destroy as soon as the wait returns: its destructor waits for Notify()
// to be done with it.
template <class Start>
grpc::Status CallAndWait(Start start) {
  absl::Notification done;
  grpc::Status status;
  start([&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

}  // namespace

GrpcDispatcherClient::GrpcDispatcherClient(std::vector<std::string> managers, DialFn dial)
    : dial_(std::move(dial)), managers_(std::move(managers)) {}

std::vector<std::string> GrpcDispatcherClient::managers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return managers_;
}

std::shared_ptr<v1::Dispatcher::Stub> GrpcDispatcherClient::Current(std::string* addr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (managers_.empty()) return nullptr;
  *addr = managers_[current_ % managers_.size()];
  auto& stub = stubs_[*addr];
  if (!stub) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // No bandwidth-delay probes: heartbeats and assignments are small, and
    // each probe is a ping and its ack, a write and a wake-up on both sides,
    // on every one of a thousand agents' connections.
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    // No retry filter: the agent repeats a failed heartbeat or long poll on
    // its own, and the filter's per-call state (it buffers every message it
    // might send again) is a cost on each of those calls.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    stub = v1::Dispatcher::NewStub(dial_(*addr, args));
  }
  return stub;
}

void GrpcDispatcherClient::Failed(const std::string& addr, const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (managers_.empty()) return;
  // "not the leader; leader at ADDR": go there directly.
  const std::string& msg = status.error_message();
  auto at = msg.find("leader at ");
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION && at != std::string::npos) {
    std::string leader = msg.substr(at + 10);
    if (leader.empty()) {  // an election is under way: try the next one
      current_ = (current_ + 1) % managers_.size();
      return;
    }
    for (size_t i = 0; i < managers_.size(); ++i) {
      if (managers_[i] == leader) {
        current_ = i;
        return;
      }
    }
    managers_.push_back(leader);
    current_ = managers_.size() - 1;
    return;
  }
  if (managers_[current_ % managers_.size()] == addr) current_ = (current_ + 1) % managers_.size();
}

Result<v1::HeartbeatReply> GrpcDispatcherClient::Heartbeat(const v1::HeartbeatRequest& req) {
  std::string addr;
  auto stub = Current(&addr);
  if (!stub) return Status(Code::kUnavailable, "no manager address known");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::HeartbeatReply reply;
  grpc::Status s = CallAndWait([&](std::function<void(grpc::Status)> done) {
    stub->async()->Heartbeat(&ctx, &req, &reply, std::move(done));
  });
  if (!s.ok()) {
    Failed(addr, s);
    return FromGrpc(s, addr);
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Learn the managers that joined since; keep the ones we had (one may be
  // briefly missing from the list while it rejoins).
  for (const auto& m : reply.managers()) {
    if (m.addr().empty()) continue;
    bool have = false;
    for (const auto& a : managers_) have = have || a == m.addr();
    if (!have) managers_.push_back(m.addr());
  }
  return reply;
}

Result<v1::AssignmentsReply> GrpcDispatcherClient::Assignments(const v1::AssignmentsRequest& req) {
  std::string addr;
  auto stub = Current(&addr);
  if (!stub) return Status(Code::kUnavailable, "no manager address known");
  grpc::ClientContext ctx;
  // The dispatcher answers within a heartbeat period; allow for a slow one.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return Status(Code::kUnavailable, "agent stopping");
    active_.insert(&ctx);
  }
  v1::AssignmentsReply reply;
  grpc::Status s = CallAndWait([&](std::function<void(grpc::Status)> done) {
    stub->async()->Assignments(&ctx, &req, &reply, std::move(done));
  });
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_.erase(&ctx);
  }
  if (!s.ok()) {
    Failed(addr, s);
    return FromGrpc(s, addr);
  }
  return reply;
}

void GrpcDispatcherClient::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (auto* ctx : active_) ctx->TryCancel();
}

}  // namespace shoal::agent
