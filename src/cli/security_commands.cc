// Verbs of encryption at rest (issue 8, point 4): `cluster update --autolock`,
// `cluster unlock`, `cluster unlock-key`. They talk to the Security service,
// which a daemon serves on its local unix socket only: the unlock key never
// crosses the network.

#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "client.h"
#include "commands.h"
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

}  // namespace

void AddSecurityCommands(CLI::App& app, const std::string* host, int* exit_code) {
  CLI::App* cluster = app.get_subcommand("cluster");
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
