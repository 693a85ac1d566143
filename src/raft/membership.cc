// Membership changes one server at a time (dissertation 4.1), ReadIndex
// (6.4) and leadership transfer (3.10).

#include <algorithm>

#include "raft.h"

namespace shoal::raft {

namespace {

bool Contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void InsertSorted(google::protobuf::RepeatedField<uint64_t>* ids, uint64_t id) {
  ids->Add(id);
  std::sort(ids->begin(), ids->end());
}

}  // namespace

Status Raft::CheckConfChange(const Entry& e) const {
  if (pending_conf_index_ > log_.applied()) {
    // Either an earlier change is not applied yet, or this leader's no-op is
    // not: a change proposed before it could overlap one from an earlier
    // term that this leader has not seen committed.
    auto pending = log_.Slice(pending_conf_index_, pending_conf_index_ + 1, 0);
    bool noop = !pending.empty() && pending[0].type() != shoal::v1::ENTRY_CONF_CHANGE;
    return {Code::kFailedPrecondition, noop ? "this leader's first entry is not applied yet; retry"
                                            : "a configuration change is pending; retry later"};
  }
  ConfChange cc;
  if (!cc.ParseFromString(e.data())) return InvalidArgument("undecodable configuration change");
  uint64_t id = cc.node_id();
  if (id == 0) return InvalidArgument("member id 0 is reserved");
  switch (cc.type()) {
    case shoal::v1::CONF_CHANGE_ADD_VOTER:
      if (Contains(conf_.removed(), id)) {
        return {Code::kFailedPrecondition, "member ids are never reused once removed"};
      }
      if (IsVoter(id)) return {Code::kFailedPrecondition, "already a voter"};
      return Status::Ok();
    case shoal::v1::CONF_CHANGE_REMOVE_VOTER:
      if (!IsVoter(id)) return {Code::kFailedPrecondition, "not a voter"};
      if (conf_.voters_size() == 1) {
        return {Code::kFailedPrecondition, "cannot remove the last voter"};
      }
      return Status::Ok();
    default:
      return InvalidArgument("unknown configuration change type");
  }
}

void Raft::ApplyConfChange(const Entry& e) {
  ConfChange cc;
  if (!cc.ParseFromString(e.data())) return;  // validated when proposed
  uint64_t id = cc.node_id();
  if (cc.type() == shoal::v1::CONF_CHANGE_ADD_VOTER) {
    if (id == 0 || IsVoter(id) || Contains(conf_.removed(), id)) return;
    InsertSorted(conf_.mutable_voters(), id);
    if (role_ == Role::kLeader) {
      Progress pr(cfg_.max_inflight_msgs);
      pr.next = log_.LastIndex() + 1;
      pr.recent_active = true;  // give it an election timeout to answer
      prs_.emplace(id, std::move(pr));
      SendAppend(id);
    }
  } else if (cc.type() == shoal::v1::CONF_CHANGE_REMOVE_VOTER) {
    if (!IsVoter(id)) return;
    auto* voters = conf_.mutable_voters();
    voters->erase(std::remove(voters->begin(), voters->end(), id), voters->end());
    InsertSorted(conf_.mutable_removed(), id);
    if (role_ == Role::kLeader) {
      prs_.erase(id);
      if (lead_transferee_ == id) AbortLeaderTransfer();
      if (id == id_) {
        HandOverAfterRemoval();
        return;
      }
    }
  }
  // The quorum changed: entries may now be committed by the smaller group.
  if (role_ == Role::kLeader && MaybeCommit()) OnLeaderCommitted();
}

void Raft::HandOverAfterRemoval() {
  // Rather than leave the group to wait out an election timeout, hand over
  // to the most up-to-date voter: at once if it has the whole log, else keep
  // leading (refusing proposals, which Propose does for a non-voter) until it
  // has, which also tells the others the commit index of our removal. An
  // election timeout later TickHeartbeat gives up and steps down anyway.
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (const auto& [pid, pr] : prs_) {
    if (best == 0 || pr.match > best_match) {
      best = pid;
      best_match = pr.match;
    }
  }
  if (best == 0) {
    BecomeFollower(term_, 0);
    return;
  }
  lead_transferee_ = best;
  election_elapsed_ = 0;
  if (best_match == log_.LastIndex()) {
    SendTimeoutNow(best);
    BecomeFollower(term_, 0);
    return;
  }
  SendAppend(best);  // HandleAppendResponse sends MSG_TIMEOUT_NOW once it matches
}

void Raft::NoticeRemoved() {
  // Only a member that applied a committed change removing us sends the
  // notice, and ids are never reused, so it holds in every later term.
  removed_notice_ = true;
  if (role_ == Role::kPreCandidate || role_ == Role::kCandidate) BecomeFollower(term_, 0);
}

void Raft::SetConfState(const ConfState& cs) { conf_ = cs; }

bool Raft::HasUnappliedConfChange() const {
  if (log_.committed() <= log_.applied()) return false;
  for (const auto& e : log_.Slice(log_.applied() + 1, log_.committed() + 1, UINT64_MAX)) {
    if (e.type() == shoal::v1::ENTRY_CONF_CHANGE) return true;
  }
  return false;
}

bool Raft::CommittedInCurrentTerm() const { return log_.Term(log_.committed()) == term_; }

Status Raft::ReadIndex(uint64_t from, std::string context) {
  if (role_ == Role::kLeader) return HandleReadIndex(from, context);
  if (role_ == Role::kFollower && lead_ != 0) {
    Message m;
    m.set_type(shoal::v1::MSG_READ_INDEX);
    m.set_to(lead_);
    m.set_context(std::move(context));
    Send(std::move(m));
    return Status::Ok();
  }
  return {Code::kUnavailable, "no leader known"};
}

Status Raft::HandleReadIndex(uint64_t from, const std::string& context) {
  // A removed leader only hands over; the group may already have a new one.
  if (!IsVoter(id_)) return {Code::kUnavailable, "this member was removed from the group"};
  if (!CommittedInCurrentTerm()) {
    // Until our no-op commits, our commit index may lag entries an earlier
    // leader committed; a read index taken now could miss them.
    pending_reads_.emplace_back(from, context);
    return Status::Ok();
  }
  ReadOnly::Request req{log_.committed(), from, context};
  if (conf_.voters_size() == 1 && IsVoter(id_)) {
    ReleaseReads({req});
    return Status::Ok();
  }
  read_only_.Add(std::move(req), id_);
  // A quorum answering this heartbeat proves nobody has replaced us.
  BroadcastHeartbeat(context);
  return Status::Ok();
}

void Raft::ReleaseReads(const std::vector<ReadOnly::Request>& done) {
  for (const auto& r : done) {
    if (r.from == id_) {
      read_states_.push_back(ReadState{r.index, r.context});
    } else {
      Message m;
      m.set_type(shoal::v1::MSG_READ_INDEX_RESP);
      m.set_to(r.from);
      m.set_index(r.index);
      m.set_context(r.context);
      Send(std::move(m));
    }
  }
}

Status Raft::TransferLeadership(uint64_t to) {
  if (role_ != Role::kLeader) return {Code::kFailedPrecondition, "not the leader"};
  if (to == id_) return Status::Ok();
  if (!IsVoter(to)) return {Code::kFailedPrecondition, "transfer target is not a voter"};
  HandleTransferLeader(to);
  return Status::Ok();
}

void Raft::HandleTransferLeader(uint64_t to) {
  if (lead_transferee_ == to) return;
  lead_transferee_ = to;
  // The transfer must finish within one election timeout or it is abandoned.
  election_elapsed_ = 0;
  if (prs_.at(to).match == log_.LastIndex()) {
    SendTimeoutNow(to);
  } else {
    SendAppend(to);
  }
}

void Raft::SendTimeoutNow(uint64_t to) {
  Message t;
  t.set_type(shoal::v1::MSG_TIMEOUT_NOW);
  t.set_to(to);
  Send(std::move(t));
}

}  // namespace shoal::raft
