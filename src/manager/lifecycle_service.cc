// Control handlers for the service lifecycle (issue 5): service update,
// rollback and rebalance, stack rollback and stack diff.

#include "daemon_internal.h"
#include "shoal/manager/deploy.h"
#include "shoal/plan/render.h"

namespace shoal::manager {
namespace {

using store::Kind;

v1::Mutation PutService(const v1::Service& s, uint64_t expected) {
  v1::Mutation m;
  m.set_expected_version(expected);
  *m.mutable_service() = s;
  return m;
}

}  // namespace

grpc::ServerUnaryReactor* ControlService::UpdateService(grpc::CallbackServerContext* ctx,
                                                        const v1::UpdateServiceRequest* req,
                                                        v1::UpdateServiceReply* reply) {
  v1::UpdateServiceRequest request = *req;
  return OnRead(
      ctx, [request, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
        const v1::Service* cur = FindService(state, request.name());
        if (!cur)
          return r->Finish(Grpc({Code::kNotFound, "service " + request.name() + " not found"}));
        v1::Service next = *cur;
        v1::ServiceSpec& spec = *next.mutable_spec();
        if (!request.image().empty()) spec.mutable_container()->set_image(request.image());
        auto& env = *spec.mutable_container()->mutable_env();
        for (const auto& [k, v] : request.env_add()) env[k] = v;
        for (const auto& k : request.env_rm()) env.erase(k);
        if (request.set_replicas()) {
          if (spec.mode() != v1::MODE_REPLICATED && spec.mode() != v1::MODE_REPLICATED_JOB) {
            return r->Finish(
                Grpc({Code::kInvalidArgument,
                      "service " + request.name() + " is global: --replicas does not apply"}));
          }
          spec.set_replicas(request.replicas());
        }
        // --force replaces every task (re-runs a job) through a counter in
        // the spec, as Swarm's ForceUpdate, so the change is a spec change.
        if (request.force()) spec.set_force_update(spec.force_update() + 1);
        // A change of what a task runs replaces the tasks; a scale does not.
        bool replaces = request.force() || spec.container().SerializeAsString() !=
                                               cur->spec().container().SerializeAsString();
        if (!replaces && spec.SerializeAsString() == cur->spec().SerializeAsString()) {
          *reply->mutable_service() = *cur;
          reply->set_applied_index(state.applied_index());
          return r->Finish(grpc::Status::OK);
        }
        if (replaces) {
          *next.mutable_previous_spec() = cur->spec();
          next.set_spec_version(cur->spec_version() + 1);
        }
        reply->set_replaces_tasks(replaces);
        m.Propose({PutService(next, cur->meta().version())}, "service-update",
                  [r, reply, next](Status s, uint64_t index) {
                    if (s.ok()) {
                      *reply->mutable_service() = next;
                      reply->set_applied_index(index);
                    }
                    r->Finish(Grpc(s));
                  });
      });
}

grpc::ServerUnaryReactor* ControlService::RollbackService(grpc::CallbackServerContext* ctx,
                                                          const v1::RollbackServiceRequest* req,
                                                          v1::RollbackServiceReply* reply) {
  std::string name = req->name();
  return OnRead(
      ctx, [name, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
        const v1::Service* cur = FindService(state, name);
        if (!cur) return r->Finish(Grpc({Code::kNotFound, "service " + name + " not found"}));
        if (!cur->has_previous_spec() || cur->previous_spec().name().empty()) {
          return r->Finish(Grpc({Code::kFailedPrecondition,
                                 "service " + name + " has no previous spec to roll back to"}));
        }
        v1::Service next = *cur;
        *next.mutable_spec() = cur->previous_spec();
        *next.mutable_previous_spec() = cur->spec();
        next.mutable_spec()->set_force_update(cur->spec().force_update());
        next.set_spec_version(cur->spec_version() + 1);
        // Rolled out by rollback_config, as Swarm does for `service rollback`.
        v1::UpdateStatus* us = next.mutable_update_status();
        us->Clear();
        us->set_state(v1::UpdateStatus::STATE_ROLLBACK_STARTED);
        us->set_started_at_ns(Manager::NowNs());
        us->set_spec_version(next.spec_version());
        us->set_message("manually requested rollback");
        m.Propose({PutService(next, cur->meta().version())}, "service-rollback",
                  [r, reply, next](Status s, uint64_t index) {
                    if (s.ok()) {
                      *reply->mutable_service() = next;
                      reply->set_applied_index(index);
                    }
                    r->Finish(Grpc(s));
                  });
      });
}

grpc::ServerUnaryReactor* ControlService::RebalanceService(grpc::CallbackServerContext* ctx,
                                                           const v1::RebalanceServiceRequest* req,
                                                           v1::RebalanceServiceReply* reply) {
  std::string name = req->name();
  return OnRead(
      ctx, [name, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
        const v1::Service* cur = FindService(state, name);
        if (!cur) return r->Finish(Grpc({Code::kNotFound, "service " + name + " not found"}));
        if (cur->spec().mode() != v1::MODE_REPLICATED) {
          return r->Finish(
              Grpc({Code::kInvalidArgument,
                    "service " + name + " is not a replicated service: only replicas are spread"}));
        }
        v1::Service next = *cur;
        next.set_rebalance_requested(cur->rebalance_requested() + 1);
        m.Propose({PutService(next, cur->meta().version())}, "service-rebalance",
                  [r, reply, next](Status s, uint64_t index) {
                    if (s.ok()) {
                      *reply->mutable_service() = next;
                      reply->set_applied_index(index);
                    }
                    r->Finish(Grpc(s));
                  });
      });
}

grpc::ServerUnaryReactor* ControlService::RollbackStack(grpc::CallbackServerContext* ctx,
                                                        const v1::RollbackStackRequest* req,
                                                        v1::DeployReply* reply) {
  v1::RollbackStackRequest request = *req;
  Daemon::Impl* d = d_;
  return OnRead(
      ctx, [d, request, reply](Manager& m, const store::State& state, grpc::ServerUnaryReactor* r) {
        uint64_t current = 0;
        if (!CurrentStackSpec(state, request.name(), &current)) {
          return r->Finish(Grpc({Code::kNotFound, "stack " + request.name() + " does not exist"}));
        }
        uint64_t to = request.to_revision() ? request.to_revision() : current - 1;
        const v1::StackRevision* target = to ? FindRevision(state, request.name(), to) : nullptr;
        if (!target) {
          return r->Finish(
              Grpc({Code::kNotFound, "stack " + request.name() + " has no revision " +
                                         std::to_string(to) + " (see shoal stack history)"}));
        }
        v1::DeployRequest dr;
        *dr.mutable_spec() = target->spec();
        *dr.mutable_source() = target->source();
        dr.set_prune(true);  // objects added after that revision go too
        dr.set_dry_run(request.dry_run());
        dr.set_created_by("rollback");
        auto change = BuildDeploy(state, dr, d->rng_, to, d->at_rest_->codec());
        if (!change.ok()) return r->Finish(Grpc(change.error()));
        reply->set_plan_text(plan::RenderText(change->plan, {}));
        reply->set_plan_json(plan::RenderJson(change->plan));
        reply->set_changed(!change->mutations.empty());
        reply->set_summary(change->summary);
        if (request.dry_run() || change->mutations.empty()) {
          reply->set_applied_index(state.applied_index());
          return r->Finish(grpc::Status::OK);
        }
        uint64_t revision = change->revision;
        m.Propose(std::move(change->mutations), "stack-rollback",
                  [r, reply, revision](Status s, uint64_t index) {
                    if (s.ok()) {
                      reply->set_revision(revision);
                      reply->set_applied_index(index);
                    }
                    r->Finish(Grpc(s));
                  });
      });
}

grpc::ServerUnaryReactor* ControlService::StackDiff(grpc::CallbackServerContext* ctx,
                                                    const v1::StackDiffRequest* req,
                                                    v1::StackDiffReply* reply) {
  v1::StackDiffRequest request = *req;
  return OnRead(ctx, [request, reply](Manager&, const store::State& state,
                                      grpc::ServerUnaryReactor* r) {
    const v1::StackRevision* from = FindRevision(state, request.name(), request.from_revision());
    const v1::StackRevision* to = FindRevision(state, request.name(), request.to_revision());
    if (!from || !to) {
      return r->Finish(Grpc({Code::kNotFound, "stack " + request.name() + " has no revision " +
                                                  std::to_string(!from ? request.from_revision()
                                                                       : request.to_revision())}));
    }
    auto p = plan::Diff(&from->spec(), to->spec());
    if (!p.ok()) return r->Finish(Grpc(p.error()));
    reply->set_plan_text(plan::RenderText(*p, {}));
    reply->set_plan_json(plan::RenderJson(*p));
    reply->set_changed(p->HasChanges());
    r->Finish(grpc::Status::OK);
  });
}

}  // namespace shoal::manager
