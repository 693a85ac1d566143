#pragma once

// Three (or more) shoal_store_node processes on loopback, each with its own
// LevelDB directories under a temporary directory, for the real-process test
// and the benchmark. Every process is killed by the destructor.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "shoal/ca/ca.h"
#include "shoal/v1/raft_service.grpc.pb.h"

namespace shoal::testing {

namespace fs = std::filesystem;
namespace v1 = shoal::v1;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Polls `pred` every 20 ms until it holds or `timeout` passes.
template <class Pred>
inline bool WaitFor(Pred pred, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class ProcessCluster {
 public:
  static constexpr uint64_t kSize = 3;

  // `flags` are added to every member's command line (timings, snapshots).
  explicit ProcessCluster(std::vector<std::string> flags) : flags_(std::move(flags)) {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("shoal-kill-" + std::to_string(rd()));
    fs::create_directories(dir_);
    peers_file_ = (dir_ / "peers").string();
    // Mutual TLS as between managers: a CA of the test's own, a manager
    // certificate per member and one for the test's client calls.
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    root_ = shoal::ca::CreateRoot("store-test", now).value();
    for (uint64_t id = 0; id <= kSize; ++id) IssueTls(id, now);
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = root_.cert_pem;
    o.pem_cert_chain = ReadFile(TlsDir(0) + "/cert.pem");
    o.pem_private_key = ReadFile(TlsDir(0) + "/key.pem");
    creds_ = grpc::SslCredentials(o);
  }
  ~ProcessCluster() {
    for (auto& [id, p] : procs_) p.Kill();
    fs::remove_all(dir_);
  }

  // Starts member `id` on a fresh port and publishes its address.
  bool Start(uint64_t id) {
    std::vector<std::string> argv = {SHOAL_STORE_NODE,
                                     "--id",
                                     std::to_string(id),
                                     "--data",
                                     (dir_ / ("node" + std::to_string(id))).string(),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--peers",
                                     "1,2,3",
                                     "--peers-file",
                                     peers_file_,
                                     "--tls-dir",
                                     TlsDir(id)};
    argv.insert(argv.end(), flags_.begin(), flags_.end());
    auto p = ChildProcess::Spawn(argv);
    if (!p) return false;
    auto line = p->ReadLine(milliseconds(10000));
    if (!line || line->rfind("LISTENING ", 0) != 0) return false;
    int port = std::stoi(line->substr(10));
    procs_.insert_or_assign(id, std::move(*p));
    std::string address = "127.0.0.1:" + std::to_string(port);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stubs_[id] = v1::StoreControl::NewStub(Channel(address));
      addresses_[id] = address;
    }
    WritePeers();
    return true;
  }

  void Kill(uint64_t id) { procs_.at(id).Kill(); }

  std::optional<v1::StatusReply> Status(uint64_t id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(500));
    v1::StatusReply reply;
    if (!Stub(id)->Status(&ctx, v1::StatusRequest(), &reply).ok()) return std::nullopt;
    return reply;
  }

  // The member that says it leads, if any.
  uint64_t Leader() {
    for (uint64_t id = 1; id <= kSize; ++id) {
      auto st = Status(id);
      if (st && st->leader() == id) return id;
    }
    return 0;
  }

  grpc::Status Put(uint64_t id, const std::string& key, const std::string& value) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(3000));
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    v1::PutReply reply;
    return Stub(id)->Put(&ctx, req, &reply);
  }

  grpc::Status Get(uint64_t id, const std::string& key, v1::GetReply* reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(3000));
    v1::GetRequest req;
    req.set_key(key);
    return Stub(id)->Get(&ctx, req, reply);
  }

  // A mutual-TLS channel to a member, with the test's client certificate.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                         grpc::ChannelArguments args = {}) const {
    args.SetSslTargetNameOverride("shoal-manager");
    return grpc::CreateCustomChannel(address, creds_, args);
  }

 private:
  // ca.pem, cert.pem, key.pem of member `id` (0: the test's client).
  std::string TlsDir(uint64_t id) const { return (dir_ / ("tls" + std::to_string(id))).string(); }
  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void IssueTls(uint64_t id, int64_t now) {
    std::string key = shoal::ca::NewPrivateKey().value();
    shoal::ca::IssueRequest r;
    r.csr_pem = shoal::ca::CreateCsr(key).value();
    r.subject = "store" + std::to_string(id);
    r.role = shoal::ca::Role::kManager;
    r.cluster_id = "store-test";
    r.now_unix = now;
    std::string cert = shoal::ca::Sign(root_, r).value();
    fs::create_directories(TlsDir(id));
    std::ofstream(TlsDir(id) + "/ca.pem") << root_.cert_pem;
    std::ofstream(TlsDir(id) + "/key.pem") << key;
    std::ofstream(TlsDir(id) + "/cert.pem") << cert;
  }

  v1::StoreControl::Stub* Stub(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return stubs_.at(id).get();
  }
  void WritePeers() {
    std::string tmp = peers_file_ + ".tmp";
    {
      std::ofstream out(tmp);
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, a] : addresses_) out << id << ' ' << a << '\n';
    }
    fs::rename(tmp, peers_file_);
  }

  std::vector<std::string> flags_;
  fs::path dir_;
  shoal::ca::RootCA root_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::string peers_file_;
  std::map<uint64_t, ChildProcess> procs_;
  std::mutex mu_;
  std::map<uint64_t, std::unique_ptr<v1::StoreControl::Stub>> stubs_;
  std::map<uint64_t, std::string> addresses_;
};

}  // namespace shoal::testing
