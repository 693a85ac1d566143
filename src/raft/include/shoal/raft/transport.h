#pragma once

// How Ready messages leave a member. The core only emits messages; a transport
// (gRPC between managers, an in-process network in the simulation and the
// benchmark) carries them and feeds received ones to RaftNode::Step.

#include "shoal/common/status.h"
#include "shoal/v1/raft.pb.h"

namespace shoal::raft {

class Transport {
 public:
  virtual ~Transport() = default;

  // Queues `message` for message.to(); returns without waiting for delivery.
  // Delivery is best effort: messages may be lost, duplicated or reordered and
  // Raft tolerates it. kUnavailable when the peer is unknown or unreachable;
  // the driver may then call RaftNode::ReportUnreachable. Called only on the
  // member's event loop; the transport owns a copy of the message.
  virtual Status Send(const shoal::v1::Message& message) = 0;
};

}  // namespace shoal::raft
