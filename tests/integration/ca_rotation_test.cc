// Root rotation on real daemons (issue 8, point 3; docs/security.md): a live
// cluster moves to a new root with a cross-signed transition and no task
// restart, the old root and the old join token stop working, a node joins
// during a rotation, and a second rotation restarts one that waits on a node
// that is down.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "grpc_util.h"
#include "shoal/ca/ca.h"
#include "shoal/v1/cluster.grpc.pb.h"
#include "shoal/v1/control.grpc.pb.h"
#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

std::shared_ptr<grpc::Channel> Local(const ShoalCluster& c, const std::string& name) {
  return grpc::CreateChannel("unix://" + c.Data(name) + "/shoal.sock",
                             grpc::InsecureChannelCredentials());
}

v1::RootRotationStatus Rotation(const ShoalCluster& c, const std::string& name) {
  v1::RootRotationStatus st;
  auto stub = v1::Membership::NewStub(Local(c, name));
  (void)stub->RotateRoot(Deadline().get(), v1::RotateRootRequest(), &st);
  return st;
}

// Task id -> "node container" of the stack's live tasks.
std::map<std::string, std::string> LiveTasks(const ShoalCluster& c, const std::string& name,
                                             const std::string& stack) {
  auto stub = v1::Control::NewStub(Local(c, name));
  v1::ListTasksRequest req;
  req.set_stack(stack);
  req.set_live_only(true);
  v1::ListTasksReply out;
  std::map<std::string, std::string> tasks;
  if (!stub->ListTasks(Deadline().get(), req, &out).ok()) return tasks;
  for (const auto& t : out.tasks()) {
    tasks[t.meta().id()] = t.node_id() + " " + t.status().container_id();
  }
  return tasks;
}

// The pids of the test's task processes.
std::set<std::string> TaskPids(const ShoalCluster& c) {
  std::string cmd =
      "pgrep -f '[" + c.marker().substr(0, 1) + "]" + c.marker().substr(1) + "' 2>/dev/null";
  std::set<std::string> pids;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return pids;
  char buf[64];
  while (fgets(buf, sizeof buf, f)) {
    std::string p(buf);
    while (!p.empty() && (p.back() == '\n' || p.back() == ' ')) p.pop_back();
    if (!p.empty()) pids.insert(p);
  }
  pclose(f);
  return pids;
}

// The node trusts `root` only and presents a single certificate that chains
// to it and not to `old_root`.
bool OnNewRootOnly(const ShoalCluster& c, const std::string& name, const std::string& root,
                   const std::string& old_root) {
  std::string cert = Slurp(c.Certs(name) + "/cert.pem");
  return Slurp(c.Certs(name) + "/ca.pem") == root && ca::SplitCertificates(cert).size() == 1 &&
         ca::Verify(cert, root, Now()).ok() && !ca::Verify(cert, old_root, Now()).ok() &&
         ca::KeyMatches(Slurp(c.Certs(name) + "/key.pem"), cert);
}

std::string SecretOf(const std::string& token) {
  auto t = ca::ParseToken(token);
  return t.ok() ? t->secret : "";
}

}  // namespace

TEST_CASE("ca rotation: a live 3-manager, 2-worker cluster moves to a new root, no task restarts") {
  ShoalCluster c;
  for (const char* n : {"m1", "m2", "m3", "w1", "w2"}) REQUIRE(c.Start(n) != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string worker_token = TokenFrom(init.out, "worker");
  std::string manager_token = TokenFrom(init.out, "manager");
  for (const char* n : {"m2", "m3"}) {
    REQUIRE(c.Cli(n, {"cluster", "join", "--token", manager_token, c.addr("m1")}).code == 0);
  }
  for (const char* n : {"w1", "w2"}) {
    REQUIRE(c.Cli(n, {"cluster", "join", "--token", worker_token, c.addr("m1")}).code == 0);
  }
  std::string file =
      c.WriteStack("stack.yml",
                   "services:\n  sleeper:\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", "
                   "\"sleep 3600; echo " +
                       c.marker() + "\"]\n    deploy:\n      replicas: 5\n");
  CliResult dep = c.Cli("m1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  REQUIRE(dep.code == 0);
  REQUIRE(Eventually([&] { return c.CountTasks() == 5; }, seconds(20)));
  std::map<std::string, std::string> tasks = LiveTasks(c, "m1", "demo");
  std::set<std::string> pids = TaskPids(c);
  REQUIRE(tasks.size() == 5);
  REQUIRE(pids.size() == 5);

  std::string old_root = Slurp(c.Certs("m1") + "/ca.pem");
  REQUIRE(ca::SplitCertificates(old_root).size() == 1);
  CHECK_FALSE(Rotation(c, "m1").in_progress());

  // Started on a follower (its proposal goes through the leader); waits.
  auto t0 = std::chrono::steady_clock::now();
  CliResult rot = c.Cli("m2", {"cluster", "ca", "--rotate", "--wait", "90"});
  INFO(rot.out);
  REQUIRE(rot.code == 0);
  std::printf("ca rotation: 5 nodes on the new root, rotation ended, in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  CHECK(rot.out.find("none in progress") != std::string::npos);
  v1::RootRotationStatus st = Rotation(c, "m3");
  CHECK_FALSE(st.in_progress());
  std::string new_root = st.root_cert();
  REQUIRE(!new_root.empty());
  CHECK(new_root != old_root);
  CHECK(st.root_digest() == ca::Digest(new_root));

  // Every node: the new root alone, its certificate from it only.
  for (const char* n : {"m1", "m2", "m3", "w1", "w2"}) {
    INFO(n);
    CHECK(Eventually([&] { return OnNewRootOnly(c, n, new_root, old_root); }, seconds(30)));
  }

  // The join tokens pin the new root; their secrets are the same.
  CliResult jt = c.Cli("m1", {"cluster", "join-token", "-q", "worker"});
  std::string new_worker_token = TokenFrom(jt.out, "worker");
  REQUIRE(!new_worker_token.empty());
  CHECK(new_worker_token != worker_token);
  CHECK(SecretOf(new_worker_token) == SecretOf(worker_token));
  CHECK(ca::ParseToken(new_worker_token)->ca_digest == ca::Digest(new_root));
  REQUIRE(c.Start("w3") != 0);
  CliResult old_join = c.Cli("w3", {"cluster", "join", "--token", worker_token, c.addr("m1")});
  INFO(old_join.out);
  CHECK(old_join.code != 0);
  CHECK(old_join.out.find("refusing to send the token") != std::string::npos);
  CliResult new_join = c.Cli("w3", {"cluster", "join", "--token", new_worker_token, c.addr("m2")});
  INFO(new_join.out);
  CHECK(new_join.code == 0);
  CHECK(Eventually([&] { return OnNewRootOnly(c, "w3", new_root, old_root); }, seconds(10)));

  // No task restarted: the same tasks, on the same nodes, the same processes.
  CHECK(LiveTasks(c, "m3", "demo") == tasks);
  CHECK(TaskPids(c) == pids);

  // The cluster still serves: a scale is accepted and converges, on the
  // leader whichever it is, asked through a follower's socket.
  CliResult scale = c.Cli("m3", {"service", "scale", "demo_sleeper=6"});
  INFO(scale.out);
  CHECK(scale.code == 0);
  CHECK(Eventually([&] { return c.CountTasks() == 6; }, seconds(30)));
  std::set<std::string> after = TaskPids(c);
  CHECK(std::includes(after.begin(), after.end(), pids.begin(), pids.end()));
  CliResult ls = c.Cli("m1", {"node", "ls"});
  INFO(ls.out);
  CHECK(ls.out.find("down") == std::string::npos);
}

TEST_CASE("ca rotation: waits for a node that is down; a second --rotate restarts it") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  int w1_port = c.Start("w1");
  REQUIRE(w1_port != 0);
  REQUIRE(c.Start("w2") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")})
              .code == 0);
  std::string old_root = Slurp(c.Certs("m1") + "/ca.pem");
  c.Kill("w1");

  CliResult first = c.Cli("m1", {"cluster", "ca", "--rotate"});
  INFO(first.out);
  REQUIRE(first.code == 0);
  CHECK(first.out.find("Rotation:  to sha256") != std::string::npos);
  // The manager moves; the stopped worker holds the rotation open.
  v1::RootRotationStatus st;
  CHECK(Eventually(
      [&] {
        st = Rotation(c, "m1");
        return st.in_progress() && st.nodes_done() == 1 && st.nodes_total() == 2;
      },
      seconds(20)));
  CliResult shown = c.Cli("m1", {"cluster", "ca"});
  INFO(shown.out);
  CHECK(shown.out.find("1 of 2 nodes renewed") != std::string::npos);
  // During the transition the manager trusts both roots.
  CHECK(ca::SplitCertificates(Slurp(c.Certs("m1") + "/ca.pem")).size() == 2);
  std::string first_root = st.new_root_digest();

  // Again: a fresh root, and every node renews again.
  CliResult second = c.Cli("m1", {"cluster", "ca", "--rotate"});
  INFO(second.out);
  REQUIRE(second.code == 0);
  st = Rotation(c, "m1");
  CHECK(st.in_progress());
  CHECK(st.new_root_digest() != first_root);
  CHECK(st.root_digest() == ca::Digest(old_root));

  // A join during the rotation, with the token of the old root: the node gets
  // a certificate from the new key with the cross-signed root after it.
  CliResult join =
      c.Cli("w2", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")});
  INFO(join.out);
  CHECK(join.code == 0);
  CHECK(ca::SplitCertificates(Slurp(c.Certs("w2") + "/cert.pem")).size() == 2);
  CHECK(ca::Verify(Slurp(c.Certs("w2") + "/cert.pem"), old_root, Now()).ok());

  // The worker comes back with its old certificate (old root): it still
  // connects, renews from the new root, and the rotation completes.
  REQUIRE(c.Start("w1", {}, w1_port) == w1_port);
  CHECK(Eventually([&] { return !Rotation(c, "m1").in_progress(); }, seconds(40)));
  st = Rotation(c, "m1");
  CHECK(st.root_digest() != ca::Digest(old_root));
  CHECK(st.root_digest() != first_root);
  for (const char* n : {"m1", "w1", "w2"}) {
    INFO(n);
    CHECK(Eventually([&] { return OnNewRootOnly(c, n, st.root_cert(), old_root); }, seconds(20)));
  }
  CliResult ls = c.Cli("m1", {"node", "ls"});
  INFO(ls.out);
  CHECK(Eventually(
      [&] {
        ls = c.Cli("m1", {"node", "ls"});
        return ls.out.find("down") == std::string::npos;
      },
      seconds(20)));
}

}  // namespace shoal::testing
