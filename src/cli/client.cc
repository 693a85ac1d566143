#include "client.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "shoal/v1/objects.pb.h"

namespace shoal::cli {

std::string DefaultDataDir() {
  if (geteuid() == 0) return "/var/lib/shoal";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.shoal";
}

std::string DefaultHost() { return "unix://" + DefaultDataDir() + "/shoal.sock"; }

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
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  c.stub = v1::Control::NewStub(channel);
  c.events = v1::Events::NewStub(channel);
  return c;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

int Fail(const Client& c, const grpc::Status& s) {
  std::cerr << "error: " << s.error_message() << "\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
      s.error_message().find("connect") != std::string::npos) {
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
