#pragma once

// Settings of one Raft member, and the randomness it needs. Time is counted in
// ticks: the driver calls RaftNode::Tick() every tick_interval, so the core
// never reads a clock. Defaults are tuned for a LAN (design.md section 4).

#include <chrono>
#include <cstdint>
#include <vector>

#include "shoal/common/status.h"

namespace shoal::raft {

// Injected randomness, so that a simulation replays exactly from one seed.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // A uniformly distributed integer in [0, n); n > 0. Called only on the thread
  // that drives the node.
  virtual uint64_t Uniform(uint64_t n) = 0;
};

struct Config {
  // This member's id; non-zero, never reused after the member is removed.
  uint64_t id = 0;
  // Bootstrap voters. Used only when the storage is empty, and then every
  // founding member must be given the same list. A member joining an existing
  // group starts with none and learns the configuration from the leader.
  std::vector<uint64_t> peers;
  // The period of Tick(); informational for the core, used by drivers.
  std::chrono::milliseconds tick_interval{10};
  // Leader heartbeat period: 10 ticks = 100 ms.
  int heartbeat_ticks = 10;
  // Base election timeout: 100 ticks = 1 s. Each round picks a timeout uniformly
  // in [election_ticks, 2 * election_ticks), i.e. 1-2 s by default.
  int election_ticks = 100;
  // Ask "would you vote for me?" before bumping the term, so a partitioned or
  // removed member cannot force the group into a new term when it returns.
  bool pre_vote = true;
  // A leader that has not heard from a quorum for an election timeout steps
  // down, and followers that heard from a leader recently ignore vote requests.
  bool check_quorum = true;
  // Upper bound on the entries of one AppendEntries message (bytes); one entry
  // is always sent even if larger.
  uint64_t max_size_per_msg = 1 << 20;
  // AppendEntries messages in flight to one follower before the leader waits.
  size_t max_inflight_msgs = 256;
  // Upper bound on the committed entries of one Ready (bytes).
  uint64_t max_committed_size_per_ready = 8 << 20;
  // The index the application's state machine already holds at start (it was
  // restored from its own persistent state); entries up to it are not re-applied.
  uint64_t applied = 0;

  // InvalidArgument naming the first bad setting.
  Status Validate() const;
};

}  // namespace shoal::raft
