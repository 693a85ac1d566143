#pragma once

// Raft over gRPC (schema/proto/shoal/v1/raft_service.proto). The client side
// keeps one channel and one sender thread per peer: Send() only queues, the
// sender batches everything queued into one unary RaftTransport.Send call, so
// a slow or dead peer never blocks the event loop or the other peers. The
// server side hands each received batch to a callback that posts it to the
// member's event loop.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/raft/transport.h"
#include "shoal/v1/raft_service.grpc.pb.h"

namespace shoal::transport {

struct GrpcTransportOptions {
  // Deadline of one batch RPC; a snapshot batch gets 10 times as long.
  std::chrono::milliseconds rpc_timeout{1000};
  // Messages queued for one peer before new ones are dropped (Raft retries).
  size_t max_queue = 100000;
  // Bytes of messages in one batch RPC (one message is always sent).
  size_t max_batch_bytes = 8 << 20;
  // Reconnection backoff to a peer that went away: short, so that a restarted
  // manager is reached within a heartbeat or two (gRPC's default grows to 2 min).
  std::chrono::milliseconds max_reconnect_backoff{500};
};

class PeerSender;

class GrpcTransport : public raft::Transport {
 public:
  // The address ("host:port") of a peer, or "" while unknown. Called on sender
  // threads, again after a failed RPC, so a peer may move.
  using AddressBook = std::function<std::string(uint64_t peer)>;
  // Delivery feedback, called on sender threads: post it to the event loop.
  // `unreachable` for a failed RPC; `snapshot_ok` set when the batch held a
  // snapshot (true: sent, false: lost).
  using Feedback =
      std::function<void(uint64_t peer, bool unreachable, std::optional<bool> snapshot_ok)>;

  GrpcTransport(AddressBook addresses, Feedback feedback, GrpcTransportOptions options = {});
  // Stops and joins every sender; queued messages are dropped.
  ~GrpcTransport() override;

  // Queues `message` for its peer. kUnavailable when the peer's queue is full
  // or the transport is stopping. Called on the event loop only.
  Status Send(const v1::Message& message) override;

 private:
  AddressBook addresses_;
  Feedback feedback_;
  GrpcTransportOptions options_;
  std::map<uint64_t, std::unique_ptr<PeerSender>> peers_;
};

// The server side: register with a grpc::ServerBuilder. `deliver` is called on
// gRPC threads with each received batch; it must only post to the event loop.
class RaftService final : public v1::RaftTransport::CallbackService {
 public:
  using Deliver = std::function<void(std::vector<v1::Message> messages)>;
  explicit RaftService(Deliver deliver) : deliver_(std::move(deliver)) {}

  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* context,
                                 const v1::MessageBatch* request, v1::SendReply* reply) override;

 private:
  Deliver deliver_;
};

// A shoal Status as a gRPC status, and back, for service edges.
grpc::Status ToGrpc(const Status& status);
Status FromGrpc(const grpc::Status& status);

}  // namespace shoal::transport
