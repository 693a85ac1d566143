#pragma once

// gitops::Deployer over the control API: what `shoal watch` deploys through.

#include <memory>
#include <string>

#include "shoal/gitops/deployer.h"

namespace shoal::cli {

// Talks to the manager at `host` ("" for the default). `timeout_s` bounds
// each wait for convergence.
std::unique_ptr<gitops::Deployer> NewControlDeployer(const std::string& host, int timeout_s);

}  // namespace shoal::cli
