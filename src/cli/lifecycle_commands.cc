// Lifecycle verbs (issue 5): service update, rollback and rebalance, stack
// rollback and stack diff.

#include <chrono>
#include <iostream>
#include <thread>

#include "client.h"
#include "commands.h"
#include "wait.h"

namespace shoal::cli {
namespace {

// Waits for `service`'s rollout of `version` (0: just its tasks), through
// the deploy's wait: a paused or rolled back rollout is a failure, except
// that a rollback's own completion is what `service rollback` waits for.
int WaitService(Client& c, const std::string& service, uint64_t version, bool rollback,
                int timeout_s) {
  WaitTarget target;
  target.service = service;
  target.rollback = rollback;
  if (version) target.rollouts[service] = version;
  return WaitConverged(c, target, timeout_s, nullptr);
}

}  // namespace

void AddLifecycleCommands(CLI::App& app, const std::string* host, int* exit_code) {
  CLI::App* service = app.get_subcommand("service");
  CLI::App* stack = app.get_subcommand("stack");
  {
    auto* cmd = service->add_subcommand("update", "Change a service and wait until it runs");
    auto name = std::make_shared<std::string>();
    auto image = std::make_shared<std::string>();
    auto env_add = std::make_shared<std::vector<std::string>>();
    auto env_rm = std::make_shared<std::vector<std::string>>();
    auto replicas = std::make_shared<int64_t>(-1);
    auto force = std::make_shared<bool>(false);
    auto detach = std::make_shared<bool>(false);
    auto timeout = std::make_shared<int>(300);
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->add_option("--image", *image, "New image");
    cmd->add_option("--env-add", *env_add, "KEY=VALUE")->allow_extra_args(false);
    cmd->add_option("--env-rm", *env_rm, "KEY")->allow_extra_args(false);
    cmd->add_option("--replicas", *replicas, "Replica count");
    cmd->add_flag("--force", *force, "Replace every task even if nothing changed (re-runs a job)");
    cmd->add_flag("-d,--detach", *detach, "Do not wait");
    cmd->add_option("--timeout", *timeout, "Seconds to wait")->capture_default_str();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::UpdateServiceRequest req;
      req.set_name(*name);
      req.set_image(*image);
      for (const auto& kv : *env_add) {
        auto eq = kv.find('=');
        if (eq == std::string::npos) {
          std::cerr << "error: --env-add " << kv << ": expected KEY=VALUE\n";
          return void(*exit_code = 1);
        }
        (*req.mutable_env_add())[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      for (const auto& k : *env_rm) req.add_env_rm(k);
      if (*replicas >= 0) {
        req.set_set_replicas(true);
        req.set_replicas(static_cast<uint64_t>(*replicas));
      }
      req.set_force(*force);
      v1::UpdateServiceReply reply;
      grpc::Status s = c.stub->UpdateService(Context().get(), req, &reply);
      // The service changed between the read and the commit (a rollout's
      // status): nothing applied, so the same change is asked again.
      for (int retry = 0; retry < 5 && IsConflict(s); ++retry) {
        s = c.stub->UpdateService(Context().get(), req, &reply);
      }
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << *name << " updated" << (reply.replaces_tasks() ? " (tasks are replaced)" : "")
                << "\n";
      if (*detach) return;
      const v1::Service& sv = reply.service();
      *exit_code = WaitService(c, sv.spec().name(), reply.replaces_tasks() ? sv.spec_version() : 0,
                               false, *timeout);
    });
  }
  {
    auto* cmd = service->add_subcommand("rollback", "Return a service to its previous spec");
    auto name = std::make_shared<std::string>();
    auto detach = std::make_shared<bool>(false);
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->add_flag("-d,--detach", *detach, "Do not wait");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RollbackServiceRequest req;
      req.set_name(*name);
      v1::RollbackServiceReply reply;
      grpc::Status s = c.stub->RollbackService(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << *name << " rolling back\n";
      if (*detach) return;
      const v1::Service& sv = reply.service();
      *exit_code = WaitService(c, sv.spec().name(), sv.spec_version(), true, 300);
    });
  }
  {
    auto* cmd = service->add_subcommand(
        "rebalance",
        "Spread a replicated service's tasks again over the nodes (after nodes joined or "
        "returned), update_config.parallelism at a time");
    auto name = std::make_shared<std::string>();
    auto detach = std::make_shared<bool>(false);
    auto timeout = std::make_shared<int>(300);
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->add_flag("-d,--detach", *detach, "Do not wait");
    cmd->add_option("--timeout", *timeout, "Seconds to wait")->capture_default_str();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RebalanceServiceRequest req;
      req.set_name(*name);
      v1::RebalanceServiceReply reply;
      grpc::Status s = c.stub->RebalanceService(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << *name << " rebalancing\n";
      if (*detach) return;
      // Done when the orchestrator records the request as carried out.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*timeout);
      const uint64_t want = reply.service().rebalance_requested();
      while (true) {
        v1::ListServicesRequest lreq;
        lreq.set_name(reply.service().spec().name());
        v1::ListServicesReply lrep;
        grpc::Status ls = c.stub->ListServices(Context(10).get(), lreq, &lrep);
        if (ls.ok() && lrep.services_size() == 1 &&
            lrep.services(0).service().rebalanced() >= want) {
          std::cout << *name << " rebalanced\n";
          return;
        }
        if (!ls.ok() && ls.error_code() != grpc::StatusCode::UNAVAILABLE) {
          return void(*exit_code = Fail(c, ls));
        }
        if (std::chrono::steady_clock::now() > deadline) {
          std::cerr << "error: " << *name << " was not rebalanced within " << *timeout
                    << " s; see `shoal service ps " << *name << "`\n";
          return void(*exit_code = 1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
    });
  }
  {
    auto* cmd = stack->add_subcommand(
        "rollback", "Return every object of a stack to an earlier revision, as a new revision");
    auto name = std::make_shared<std::string>();
    auto to = std::make_shared<uint64_t>(0);
    auto dry_run = std::make_shared<bool>(false);
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->add_option("--to", *to, "Revision (default: the one before the current)");
    cmd->add_flag("--dry-run", *dry_run, "Show the plan only");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RollbackStackRequest req;
      req.set_name(*name);
      req.set_to_revision(*to);
      req.set_dry_run(*dry_run);
      v1::DeployReply reply;
      grpc::Status s = c.stub->RollbackStack(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << reply.plan_text();
      if (*dry_run) return void(*exit_code = reply.changed() ? 2 : 0);
      if (reply.changed()) {
        std::cout << "stack " << *name << " rolled back as revision " << reply.revision() << "\n";
      } else {
        std::cout << "stack " << *name << " already matches that revision\n";
      }
    });
  }
  {
    auto* cmd = stack->add_subcommand("diff", "Show what changed between two revisions of a stack");
    auto name = std::make_shared<std::string>();
    auto from = std::make_shared<uint64_t>(0);
    auto to = std::make_shared<uint64_t>(0);
    auto format = std::make_shared<std::string>("text");
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->add_option("FROM", *from, "Revision")->required();
    cmd->add_option("TO", *to, "Revision")->required();
    cmd->add_option("--format", *format, "text or json")->check(CLI::IsMember({"text", "json"}));
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::StackDiffRequest req;
      req.set_name(*name);
      req.set_from_revision(*from);
      req.set_to_revision(*to);
      v1::StackDiffReply reply;
      grpc::Status s = c.stub->StackDiff(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << (*format == "json" ? reply.plan_json() : reply.plan_text());
      *exit_code = reply.changed() ? 2 : 0;
    });
  }
}

}  // namespace shoal::cli
