// Verbs that talk to the cluster about stacks, services and tasks, and the
// deploy that waits for convergence.

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "client.h"
#include "commands.h"
#include "wait.h"

namespace shoal::cli {
namespace {

// The CURRENT column: "running (healthy) 3 seconds ago", as `docker ps`
// shows health beside the state.
std::string CurrentState(const v1::TaskStatus& st) {
  std::string out = StateName(st.state());
  if (std::string h = HealthName(st.health()); !h.empty()) out += " (" + h + ")";
  return out + " " + Ago(st.timestamp_ns());
}

void PrintTasks(const v1::ListTasksReply& reply) {
  std::cout << std::left << std::setw(27) << "ID" << std::setw(28) << "NAME" << std::setw(18)
            << "NODE" << std::setw(11) << "DESIRED" << std::setw(36) << "CURRENT"
            << "ERROR\n";
  std::vector<const v1::Task*> tasks;
  for (const auto& t : reply.tasks()) tasks.push_back(&t);
  std::stable_sort(tasks.begin(), tasks.end(), [](const v1::Task* a, const v1::Task* b) {
    if (a->service_name() != b->service_name()) return a->service_name() < b->service_name();
    if (a->slot() != b->slot()) return a->slot() < b->slot();
    return a->meta().created_at_ns() > b->meta().created_at_ns();
  });
  for (const v1::Task* t : tasks) {
    std::string name = t->service_name() + (t->slot() ? "." + std::to_string(t->slot()) : "");
    auto node = reply.node_names().find(t->node_id());
    std::string err = t->status().error();
    if (err.empty() && t->status().state() == v1::TASK_PENDING) err = t->scheduling_message();
    // Each attempt's exit code, and why the restart policy has not replaced
    // an ended task (yet): "restart in 3s", "... 5 of 5 attempts made".
    if (t->status().exit_code() != 0 && err.find("code") == std::string::npos) {
      err += (err.empty() ? "" : " ") + std::string("(exit code ") +
             std::to_string(t->status().exit_code()) + ")";
    }
    if (std::string note = RestartNote(*t); !note.empty()) {
      err += (err.empty() ? "" : "; ") + note;
    }
    std::cout << std::setw(27) << t->meta().id() << std::setw(28) << name << std::setw(18)
              << (node != reply.node_names().end() ? node->second : t->node_id()) << std::setw(11)
              << StateName(t->desired_state()) << std::setw(36) << CurrentState(t->status()) << err
              << "\n";
  }
}

// One column of `stack history`: where a revision came from.
std::string SourceLine(const v1::Source& src) {
  namespace fs = std::filesystem;
  std::string line;
  switch (src.kind()) {
    case v1::Source::KIND_GIT:
      line = src.commit().substr(0, 8) + " " + src.message();
      break;
    case v1::Source::KIND_DIRECTORY:
      line = "dir " + src.commit().substr(0, 8);
      break;
    default:
      line = src.files_size() ? fs::path(src.files(0)).filename().string() : "-";
  }
  if (line.size() > 40) line = line.substr(0, 37) + "...";
  return line;
}

}  // namespace

int DeployToCluster(const std::string& host, const v1::StackSpec& spec,
                    const std::vector<std::string>& files, const DeployFlags& flags,
                    bool* unreachable) {
  Client c = Connect(host);
  v1::DeployRequest req;
  *req.mutable_spec() = spec;
  req.set_dry_run(flags.dry_run);
  req.set_prune(flags.prune);
  req.set_check_version(flags.check_version);
  req.set_rebalance(flags.rebalance);
  req.mutable_source()->set_kind(v1::Source::KIND_FILES);
  for (const auto& f : files) req.mutable_source()->add_files(f);
  v1::DeployReply reply;
  grpc::Status s = c.stub->Deploy(Context(60).get(), req, &reply);
  // Planned against a state that moved on before it committed (a rollout's
  // status, say): nothing applied, so plan and propose again.
  for (int retry = 0; retry < 5 && IsConflict(s); ++retry) {
    reply.Clear();
    s = c.stub->Deploy(Context(60).get(), req, &reply);
  }
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && unreachable &&
        s.error_message().find("connect") != std::string::npos) {
      *unreachable = true;
      return 1;
    }
    return Fail(c, s);
  }
  if (flags.format == "json") {
    std::cout << reply.plan_json();
  } else {
    std::cout << reply.plan_text();
  }
  for (const auto& u : reply.unplaced()) {
    std::cout << "cannot place " << u.service() << (u.slot() ? "." + std::to_string(u.slot()) : "")
              << ": " << u.message() << "\n";
  }
  if (flags.dry_run) return reply.changed() ? 2 : 0;
  if (reply.changed()) {
    std::cout << "deployed stack " << spec.name() << " revision " << reply.revision() << "\n";
  } else {
    std::cout << "stack " << spec.name() << " is up to date\n";
  }
  if (flags.detach) return 0;
  WaitTarget target;
  target.stack = spec.name();
  target.rollouts.insert(reply.rollouts().begin(), reply.rollouts().end());
  return WaitConverged(c, target, flags.timeout_s, nullptr);
}

int WaitStackConverged(Client& c, const std::string& stack, int timeout_s, std::string* cause) {
  WaitTarget target;
  target.stack = stack;
  return WaitConverged(c, target, timeout_s, cause);
}

void AddWorkloadCommands(CLI::App& app, const std::string* host, int* exit_code) {
  {
    auto* cmd = app.add_subcommand("events", "Print the cluster's changes as they happen");
    auto since = std::make_shared<uint64_t>(0);
    auto stack_name = std::make_shared<std::string>();
    auto kinds = std::make_shared<std::vector<std::string>>();
    cmd->add_option("--since", *since, "From this store version (default: from now)");
    cmd->add_option("--stack", *stack_name, "Only this stack's tasks and services");
    cmd->add_option("--kind", *kinds, "Only these kinds (task, service, node, stack, ...)");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::WatchRequest req;
      req.set_from_version(*since);
      req.set_stack(*stack_name);
      for (const auto& k : *kinds) req.add_kinds(k);
      grpc::ClientContext ctx;
      auto reader = c.events->Watch(&ctx, req);
      v1::WatchEvent e;
      while (reader->Read(&e)) {
        std::cout << e.version() << " " << e.summary() << "\n" << std::flush;
      }
      grpc::Status s = reader->Finish();
      if (!s.ok()) *exit_code = Fail(c, s);
    });
  }
  auto* stack = app.add_subcommand("stack", "List and manage deployed stacks");
  stack->require_subcommand(1);
  {
    auto* cmd = stack->add_subcommand("ls", "List stacks");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListStacksReply reply;
      grpc::Status s = c.stub->ListStacks(Context().get(), {}, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << std::left << std::setw(24) << "NAME" << std::setw(10) << "REVISION"
                << std::setw(10) << "SERVICES" << std::setw(10) << "TASKS"
                << "UPDATED\n";
      for (const auto& st : reply.stacks()) {
        std::cout << std::setw(24) << st.name() << std::setw(10) << st.revision() << std::setw(10)
                  << st.services() << std::setw(10)
                  << std::to_string(st.tasks_running()) + "/" + std::to_string(st.tasks_desired())
                  << Ago(st.updated_at_ns()) << "\n";
      }
    });
  }
  {
    auto* cmd = stack->add_subcommand("ps", "List the tasks of a stack");
    auto name = std::make_shared<std::string>();
    auto all = std::make_shared<bool>(false);
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->add_flag("-a,--all", *all, "Also show tasks that were shut down (history)");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListTasksRequest req;
      req.set_stack(*name);
      req.set_live_only(!*all);
      v1::ListTasksReply reply;
      grpc::Status s = c.stub->ListTasks(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      PrintTasks(reply);
    });
  }
  {
    auto* cmd = stack->add_subcommand("rm", "Remove a stack and wait until its tasks are gone");
    auto name = std::make_shared<std::string>();
    auto detach = std::make_shared<bool>(false);
    auto volumes = std::make_shared<bool>(false);
    auto timeout = std::make_shared<int>(120);
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->add_flag("-d,--detach", *detach, "Do not wait");
    cmd->add_flag("--volumes", *volumes,
                  "Also remove the stack's named volumes (kept by default, with their data)");
    cmd->add_option("--timeout", *timeout, "Seconds to wait")->capture_default_str();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RemoveStackRequest req;
      req.set_name(*name);
      req.set_volumes(*volumes);
      v1::RemoveStackReply reply;
      grpc::Status s = c.stub->RemoveStack(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << "removing stack " << *name << " (" << reply.removed_objects() << " objects)\n";
      if (*detach) return;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*timeout);
      while (true) {
        v1::ListTasksRequest treq;
        treq.set_stack(*name);
        v1::ListTasksReply tasks;
        grpc::Status ts = c.stub->ListTasks(Context().get(), treq, &tasks);
        if (!ts.ok()) return void(*exit_code = Fail(c, ts));
        if (tasks.tasks_size() == 0) break;
        if (std::chrono::steady_clock::now() > deadline) {
          std::cerr << "error: " << tasks.tasks_size() << " task(s) of stack " << *name
                    << " still exist after " << *timeout << " s\n";
          return void(*exit_code = 1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
      std::cout << "stack " << *name << " removed\n";
    });
  }
  {
    auto* cmd = stack->add_subcommand("history", "List a stack's revisions");
    auto name = std::make_shared<std::string>();
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::StackHistoryRequest req;
      req.set_name(*name);
      v1::StackHistoryReply reply;
      grpc::Status s = c.stub->StackHistory(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << std::left << std::setw(10) << "REVISION" << std::setw(20) << "CREATED"
                << std::setw(42) << "SOURCE"
                << "SUMMARY\n";
      for (const auto& r : reply.revisions()) {
        std::cout << std::setw(10)
                  << std::to_string(r.number()) + (r.number() == reply.current() ? " *" : "")
                  << std::setw(20) << Ago(r.meta().created_at_ns()) << std::setw(42)
                  << SourceLine(r.source()) << r.summary() << "\n";
      }
    });
  }
  auto* service = app.add_subcommand("service", "List and manage services");
  service->require_subcommand(1);
  {
    auto* cmd = service->add_subcommand("ls", "List services");
    auto name = std::make_shared<std::string>();
    cmd->add_option("--stack", *name, "Only this stack's");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListServicesRequest req;
      req.set_stack(*name);
      v1::ListServicesReply reply;
      grpc::Status s = c.stub->ListServices(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      std::cout << std::left << std::setw(27) << "ID" << std::setw(28) << "NAME" << std::setw(16)
                << "MODE" << std::setw(12) << "REPLICAS"
                << "IMAGE\n";
      for (const auto& sv : reply.services()) {
        std::string mode = v1::ServiceMode_Name(sv.service().spec().mode()).substr(5);
        for (char& ch : mode) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::cout << std::setw(27) << sv.service().meta().id() << std::setw(28)
                  << sv.service().spec().name() << std::setw(16) << mode << std::setw(12)
                  << ServiceState(sv) << sv.service().spec().container().image();
        // A rollout that is not simply done: "updating", "update paused", ...
        int us = sv.service().update_status().state();
        if (us != v1::UpdateStatus::STATE_NONE && us != v1::UpdateStatus::STATE_COMPLETED) {
          std::cout << "  [" << UpdateStateName(us) << "]";
        }
        if (!sv.service().waiting_message().empty()) {
          std::cout << "  (" << sv.service().waiting_message() << ")";
        }
        std::cout << "\n";
      }
    });
  }
  {
    auto* cmd = service->add_subcommand("ps", "List a service's tasks");
    auto name = std::make_shared<std::string>();
    auto all = std::make_shared<bool>(false);
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->add_flag("-a,--all", *all, "Also show history");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListTasksRequest req;
      req.set_service(*name);
      req.set_live_only(!*all);
      v1::ListTasksReply reply;
      grpc::Status s = c.stub->ListTasks(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      PrintTasks(reply);
    });
  }
  {
    auto* cmd = service->add_subcommand("inspect", "Show a service as the cluster holds it (JSON)");
    auto name = std::make_shared<std::string>();
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ListServicesRequest req;
      v1::ListServicesReply reply;
      grpc::Status s = c.stub->ListServices(Context().get(), req, &reply);
      if (!s.ok()) return void(*exit_code = Fail(c, s));
      for (const auto& sv : reply.services()) {
        if (sv.service().spec().name() != *name && sv.service().meta().id() != *name) continue;
        std::string json;
        google::protobuf::util::JsonPrintOptions jo;
        jo.add_whitespace = true;
        (void)google::protobuf::util::MessageToJsonString(sv, &json, jo);
        std::cout << json;
        return;
      }
      std::cerr << "error: service " << *name << " not found\n";
      *exit_code = 1;
    });
  }
  {
    auto* cmd = service->add_subcommand("logs", "Print the output of a service's tasks");
    auto name = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    cmd->add_option("SERVICE", *name, "Service name (stack_service) or id")->required();
    cmd->add_flag("-f,--follow", *follow, "Keep printing new output");
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::ServiceLogsRequest req;
      req.set_service(*name);
      req.set_follow(*follow);
      grpc::ClientContext ctx;
      auto reader = c.events->ServiceLogs(&ctx, req);
      v1::LogChunk chunk;
      // Prefix each line with its task, as docker service logs does.
      std::map<std::string, std::string> partial;
      while (reader->Read(&chunk)) {
        std::string prefix = chunk.service() + "." + std::to_string(chunk.slot()) + "@" +
                             chunk.node_id().substr(0, 12) + " | ";
        std::string& buf = partial[chunk.task_id()];
        buf += chunk.data();
        size_t nl;
        while ((nl = buf.find('\n')) != std::string::npos) {
          std::cout << prefix << buf.substr(0, nl + 1);
          buf.erase(0, nl + 1);
        }
        std::cout << std::flush;
      }
      grpc::Status s = reader->Finish();
      if (!s.ok()) *exit_code = Fail(c, s);
    });
  }
  {
    auto* cmd = service->add_subcommand("scale", "Set a replicated service's replica count");
    auto args = std::make_shared<std::vector<std::string>>();
    cmd->add_option("SERVICE=REPLICAS", *args, "e.g. demo_web=5")->required();
    cmd->callback([=] {
      Client c = Connect(*host);
      for (const auto& a : *args) {
        auto eq = a.find('=');
        if (eq == std::string::npos) {
          std::cerr << "error: " << a << ": expected SERVICE=REPLICAS\n";
          return void(*exit_code = 1);
        }
        v1::ScaleServiceRequest req;
        req.set_name(a.substr(0, eq));
        try {
          req.set_replicas(std::stoull(a.substr(eq + 1)));
        } catch (const std::exception&) {
          std::cerr << "error: " << a << ": replicas must be a number\n";
          return void(*exit_code = 1);
        }
        v1::ScaleServiceReply reply;
        grpc::Status s = c.stub->ScaleService(Context().get(), req, &reply);
        if (!s.ok()) return void(*exit_code = Fail(c, s));
        std::cout << req.name() << " scaled to " << req.replicas() << "\n";
      }
    });
  }
  {
    auto* cmd = service->add_subcommand("rm", "Remove services");
    auto names = std::make_shared<std::vector<std::string>>();
    cmd->add_option("SERVICE", *names, "Service names or ids")->required();
    cmd->callback([=] {
      Client c = Connect(*host);
      for (const auto& n : *names) {
        v1::RemoveServiceRequest req;
        req.set_name(n);
        v1::RemoveServiceReply reply;
        grpc::Status s = c.stub->RemoveService(Context().get(), req, &reply);
        if (!s.ok()) return void(*exit_code = Fail(c, s));
        std::cout << n << "\n";
      }
    });
  }
}

}  // namespace shoal::cli
