// Trust on real daemons (issue 8, points 1-3 and 5; docs/security.md): joins
// pin the cluster CA by the token's digest, every TCP connection is mutual
// TLS, the certificate's role decides what a caller may do, a removed node is
// refused at once, certificates renew by themselves, and a remote CLI works
// with an issued client certificate and fails clearly without one.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "grpc_util.h"
#include "shoal/ca/ca.h"
#include "shoal/v1/cluster.grpc.pb.h"
#include "shoal/v1/raft_service.grpc.pb.h"
#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;

// The node id (CN) and serial of a node's current certificate.
ca::CertInfo CertOf(const ShoalCluster& c, const std::string& name) {
  auto info = ca::ParseCertificate(Slurp(c.Certs(name) + "/cert.pem"));
  REQUIRE(info.ok());
  return *info;
}

grpc::Status Heartbeat(const std::string& addr, const std::string& dir, const std::string& id) {
  auto stub = v1::Dispatcher::NewStub(DialWith(addr, dir));
  v1::HeartbeatRequest req;
  req.set_node_id(id);
  v1::HeartbeatReply out;
  return stub->Heartbeat(Deadline().get(), req, &out);
}

// `shoal --host tcp://<name> <tls...> args...`.
CliResult Remote(const ShoalCluster& c, const std::string& name, std::vector<std::string> tls,
                 const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--host", "tcp://" + c.addr(name)};
  all.insert(all.end(), tls.begin(), tls.end());
  all.insert(all.end(), args.begin(), args.end());
  return c.Run(all);
}

void CopyDir(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) {
    fs::copy_file(from + "/" + f, to + "/" + f, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

TEST_CASE("tls: a join pins the CA named by the token before it sends the token") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("w1") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string token = TokenFrom(init.out, "worker");
  REQUIRE(token.size() > 8 + 64);
  // Another digest, the right secret: the joining node must not send it.
  std::string wrong = token;
  wrong[8] = wrong[8] == '0' ? '1' : '0';
  CliResult j = c.Cli("w1", {"cluster", "join", "--token", wrong, c.addr("m1")});
  INFO(j.out);
  CHECK(j.code != 0);
  CHECK(j.out.find("refusing to send the token") != std::string::npos);
  CliResult bad = c.Cli("w1", {"cluster", "join", "--token", "SHOAL-1-xyz", c.addr("m1")});
  CHECK(bad.code != 0);
  CHECK(bad.out.find("malformed join token") != std::string::npos);
  CliResult ls = c.Cli("m1", {"node", "ls"});
  CHECK(!HasWord(ls.out, "w1"));
  // The right token joins, and the node's key never left it: its certificate
  // is for the key in its own certs dir.
  CliResult ok = c.Cli("w1", {"cluster", "join", "--token", token, c.addr("m1")});
  INFO(ok.out);
  REQUIRE(ok.code == 0);
  CHECK(ca::KeyMatches(Slurp(c.Certs("w1") + "/key.pem"), Slurp(c.Certs("w1") + "/cert.pem")));
  CHECK(ca::Verify(Slurp(c.Certs("w1") + "/cert.pem"), Slurp(c.Certs("m1") + "/ca.pem"),
                   static_cast<int64_t>(std::time(nullptr)))
            .ok());
  CHECK(CertOf(c, "w1").role == ca::Role::kWorker);
  CHECK((fs::status(c.Certs("w1") + "/key.pem").permissions() & fs::perms::others_read) ==
        fs::perms::none);
}

TEST_CASE("tls: a join without a token is refused; a worker token never yields a manager") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  // As a joining node calls: TLS that checks the manager against the root,
  // no client certificate yet, a CSR for a key made here.
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Slurp(c.Certs("m1") + "/ca.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("shoal-manager");
  auto stub = v1::Membership::NewStub(
      grpc::CreateCustomChannel(c.addr("m1"), grpc::SslCredentials(o), args));
  auto key = ca::NewPrivateKey();
  REQUIRE(key.ok());
  auto csr = ca::CreateCsr(*key);
  REQUIRE(csr.ok());
  v1::AdmitRequest req;
  req.set_csr(*csr);
  req.set_advertise_addr("127.0.0.1:1");
  v1::AdmitReply out;
  grpc::Status none = stub->Admit(Deadline().get(), req, &out);
  INFO(none.error_message());
  CHECK(none.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(none.error_message().find("without a join token") != std::string::npos);
  CHECK(c.Cli("m1", {"node", "ls"}).out.find("127.0.0.1:1") == std::string::npos);

  // The token decides the role, whatever the node asks: a worker token
  // gives a worker certificate and no Raft membership.
  req.set_token(TokenFrom(init.out, "worker"));
  grpc::Status as_worker = stub->Admit(Deadline().get(), req, &out);
  INFO(as_worker.error_message());
  REQUIRE(as_worker.ok());
  CHECK(out.role() == v1::NodeSpec::ROLE_WORKER);
  CHECK(out.raft_id() == 0);
  auto cert = ca::ParseCertificate(out.certificate());
  REQUIRE(cert.ok());
  CHECK(cert->role == ca::Role::kWorker);
  CHECK(cert->subject == out.node_id());
}

TEST_CASE("tls: join requests are limited per address, with a clear error") {
  ShoalCluster c;
  REQUIRE(c.Start("m1", {"--join-rate", "0.2", "--join-burst", "2"}) != 0);
  REQUIRE(c.Start("w1") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string token = TokenFrom(init.out, "worker");
  // The right CA, a wrong secret: each try reaches the manager's Admit.
  std::string guess = token;
  guess.back() = guess.back() == '0' ? '1' : '0';
  std::string last;
  for (int i = 0; i < 3; ++i) {
    last = c.Cli("w1", {"cluster", "join", "--token", guess, c.addr("m1")}).out;
  }
  INFO(last);
  CHECK(last.find("too many join requests from 127.0.0.1") != std::string::npos);
  CHECK(!HasWord(c.Cli("m1", {"node", "ls"}).out, "w1"));
}

TEST_CASE("tls: roles: workers cannot use control or Raft; demoted and removed nodes are refused") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("m2") != 0);
  REQUIRE(c.Start("w1") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")})
              .code == 0);
  REQUIRE(c.Cli("m2", {"cluster", "join", "--token", TokenFrom(init.out, "manager"), c.addr("m1")})
              .code == 0);
  std::string m1 = CertOf(c, "m1").subject;
  std::string w1 = CertOf(c, "w1").subject;
  std::string m2 = CertOf(c, "m2").subject;
  CHECK(CertOf(c, "m2").role == ca::Role::kManager);

  // A worker's certificate on the control API and on Raft.
  CliResult ctl = Remote(c, "m1", {"--tls-dir", c.Certs("w1")}, {"node", "ls"});
  INFO(ctl.out);
  CHECK(ctl.code != 0);
  CHECK(ctl.out.find("worker certificate") != std::string::npos);
  {
    auto raft = v1::RaftTransport::NewStub(DialWith(c.addr("m1"), c.Certs("w1")));
    v1::SendReply out;
    grpc::Status s = raft->Send(Deadline().get(), v1::MessageBatch(), &out);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(s.error_message().find("only managers") != std::string::npos);
  }
  // The dispatcher only for the node's own id.
  grpc::Status other = Heartbeat(c.addr("m1"), c.Certs("w1"), m1);
  CHECK(other.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(other.error_message().find("may not act for node") != std::string::npos);
  CHECK(Heartbeat(c.addr("m1"), c.Certs("w1"), w1).ok());

  // m2's manager certificate works until m2 is demoted, then no longer.
  std::string saved = (c.dir() / "m2-manager-certs").string();
  CopyDir(c.Certs("m2"), saved);
  CHECK(Remote(c, "m1", {"--tls-dir", saved}, {"node", "ls"}).code == 0);
  REQUIRE(c.Cli("m1", {"node", "demote", m2}).code == 0);
  CliResult demoted = Remote(c, "m1", {"--tls-dir", saved}, {"node", "ls"});
  INFO(demoted.out);
  CHECK(demoted.code != 0);
  CHECK(demoted.out.find("no longer a manager") != std::string::npos);
  // Its daemon asks for a worker's certificate by itself.
  CHECK(Eventually([&] { return CertOf(c, "m2").role == ca::Role::kWorker; }, seconds(20)));

  // Removed nodes: refused at once, certificates still valid.
  REQUIRE(c.Cli("m1", {"node", "rm", "--force", m2}).code == 0);
  CliResult removed = Remote(c, "m1", {"--tls-dir", saved}, {"node", "ls"});
  INFO(removed.out);
  CHECK(removed.out.find("not in this cluster") != std::string::npos);
  REQUIRE(c.Cli("m1", {"node", "rm", "--force", w1}).code == 0);
  grpc::Status gone = Heartbeat(c.addr("m1"), c.Certs("w1"), w1);
  INFO(gone.error_message());
  CHECK_FALSE(gone.ok());
}

TEST_CASE("tls: a remote CLI with an issued client certificate; without one it fails clearly") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("other") != 0);
  REQUIRE(c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")}).code == 0);
  REQUIRE(c.Cli("other", {"cluster", "init", "--advertise-addr", c.addr("other")}).code == 0);
  std::string alice = (c.dir() / "alice").string();
  std::string bob = (c.dir() / "bob").string();
  CliResult issued = c.Cli("m1", {"cluster", "ca", "--issue-client", "alice", "--out", alice});
  INFO(issued.out);
  REQUIRE(issued.code == 0);
  REQUIRE(c.Cli("other", {"cluster", "ca", "--issue-client", "bob", "--out", bob}).code == 0);
  CHECK(CertOf(c, "m1").role == ca::Role::kManager);

  CliResult ls = Remote(c, "m1", {"--tls-dir", alice}, {"node", "ls"});
  INFO(ls.out);
  CHECK(ls.code == 0);
  CHECK(HasWord(ls.out, "m1"));
  CHECK(Remote(
            c, "m1",
            {"--ca", alice + "/ca.pem", "--cert", alice + "/cert.pem", "--key", alice + "/key.pem"},
            {"stack", "ls"})
            .code == 0);

  CliResult none = Remote(c, "m1", {}, {"node", "ls"});
  INFO(none.out);
  CHECK(none.code != 0);
  CHECK(none.out.find("no client certificate") != std::string::npos);
  // Another cluster's CA: the manager's certificate does not verify.
  CliResult foreign = Remote(c, "m1", {"--tls-dir", bob}, {"node", "ls"});
  INFO(foreign.out);
  CHECK(foreign.code != 0);
  CHECK(foreign.out.find("the given CA did not sign") != std::string::npos);
  // The right CA but another cluster's client certificate: the manager refuses it.
  CliResult refused = Remote(
      c, "m1", {"--ca", alice + "/ca.pem", "--cert", bob + "/cert.pem", "--key", bob + "/key.pem"},
      {"node", "ls"});
  INFO(refused.out);
  CHECK(refused.code != 0);
  CHECK(refused.out.find("does not accept this client certificate") != std::string::npos);
  // Revoked: refused at once.
  REQUIRE(c.Cli("m1", {"cluster", "ca", "--revoke-client", "alice"}).code == 0);
  CliResult revoked = Remote(c, "m1", {"--tls-dir", alice}, {"node", "ls"});
  INFO(revoked.out);
  CHECK(revoked.code != 0);
  CHECK(revoked.out.find("revoked") != std::string::npos);
  // Init and join are only for the node's own socket.
  std::string carol = (c.dir() / "carol").string();
  REQUIRE(c.Cli("m1", {"cluster", "ca", "--issue-client", "carol", "--out", carol}).code == 0);
  CliResult leave = Remote(c, "m1", {"--tls-dir", carol}, {"cluster", "leave", "--force"});
  CHECK(leave.code != 0);
  CHECK(leave.out.find("local socket") != std::string::npos);
}

TEST_CASE("tls: node certificates renew by themselves before they expire") {
  ShoalCluster c;
  // A 20 s validity: renewal falls 10-16 s after issue.
  setenv("SHOAL_CERT_VALIDITY", "20", 1);
  bool started = c.Start("m1") != 0 && c.Start("w1") != 0;
  unsetenv("SHOAL_CERT_VALIDITY");
  REQUIRE(started);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", TokenFrom(init.out, "worker"), c.addr("m1")})
              .code == 0);
  ca::CertInfo m1 = CertOf(c, "m1");
  ca::CertInfo w1 = CertOf(c, "w1");
  CHECK(m1.not_after - m1.not_before <= 25);
  CHECK(Eventually(
      [&] { return CertOf(c, "m1").serial != m1.serial && CertOf(c, "w1").serial != w1.serial; },
      seconds(40)));
  // Past the first certificates' end, both nodes still work together: the
  // worker heartbeats on, the manager's renewed certificate opens control.
  std::this_thread::sleep_for(
      seconds(std::max<int64_t>(0, w1.not_after + 2 - static_cast<int64_t>(std::time(nullptr)))));
  CliResult ls;
  CHECK(Eventually(
      [&] {
        ls = Remote(c, "m1", {"--tls-dir", c.Certs("m1")}, {"node", "ls"});
        return ls.code == 0 && ls.out.find("ready") != std::string::npos &&
               ls.out.find("down") == std::string::npos;
      },
      seconds(10)));
  INFO(ls.out);
  CliResult inspect = c.Cli("m1", {"node", "inspect", CertOf(c, "w1").subject});
  INFO(inspect.out);
  CHECK(inspect.out.find(CertOf(c, "w1").serial) != std::string::npos);
}

TEST_CASE("tls: a node whose certificate expired while it was down is told to rejoin, and can") {
  ShoalCluster c;
  // A 10 s validity (the least the hidden setting takes).
  setenv("SHOAL_CERT_VALIDITY", "10", 1);
  bool started = c.Start("m1") != 0 && c.Start("w1") != 0;
  unsetenv("SHOAL_CERT_VALIDITY");
  REQUIRE(started);
  int w1_port = c.port("w1");
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  REQUIRE(init.code == 0);
  std::string token = TokenFrom(init.out, "worker");
  REQUIRE(c.Cli("w1", {"cluster", "join", "--token", token, c.addr("m1")}).code == 0);
  ca::CertInfo old = CertOf(c, "w1");
  c.Kill("w1");
  // Down past its certificate's end (the manager renews its own meanwhile).
  std::this_thread::sleep_for(
      seconds(std::max<int64_t>(0, old.not_after + 1 - static_cast<int64_t>(std::time(nullptr)))));
  REQUIRE(c.Start("w1", {}, w1_port) == w1_port);
  CliResult again = c.Cli("w1", {"cluster", "join", "--token", token, c.addr("m1")});
  INFO(again.out);
  CHECK(again.code != 0);
  CHECK(again.out.find("this node's certificate expired at ") != std::string::npos);
  CHECK(again.out.find("shoal cluster join --token") != std::string::npos);
  CHECK(again.out.find(old.subject) != std::string::npos);
  // Leave (the daemon exits), start again, join: a new node with a new certificate.
  REQUIRE(c.Cli("w1", {"cluster", "leave", "--force"}).code == 0);
  REQUIRE(Eventually([&] { return c.Start("w1", {}, w1_port) == w1_port; }, seconds(10)));
  CliResult rejoin = c.Cli("w1", {"cluster", "join", "--token", token, c.addr("m1")});
  INFO(rejoin.out);
  REQUIRE(rejoin.code == 0);
  ca::CertInfo fresh = CertOf(c, "w1");
  CHECK(fresh.subject != old.subject);
  CHECK(fresh.not_after > static_cast<int64_t>(std::time(nullptr)));
  CliResult ls;
  CHECK(Eventually(
      [&] {
        ls = c.Cli("m1", {"node", "ls"});
        return ls.out.find(fresh.subject) != std::string::npos;
      },
      seconds(10)));
  INFO(ls.out);
  CHECK(c.Cli("m1", {"node", "rm", "--force", old.subject}).code == 0);
}

}  // namespace shoal::testing
