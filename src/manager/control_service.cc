// Control handlers for stacks, services and tasks. Each reads the state after
// a ReadIndex (so a follower answers as the leader would) and writes through
// one proposed transaction; a follower's proposal is forwarded by Raft.

#include <map>

#include "daemon_internal.h"
#include "shoal/manager/deploy.h"
#include "shoal/manager/limits.h"
#include "shoal/plan/render.h"

namespace shoal::manager {
namespace {

using store::Kind;

void ProposeAndFinish(Manager& m, std::vector<v1::Mutation> muts, const char* who,
                      grpc::ServerUnaryReactor* r, std::function<void(uint64_t)> ok) {
  if (muts.empty()) {
    ok(m.store().state().applied_index());
    return r->Finish(grpc::Status::OK);
  }
  m.Propose(std::move(muts), who, [r, ok = std::move(ok)](Status s, uint64_t index) {
    if (s.ok()) ok(index);
    r->Finish(Grpc(s));
  });
}

}  // namespace

grpc::ServerUnaryReactor* ControlService::Deploy(grpc::CallbackServerContext* ctx,
                                                 const v1::DeployRequest* req,
                                                 v1::DeployReply* reply) {
  Daemon::Impl* d = d_;
  return OnRead(
      ctx, [d, req, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
        if (Status v = ValidateDeployRequest(*req); !v.ok()) return r->Finish(Grpc(v));
        auto change = BuildDeploy(state, *req, d->rng_, 0, d->at_rest_->codec());
        if (!change.ok()) return r->Finish(Grpc(change.error()));
        plan::RenderOptions ro;
        reply->set_plan_text(plan::RenderText(change->plan, ro));
        reply->set_plan_json(plan::RenderJson(change->plan));
        reply->set_changed(!change->mutations.empty());
        reply->set_summary(change->summary);
        for (const auto& [name, version] : change->rollouts) {
          (*reply->mutable_rollouts())[name] = version;
        }
        // Placement is checked for the dry run only: it copies the state and
        // runs the orchestrator on the loop (5 s at 100k tasks, long enough to
        // lose leadership), and a real deploy's progress shows live reasons.
        if (req->dry_run()) {
          for (auto& u : DryRunPlacement(state, *change, req->spec().name())) {
            *reply->add_unplaced() = std::move(u);
          }
        }
        if (req->dry_run() || change->mutations.empty()) {
          reply->set_applied_index(state.applied_index());
          return r->Finish(grpc::Status::OK);
        }
        uint64_t revision = change->revision;
        ProposeAndFinish(m, std::move(change->mutations), "deploy", r,
                         [reply, revision](uint64_t index) {
                           reply->set_revision(revision);
                           reply->set_applied_index(index);
                         });
      });
}

grpc::ServerUnaryReactor* ControlService::ListStacks(grpc::CallbackServerContext* ctx,
                                                     const v1::ListStacksRequest*,
                                                     v1::ListStacksReply* reply) {
  return OnRead(ctx, [reply](Manager&, const store::State& state, grpc::ServerUnaryReactor* r) {
    for (const v1::Mutation* m : state.List(Kind::kStack)) {
      const v1::Stack& s = m->stack();
      v1::StackSummary* sum = reply->add_stacks();
      sum->set_name(s.name());
      sum->set_revision(s.current_revision());
      sum->set_updated_at_ns(s.meta().updated_at_ns());
      for (const v1::Mutation* sv : state.Find(Kind::kService, "stack", s.name())) {
        v1::ServiceSummary ss = Summarize(state, sv->service());
        sum->set_services(sum->services() + 1);
        sum->set_tasks_running(sum->tasks_running() + ss.running());
        sum->set_tasks_desired(sum->tasks_desired() + ss.desired());
      }
      for (const v1::Mutation* rv : state.Find(Kind::kStackRevision, "stack", s.name())) {
        if (rv->stack_revision().number() == s.current_revision()) {
          *sum->mutable_source() = rv->stack_revision().source();
        }
      }
    }
    r->Finish(grpc::Status::OK);
  });
}

grpc::ServerUnaryReactor* ControlService::RemoveStack(grpc::CallbackServerContext* ctx,
                                                      const v1::RemoveStackRequest* req,
                                                      v1::RemoveStackReply* reply) {
  std::string name = req->name();
  const bool volumes = req->volumes();
  return OnRead(ctx, [name, volumes, reply](Manager& m, const store::State& state,
                                            grpc::ServerUnaryReactor* r) {
    auto muts = manager::RemoveStack(state, name, volumes);
    if (muts.empty()) {
      return r->Finish(Grpc({Code::kNotFound, "stack " + name + " does not exist"}));
    }
    reply->set_removed_objects(muts.size());
    ProposeAndFinish(m, std::move(muts), "stack-rm", r,
                     [reply](uint64_t index) { reply->set_applied_index(index); });
  });
}

grpc::ServerUnaryReactor* ControlService::StackHistory(grpc::CallbackServerContext* ctx,
                                                       const v1::StackHistoryRequest* req,
                                                       v1::StackHistoryReply* reply) {
  std::string name = req->name();
  return OnRead(ctx,
                [name, reply](Manager&, const store::State& state, grpc::ServerUnaryReactor* r) {
                  uint64_t current = 0;
                  if (!CurrentStackSpec(state, name, &current) && current == 0) {
                    return r->Finish(Grpc({Code::kNotFound, "stack " + name + " does not exist"}));
                  }
                  reply->set_current(current);
                  std::map<uint64_t, const v1::StackRevision*> by_number;
                  for (const v1::Mutation* m : state.Find(Kind::kStackRevision, "stack", name)) {
                    by_number[m->stack_revision().number()] = &m->stack_revision();
                  }
                  for (const auto& [n, rev] : by_number) {
                    v1::StackRevision* out = reply->add_revisions();
                    *out = *rev;
                    *out->mutable_spec() = Redacted(rev->spec());
                  }
                  r->Finish(grpc::Status::OK);
                });
}

grpc::ServerUnaryReactor* ControlService::ListServices(grpc::CallbackServerContext* ctx,
                                                       const v1::ListServicesRequest* req,
                                                       v1::ListServicesReply* reply) {
  v1::ListServicesRequest request = *req;
  return OnRead(ctx, [request, reply](Manager&, const store::State& state,
                                      grpc::ServerUnaryReactor* r) {
    auto services = request.stack().empty() ? state.List(Kind::kService)
                                            : state.Find(Kind::kService, "stack", request.stack());
    for (const v1::Mutation* m : services) {
      if (!request.name().empty() && m->service().spec().name() != request.name()) continue;
      *reply->add_services() = Summarize(state, m->service());
    }
    reply->set_applied_index(state.applied_index());
    r->Finish(grpc::Status::OK);
  });
}

grpc::ServerUnaryReactor* ControlService::ScaleService(grpc::CallbackServerContext* ctx,
                                                       const v1::ScaleServiceRequest* req,
                                                       v1::ScaleServiceReply* reply) {
  v1::ScaleServiceRequest request = *req;
  return OnRead(ctx, [request, reply](Manager& m, const store::State& state,
                                      grpc::ServerUnaryReactor* r) {
    const v1::Service* s = FindService(state, request.name());
    if (!s) return r->Finish(Grpc({Code::kNotFound, "service " + request.name() + " not found"}));
    if (s->spec().mode() != v1::MODE_REPLICATED && s->spec().mode() != v1::MODE_REPLICATED_JOB) {
      return r->Finish(Grpc({Code::kInvalidArgument,
                             "service " + request.name() + " is global: it cannot be scaled"}));
    }
    v1::Service next = *s;
    next.mutable_spec()->set_replicas(request.replicas());
    v1::Mutation mut;
    mut.set_expected_version(s->meta().version());
    *mut.mutable_service() = std::move(next);
    ProposeAndFinish(m, {mut}, "scale", r,
                     [reply](uint64_t index) { reply->set_applied_index(index); });
  });
}

grpc::ServerUnaryReactor* ControlService::RemoveService(grpc::CallbackServerContext* ctx,
                                                        const v1::RemoveServiceRequest* req,
                                                        v1::RemoveServiceReply* reply) {
  std::string name = req->name();
  return OnRead(ctx,
                [name, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
                  const v1::Service* s = FindService(state, name);
                  if (!s)
                    return r->Finish(Grpc({Code::kNotFound, "service " + name + " not found"}));
                  v1::Mutation mut;
                  mut.set_op(v1::Mutation::OP_DELETE);
                  mut.set_expected_version(s->meta().version());
                  *mut.mutable_service() = *s;
                  ProposeAndFinish(m, {mut}, "service-rm", r,
                                   [reply](uint64_t index) { reply->set_applied_index(index); });
                });
}

grpc::ServerUnaryReactor* ControlService::ListTasks(grpc::CallbackServerContext* ctx,
                                                    const v1::ListTasksRequest* req,
                                                    v1::ListTasksReply* reply) {
  v1::ListTasksRequest request = *req;
  return OnRead(ctx, [request, reply](Manager&, const store::State& state,
                                      grpc::ServerUnaryReactor* r) {
    std::vector<const v1::Mutation*> tasks;
    if (!request.service().empty()) {
      const v1::Service* s = FindService(state, request.service());
      if (!s) {
        return r->Finish(Grpc({Code::kNotFound, "service " + request.service() + " not found"}));
      }
      tasks = state.Find(Kind::kTask, "service", s->meta().id());
    } else if (!request.node().empty()) {
      const v1::Node* n = FindNode(state, request.node());
      if (!n) return r->Finish(Grpc({Code::kNotFound, "node " + request.node() + " not found"}));
      tasks = state.Find(Kind::kTask, "node", n->meta().id());
    } else {
      tasks = state.List(Kind::kTask);
    }
    for (const v1::Mutation* m : tasks) {
      const v1::Task& t = m->task();
      if (!request.stack().empty() && t.stack() != request.stack()) continue;
      bool live =
          t.desired_state() <= v1::TASK_RUNNING ||
          (t.desired_state() == v1::TASK_COMPLETE && t.status().state() <= v1::TASK_COMPLETE);
      if (request.live_only() && !live) continue;
      *reply->add_tasks() = t;
    }
    for (const v1::Mutation* n : state.List(Kind::kNode)) {
      (*reply->mutable_node_names())[n->node().meta().id()] = n->node().description().hostname();
    }
    reply->set_applied_index(state.applied_index());
    r->Finish(grpc::Status::OK);
  });
}

}  // namespace shoal::manager
