#include "shoal/store/txn.h"

namespace shoal::store {

v1::Command Txn::Build(std::string proposer, int64_t proposed_at_ns) && {
  command_.mutable_transaction();  // an empty transaction is still a transaction
  command_.set_proposer(std::move(proposer));
  command_.set_proposed_at_ns(proposed_at_ns);
  return std::move(command_);
}

}  // namespace shoal::store
