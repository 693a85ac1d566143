#pragma once

// The rolling updater (issue 5): which stale tasks a pass replaces, in which
// order, and the rollout's status on the service. Internal to the
// orchestrator module; pure.
//
// Everything it remembers lives in the store (Service.update_status, the
// tasks' spec versions and statuses) and is written in the same transaction
// as the task changes it decides, so a new leader continues a rollout
// exactly where the old one left it: no batch is replaced twice and no
// failure is counted twice.

#include <cstdint>
#include <optional>
#include <vector>

#include "shoal/v1/objects.pb.h"

namespace shoal::orchestrator::internal {

struct Rollout {
  // Stale tasks to replace now, a prefix of `stale` in its order.
  std::vector<const v1::Task*> replace;
  // Start the replacements before stopping the tasks they replace.
  bool start_first = false;
  // The service as it should be written (a new update status, or a
  // rollback's spec swap); unset when unchanged.
  std::optional<v1::Service> write;
  // The rollout failed and the service's spec went back to its previous one
  // (a new spec_version): replace nothing more in this pass.
  bool rolled_back = false;
  // When the update's delay or monitor period that holds it back ends (0:
  // none), so that the next pass comes then rather than at a periodic one.
  int64_t wake_at_ns = 0;
};

// Decides one pass of the rollout of `service`'s spec_version:
//   - `read`: every task of the service as read (history too), where the
//     rollout's failures are found: a task of the new version that failed,
//     was rejected, exited, or turned unhealthy while the rollout runs;
//   - `stale`: live tasks of older versions that may be replaced now, in
//     slot (or node) order;
//   - `live`: every live task of the service after this pass's restarts;
//   - `total`: the tasks the rollout brings to the new version (replicas, or
//     the nodes of a global service), for max_failure_ratio.
// update_config (rollback_config while rolling back) paces it: at most
// `parallelism` new tasks on their way at once (0: all), `delay` after a
// batch came up; more than max_failure_ratio × total failures trigger the
// failure action (pause; continue; rollback to previous_spec, a rollback's
// own failure pausing it); the rollout completes once every task runs the
// new version, up (healthy where checked), for `monitor`. Jobs re-run all at
// once and keep no update status.
Rollout PlanRollout(const v1::Service& service, const std::vector<const v1::Task*>& read,
                    const std::vector<const v1::Task*>& stale,
                    const std::vector<const v1::Task*>& live, uint64_t total, int64_t now_ns);

// The rollout's update config: rollback_config while it rolls back.
const v1::UpdateConfig& ActiveUpdateConfig(const v1::Service& service);

}  // namespace shoal::orchestrator::internal
