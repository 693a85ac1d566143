// shoal_store_bench's load modes: PutBatch rows (each value its own command,
// or one transaction per batch), the sequential client, and pipelined
// single puts.

#include "store_bench_util.h"

namespace shoal::bench {
namespace {

// The StoreControl address of `member`, from the peers file that
// ProcessCluster writes into its directory.
std::string AddressOf(const std::filesystem::path& dir, uint64_t member) {
  std::ifstream in(dir / "peers");
  uint64_t id;
  std::string address;
  while (in >> id >> address) {
    if (id == member) return address;
  }
  return "";
}

// `clients` threads each send PutBatch calls of `batch` distinct 1 KiB values
// to `stub` for `seconds`. Commits count values (each its own command unless
// `one_transaction`); latencies are per call (the commit latency of a batch).
Figures BatchLoad(v1::StoreControl::Stub* stub, int clients, int batch, bool one_transaction,
                  double seconds, const std::string& prefix) {
  std::string value(1024, 'x');
  std::vector<Figures> per(clients);
  std::vector<std::thread> threads;
  double node_cpu0 = NodesCpuSeconds();
  double self_cpu0 = SelfCpuSeconds();
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      v1::PutBatchRequest req;
      req.set_one_transaction(one_transaction);
      for (int j = 0; j < batch; ++j) req.add_puts()->set_value(value);
      for (int i = 0; Clock::now() < end; ++i) {
        std::string key = prefix + std::to_string(t) + "-" + std::to_string(i) + "-";
        for (int j = 0; j < batch; ++j) req.mutable_puts(j)->set_key(key + std::to_string(j));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
        v1::PutBatchReply reply;
        auto t0 = Clock::now();
        grpc::Status s = stub->PutBatch(&ctx, req, &reply);
        if (!s.ok()) {
          per[t].errors += batch;
          continue;
        }
        for (const auto& r : reply.results()) {
          if (r.code() == 0) {
            ++per[t].commits;
          } else {
            ++per[t].errors;
          }
        }
        per[t].latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    });
  }
  for (auto& th : threads) th.join();
  Figures f = Merge(per, start, node_cpu0, self_cpu0);
  return f;
}

// One row of the batch mode on a fresh cluster, so that every row starts from
// an empty state (the state, and with it the cost of each snapshot, grows with
// every value written).
}  // namespace

bool BatchRow(double seconds, int clients, int batch, bool one_transaction,
              const std::vector<std::string>& flags) {
  auto before = ClusterDirs();
  ProcessCluster c(flags);
  std::optional<std::filesystem::path> dir;
  for (const auto& d : ClusterDirs()) {
    if (!before.count(d)) dir = d;
  }
  if (!dir) {
    std::fprintf(stderr, "cannot find the cluster's directory\n");
    return false;
  }
  if (!StartAll(c)) return false;
  uint64_t leader = c.Leader();
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  args.SetMaxReceiveMessageSize(-1);
  auto stub = v1::StoreControl::NewStub(c.Channel(AddressOf(*dir, leader), args));
  char name[64];
  std::snprintf(name, sizeof name, "batch %d, %s", batch,
                one_transaction ? "1 txn" : "own command each");
  Figures f = BatchLoad(stub.get(), clients, batch, one_transaction, seconds, "k");
  Print(name, f);
  auto st = c.Status(leader);
  if (c.Leader() != leader) std::printf("  leadership moved during the load\n");
  if (st) {
    std::printf("  leader: commit %llu, last snapshot at %llu\n",
                static_cast<unsigned long long>(st->commit()),
                static_cast<unsigned long long>(st->snapshot_index()));
  }
  std::fflush(stdout);
  return true;
}

int RunBatch(double seconds, int clients, const std::vector<std::string>& flags) {
  std::printf(
      "%d clients, PutBatch of 1 KiB values to the leader, a fresh cluster per row; commits "
      "count values, latency is per batch\n",
      clients);
  for (bool one : {false, true}) {
    for (int batch : {16, 64, 256}) {
      if (!BatchRow(seconds, clients, batch, one, flags)) return 1;
    }
  }
  return 0;
}

int RunSequential(double seconds, const std::vector<std::string>& flags) {
  ProcessCluster c(flags);
  if (!StartAll(c)) return 1;
  uint64_t leader = c.Leader();
  // A short warm-up: connections, first allocations.
  (void)Load(c, leader, 1, 0.3, "w");
  // One gRPC round trip through the leader's event loop and nothing else
  // (Status), the floor under a write's latency.
  std::vector<double> ping;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = Clock::now();
    if (!c.Status(leader)) continue;
    ping.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ping.begin(), ping.end());
  std::printf("%-28s p50 %6.3f ms  p99 %6.3f ms\n", "Status round trip", Percentile(ping, 0.5),
              Percentile(ping, 0.99));
  Print("1 client, sequential", Load(c, leader, 1, seconds, "a"));
  return 0;
}

int RunPipelined(double seconds, int clients, int window, const std::vector<std::string>& flags) {
  auto before = ClusterDirs();
  ProcessCluster c(flags);
  std::optional<std::filesystem::path> dir;
  for (const auto& d : ClusterDirs()) {
    if (!before.count(d)) dir = d;
  }
  if (!dir || !StartAll(c)) return 1;
  uint64_t leader = c.Leader();
  std::string address = AddressOf(*dir, leader);
  std::string value(1024, 'x');
  std::vector<Figures> per(clients);
  std::vector<std::thread> threads;
  double node_cpu0 = NodesCpuSeconds();
  double self_cpu0 = SelfCpuSeconds();
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      // A connection of its own per client, as separate processes would have.
      grpc::ChannelArguments args;
      args.SetInt("shoal.bench.client", t);
      auto stub = v1::StoreControl::NewStub(c.Channel(address, args));
      struct Call {
        grpc::ClientContext ctx;
        v1::PutReply reply;
        grpc::Status status;
        Clock::time_point t0;
        std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PutReply>> rpc;
      };
      grpc::CompletionQueue cq;
      std::vector<std::unique_ptr<Call>> calls(window);
      v1::PutRequest req;
      req.set_value(value);
      int next = 0;
      auto launch = [&](int slot) {
        calls[slot] = std::make_unique<Call>();
        Call& call = *calls[slot];
        call.ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
        req.set_key("p" + std::to_string(t) + "-" + std::to_string(next++));
        call.t0 = Clock::now();
        call.rpc = stub->AsyncPut(&call.ctx, req, &cq);
        call.rpc->Finish(&call.reply, &call.status, reinterpret_cast<void*>(intptr_t{slot}));
      };
      int in_flight = 0;
      for (int slot = 0; slot < window; ++slot, ++in_flight) launch(slot);
      void* tag = nullptr;
      bool ok = false;
      while (in_flight > 0 && cq.Next(&tag, &ok)) {
        --in_flight;
        int slot = static_cast<int>(reinterpret_cast<intptr_t>(tag));
        Call& call = *calls[slot];
        if (ok && call.status.ok()) {
          ++per[t].commits;
          per[t].latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - call.t0).count());
        } else {
          ++per[t].errors;
        }
        if (Clock::now() < end) {
          launch(slot);
          ++in_flight;
        }
      }
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    });
  }
  for (auto& th : threads) th.join();
  Figures f = Merge(per, start, node_cpu0, self_cpu0);
  char name[64];
  std::snprintf(name, sizeof name, "%d clients x %d Puts", clients, window);
  Print(name, f);
  if (auto st = c.Status(leader)) {
    std::printf("  leader: commit %llu (entries), last snapshot at %llu\n",
                static_cast<unsigned long long>(st->commit()),
                static_cast<unsigned long long>(st->snapshot_index()));
  }
  return 0;
}

}  // namespace shoal::bench
