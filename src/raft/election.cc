// Leader election: pre-vote, vote, and check-quorum (dissertation 3.4, 4.2.3, 9.6).

#include <algorithm>

#include "raft.h"

namespace shoal::raft {

void Raft::Hup(CampaignType type) {
  if (role_ == Role::kLeader) return;
  if (!Promotable()) return;
  // A committed but unapplied configuration change may remove us or change
  // the quorum; campaign only with the configuration we will actually use.
  if (HasUnappliedConfChange()) return;
  Campaign(type);
}

void Raft::Campaign(CampaignType type) {
  uint64_t term;
  MessageType vote_type;
  if (type == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_type = shoal::v1::MSG_PRE_VOTE;
    term = term_ + 1;  // the term we would campaign in; ours stays as it is
  } else {
    BecomeCandidate();
    vote_type = shoal::v1::MSG_VOTE;
    term = term_;
  }
  if (Poll(id_, true) == 1) {  // a group of one
    if (type == CampaignType::kPreElection) {
      Campaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (uint64_t v : conf_.voters()) {
    if (v == id_) continue;
    Message m;
    m.set_type(vote_type);
    m.set_to(v);
    m.set_term(term);
    m.set_index(log_.LastIndex());
    m.set_log_term(log_.LastTerm());
    if (type == CampaignType::kTransfer) m.set_context(kCampaignTransfer);
    Send(std::move(m));
  }
}

void Raft::HandleVoteRequest(const Message& m) {
  const auto& removed = conf_.removed();
  bool is_removed = std::find(removed.begin(), removed.end(), m.from()) != removed.end();
  // We can vote if we already voted for this candidate (a duplicate request),
  // if we have neither voted nor follow a leader in this term, or if it is a
  // pre-vote for a future term (pre-votes promise nothing).
  bool can_vote = vote_ == m.from() || (vote_ == 0 && lead_ == 0) ||
                  (m.type() == shoal::v1::MSG_PRE_VOTE && m.term() > term_);
  Message resp;
  resp.set_type(m.type() == shoal::v1::MSG_VOTE ? shoal::v1::MSG_VOTE_RESP
                                                : shoal::v1::MSG_PRE_VOTE_RESP);
  resp.set_to(m.from());
  if (!is_removed && can_vote && log_.IsUpToDate(m.index(), m.log_term())) {
    // The reply is sent only after the Ready that carries the new vote has
    // been persisted with sync, so a crash cannot make us vote twice.
    resp.set_term(m.term());
    if (m.type() == shoal::v1::MSG_VOTE) {
      election_elapsed_ = 0;
      vote_ = m.from();
    }
  } else {
    resp.set_term(term_);
    resp.set_reject(true);
  }
  Send(std::move(resp));
}

int Raft::Poll(uint64_t id, bool granted) {
  votes_.emplace(id, granted);  // only the first answer of a voter counts
  size_t yes = 0;
  size_t no = 0;
  for (const auto& [voter, v] : votes_) {
    if (!IsVoter(voter)) continue;
    (v ? yes : no)++;
  }
  size_t quorum = Quorum();
  if (yes >= quorum) return 1;
  if (no > conf_.voters_size() - quorum) return -1;
  return 0;
}

bool Raft::CheckQuorumActive() {
  size_t active = 0;
  for (auto& [id, pr] : prs_) {
    if (id == id_ || pr.recent_active) ++active;
    if (id != id_) pr.recent_active = false;
  }
  return active >= Quorum();
}

}  // namespace shoal::raft
