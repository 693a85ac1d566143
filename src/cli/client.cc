#include "client.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "shoal/transport/tls.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::cli {

namespace fs = std::filesystem;

std::string DefaultDataDir() {
  if (geteuid() == 0) return "/var/lib/shoal";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.shoal";
}

std::string DefaultHost() { return "unix://" + DefaultDataDir() + "/shoal.sock"; }

TlsFlags& GlobalTlsFlags() {
  static TlsFlags flags;
  return flags;
}

namespace {

// The data dir of the node whose socket was used last ("" if none).
std::string& LocalNodeDir() {
  static std::string dir;
  return dir;
}

std::string ReadAll(const std::string& path, std::string* note) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *note += " (cannot read " + path + ")";
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Mutual TLS from the flags (see TlsFlags).
transport::ClientTls ClientTlsFromFlags(std::string* note) {
  TlsFlags f = GlobalTlsFlags();
  std::string dir = f.dir;
  if (dir.empty()) {
    const char* env = std::getenv("SHOAL_TLS_DIR");
    if (env && *env) dir = env;
  }
  if (dir.empty() && f.ca.empty() && f.cert.empty() && !LocalNodeDir().empty() &&
      fs::exists(LocalNodeDir() + "/certs/cert.pem")) {
    dir = LocalNodeDir() + "/certs";
  }
  if (!dir.empty()) {
    transport::TlsFiles files = transport::TlsFilesIn(dir);
    if (f.ca.empty()) f.ca = files.root;
    if (f.cert.empty()) f.cert = files.cert;
    if (f.key.empty()) f.key = files.key;
  }
  if (f.ca.empty() && f.cert.empty()) {
    *note = "no client certificate (use --tls-dir DIR, or --ca/--cert/--key)";
    return transport::UnverifiedClientTls();
  }
  *note = "client certificate " + (f.cert.empty() ? std::string("(none)") : f.cert) + ", CA " +
          (f.ca.empty() ? std::string("(none)") : f.ca);
  std::string root = f.ca.empty() ? "" : ReadAll(f.ca, note);
  std::string cert = f.cert.empty() ? "" : ReadAll(f.cert, note);
  std::string key = f.key.empty() ? "" : ReadAll(f.key, note);
  if (root.empty()) return transport::UnverifiedClientTls();
  return transport::StaticClientTls(root, key, cert);
}

}  // namespace

Client Connect(const std::string& host) {
  Client c;
  c.host = host;
  if (c.host.empty()) {
    const char* env = std::getenv("SHOAL_HOST");
    c.host = env && *env ? env : DefaultHost();
  }
  std::string target = c.host;
  if (target.rfind("tcp://", 0) == 0) target = target.substr(6);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::Channel> channel;
  if (target.rfind("unix:", 0) == 0) {
    // The node's admin path; remember its data dir for a redirect to the leader.
    std::string path = target.substr(target.rfind("unix://", 0) == 0 ? 7 : 5);
    LocalNodeDir() = fs::path(path).parent_path().string();
    channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  } else {
    channel = transport::Dial(target, ClientTlsFromFlags(&c.tls_note), args);
  }
  c.stub = v1::Control::NewStub(channel);
  c.events = v1::Events::NewStub(channel);
  c.membership = v1::Membership::NewStub(channel);
  return c;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

int Fail(const Client& c, const grpc::Status& s) {
  std::cerr << "error: " << s.error_message() << "\n";
  const std::string& m = s.error_message();
  bool tcp = c.host.rfind("unix:", 0) != 0;
  if (tcp && s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      m.find("certificate verify failed") != std::string::npos) {
    std::cerr << "hint: the manager at " << c.host
              << " presents a certificate the given CA did not sign (another cluster? a wrong "
                 "--ca / ca.pem). Using "
              << c.tls_note << "\n";
  } else if (tcp && s.error_code() == grpc::StatusCode::UNAVAILABLE &&
             (m.find("Socket closed") != std::string::npos ||
              m.find("andshake") != std::string::npos || m.find("alert") != std::string::npos)) {
    // With TLS 1.3 a refused client certificate shows as a closed socket.
    std::cerr << "hint: the manager at " << c.host
              << " closed the connection during the TLS handshake: it does not accept this "
                 "client certificate (issued by another cluster's CA, or expired). Using "
              << c.tls_note << "\n";
  } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
             m.find("connect") != std::string::npos) {
    std::cerr << "hint: is a shoal daemon running at " << c.host
              << "? start one with `shoal daemon` (or `shoal daemon --dev`), or pass --host\n";
  }
  return 1;
}

std::string Ago(int64_t then_ns) {
  if (then_ns <= 0) return "";
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  int64_t s = (now - then_ns) / 1'000'000'000;
  if (s < 0) s = 0;
  if (s < 60) return std::to_string(s) + " seconds ago";
  if (s < 3600) return std::to_string(s / 60) + " minutes ago";
  if (s < 86400) return std::to_string(s / 3600) + " hours ago";
  return std::to_string(s / 86400) + " days ago";
}

std::string StateName(int state) {
  std::string n = v1::TaskState_Name(static_cast<v1::TaskState>(state));
  if (n.rfind("TASK_", 0) == 0) n = n.substr(5);
  for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return n;
}

bool IsConflict(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
         s.error_message().find("changed since it was read") != std::string::npos;
}

}  // namespace shoal::cli
