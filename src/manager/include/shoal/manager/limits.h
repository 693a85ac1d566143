#pragma once

// Limits on what a peer may ask of a manager (docs/security.md, "Hostile
// input"): message sizes, the rate of join requests per peer address, and
// the number of streams a node holds open. Each refusal is a Status with a
// message that says which limit, its value, and what to do, so that an
// operator who meets one can tell it from a fault.
//
// Pure apart from the injected clock; the classes are thread-safe (gRPC
// handlers call them from its threads).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "shoal/common/status.h"
#include "shoal/v1/control.pb.h"

namespace shoal::manager {

// ---- gRPC message sizes ----
// The server's receive cap (grpc::ServerBuilder::SetMaxReceiveMessageSize):
// one port serves every service, and Raft's appends and snapshot chunks
// between managers are the largest messages.
inline constexpr size_t kMaxServerReceiveBytes = size_t{64} << 20;
// Per service, checked in the handlers with CheckMessageSize: a Deploy
// carries a stack with its secrets and configs (each at most 500 KiB in
// Swarm), so 16 MiB is generous.
inline constexpr size_t kMaxControlRequestBytes = size_t{16} << 20;
// An agent's heartbeats and status batches are kilobytes.
inline constexpr size_t kMaxDispatcherRequestBytes = size_t{4} << 20;
// A join: a token and a certificate signing request.
inline constexpr size_t kMaxJoinRequestBytes = size_t{64} << 10;
// What a client accepts (the CLI's channel): a full `inspect` of a large
// cluster, or a stack's revision history.
inline constexpr size_t kMaxClientReceiveBytes = size_t{64} << 20;

// Ok when `message` serializes to at most `limit` bytes; otherwise
// InvalidArgument: "<what> is 20.0 MiB; the limit is 16 MiB".
Status CheckMessageSize(const google::protobuf::Message& message, size_t limit,
                        std::string_view what);

// "10.0.0.5" for gRPC's peer string "ipv4:10.0.0.5:41234", "::1" for
// "ipv6:[::1]:41234", "unix" for a unix socket peer; the string itself when
// it has no known form. Rate limits key on it: a peer's ports change with
// every connection, its address does not.
std::string PeerAddress(std::string_view grpc_peer);

// ---- request contents ----
// Objects of one kind in one stack (services, networks, ...).
inline constexpr int kMaxStackObjects = 1000;
// A stack or object name, in bytes.
inline constexpr size_t kMaxNameBytes = 255;

// What Control.Deploy must refuse before it plans anything, since a client
// may send any StackSpec, not only what the stack loader makes. InvalidArgument
// naming the field for: a request over kMaxControlRequestBytes; a stack name
// that is empty, longer than kMaxNameBytes or not [A-Za-z0-9][A-Za-z0-9_.-]*;
// more than kMaxStackObjects objects of a kind; an object name that is empty,
// too long, or holds a '/' or a control character; a service not named
// "<stack>_<short name>" or whose `stack` is another stack; an enum field
// holding a number its enum does not define. Pure.
Status ValidateDeployRequest(const v1::DeployRequest& request);

// ---- request rates ----
// A token bucket per peer address: `burst` requests at once, then one every
// 1/rate seconds. For join (and certificate) requests, which cost a
// signature each and are open to anyone who can reach the port.
class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  struct Options {
    double rate_per_second = 1.0;
    double burst = 5.0;
    // Peers remembered at once; past it the longest idle is forgotten (it
    // then starts with a full bucket again), so that addresses cannot
    // exhaust memory.
    size_t max_peers = 10'000;
    // In messages: "join requests".
    std::string what = "requests";
  };

  RateLimiter(Options options, Clock clock);

  // Takes a token for `peer`. Ok, or kUnavailable (retrying later helps):
  // "too many join requests from 10.0.0.5 (at most 5 at once, then 1 per
  // second): retry in 0.8 s". Thread-safe.
  Status Admit(std::string_view peer);

  // Peers currently remembered (for tests and metrics).
  size_t peers() const;

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  void Refill(Bucket& b, std::chrono::steady_clock::time_point now) const;
  void Forget(std::chrono::steady_clock::time_point now);

  const Options options_;
  const Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

// ---- open streams ----
// Counts the long-lived streams each node holds open (dispatcher sessions
// and long polls, watch and event streams) and refuses one past the cap, so
// that one node cannot tie up the manager's threads and memory.
class StreamLimiter {
 public:
  // Holds one stream's place until destroyed (or Release()d). Move-only;
  // may outlive the limiter.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }
    void Release();
    bool held() const { return counts_ != nullptr; }

   private:
    friend class StreamLimiter;
    struct Counts;
    Slot(std::shared_ptr<Counts> counts, std::string node)
        : counts_(std::move(counts)), node_(std::move(node)) {}
    std::shared_ptr<Counts> counts_;
    std::string node_;
  };

  // `max_per_node` streams per node at once (at least 1).
  explicit StreamLimiter(size_t max_per_node = 16);

  // A slot for one more stream of `node` (a node id, or the peer address of
  // a client without one). kUnavailable past the cap: "node n1 already has
  // 16 dispatcher streams open (the limit per node is 16): close one first".
  // `what` names the stream kind in the message. Thread-safe.
  Result<Slot> Open(std::string_view node, std::string_view what = "streams");

  // Streams `node` holds now.
  size_t open(std::string_view node) const;
  size_t max_per_node() const { return max_per_node_; }

 private:
  const size_t max_per_node_;
  std::shared_ptr<Slot::Counts> counts_;
};

}  // namespace shoal::manager
