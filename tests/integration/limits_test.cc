// Limits on what one caller may hold of a manager (issue 8, point 6): the
// long-lived streams of one certificate are capped, the refusal says which
// limit, and a closed stream gives its place back.

#include <catch2/catch.hpp>

#include "grpc_util.h"
#include "shoal/v1/cluster.grpc.pb.h"
#include "shoal/v1/control.grpc.pb.h"
#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;

struct Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader;
};

// An event stream from the start of the log, so that the manager answers at
// once: a first event read means the manager holds the stream.
std::unique_ptr<Stream> Watch(v1::Events::Stub& stub) {
  auto s = std::make_unique<Stream>();
  v1::WatchRequest req;
  req.set_from_version(1);
  s->reader = stub.Watch(&s->ctx, req);
  return s;
}

}  // namespace

TEST_CASE("limits: one certificate holds at most --max-streams-per-node streams") {
  ShoalCluster c;
  REQUIRE(c.Start("m1", {"--max-streams-per-node", "2"}) != 0);
  REQUIRE(c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")}).code == 0);
  std::string alice = (c.dir() / "alice").string();
  REQUIRE(c.Cli("m1", {"cluster", "ca", "--issue-client", "alice", "--out", alice}).code == 0);
  auto stub = v1::Events::NewStub(DialWith(c.addr("m1"), alice));

  v1::WatchEvent ev;
  auto first = Watch(*stub);
  REQUIRE(first->reader->Read(&ev));
  auto second = Watch(*stub);
  REQUIRE(second->reader->Read(&ev));

  auto third = Watch(*stub);
  CHECK_FALSE(third->reader->Read(&ev));
  grpc::Status refused = third->reader->Finish();
  INFO(refused.error_message());
  CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(refused.error_message().find("alice already has 2 event streams open") !=
        std::string::npos);
  CHECK(refused.error_message().find("close one first") != std::string::npos);

  // The local socket is the admin's and is not counted.
  CHECK(c.Cli("m1", {"node", "ls"}).code == 0);

  // A closed stream gives its place back.
  first->ctx.TryCancel();
  (void)first->reader->Finish();
  CHECK(Eventually(
      [&] {
        auto again = Watch(*stub);
        bool ok = again->reader->Read(&ev);
        again->ctx.TryCancel();
        (void)again->reader->Finish();
        return ok;
      },
      seconds(10)));
  second->ctx.TryCancel();
  (void)second->reader->Finish();
}

TEST_CASE("limits: a dispatcher call larger than its limit is refused with its size") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")}).code == 0);
  CliResult info = c.Cli("m1", {"cluster", "info"});
  INFO(info.out);
  REQUIRE(info.code == 0);
  size_t at = info.out.find("Node:");
  REQUIRE(at != std::string::npos);
  std::string id = info.out.substr(at + 11, info.out.find(' ', at + 11) - at - 11);
  CHECK(info.out.find("Autolock:  off") != std::string::npos);

  auto stub = v1::Dispatcher::NewStub(DialWith(c.addr("m1"), c.Certs("m1")));
  v1::HeartbeatRequest req;
  req.set_node_id(id);
  v1::HeartbeatReply out;
  grpc::Status fine = stub->Heartbeat(Deadline().get(), req, &out);
  INFO(fine.error_message());
  CHECK(fine.ok());

  // 5 MiB of status message: over the dispatcher's 4 MiB, under the port's cap.
  v1::TaskStatusUpdate* u = req.add_updates();
  u->set_task_id("t1");
  u->mutable_status()->set_message(std::string(size_t{5} << 20, 'x'));
  grpc::Status big = stub->Heartbeat(Deadline().get(), req, &out);
  INFO(big.error_message());
  CHECK(big.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(big.error_message().find("a heartbeat is 5.0 MiB; the limit is 4 MiB") !=
        std::string::npos);
  // The node's own session goes on.
  CHECK(c.Cli("m1", {"node", "ls"}).out.find("ready") != std::string::npos);
}

}  // namespace shoal::testing
