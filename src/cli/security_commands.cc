// Verbs of trust (issue 8): the cluster CA (`cluster ca`: client
// certificates, root rotation) and encryption at rest (`cluster update
// --autolock`, `cluster unlock`, `cluster unlock-key`). The autolock verbs
// talk to the Security service, which a daemon serves on its local unix socket
// only: the unlock key never crosses the network.

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "client.h"
#include "commands.h"
#include "shoal/ca/ca.h"
#include "shoal/transport/tls.h"
#include "shoal/v1/control.grpc.pb.h"

namespace shoal::cli {
namespace {

struct SecurityClient {
  Client base;  // for Fail()'s hints
  std::unique_ptr<v1::Security::Stub> stub;
};

// A stub on the local socket; nullopt (after printing why) for a TCP host.
std::optional<SecurityClient> ConnectLocal(const std::string& host) {
  SecurityClient c;
  c.base = Connect(host);
  if (c.base.host.rfind("unix:", 0) != 0) {
    std::cerr << "error: autolock and unlock are served on a node's local socket only; run this "
                 "on the manager itself (--host unix:///path/shoal.sock)\n";
    return std::nullopt;
  }
  c.stub =
      v1::Security::NewStub(grpc::CreateChannel(c.base.host, grpc::InsecureChannelCredentials()));
  return c;
}

void PrintUnlockKey(const std::string& key) {
  std::cout << "Autolock is on. Keep this unlock key somewhere safe: a restarted manager serves\n"
               "nothing until it is given this key with `shoal cluster unlock`, and it is not\n"
               "shown again (see `shoal cluster unlock-key`).\n\n    "
            << key << "\n\n";
}

void PrintRotation(const v1::RootRotationStatus& st) {
  std::cout << "Root CA:   sha256 " << st.root_digest() << " (what join tokens pin)\n";
  if (!st.in_progress()) {
    std::cout << "Rotation:  none in progress\n";
    return;
  }
  int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::cout << "Rotation:  to sha256 " << st.new_root_digest() << ", " << st.nodes_done() << " of "
            << st.nodes_total() << " nodes renewed (started "
            << std::max<int64_t>(0, (now_ns - st.started_ns()) / 1'000'000'000) << " s ago)\n";
  if (st.pending_nodes_size() > 0) {
    std::cout << "Waiting:  ";
    for (const auto& id : st.pending_nodes()) std::cout << " " << id;
    std::cout << "\n";
  }
}

// `cluster ca`: status, --rotate [--wait S], --issue-client/--revoke-client.
void AddCaCommand(CLI::App* cluster, const std::string* host, int* exit_code) {
  auto* cmd = cluster->add_subcommand(
      "ca", "Show or rotate the cluster root CA; issue or revoke client certificates");
  auto issue = std::make_shared<std::string>();
  auto revoke = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto rotate = std::make_shared<bool>(false);
  auto pem = std::make_shared<bool>(false);
  auto wait = std::make_shared<int>(0);
  auto* issue_opt = cmd->add_option(
      "--issue-client", *issue,
      "Make a key here and have the cluster CA certify it for a remote CLI named NAME "
      "(a new one replaces the old)");
  auto* revoke_opt = cmd->add_option("--revoke-client", *revoke,
                                     "Stop honouring the client certificate named NAME");
  auto* rotate_opt = cmd->add_flag(
      "--rotate", *rotate,
      "Rotate the root: a new root, cross-signed by the old one; every node renews with it, "
      "then the old root is no longer trusted and the join tokens pin the new one (again "
      "during a rotation: restart it with a fresh root)");
  cmd->add_option("--wait", *wait,
                  "With --rotate: wait up to this many seconds for the rotation to finish")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--pem", *pem, "Print the root certificate (PEM)");
  issue_opt->excludes(revoke_opt);
  rotate_opt->excludes(issue_opt);
  rotate_opt->excludes(revoke_opt);
  cmd->add_option("--out", *out,
                  "Where --issue-client writes ca.pem, cert.pem and key.pem "
                  "(default: ./shoal-client-NAME)");
  cmd->callback([=] {
    Client c = Connect(*host);
    if (issue->empty() && revoke->empty()) {
      v1::RotateRootRequest req;
      req.set_rotate(*rotate);
      v1::RootRotationStatus st;
      grpc::Status s = c.membership->RotateRoot(Context(60).get(), req, &st);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      if (*pem) {
        std::cout << st.root_cert();
        return;
      }
      if (*rotate) {
        std::cout << "Root rotation started: nodes renew with the new root by themselves; the "
                     "old root stays trusted until all have, then the join tokens change "
                     "(`shoal cluster join-token`). Client certificates must be issued again.\n";
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*wait);
      while (*rotate && st.in_progress() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        v1::RotateRootRequest look;
        v1::RootRotationStatus next;
        if (c.membership->RotateRoot(Context().get(), look, &next).ok()) st = next;
      }
      PrintRotation(st);
      if (*rotate && *wait > 0 && st.in_progress()) {
        std::cerr << "error: the rotation did not finish within " << *wait << " s\n";
        *exit_code = 1;
      }
      return;
    }
    v1::IssueClientRequest req;
    v1::CertificateReply reply;
    if (!revoke->empty()) {
      req.set_name(*revoke);
      req.set_revoke(true);
      grpc::Status s = c.membership->IssueClientCertificate(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "Client certificate " << *revoke << " revoked.\n";
      return;
    }
    // The key is made here and never sent: the CA sees only the CSR.
    auto key = ca::NewPrivateKey();
    auto csr = key.ok() ? ca::CreateCsr(*key) : Result<std::string>(key.error());
    if (!csr.ok()) {
      std::cerr << "error: " << csr.error().message() << "\n";
      return void(*exit_code = 1);
    }
    req.set_name(*issue);
    req.set_csr(*csr);
    grpc::Status s = c.membership->IssueClientCertificate(Context().get(), req, &reply);
    if (!s.ok()) return void(*exit_code = Fail(c, s));
    std::string dir = out->empty() ? "shoal-client-" + *issue : *out;
    transport::TlsFiles files = transport::TlsFilesIn(dir);
    if (Status w = transport::WriteTlsFiles(files, reply.root_ca(), *key, reply.certificate());
        !w.ok()) {
      std::cerr << "error: " << w.message() << "\n";
      return void(*exit_code = 1);
    }
    std::cout << "Client certificate " << *issue << " written to " << dir
              << " (key.pem is secret).\nUse it with:\n\n    shoal --host tcp://MANAGER:PORT "
              << "--tls-dir " << dir << " stack ls\n";
  });
}

}  // namespace

void AddSecurityCommands(CLI::App& app, const std::string* host, int* exit_code) {
  CLI::App* cluster = app.get_subcommand("cluster");
  AddCaCommand(cluster, host, exit_code);
  // ---- cluster update --autolock ----
  {
    auto* cmd = cluster->add_subcommand("update", "Change cluster settings (autolock)");
    auto autolock = std::make_shared<std::string>();
    cmd->add_option("--autolock", *autolock,
                    "true: seal this manager's data key under an unlock key, shown once; "
                    "false: store it unsealed again")
        ->required()
        ->check(CLI::IsMember({"true", "false"}));
    cmd->callback([=] {
      auto c = ConnectLocal(*host);
      if (!c) return void(*exit_code = 1);
      v1::UpdateAutolockRequest req;
      req.set_autolock(*autolock == "true");
      v1::UpdateAutolockReply reply;
      grpc::Status s = c->stub->UpdateAutolock(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c->base, s));
      if (!reply.changed()) {
        std::cout << "Autolock is already " << (req.autolock() ? "on" : "off") << ".\n";
      } else if (req.autolock()) {
        PrintUnlockKey(reply.unlock_key());
      } else {
        std::cout << "Autolock is off: a restarted manager starts on its own.\n";
      }
    });
  }
  // ---- cluster unlock ----
  {
    auto* cmd = cluster->add_subcommand("unlock", "Give a locked manager its unlock key");
    auto key = std::make_shared<std::string>();
    cmd->add_option("--key", *key,
                    "The unlock key (default: read from stdin, which keeps it out of the "
                    "process list and the shell history)");
    cmd->callback([=] {
      auto c = ConnectLocal(*host);
      if (!c) return void(*exit_code = 1);
      std::string k = *key;
      if (k.empty()) {
        if (isatty(STDIN_FILENO)) std::cerr << "Unlock key: " << std::flush;
        std::getline(std::cin, k);
      }
      v1::UnlockRequest req;
      req.set_unlock_key(k);
      v1::UnlockReply reply;
      grpc::Status s = c->stub->Unlock(Context(60).get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c->base, s));
      std::cout << "Unlocked: the manager is starting.\n";
    });
  }
  // ---- cluster unlock-key ----
  {
    auto* cmd = cluster->add_subcommand("unlock-key", "Show or rotate the unlock key");
    auto rotate = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    cmd->add_flag("--rotate", *rotate, "Make a new unlock key; the old one stops working at once");
    cmd->add_flag("-q,--quiet", *quiet, "Print the key only");
    cmd->callback([=] {
      auto c = ConnectLocal(*host);
      if (!c) return void(*exit_code = 1);
      v1::UnlockKeyRequest req;
      req.set_rotate(*rotate);
      v1::UnlockKeyReply reply;
      grpc::Status s = c->stub->UnlockKey(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c->base, s));
      if (*quiet) {
        std::cout << reply.unlock_key() << "\n";
      } else {
        if (*rotate) std::cout << "Rotated the unlock key.\n";
        PrintUnlockKey(reply.unlock_key());
      }
    });
  }
}

}  // namespace shoal::cli
