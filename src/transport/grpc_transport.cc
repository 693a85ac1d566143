#include "shoal/transport/grpc_transport.h"

#include <grpcpp/alarm.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <set>

namespace shoal::transport {

namespace {

// Messages whose order against the ones sent before them does not matter: an
// append without entries (it only carries the commit index, and its
// predecessor is already in the log when it is sent) and a heartbeat. A
// follower that handles either after a later message only sees an older
// commit index, which it ignores, and answers with an index the leader
// already knows.
bool OrderFree(const v1::Message& m) {
  return (m.type() == v1::MSG_APP && m.entries_size() == 0) || m.type() == v1::MSG_HEARTBEAT;
}

// An append that only tells the follower a new commit index.
bool CommitOnly(const v1::Message& m) { return m.type() == v1::MSG_APP && m.entries_size() == 0; }

}  // namespace

// One peer: a queue and RaftTransport.Send calls made with gRPC's callback
// API. Send() on the event loop starts a call itself when it may (the request
// is written from the loop thread, with no hand-off to another thread);
// otherwise the message waits in the queue, and the completion of a call (on
// a gRPC thread) starts the next one with everything queued meanwhile.
//
// Order: a call holding any message other than OrderFree ones is "ordered",
// and while one is in flight nothing else starts, since two calls in flight
// may reach the receiver's loop in either order. Calls of OrderFree messages
// only do not hold the next call back (at most kMaxCalls at once), so the
// append of a new write is not kept waiting behind the commit index of the
// previous one.
//
// A commit-index-only append that finds nothing else to send waits up to
// options.commit_delay for company: the next message to the peer takes it
// along, or, if that is an append (whose commit index is at least as high),
// replaces it. Sent alone, it would cost the follower a turn and an answer,
// and the leader the handling of that answer, just as a client that got its
// answer sends its next write.
class PeerSender {
 public:
  PeerSender(uint64_t peer, const GrpcTransport::AddressBook& addresses,
             const GrpcTransport::Feedback& feedback, const GrpcTransportOptions& options)
      : peer_(peer), addresses_(addresses), feedback_(feedback), options_(options) {}

  ~PeerSender() {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
    delayed_.reset();
    for (Call* c : in_flight_) c->context.TryCancel();
    if (alarm_set_) alarm_.Cancel();
    idle_.wait(lock, [this] { return in_flight_.empty() && !alarm_set_; });
  }

  bool Enqueue(const v1::Message& m) {
    std::unique_ptr<Call> call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= options_.max_queue) return false;
      if (delayed_) {
        if (m.type() != v1::MSG_APP) queue_.push_back(std::move(*delayed_));
        delayed_.reset();
      }
      if (CommitOnly(m) && queue_.empty() && options_.commit_delay.count() > 0) {
        delayed_ = m;
        if (!alarm_set_) {
          alarm_set_ = true;
          alarm_.Set(std::chrono::system_clock::now() + options_.commit_delay,
                     [this](bool) { OnAlarm(); });
        }
        return true;
      }
      queue_.push_back(m);
      if (!CanStartLocked()) return true;
      call = TakeBatchLocked();
    }
    Start(std::move(call));
    return true;
  }

 private:
  static constexpr size_t kMaxCalls = 2;

  struct Call {
    grpc::ClientContext context;
    v1::MessageBatch request;
    v1::SendReply reply;
    bool has_snapshot = false;
    bool ordered = false;
    std::shared_ptr<v1::RaftTransport::Stub> stub;  // kept until the call is done
  };

  bool CanStartLocked() const {
    return !stopping_ && !queue_.empty() && !ordered_in_flight_ && in_flight_.size() < kMaxCalls;
  }

  // Moves up to max_batch_bytes of queued messages (at least one) into a new
  // call, counted in flight from now on.
  std::unique_ptr<Call> TakeBatchLocked() {
    auto call = std::make_unique<Call>();
    size_t bytes = 0;
    while (!queue_.empty() &&
           (call->request.messages_size() == 0 || bytes < options_.max_batch_bytes)) {
      bytes += queue_.front().ByteSizeLong();
      call->has_snapshot |= queue_.front().type() == v1::MSG_SNAP;
      call->ordered |= !OrderFree(queue_.front());
      *call->request.add_messages() = std::move(queue_.front());
      queue_.pop_front();
    }
    in_flight_.insert(call.get());
    if (call->ordered) ordered_in_flight_ = true;
    call->stub = StubLocked();
    return call;
  }

  // Starts `call`, on the thread that enqueued (the event loop) or on the
  // gRPC thread that completed an earlier call. gRPC may complete a call that
  // fails at once inline, before Send returns: nothing here touches the call
  // after handing it over.
  void Start(std::unique_ptr<Call> call) {
    if (!call->stub) {
      Done(std::move(call), false);
      return;
    }
    auto timeout = options_.rpc_timeout * (call->has_snapshot ? 10 : 1);
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    Call* raw = call.release();
    raw->stub->async()->Send(
        &raw->context, &raw->request, &raw->reply,
        [this, raw](grpc::Status s) { Done(std::unique_ptr<Call>(raw), s.ok()); });
  }

  // The commit delay is over: send what is still delayed.
  void OnAlarm() {
    std::unique_ptr<Call> call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      alarm_set_ = false;
      if (delayed_ && !stopping_) {
        queue_.push_back(std::move(*delayed_));
        if (CanStartLocked()) call = TakeBatchLocked();
      }
      delayed_.reset();
      // As in Done: nothing is used after the unlock when idle.
      if (in_flight_.empty()) idle_.notify_all();
    }
    if (call) Start(std::move(call));
  }

  // A call finished: report it, then start the next one or go idle.
  void Done(std::unique_ptr<Call> call, bool ok) {
    bool has_snapshot = call->has_snapshot;
    if (!ok || has_snapshot) {
      feedback_(peer_, !ok, has_snapshot ? std::optional<bool>(ok) : std::nullopt);
    }
    std::unique_ptr<Call> next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_.erase(call.get());
      if (call->ordered) ordered_in_flight_ = false;
      call.reset();
      if (!ok) stub_address_.clear();  // ask the address book again
      if (CanStartLocked()) next = TakeBatchLocked();
      // Nothing of this object is used after the unlock below when no call
      // is left: the destructor may run as soon as it can take the lock.
      if (in_flight_.empty() && !alarm_set_) idle_.notify_all();
    }
    if (next) Start(std::move(next));
  }

  // The stub for the peer's current address, or null while it is unknown.
  std::shared_ptr<v1::RaftTransport::Stub> StubLocked() {
    std::string address = addresses_(peer_);
    if (address.empty()) return nullptr;
    if (address != stub_address_ || !stub_) {
      if (address != channel_address_ || !channel_) {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                    static_cast<int>(options_.max_reconnect_backoff.count()));
        args.SetMaxSendMessageSize(-1);
        // Raft retries by itself; gRPC's retry machinery would only add work
        // to every call (it keeps each request to be able to replay it).
        args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
        channel_ = Dial(address, options_.tls, args);
        channel_address_ = address;
      }
      stub_ = v1::RaftTransport::NewStub(channel_);
      stub_address_ = address;
    }
    return stub_;
  }

  const uint64_t peer_;
  const GrpcTransport::AddressBook& addresses_;
  const GrpcTransport::Feedback& feedback_;
  const GrpcTransportOptions& options_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::deque<v1::Message> queue_;
  bool stopping_ = false;
  std::set<Call*> in_flight_;           // started or being started, to cancel at stop
  bool ordered_in_flight_ = false;      // one of them is ordered
  std::optional<v1::Message> delayed_;  // a commit-only append waiting for company
  grpc::Alarm alarm_;                   // ends the wait
  bool alarm_set_ = false;
  std::string stub_address_;
  std::string channel_address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::RaftTransport::Stub> stub_;
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
  if (authorize_) {
    if (grpc::Status s = authorize_(*context); !s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
  }
  // The request is not read again once this handler returns, so its messages
  // are moved out rather than copied (entries are most of the bytes). gRPC
  // deserialises it outside any protobuf arena, so a move is a swap of
  // pointers.
  auto* batch = const_cast<v1::MessageBatch*>(request);
  std::vector<v1::Message> messages;
  messages.reserve(batch->messages_size());
  for (auto& m : *batch->mutable_messages()) messages.push_back(std::move(m));
  // The answer goes only once the messages are in the receiver's order
  // (queued, or stepped by a turn that runs right here): the sender starts its
  // next call on it, and that call's messages must come after these.
  auto answered = std::make_shared<std::atomic<bool>>(false);
  auto finish = [reactor, answered](const grpc::Status& status) {
    if (!answered->exchange(true)) reactor->Finish(status);
  };
  try {
    if (deliver_) {
      deliver_(std::move(messages));
    } else {
      deliver_in_order_(std::move(messages), [finish] { finish(grpc::Status::OK); });
    }
    finish(grpc::Status::OK);
  } catch (const std::exception& e) {
    finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
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
