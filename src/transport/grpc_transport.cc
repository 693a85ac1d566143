#include "shoal/transport/grpc_transport.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace shoal::transport {

// One peer: a queue, a channel, and the thread that drains the queue.
class PeerSender {
 public:
  PeerSender(uint64_t peer, const GrpcTransport::AddressBook& addresses,
             const GrpcTransport::Feedback& feedback, const GrpcTransportOptions& options)
      : peer_(peer), addresses_(addresses), feedback_(feedback), options_(options) {
    thread_ = std::thread([this] { Run(); });
  }

  ~PeerSender() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (context_) context_->TryCancel();
    }
    cv_.notify_one();
    thread_.join();
  }

  bool Enqueue(const v1::Message& m) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= options_.max_queue) return false;
      queue_.push_back(m);
    }
    cv_.notify_one();
    return true;
  }

 private:
  void Run() {
    for (;;) {
      v1::MessageBatch batch;
      bool has_snapshot = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        size_t bytes = 0;
        while (!queue_.empty() &&
               (batch.messages_size() == 0 || bytes < options_.max_batch_bytes)) {
          bytes += queue_.front().ByteSizeLong();
          has_snapshot |= queue_.front().type() == v1::MSG_SNAP;
          *batch.add_messages() = std::move(queue_.front());
          queue_.pop_front();
        }
      }
      bool ok = SendBatch(batch, has_snapshot);
      if (!ok || has_snapshot) {
        feedback_(peer_, !ok, has_snapshot ? std::optional<bool>(ok) : std::nullopt);
      }
    }
  }

  bool SendBatch(const v1::MessageBatch& batch, bool has_snapshot) {
    std::string address = addresses_(peer_);
    if (address.empty()) return false;
    if (address != address_ || !stub_) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                  static_cast<int>(options_.max_reconnect_backoff.count()));
      args.SetMaxSendMessageSize(-1);
      auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
      stub_ = v1::RaftTransport::NewStub(channel);
      address_ = address;
    }
    auto context = std::make_shared<grpc::ClientContext>();
    auto timeout = options_.rpc_timeout * (has_snapshot ? 10 : 1);
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      context_ = context;
    }
    v1::SendReply reply;
    grpc::Status s = stub_->Send(context.get(), batch, &reply);
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_.reset();
    }
    return s.ok();
  }

  const uint64_t peer_;
  const GrpcTransport::AddressBook& addresses_;
  const GrpcTransport::Feedback& feedback_;
  const GrpcTransportOptions& options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Message> queue_;
  bool stopping_ = false;
  std::shared_ptr<grpc::ClientContext> context_;  // the call in flight, to cancel at stop
  // Used by the sender thread only.
  std::string address_;
  std::unique_ptr<v1::RaftTransport::Stub> stub_;
  std::thread thread_;
};

GrpcTransport::GrpcTransport(AddressBook addresses, Feedback feedback, GrpcTransportOptions options)
    : addresses_(std::move(addresses)), feedback_(std::move(feedback)), options_(options) {}

GrpcTransport::~GrpcTransport() { peers_.clear(); }

Status GrpcTransport::Send(const v1::Message& message) {
  auto it = peers_.find(message.to());
  if (it == peers_.end()) {
    it = peers_
             .emplace(message.to(),
                      std::make_unique<PeerSender>(message.to(), addresses_, feedback_, options_))
             .first;
  }
  if (!it->second->Enqueue(message)) {
    return {Code::kUnavailable,
            "raft transport: the queue to " + std::to_string(message.to()) + " is full"};
  }
  return Status::Ok();
}

grpc::ServerUnaryReactor* RaftService::Send(grpc::CallbackServerContext* context,
                                            const v1::MessageBatch* request, v1::SendReply*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  try {
    deliver_(std::vector<v1::Message>(request->messages().begin(), request->messages().end()));
    reactor->Finish(grpc::Status::OK);
  } catch (const std::exception& e) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
  }
  return reactor;
}

grpc::Status ToGrpc(const Status& status) {
  using grpc::StatusCode;
  StatusCode code = StatusCode::UNKNOWN;
  switch (status.code()) {
    case Code::kOk:
      return grpc::Status::OK;
    case Code::kInvalidArgument:
      code = StatusCode::INVALID_ARGUMENT;
      break;
    case Code::kNotFound:
      code = StatusCode::NOT_FOUND;
      break;
    case Code::kAlreadyExists:
      code = StatusCode::ALREADY_EXISTS;
      break;
    case Code::kFailedPrecondition:
      code = StatusCode::FAILED_PRECONDITION;
      break;
    case Code::kUnavailable:
      code = StatusCode::UNAVAILABLE;
      break;
    case Code::kIo:
    case Code::kCorruption:
      code = StatusCode::DATA_LOSS;
      break;
    case Code::kInternal:
      code = StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, status.message());
}

Status FromGrpc(const grpc::Status& status) {
  using grpc::StatusCode;
  switch (status.error_code()) {
    case StatusCode::OK:
      return Status::Ok();
    case StatusCode::INVALID_ARGUMENT:
      return InvalidArgument(status.error_message());
    case StatusCode::NOT_FOUND:
      return NotFound(status.error_message());
    case StatusCode::ALREADY_EXISTS:
      return {Code::kAlreadyExists, status.error_message()};
    case StatusCode::FAILED_PRECONDITION:
      return {Code::kFailedPrecondition, status.error_message()};
    case StatusCode::UNAVAILABLE:
    case StatusCode::DEADLINE_EXCEEDED:
    case StatusCode::CANCELLED:
      return {Code::kUnavailable, status.error_message()};
    case StatusCode::DATA_LOSS:
      return {Code::kCorruption, status.error_message()};
    default:
      return Internal(status.error_message());
  }
}

}  // namespace shoal::transport
