// End-of-run and running checks of the Raft fault simulation: one leader per
// term, matching logs, equal state machines, nothing acknowledged lost.

#include <algorithm>
#include <sstream>

#include "raft_sim_internal.h"

namespace shoal::sim::raft_sim {

void Simulation::CheckLeaders() {
  for (const auto& [id, n] : nodes_) {
    if (!n.raft) continue;
    auto cs = n.raft->status().conf_state;
    removed_ids_.insert(cs.removed().begin(), cs.removed().end());
  }
  for (const auto& [id, n] : nodes_) {
    if (!n.raft) continue;
    auto st = n.raft->status();
    // A member that believes it was removed must be right, and must be quiet.
    if (st.removed && !removed_ids_.count(id)) {
      return Fail("member " + std::to_string(id) + " believes it was removed; nobody applied that");
    }
    if (st.removed && (st.role == Role::kCandidate || st.role == Role::kPreCandidate)) {
      return Fail("removed member " + std::to_string(id) + " campaigns");
    }
    if (st.role != Role::kLeader) continue;
    auto [it, inserted] = leader_of_term_.emplace(st.term, id);
    if (inserted) {
      ++stats_.elections;
      Trace("leader " + std::to_string(id) + " term " + std::to_string(st.term));
    } else if (it->second != id) {
      Fail("two leaders in term " + std::to_string(st.term) + ": " + std::to_string(it->second) +
           " and " + std::to_string(id));
    }
  }
}

void Simulation::CheckLogs() {
  // Log Matching up to the commit index: every committed entry any member
  // holds is the one entry that index may ever hold.
  for (const auto& [id, n] : nodes_) {
    if (!n.raft) continue;
    auto st = n.raft->status();
    for (const auto& e : n.raft->EntriesForTest(st.first_index, st.commit + 1)) CheckEntry(id, e);
  }
}

bool Simulation::Converged() {
  uint64_t leader = LeaderId();
  if (leader == 0) return false;
  SimNode& l = nodes_.at(leader);
  if (final_write_.empty()) {
    // A write of the final leader's term: once applied everywhere, every
    // member holds every earlier committed entry too.
    std::string id = "w" + std::to_string(next_write_++);
    if (l.raft->Propose(KvMachine::EncodePut("final", id)).ok()) {
      final_write_ = id;
      final_write_at_ = now_;
      pending_writes_[id] = l.id;
    }
    Drive(l);
    return false;
  }
  if (!acked_.count(final_write_)) {
    // Proposed to a leader that was already deposed: it may never commit. Retry.
    if (now_ > final_write_at_ + 1000) final_write_.clear();
    return false;
  }
  uint64_t commit = l.raft->status().commit;
  for (uint64_t id : Voters()) {
    const SimNode& n = nodes_.at(id);
    if (!n.raft || n.sm.applied() != commit || !n.sm.HasWrite(final_write_)) return false;
  }
  return true;
}

void Simulation::FinalChecks() {
  CheckLogs();
  const SimNode* first = nullptr;
  for (uint64_t id : Voters()) {
    const SimNode& n = nodes_.at(id);
    for (const auto& [w, index] : acked_) {
      if (!n.sm.HasWrite(w)) {
        return Fail("acknowledged write " + w + " (index " + std::to_string(index) +
                    ") missing on member " + std::to_string(id));
      }
    }
    if (first && !(n.sm == first->sm)) {
      return Fail("state machines differ between members " + std::to_string(first->id) + " and " +
                  std::to_string(id));
    }
    first = &n;
  }
  stats_.final_index = first ? first->sm.applied() : 0;
}

}  // namespace shoal::sim::raft_sim
