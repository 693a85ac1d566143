// shoal_store_node: a manager with only the store, for the real-process tests
// and the benchmark. One ReplicatedStore on LevelDB (DIR/raft, DIR/state), run
// by an EventLoop, reached over gRPC: RaftTransport for its peers and
// StoreControl (a key/value view) for the test.
//
//   shoal_store_node --id 1 --data DIR --listen 127.0.0.1:0 --peers 1,2,3 --tls-dir DIR
//                    --peers-file FILE [--tick-ms 10] [--heartbeat-ticks 10]
//                    [--election-ticks 100] [--snapshot-every 10000]
//                    [--snapshot-keep 1000] [--snapshot-log-ratio 0]
//                    [--early-appends 1] [--inline-turns 1] [--batch-bytes 262144]
//                    [--flush-objects 0]
//
// --snapshot-log-ratio R (ReplicatedStoreOptions::snapshot_log_ratio) also
// waits for R times the last snapshot's size of applied commands between
// snapshots. --early-appends 0 makes the leader persist its entries before sending them
// (ReplicatedStoreOptions::leader_appends_before_persist), for comparison.
// --inline-turns 0 makes every turn of the store run on the loop's own thread
// (EventLoopOptions::run_inline off, as in the daemon), for comparison.
// --batch-bytes sets ReplicatedStoreOptions::batch_max_bytes (0: one Raft
// entry per command, as before batch entries), for comparison.
// --flush-objects sets ReplicatedStoreOptions::flush_objects, for comparison.
//
// The process re-executes itself once at start with a larger glibc malloc
// cache (TuneMallocCache below).
//
// Prints "LISTENING <port>" once serving. FILE holds "<id> <host:port>" lines
// and is re-read while a peer's address is unknown or stale, so peers may start
// on port 0 and move. The process exits when its stdin closes, so a test that
// dies cannot leave it running.

#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "shoal/raft/leveldb_storage.h"
#include "shoal/store/persistent_state.h"
#include "shoal/store/replicated_store.h"
#include "shoal/transport/event_loop.h"
#include "shoal/transport/grpc_transport.h"
#include "shoal/transport/tls.h"
#include "shoal/v1/raft_service.grpc.pb.h"

namespace {

using shoal::Status;
using shoal::store::ReplicatedStore;
using shoal::transport::EventLoop;
using shoal::transport::ToGrpc;
namespace v1 = shoal::v1;

struct Flags {
  uint64_t id = 0;
  std::string data;
  std::string listen = "127.0.0.1:0";
  std::vector<uint64_t> peers;
  std::string peers_file;
  int tick_ms = 10;
  int heartbeat_ticks = 10;
  int election_ticks = 100;
  uint64_t snapshot_every = 10000;
  uint64_t snapshot_keep = 1000;
  bool early_appends = true;
  bool inline_turns = true;
  double snapshot_log_ratio = 0;
  size_t batch_bytes = 256 << 10;
  size_t flush_objects = shoal::store::ReplicatedStoreOptions().flush_objects;
  std::string tls_dir;  // ca.pem, cert.pem, key.pem (a manager's certificate)
};

bool ParseFlag(const std::string& k, const std::string& v, Flags* f) {
  if (k == "--id") {
    f->id = std::stoull(v);
  } else if (k == "--data") {
    f->data = v;
  } else if (k == "--listen") {
    f->listen = v;
  } else if (k == "--peers") {
    std::stringstream ss(v);
    std::string p;
    while (std::getline(ss, p, ',')) f->peers.push_back(std::stoull(p));
  } else if (k == "--peers-file") {
    f->peers_file = v;
  } else if (k == "--tick-ms") {
    f->tick_ms = std::stoi(v);
  } else if (k == "--heartbeat-ticks") {
    f->heartbeat_ticks = std::stoi(v);
  } else if (k == "--election-ticks") {
    f->election_ticks = std::stoi(v);
  } else if (k == "--snapshot-every") {
    f->snapshot_every = std::stoull(v);
  } else if (k == "--snapshot-keep") {
    f->snapshot_keep = std::stoull(v);
  } else if (k == "--snapshot-log-ratio") {
    f->snapshot_log_ratio = std::stod(v);
  } else if (k == "--early-appends") {
    f->early_appends = v != "0";
  } else if (k == "--batch-bytes") {
    f->batch_bytes = std::stoull(v);
  } else if (k == "--flush-objects") {
    f->flush_objects = std::stoull(v);
  } else if (k == "--tls-dir") {
    f->tls_dir = v;
  } else if (k == "--inline-turns") {
    f->inline_turns = v != "0";
  } else {
    std::fprintf(stderr, "unknown flag %s\n", k.c_str());
    return false;
  }
  return true;
}

// Every flag takes a value; a number that does not parse is named with its flag.
bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    try {
      if (!ParseFlag(k, v, f)) return false;
    } catch (const std::exception&) {
      std::fprintf(stderr, "%s: \"%s\" is not a valid value\n", k.c_str(), v.c_str());
      return false;
    }
  }
  return f->id != 0 && !f->data.empty() && !f->peers.empty();
}

// Peer addresses from the peers file, re-read at most every 200 ms.
class AddressFile {
 public:
  explicit AddressFile(std::string path) : path_(std::move(path)) {}
  std::string Lookup(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (now - read_at_ > std::chrono::milliseconds(200)) {
      read_at_ = now;
      std::ifstream in(path_);
      std::map<uint64_t, std::string> fresh;
      uint64_t pid;
      std::string addr;
      while (in >> pid >> addr) fresh[pid] = addr;
      if (!fresh.empty()) addresses_ = std::move(fresh);
    }
    auto it = addresses_.find(id);
    return it == addresses_.end() ? "" : it->second;
  }

 private:
  std::string path_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point read_at_{};
  std::map<uint64_t, std::string> addresses_;
};

class SystemRandom : public shoal::raft::RandomSource {
 public:
  SystemRandom() : rng_(std::random_device{}()) {}
  uint64_t Uniform(uint64_t n) override { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

// The store and its loop; the store is touched on the loop thread only.
struct Node {
  std::unique_ptr<ReplicatedStore> store;
  std::unique_ptr<EventLoop> loop;
};

class ControlService final : public v1::StoreControl::CallbackService {
 public:
  explicit ControlService(Node* node) : node_(node) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const v1::PutRequest* req,
                                v1::PutReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    v1::Command cmd = NewCommand();
    AddPut(const_cast<v1::PutRequest*>(req), cmd.mutable_transaction());
    Post(reactor, [this, reactor, reply, cmd = std::move(cmd)]() mutable {
      node_->store->Propose(std::move(cmd), [reactor, reply](shoal::Status s, uint64_t index) {
        reply->set_index(index);
        reactor->Finish(ToGrpc(s));
      });
    });
    return reactor;
  }

  // Every put of the batch is proposed in one loop task, so all of them land
  // in the same Raft Ready: one fsync and one AppendEntries per follower.
  // Each put is its own command with its own result (the store packs the
  // commands of one turn into one batch entry), unless one_transaction.
  grpc::ServerUnaryReactor* PutBatch(grpc::CallbackServerContext* ctx,
                                     const v1::PutBatchRequest* req,
                                     v1::PutBatchReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    int n = req->puts_size();
    for (int i = 0; i < n; ++i) reply->add_results();
    if (n == 0) {
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    bool one = req->one_transaction();
    // Built on the gRPC thread, off the loop.
    std::vector<v1::Command> cmds;
    cmds.reserve(one ? 1 : n);
    auto* puts = const_cast<v1::PutBatchRequest*>(req)->mutable_puts();
    for (auto& p : *puts) {
      if (cmds.empty() || !one) cmds.push_back(NewCommand());
      AddPut(&p, cmds.back().mutable_transaction());
    }
    Post(reactor, [this, reactor, reply, one, cmds = std::move(cmds)]() mutable {
      // Callbacks run on the loop thread only, so a plain counter is enough.
      auto remaining = std::make_shared<size_t>(cmds.size());
      for (size_t i = 0; i < cmds.size(); ++i) {
        node_->store->Propose(std::move(cmds[i]), [reactor, reply, remaining, one, i](
                                                      shoal::Status s, uint64_t index) {
          grpc::Status g = ToGrpc(s);
          for (int j = one ? 0 : static_cast<int>(i);
               j < (one ? reply->results_size() : static_cast<int>(i) + 1); ++j) {
            v1::PutResult* r = reply->mutable_results(j);
            r->set_index(s.ok() ? index : 0);
            r->set_code(static_cast<int32_t>(g.error_code()));
            r->set_message(g.error_message());
          }
          if (--*remaining == 0) reactor->Finish(grpc::Status::OK);
        });
      }
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const v1::GetRequest* req,
                                v1::GetReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    std::string key = req->key();
    Post(reactor, [this, reactor, reply, key] {
      node_->store->Read([this, reactor, reply, key](shoal::Status s, uint64_t index) {
        if (s.ok()) {
          reply->set_read_index(index);
          if (const v1::Config* c = node_->store->state().Get<v1::Config>(key)) {
            reply->set_found(true);
            reply->set_value(c->spec().data());
            reply->set_version(c->meta().version());
          }
        }
        reactor->Finish(ToGrpc(s));
      });
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::StatusRequest*,
                                   v1::StatusReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    Post(reactor, [this, reactor, reply] {
      auto st = node_->store->raft_status();
      reply->set_id(st.id);
      reply->set_term(st.term);
      reply->set_leader(st.leader);
      reply->set_commit(st.commit);
      reply->set_applied(node_->store->state().applied_index());
      reply->set_snapshot_index(node_->store->snapshot_index());
      reply->set_objects(node_->store->state().Count(shoal::store::Kind::kConfig));
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  // A command as shoal::store::Txn builds one, still without mutations.
  static v1::Command NewCommand() {
    v1::Command cmd;
    cmd.mutable_transaction();
    cmd.set_proposer("store-node");
    auto now = std::chrono::system_clock::now().time_since_epoch();
    cmd.set_proposed_at_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
    return cmd;
  }

  // Adds the put of `req` (what Txn::Put adds for the Config object with id
  // and name req.key, data req.value, expecting req.expected_version). The
  // value is moved out of the request rather than copied twice (into a
  // Config, then into the Txn): gRPC does not read a request again once its
  // handler has returned, and deserialises it outside any protobuf arena.
  static void AddPut(v1::PutRequest* req, v1::Transaction* txn) {
    v1::Mutation* m = txn->add_mutations();
    m->set_op(v1::Mutation::OP_PUT);
    m->set_expected_version(req->expected_version());
    v1::Config* c = m->mutable_config();
    c->mutable_meta()->set_id(req->key());
    c->mutable_meta()->set_version(req->expected_version());
    c->mutable_spec()->set_name(std::move(*req->mutable_key()));
    c->mutable_spec()->set_data(std::move(*req->mutable_value()));
  }

  // Runs `task` on the loop, or answers UNAVAILABLE when the node is stopping.
  void Post(grpc::ServerUnaryReactor* reactor, std::function<void()> task) {
    bool posted = node_->loop->Post([this, reactor, task = std::move(task)] {
      if (!node_->store)
        return reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping"));
      task();
    });
    if (!posted) reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping"));
  }

  Node* node_;
};

int Run(const Flags& f) {
  auto raft_disk = shoal::raft::LevelDbStorage::Open(f.data + "/raft");
  if (!raft_disk.ok()) {
    std::fprintf(stderr, "%s\n", raft_disk.error().ToString().c_str());
    return 1;
  }
  auto applied = shoal::store::PersistentState::Open(f.data + "/state");
  if (!applied.ok()) {
    std::fprintf(stderr, "%s\n", applied.error().ToString().c_str());
    return 1;
  }
  Node node;
  std::atomic<EventLoop*> loop_ptr{nullptr};
  AddressFile addresses(f.peers_file);
  SystemRandom random;
  // Mutual TLS as between shoal managers (docs/security.md).
  shoal::transport::TlsFiles tls_files = shoal::transport::TlsFilesIn(f.tls_dir);
  shoal::transport::GrpcTransportOptions transport_options;
  transport_options.tls = shoal::transport::WatchedClientTls(tls_files);
  shoal::transport::GrpcTransport transport(
      [&](uint64_t id) { return addresses.Lookup(id); },
      [&](uint64_t peer, bool unreachable, std::optional<bool> snapshot_ok) {
        EventLoop* loop = loop_ptr.load();
        if (loop == nullptr) return;
        (void)loop->Post([&node, peer, unreachable, snapshot_ok] {
          if (!node.store) return;
          if (unreachable) node.store->ReportUnreachable(peer);
          if (snapshot_ok) node.store->ReportSnapshot(peer, *snapshot_ok);
        });
      },
      transport_options);

  shoal::store::ReplicatedStoreOptions options;
  options.raft.id = f.id;
  options.raft.peers = f.peers;
  options.raft.tick_interval = std::chrono::milliseconds(f.tick_ms);
  options.raft.heartbeat_ticks = f.heartbeat_ticks;
  options.raft.election_ticks = f.election_ticks;
  options.snapshot_every = f.snapshot_every;
  options.snapshot_keep = f.snapshot_keep;
  options.leader_appends_before_persist = f.early_appends;
  options.snapshot_log_ratio = f.snapshot_log_ratio;
  options.batch_max_bytes = f.batch_bytes;
  options.flush_objects = f.flush_objects;
  shoal::store::ReplicatedStoreDeps deps{raft_disk->get(), applied->get(), &transport, &random};
  auto store = ReplicatedStore::Open(options, deps);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.error().ToString().c_str());
    return 1;
  }
  node.store = std::move(store).value();
  // Turns run on the gRPC thread that posts to an idle loop (run_inline): a
  // request then reaches Raft without waking another thread. The handlers
  // here only post, so holding their thread for a turn is fine.
  shoal::transport::EventLoopOptions loop_options;
  loop_options.run_inline = f.inline_turns;
  node.loop = std::make_unique<EventLoop>(
      options.raft.tick_interval,
      [&node] {
        if (node.store) node.store->Tick();
      },
      [&node] {
        // A disk error: stop, as a crash would; the peers carry on.
        if (node.store && !node.store->Process().ok()) std::_Exit(2);
      },
      loop_options);
  loop_ptr = node.loop.get();

  // The call is answered once the messages are stepped (or queued, in order)
  // rather than after the whole turn a gRPC thread may run here (fsync
  // included); see RaftService.
  shoal::transport::RaftService raft_service(
      [&node](std::vector<v1::Message> messages, std::function<void()> received) {
        (void)node.loop->Post([&node, received, messages = std::move(messages)] {
          if (node.store) {
            for (const auto& m : messages) (void)node.store->Step(m);
          }
          received();
        });
      });
  raft_service.set_authorize([](const grpc::ServerContextBase& ctx) {
    shoal::transport::Peer p = shoal::transport::PeerOf(ctx);
    if (p.has_cert && p.cert.role == shoal::ca::Role::kManager) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "only managers may send Raft messages");
  });
  ControlService control(&node);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(f.listen, shoal::transport::WatchedServerCredentials(tls_files), &port);
  builder.SetMaxReceiveMessageSize(-1);
  builder.RegisterService(&raft_service);
  builder.RegisterService(&control);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "cannot listen on %s\n", f.listen.c_str());
    return 1;
  }
  std::printf("LISTENING %d\n", port);
  std::fflush(stdout);

  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  // Stop: fail pending requests (their reactors finish), then stop serving.
  node.loop->RunSync([&node] { node.store.reset(); });
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  node.loop->Stop();
  return 0;
}

// glibc's per-thread cache keeps at most 7 freed chunks of each size by
// default. Applying a batch frees hundreds of buffers of about 1 KiB at once
// (values and the copies made of them), so most allocations went through the
// shared arena's bins, which under perf took about a quarter of the members'
// CPU; with 4,096 per size they stay in the cache (about 20% less CPU per
// commit). The cache's size cannot be set with mallopt, only through
// GLIBC_TUNABLES when the process starts, so the process re-executes itself
// once with it (unless the variable already sets it).
void TuneMallocCache(char** argv) {
  const char* current = std::getenv("GLIBC_TUNABLES");
  std::string tunables = current != nullptr ? current : "";
  if (tunables.find("glibc.malloc.tcache_count") != std::string::npos) return;
  tunables += std::string(tunables.empty() ? "" : ":") + "glibc.malloc.tcache_count=4096";
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  // The binary's own path, so that the process keeps its name (exec of
  // /proc/self/exe would rename it "exe").
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return;
  self[n] = '\0';
  execv(self, argv);
  // exec failed: run with the default cache.
}

}  // namespace

int main(int argc, char** argv) {
  TuneMallocCache(argv);
  // Large buffers (messages and write batches of a few hundred KiB) would
  // otherwise each get fresh pages from mmap, or have the heap trimmed under
  // them, and the page faults that follow cost more than the work itself.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_ARENA_MAX, 1);
  Flags f;
  try {
    if (!ParseFlags(argc, argv, &f) || f.tls_dir.empty()) {
      std::fprintf(stderr,
                   "usage: shoal_store_node --id N --data DIR --peers 1,2,3 --peers-file FILE "
                   "--tls-dir DIR "
                   "[--listen ADDR] [--tick-ms 10] [--heartbeat-ticks 10] [--election-ticks 100] "
                   "[--snapshot-every 10000] [--snapshot-keep 1000] [--snapshot-log-ratio 0] "
                   "[--early-appends 1] [--inline-turns 1] [--batch-bytes 262144] [--flush-objects "
                   "0]\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bad flag value: %s\n", e.what());
    return 2;
  }
  return Run(f);
}
