// shoal_store_bench: three shoal_store_node processes on loopback (issue 3,
// item 6). The modes (store_bench_load.cc and store_bench_faults.cc hold them):
//
//   shoal_store_bench [seconds [node flags...]]
//       Default timings, 1 KiB values: a single sequential client (commits/s,
//       p50/p99 commit latency), many concurrent clients (the event loop
//       batches their proposals into one Ready and one fsync), and one
//       failover (kill -9 of the leader until the first write commits on the
//       new leader).
//   shoal_store_bench failover [runs [node flags...]]
//       `runs` (5) failovers, each on a fresh cluster: a client writes to the
//       leader, the leader is killed -9, and the survivors are written to until
//       one write commits. Prints each run and the median.
//   shoal_store_bench batch [seconds [clients [node flags...]]]
//       `clients` (4) threads send PutBatch calls of 16, 64 and 256 1 KiB values
//       to the leader for `seconds` (3) per row, each row on a fresh cluster,
//       first each value its own command with its own result (the store packs
//       the commands of one event-loop turn into one Raft entry), then one
//       transaction per batch. Commits/s counts values; latency is that of a
//       whole batch.
//   shoal_store_bench row SECONDS CLIENTS BATCH TXN [node flags...]
//       One row of the batch mode (TXN 1: one transaction per batch), e.g.
//       to profile it.
//   shoal_store_bench pipe SECONDS CLIENTS WINDOW [node flags...]
//       CLIENTS threads, each with a connection of its own and WINDOW unary
//       Put calls (one 1 KiB value, one command each) in flight to the leader
//       at all times: batching is left entirely to the store.
//   shoal_store_bench seq [seconds [node flags...]]
//       Only the sequential client of the default mode, after a short
//       warm-up: the commit latency of one write at a time.
//   shoal_store_bench catchup [objects [node flags...]]
//       Writes `objects` (100,000) small objects with concurrent clients, kills
//       -9 a follower, writes until the leader has taken a snapshot and
//       compacted its log past the follower's applied index, then restarts the
//       follower with its stale directory and times it until it has applied
//       the leader's commit index (an InstallSnapshot, then the tail).

#include <cstdlib>
#include <string>
#include <vector>

#include "store_bench_util.h"

const char* StoreNodeBinary() {
  const char* env = std::getenv("SHOAL_STORE_NODE");
  return env != nullptr && *env != '\0' ? env : SHOAL_STORE_NODE_BUILT;
}

int main(int argc, char** argv) {
  using namespace shoal::bench;
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "failover") {
      int runs = argc > 2 ? std::stoi(argv[2]) : 5;
      return RunFailover(runs, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
    if (mode == "batch") {
      double seconds = argc > 2 ? std::atof(argv[2]) : 3;
      int clients = argc > 3 ? std::stoi(argv[3]) : 4;
      return RunBatch(seconds, clients,
                      std::vector<std::string>(argv + std::min(argc, 4), argv + argc));
    }
    if (mode == "row") {
      if (argc < 6) {
        std::fprintf(stderr, "usage: shoal_store_bench row SECONDS CLIENTS BATCH TXN [flags]\n");
        return 2;
      }
      bool ok =
          BatchRow(std::atof(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]),
                   std::string(argv[5]) != "0", std::vector<std::string>(argv + 6, argv + argc));
      return ok ? 0 : 1;
    }
    if (mode == "pipe") {
      if (argc < 5) {
        std::fprintf(stderr, "usage: shoal_store_bench pipe SECONDS CLIENTS WINDOW [flags]\n");
        return 2;
      }
      return RunPipelined(std::atof(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]),
                          std::vector<std::string>(argv + 5, argv + argc));
    }
    if (mode == "seq") {
      double seconds = argc > 2 ? std::atof(argv[2]) : 3;
      return RunSequential(seconds,
                           std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
    if (mode == "catchup") {
      size_t objects = argc > 2 ? std::stoull(argv[2]) : 100000;
      return RunCatchUp(objects, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bad argument: %s\n", e.what());
    return 2;
  }
  double seconds = argc > 1 ? std::atof(argv[1]) : 5;
  return RunDefault(seconds, std::vector<std::string>(argv + std::min(argc, 2), argv + argc));
}
