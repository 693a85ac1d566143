#pragma once

// Turning a deploy into one store transaction, and the read-side summaries
// the control API returns. Functions of the State alone (plus injected ids),
// so they are unit-tested without a cluster.

#include <map>
#include <random>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/plan/plan.h"
#include "shoal/store/state.h"
#include "shoal/v1/control.pb.h"

namespace shoal::manager {

class SecretCodec;

struct DeployChange {
  plan::Plan plan;
  std::vector<v1::Mutation> mutations;  // empty when nothing changes
  uint64_t revision = 0;                // the revision the mutations create
  std::string summary;                  // "2 to create, 1 to update"
  // Service name -> the spec_version whose rollout this deploy starts (the
  // services whose tasks it replaces), for DeployReply.rollouts.
  std::map<std::string, uint64_t> rollouts;
};

// The stack `name`'s spec at its current revision, or null.
const v1::StackSpec* CurrentStackSpec(const store::State& state, const std::string& name,
                                      uint64_t* revision);

// The plan and the transaction of a deploy (with req.rebalance, also a
// rebalance of the stack's replicated services, even when nothing else
// changes). A service keeps its live force_update counter, which no stack
// file sets. kFailedPrecondition when
// check_version does not match the stack's current revision; InvalidArgument
// from plan::Diff.
// `restores`: the revision a stack rollback returns to (recorded in the new
// revision's rolled_back_from), 0 for a deploy.
// `secrets`: seals secret values into the state (secrets.h); null keeps them
// plain (unit tests). kCorruption when a stored value does not unseal.
Result<DeployChange> BuildDeploy(const store::State& state, const v1::DeployRequest& req,
                                 std::mt19937_64& rng, uint64_t restores = 0,
                                 const SecretCodec* secrets = nullptr);

// Asks the orchestrator to spread the stack's replicated services again
// (Service.rebalance_requested + 1), in the services `out` already writes or
// as new puts.
void AddRebalance(const store::State& state, const std::string& stack,
                  std::vector<v1::Mutation>* out);

// The stack as it runs: its services, networks, volumes, secrets and configs
// as the cluster holds them (manual changes included), plus the external
// objects `desired` declares. Named as `desired`.
v1::StackSpec LiveStackSpec(const store::State& state, const v1::StackSpec& desired);

// The spec of revision `number` of the stack, or null.
const v1::StackRevision* FindRevision(const store::State& state, const std::string& stack,
                                      uint64_t number);

// What the scheduler would do with `change` applied: the tasks of the stack
// that cannot be placed, with the scheduler's reason. Works on a copy.
std::vector<v1::UnplacedTask> DryRunPlacement(const store::State& state, const DeployChange& change,
                                              const std::string& stack);

// Every object of the stack, as deletions (stack rm).
std::vector<v1::Mutation> RemoveStack(const store::State& state, const std::string& name,
                                      bool volumes = false);

// Per-service counts for `service ls` and deploy's progress.
v1::ServiceSummary Summarize(const store::State& state, const v1::Service& service);

// A service by full name or id, or null.
const v1::Service* FindService(const store::State& state, const std::string& name_or_id);
// A node by id or hostname, or null.
const v1::Node* FindNode(const store::State& state, const std::string& id_or_name);

// A copy without secret material (for every reply that leaves the manager).
v1::StackSpec Redacted(v1::StackSpec spec);

}  // namespace shoal::manager
