// depends_on (issue 5): a service gets tasks only once the services it
// depends on are started, healthy, or completed successfully, as the
// compose spec's conditions say. Checked on every pass, so it holds on the
// first deploy and again while a dependency is being replaced by an update.

#include "pass.h"

namespace shoal::orchestrator::internal {

namespace {

const char* ConditionName(v1::Dependency::Condition c) {
  switch (c) {
    case v1::Dependency::SERVICE_HEALTHY:
      return "service_healthy";
    case v1::Dependency::SERVICE_COMPLETED_SUCCESSFULLY:
      return "service_completed_successfully";
    default:
      return "service_started";
  }
}

// Every task the dependency wants (its replicas, or one per node it runs
// on) is of its current spec and meets the condition. A dependency scaled
// to zero is satisfied: there is nothing to wait for.
bool Satisfied(const Pass& p, const v1::Service& dep, v1::Dependency::Condition c) {
  uint64_t live = 0, met = 0;
  {
    for (const v1::Task* t : TasksRead(p, dep.meta().id())) {
      if (!IsLive(*t)) continue;
      ++live;
      if (IsStale(dep, *t)) continue;
      switch (c) {
        case v1::Dependency::SERVICE_STARTED:
          met += t->status().state() == v1::TASK_RUNNING ||
                 (IsJob(dep.spec().mode()) && t->status().state() == v1::TASK_COMPLETE);
          break;
        case v1::Dependency::SERVICE_HEALTHY:
          met += IsUp(*t);
          break;
        default:
          met += t->status().state() == v1::TASK_COMPLETE && t->status().exit_code() == 0;
          break;
      }
    }
  }
  uint64_t want = IsGlobal(dep.spec().mode()) ? live : dep.spec().replicas();
  if (IsGlobal(dep.spec().mode()) && want == 0) return false;  // not running anywhere yet
  return met >= want && met == live;
}

}  // namespace

std::string DependencyWait(const Pass& p, const v1::Service& service) {
  std::string out;
  for (const v1::Dependency& d : service.spec().depends_on()) {
    std::string full =
        service.spec().stack().empty() ? d.service() : service.spec().stack() + "_" + d.service();
    auto it = p.services_by_name.find(full);
    std::string why;
    if (it == p.services_by_name.end()) {
      if (!d.required()) continue;
      why = d.service() + " (not deployed)";
    } else if (!Satisfied(p, *it->second, d.condition())) {
      why = d.service() + " (" + ConditionName(d.condition()) + ")";
    } else {
      continue;
    }
    out += (out.empty() ? "waiting for " : ", ") + why;
  }
  return out;
}

}  // namespace shoal::orchestrator::internal
