#pragma once

// Raft over gRPC (schema/proto/shoal/v1/raft_service.proto). The client side
// keeps one channel per peer and uses gRPC's callback API: Send() starts a
// unary RaftTransport.Send call at once when the peer has none in flight
// (written from the calling thread, no hand-off), else queues, and the call's
// completion sends everything queued meanwhile as one batch, so a slow or
// dead peer never blocks the event loop or the other peers. Calls are
// ordered: one in flight at a time, except that calls holding only messages
// whose order does not matter (commit-index-only appends, heartbeats) do not
// hold the next one back. The server side hands each received batch to a
// callback that posts it to the member's event loop.

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
#include "shoal/transport/tls.h"
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
  // How long an append that only carries a new commit index may wait for the
  // next message to the same peer to go with (or, an append, to replace it);
  // 0: sent at once. See PeerSender in grpc_transport.cc.
  std::chrono::microseconds commit_delay{2000};
  // How peers are dialled: the node's certificate, and the name a peer's
  // certificate must carry (tls.h).
  ClientTls tls;
};

class PeerSender;

class GrpcTransport : public raft::Transport {
 public:
  // The address ("host:port") of a peer, or "" while unknown. Called for each
  // batch, on the thread calling Send() or a gRPC thread, with a transport
  // lock held (so it must not call Send), so a peer may move.
  using AddressBook = std::function<std::string(uint64_t peer)>;
  // Delivery feedback, called on gRPC threads (or, when a call fails at once,
  // on the thread calling Send()): post it to the event loop. `unreachable`
  // for a failed RPC; `snapshot_ok` set when the batch held a snapshot (true:
  // sent, false: lost).
  using Feedback =
      std::function<void(uint64_t peer, bool unreachable, std::optional<bool> snapshot_ok)>;

  GrpcTransport(AddressBook addresses, Feedback feedback, GrpcTransportOptions options = {});
  // Cancels the calls in flight and waits for their completions; queued
  // messages are dropped.
  ~GrpcTransport() override;

  // Sends `message` to its peer (starts a call, or queues it behind the one
  // in flight). kUnavailable when the peer's queue is full or the transport is
  // stopping. Called from the event loop's turns only.
  Status Send(const v1::Message& message) override;

 private:
  AddressBook addresses_;
  Feedback feedback_;
  GrpcTransportOptions options_;
  std::map<uint64_t, std::unique_ptr<PeerSender>> peers_;
};

// The server side: register with a grpc::ServerBuilder. `deliver` is called on
// gRPC threads with each received batch; it must only post to the event loop.
// The call is answered when `deliver` returns: the sender's next call (whose
// messages must come after these) starts only then.
//
// With DeliverInOrder, the call is answered when `received` is called, or
// when `deliver` returns, whichever comes first: for a loop that may run the
// posted turn on the calling thread (EventLoopOptions::run_inline), the task
// calls `received` once it has stepped the messages, so the sender does not
// wait for the rest of the turn (an fsync).
class RaftService final : public v1::RaftTransport::CallbackService {
 public:
  using Deliver = std::function<void(std::vector<v1::Message> messages)>;
  using DeliverInOrder =
      std::function<void(std::vector<v1::Message> messages, std::function<void()> received)>;
  explicit RaftService(Deliver deliver) : deliver_(std::move(deliver)) {}
  explicit RaftService(DeliverInOrder deliver) : deliver_in_order_(std::move(deliver)) {}
  // Decides per call who may send Raft messages (the daemon: managers only).
  // Not OK: the call is refused with that status and nothing is delivered.
  // Set before the server starts; called on gRPC threads.
  using Authorize = std::function<grpc::Status(const grpc::ServerContextBase&)>;
  void set_authorize(Authorize authorize) { authorize_ = std::move(authorize); }

  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* context,
                                 const v1::MessageBatch* request, v1::SendReply* reply) override;

 private:
  Deliver deliver_;
  DeliverInOrder deliver_in_order_;
  Authorize authorize_;
};

// A shoal Status as a gRPC status, and back, for service edges.
grpc::Status ToGrpc(const Status& status);
Status FromGrpc(const grpc::Status& status);

}  // namespace shoal::transport
