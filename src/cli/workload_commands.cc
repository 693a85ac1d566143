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

namespace shoal::cli {
namespace {

std::string ServiceState(const v1::ServiceSummary& s) {
  std::string out = std::to_string(s.running()) + "/" + std::to_string(s.desired());
  bool job = s.service().spec().mode() == v1::MODE_REPLICATED_JOB ||
             s.service().spec().mode() == v1::MODE_GLOBAL_JOB;
  if (job) out = std::to_string(s.completed()) + "/" + std::to_string(s.desired()) + " completed";
  return out;
}

bool Converged(const v1::ServiceSummary& s) {
  bool job = s.service().spec().mode() == v1::MODE_REPLICATED_JOB ||
             s.service().spec().mode() == v1::MODE_GLOBAL_JOB;
  if (job) return s.completed() >= s.desired();
  if (s.service().spec().mode() == v1::MODE_GLOBAL)
    return s.pending() == 0 && s.running() == s.desired();
  return s.running() == s.desired() && s.pending() == 0;
}

// "healthy", "starting" (for the first probe to pass), "unhealthy"; "" when
// the task has no healthcheck.
std::string HealthName(v1::TaskStatus::Health h) {
  switch (h) {
    case v1::TaskStatus::HEALTH_STARTING:
      return "starting";
    case v1::TaskStatus::HEALTH_HEALTHY:
      return "healthy";
    case v1::TaskStatus::HEALTH_UNHEALTHY:
      return "unhealthy";
    default:
      return "";
  }
}

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
    std::cout << std::setw(27) << t->meta().id() << std::setw(28) << name << std::setw(18)
              << (node != reply.node_names().end() ? node->second : t->node_id()) << std::setw(11)
              << StateName(t->desired_state()) << std::setw(36) << CurrentState(t->status()) << err
              << "\n";
  }
}

// Polls the stack's services until every one runs its new revision, a task
// is rejected, or the timeout passes. Prints a line per change of a service.
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

int WaitConverged(Client& c, const std::string& stack, int timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::map<std::string, std::string> shown;
  std::set<std::string> failures;
  while (true) {
    v1::ListServicesRequest req;
    req.set_stack(stack);
    v1::ListServicesReply reply;
    grpc::Status s = c.stub->ListServices(Context(10).get(), req, &reply);
    if (!s.ok()) {
      // A manager failing over is not the deploy failing: wait for the next leader.
      bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (!transient || std::chrono::steady_clock::now() > deadline) return Fail(c, s);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    // A rejected task of the current spec will not start by retrying; a
    // failed or unhealthy one is replaced, and its cause shown once.
    v1::ListTasksRequest treq;
    treq.set_stack(stack);
    treq.set_live_only(false);
    v1::ListTasksReply tasks;
    std::map<std::string, uint64_t> versions;  // service id -> current spec version
    for (const auto& svc : reply.services()) {
      versions[svc.service().meta().id()] = svc.service().spec_version();
    }
    // Running tasks of the current revision not yet (or no longer) healthy,
    // by service id: what a healthcheck keeps out of the running count.
    std::map<std::string, std::map<v1::TaskStatus::Health, uint64_t>> health;
    std::vector<std::string> events;
    if (c.stub->ListTasks(Context(10).get(), treq, &tasks).ok()) {
      for (const auto& t : tasks.tasks()) {
        // Only this revision's tasks: an earlier one's failures are history.
        auto v = versions.find(t.service_id());
        if (v == versions.end() || v->second != t.service_spec_version()) continue;
        std::string name = t.service_name() + "." + std::to_string(t.slot());
        if (t.status().state() == v1::TASK_REJECTED) {
          std::cerr << "error: task " << name << " was rejected: " << t.status().error() << "\n";
          return 1;
        }
        const bool unhealthy = t.status().health() == v1::TaskStatus::HEALTH_UNHEALTHY;
        if (t.desired_state() <= v1::TASK_RUNNING && t.status().state() == v1::TASK_RUNNING &&
            (unhealthy || t.status().health() == v1::TaskStatus::HEALTH_STARTING)) {
          health[t.service_id()][t.status().health()]++;
        }
        if (t.status().state() == v1::TASK_FAILED && failures.insert(t.meta().id()).second) {
          events.push_back(
              "  " + name + " failed: " +
              (t.status().error().empty() ? t.status().message() : t.status().error()) +
              " (replaced)");
        } else if (unhealthy && t.desired_state() >= v1::TASK_SHUTDOWN &&
                   failures.insert(t.meta().id()).second) {
          events.push_back("  " + name + " unhealthy: " + t.status().error() + " (replaced)");
        }
      }
    }
    bool all = true;
    for (const auto& svc : reply.services()) {
      std::string line = ServiceState(svc);
      // "1/2 (1 starting)": running but not yet healthy.
      std::string waiting;
      for (const auto& [h, n] : health[svc.service().meta().id()]) {
        waiting += (waiting.empty() ? "" : ", ") + std::to_string(n) + " " + HealthName(h);
      }
      if (!waiting.empty()) line += " (" + waiting + ")";
      if (svc.pending() > 0 && !svc.pending_message().empty()) {
        line += ", " + std::to_string(svc.pending()) + " pending: " + svc.pending_message();
      }
      if (shown[svc.service().spec().name()] != line) {
        shown[svc.service().spec().name()] = line;
        std::cout << "  " << svc.service().spec().name() << ": " << line << "\n" << std::flush;
      }
      all = all && Converged(svc);
    }
    for (const std::string& e : events) std::cout << e << "\n" << std::flush;
    if (all) {
      std::cout << "stack " << stack << " converged\n";
      return 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "error: stack " << stack << " did not converge within " << timeout_s
                << " s; see `shoal stack ps " << stack << "`\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
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
  req.mutable_source()->set_kind(v1::Source::KIND_FILES);
  for (const auto& f : files) req.mutable_source()->add_files(f);
  v1::DeployReply reply;
  grpc::Status s = c.stub->Deploy(Context(60).get(), req, &reply);
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
  return WaitConverged(c, spec.name(), flags.timeout_s);
}

int WaitStackConverged(Client& c, const std::string& stack, int timeout_s, std::string* cause) {
  int code = WaitConverged(c, stack, timeout_s);
  if (code != 0 && cause) *cause = "stack " + stack + " did not converge (see the lines above)";
  return code;
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
    auto timeout = std::make_shared<int>(120);
    cmd->add_option("STACK", *name, "Stack name")->required();
    cmd->add_flag("-d,--detach", *detach, "Do not wait");
    cmd->add_option("--timeout", *timeout, "Seconds to wait")->capture_default_str();
    cmd->callback([=] {
      Client c = Connect(*host);
      v1::RemoveStackRequest req;
      req.set_name(*name);
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
                  << ServiceState(sv) << sv.service().spec().container().image() << "\n";
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
