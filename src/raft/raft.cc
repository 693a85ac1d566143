#include "raft.h"

#include <algorithm>

namespace shoal::raft {

using shoal::v1::MessageType;

Raft::Raft(const Config& config, RaftLog log, const HardState& hard_state, RandomSource* random)
    : id_(config.id), cfg_(config), random_(random), log_(std::move(log)) {
  term_ = hard_state.term();
  vote_ = hard_state.vote();
  prev_hard_state_ = hard_state;
  conf_ = log_.snapshot()->metadata().conf_state();
  BecomeFollower(term_, 0);
}

void Raft::Bootstrap(const std::vector<uint64_t>& peers) {
  std::vector<uint64_t> sorted = peers;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // Every founder writes the same entries at term 1, so they are committed by
  // construction and a member added later learns the founders from the log.
  std::vector<Entry> entries;
  for (size_t i = 0; i < sorted.size(); ++i) {
    ConfChange cc;
    cc.set_type(shoal::v1::CONF_CHANGE_ADD_VOTER);
    cc.set_node_id(sorted[i]);
    Entry e;
    e.set_term(1);
    e.set_index(i + 1);
    e.set_type(shoal::v1::ENTRY_CONF_CHANGE);
    e.set_data(cc.SerializeAsString());
    entries.push_back(std::move(e));
  }
  log_.Append(entries);
  log_.CommitTo(entries.size());
  term_ = 1;
}

void Raft::ReplayConfChanges(uint64_t from, uint64_t to) {
  for (const auto& e : log_.Slice(from + 1, to + 1, UINT64_MAX)) {
    if (e.type() == shoal::v1::ENTRY_CONF_CHANGE) ApplyConfChange(e);
  }
}

// ---- roles ----

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = 0;
  }
  lead_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  transfer_campaign_pending_ = false;
  votes_.clear();
  prs_.clear();
  pending_conf_index_ = 0;
  read_only_.Reset();
  pending_reads_.clear();
  append_pending_ = false;
}

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ =
      cfg_.election_ticks + static_cast<int>(random_->Uniform(cfg_.election_ticks));
}

void Raft::BecomeFollower(uint64_t term, uint64_t lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::BecomePreCandidate() {
  // No term bump and no vote: a pre-election that fails leaves no trace.
  votes_.clear();
  prs_.clear();
  lead_ = 0;
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  for (uint64_t v : conf_.voters()) {
    Progress pr(cfg_.max_inflight_msgs);
    pr.next = log_.LastIndex() + 1;
    // New leaders treat everyone as active so check-quorum does not fire before
    // the first round of replies.
    pr.recent_active = true;
    if (v == id_) pr.match = log_.stable();
    prs_.emplace(v, std::move(pr));
  }
  // The no-op of this term: committing it commits every earlier entry, and
  // until it is applied this leader serves no ReadIndex and accepts no
  // configuration change (dissertation 6.4; the single-server change errata).
  pending_conf_index_ = log_.LastIndex() + 1;
  AppendEntries({Entry()});
}

bool Raft::IsVoter(uint64_t id) const {
  const auto& v = conf_.voters();
  return std::find(v.begin(), v.end(), id) != v.end();
}

bool Raft::IsRemoved(uint64_t id) const {
  const auto& r = conf_.removed();
  return std::find(r.begin(), r.end(), id) != r.end();
}

bool Raft::Promotable() const {
  return IsVoter(id_) && !removed_notice_ && !log_.snapshot_pending();
}

size_t Raft::Quorum() const { return conf_.voters_size() / 2 + 1; }

HardState Raft::CurrentHardState() const {
  HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(log_.committed());
  return hs;
}

void Raft::Send(Message m) {
  m.set_from(id_);
  switch (m.type()) {
    case shoal::v1::MSG_VOTE:
    case shoal::v1::MSG_PRE_VOTE:
    case shoal::v1::MSG_VOTE_RESP:
    case shoal::v1::MSG_PRE_VOTE_RESP:
      break;  // the caller chose the term (pre-votes use a future one)
    default:
      m.set_term(term_);
  }
  msgs_.push_back(std::move(m));
}

// ---- time ----

void Raft::Tick() {
  if (role_ == Role::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  ++election_elapsed_;
  if (Promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    Hup(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
  }
}

void Raft::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= cfg_.election_ticks) {
    election_elapsed_ = 0;
    if (cfg_.check_quorum && !CheckQuorumActive()) {
      BecomeFollower(term_, 0);
      return;
    }
    if (!IsVoter(id_)) {
      // Removed, and no voter caught up within an election timeout: let the
      // rest elect a leader on their own.
      BecomeFollower(term_, 0);
      return;
    }
    // A transfer that did not finish within an election timeout has failed.
    AbortLeaderTransfer();
  }
  for (auto& [id, pr] : prs_) {
    ++pr.inactive_ticks;
    // A lost snapshot message would otherwise stall this follower forever.
    if (pr.state == ProgressState::kSnapshot && ++pr.snapshot_ticks >= cfg_.election_ticks) {
      pr.BecomeProbe();
    }
  }
  if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    // Re-sending the newest ReadIndex context retries reads whose round was lost.
    const std::string* ctx = read_only_.LastContext();
    BroadcastHeartbeat(ctx ? *ctx : std::string());
  }
}

// ---- messages ----

Status Raft::Step(const Message& m) {
  if ((m.type() == shoal::v1::MSG_VOTE || m.type() == shoal::v1::MSG_PRE_VOTE) &&
      IsRemoved(m.from())) {
    // Before any term or lease logic: a removed member must hear it, even
    // while we ignore ordinary campaigns within the leader lease.
    Message resp;
    resp.set_type(m.type() == shoal::v1::MSG_VOTE ? shoal::v1::MSG_VOTE_RESP
                                                  : shoal::v1::MSG_PRE_VOTE_RESP);
    resp.set_to(m.from());
    resp.set_term(term_);
    resp.set_reject(true);
    resp.set_context(kRemovedNotice);
    Send(std::move(resp));
    return Status::Ok();
  }
  if ((m.type() == shoal::v1::MSG_VOTE_RESP || m.type() == shoal::v1::MSG_PRE_VOTE_RESP) &&
      m.reject() && m.context() == kRemovedNotice) {
    NoticeRemoved();
    return Status::Ok();
  }
  if (m.term() > term_) {
    if (m.type() == shoal::v1::MSG_VOTE || m.type() == shoal::v1::MSG_PRE_VOTE) {
      bool force = m.context() == kCampaignTransfer;
      bool in_lease = cfg_.check_quorum && lead_ != 0 && election_elapsed_ < cfg_.election_ticks;
      // We heard from a live leader within the minimum election timeout: a
      // member that campaigns now is partitioned or removed, and must not
      // disrupt us (dissertation 4.2.3).
      if (!force && in_lease) return Status::Ok();
    }
    if (m.type() == shoal::v1::MSG_PRE_VOTE) {
      // Never change term for a pre-vote.
    } else if (m.type() == shoal::v1::MSG_PRE_VOTE_RESP && !m.reject()) {
      // Granted pre-votes carry the future term; the election bumps it.
    } else if (m.type() == shoal::v1::MSG_APP || m.type() == shoal::v1::MSG_HEARTBEAT ||
               m.type() == shoal::v1::MSG_SNAP) {
      BecomeFollower(m.term(), m.from());
    } else {
      BecomeFollower(m.term(), 0);
    }
  } else if (m.term() < term_) {
    // Stale: drop the content. A stale leader is told our term so it steps
    // down (with pre-vote it may never otherwise learn it), and a stale
    // pre-candidate is refused so it stops asking.
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type() == shoal::v1::MSG_APP || m.type() == shoal::v1::MSG_HEARTBEAT)) {
      Message resp;
      resp.set_type(shoal::v1::MSG_APP_RESP);
      resp.set_to(m.from());
      Send(std::move(resp));
    } else if (m.type() == shoal::v1::MSG_PRE_VOTE) {
      Message resp;
      resp.set_type(shoal::v1::MSG_PRE_VOTE_RESP);
      resp.set_to(m.from());
      resp.set_term(term_);
      resp.set_reject(true);
      Send(std::move(resp));
    }
    return Status::Ok();
  }

  switch (m.type()) {
    case shoal::v1::MSG_VOTE:
    case shoal::v1::MSG_PRE_VOTE:
      HandleVoteRequest(m);
      return Status::Ok();
    default:
      break;
  }
  switch (role_) {
    case Role::kLeader:
      return StepLeader(m);
    case Role::kCandidate:
    case Role::kPreCandidate:
      return StepCandidate(m);
    case Role::kFollower:
      return StepFollower(m);
  }
  return Status::Ok();
}

Status Raft::StepLeader(const Message& m) {
  switch (m.type()) {
    case shoal::v1::MSG_PROP: {
      // A forwarded proposal; a refusal is dropped and the client retries.
      std::vector<Entry> entries(m.entries().begin(), m.entries().end());
      (void)Propose(std::move(entries));
      return Status::Ok();
    }
    case shoal::v1::MSG_READ_INDEX:
      (void)HandleReadIndex(m.from(), m.context());
      return Status::Ok();
    default:
      break;
  }
  if (!prs_.count(m.from())) return Status::Ok();  // not a voter (any more)
  switch (m.type()) {
    case shoal::v1::MSG_APP_RESP:
      HandleAppendResponse(m);
      break;
    case shoal::v1::MSG_HEARTBEAT_RESP:
      HandleHeartbeatResponse(m);
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status Raft::StepCandidate(const Message& m) {
  MessageType my_resp =
      role_ == Role::kPreCandidate ? shoal::v1::MSG_PRE_VOTE_RESP : shoal::v1::MSG_VOTE_RESP;
  switch (m.type()) {
    case shoal::v1::MSG_APP:
      BecomeFollower(m.term(), m.from());
      HandleAppendEntries(m);
      break;
    case shoal::v1::MSG_HEARTBEAT:
      BecomeFollower(m.term(), m.from());
      HandleHeartbeat(m);
      break;
    case shoal::v1::MSG_SNAP:
      BecomeFollower(m.term(), m.from());
      HandleSnapshot(m);
      break;
    default:
      if (m.type() != my_resp) break;
      switch (Poll(m.from(), !m.reject())) {
        case 1:
          if (role_ == Role::kPreCandidate) {
            Campaign(CampaignType::kElection);
          } else {
            BecomeLeader();
          }
          break;
        case -1:
          BecomeFollower(term_, 0);
          break;
        default:
          break;
      }
  }
  return Status::Ok();
}

Status Raft::StepFollower(const Message& m) {
  switch (m.type()) {
    case shoal::v1::MSG_PROP:
      if (lead_ != 0 && lead_ != m.from()) {
        Message fwd = m;
        fwd.set_to(lead_);
        Send(std::move(fwd));
      }
      break;
    case shoal::v1::MSG_APP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleAppendEntries(m);
      break;
    case shoal::v1::MSG_HEARTBEAT:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleHeartbeat(m);
      break;
    case shoal::v1::MSG_SNAP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleSnapshot(m);
      break;
    case shoal::v1::MSG_TIMEOUT_NOW:
      // Leadership transfer: campaign at once, skipping pre-vote, because the
      // old leader vouches that our log is up to date. The commit index that
      // came with it may make a configuration change (such as the old
      // leader's own removal) committed but not applied: campaign right
      // after applying it rather than dropping the transfer.
      if (m.from() != lead_) break;
      if (HasUnappliedConfChange()) {
        transfer_campaign_pending_ = true;
      } else {
        Hup(CampaignType::kTransfer);
      }
      break;
    case shoal::v1::MSG_READ_INDEX_RESP:
      read_states_.push_back(ReadState{m.index(), m.context()});
      break;
    default:
      break;
  }
  return Status::Ok();
}

// ---- proposals ----

Status Raft::Propose(std::vector<Entry> entries) {
  if (role_ == Role::kLeader) {
    if (!IsVoter(id_)) return {Code::kUnavailable, "this member was removed from the group"};
    if (lead_transferee_ != 0) return {Code::kUnavailable, "leadership transfer in progress"};
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].type() != shoal::v1::ENTRY_CONF_CHANGE) continue;
      Status s = CheckConfChange(entries[i]);
      if (!s.ok()) return s;
      pending_conf_index_ = log_.LastIndex() + 1 + i;
    }
    AppendEntries(std::move(entries));
    return Status::Ok();
  }
  if (role_ == Role::kFollower && lead_ != 0) {
    Message m;
    m.set_type(shoal::v1::MSG_PROP);
    m.set_to(lead_);
    for (auto& e : entries) *m.add_entries() = std::move(e);
    Send(std::move(m));
    return Status::Ok();
  }
  return {Code::kUnavailable, "no leader known"};
}

// ---- Ready ----

bool Raft::HasReady() const {
  HardState hs = CurrentHardState();
  return !msgs_.empty() || append_pending_ || log_.stable() < log_.LastIndex() ||
         hs.term() != prev_hard_state_.term() || hs.vote() != prev_hard_state_.vote() ||
         hs.commit() != prev_hard_state_.commit() || log_.snapshot_pending() ||
         log_.HasNextCommitted() || !read_states_.empty();
}

Ready Raft::MakeReady() {
  if (ready_outstanding_) RaftBug("GetReady called twice without Advance");
  if (append_pending_) {
    append_pending_ = false;
    if (role_ == Role::kLeader) BroadcastAppend();
  }
  Ready rd;
  rd.entries = log_.UnstableEntries();
  HardState hs = CurrentHardState();
  bool term_or_vote = hs.term() != prev_hard_state_.term() || hs.vote() != prev_hard_state_.vote();
  if (term_or_vote || hs.commit() != prev_hard_state_.commit()) rd.hard_state = hs;
  if (log_.snapshot_pending()) rd.snapshot = log_.snapshot();
  rd.committed_entries = log_.NextCommitted(cfg_.max_committed_size_per_ready);
  rd.must_sync = !rd.entries.empty() || rd.snapshot != nullptr || term_or_vote;
  rd.leader_appends_early = role_ == Role::kLeader && !term_or_vote && rd.snapshot == nullptr;
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  ready_outstanding_ = true;
  return rd;
}

void Raft::Advance(const Ready& rd) {
  ready_outstanding_ = false;
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  if (rd.snapshot) {
    log_.SnapshotPersisted();
    log_.AppliedTo(rd.snapshot->metadata().index());
  }
  if (!rd.entries.empty()) {
    log_.StableTo(rd.entries.back().index(), rd.entries.back().term());
    if (role_ == Role::kLeader) {
      // The leader counts itself only once its own disk holds the entries.
      auto it = prs_.find(id_);
      if (it != prs_.end() && it->second.MaybeUpdate(log_.stable()) && MaybeCommit()) {
        OnLeaderCommitted();
      }
    }
  }
  for (const auto& e : rd.committed_entries) {
    if (e.index() <= log_.applied()) continue;
    log_.AppliedTo(e.index());
    if (e.type() == shoal::v1::ENTRY_CONF_CHANGE) ApplyConfChange(e);
  }
  if (transfer_campaign_pending_ && role_ == Role::kFollower && !HasUnappliedConfChange()) {
    transfer_campaign_pending_ = false;
    Hup(CampaignType::kTransfer);
  }
}

Result<std::shared_ptr<const Snapshot>> Raft::CreateSnapshot(std::string data,
                                                             uint64_t compact_index) {
  uint64_t applied = log_.applied();
  if (log_.snapshot_pending()) {
    return Status(Code::kFailedPrecondition, "a received snapshot is not yet applied");
  }
  if (compact_index > applied || compact_index > log_.stable()) {
    return Status(Code::kFailedPrecondition, "compact index beyond the applied or stable index");
  }
  auto snap = std::make_shared<Snapshot>();
  snap->mutable_metadata()->set_index(applied);
  snap->mutable_metadata()->set_term(log_.Term(applied).value_or(0));
  *snap->mutable_metadata()->mutable_conf_state() = conf_;
  snap->set_data(std::move(data));
  log_.Compact(snap, std::max(compact_index, log_.DummyIndex()));
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

NodeStatus Raft::status() const {
  NodeStatus s;
  s.id = id_;
  s.term = term_;
  s.vote = vote_;
  s.leader = lead_;
  s.role = role_;
  s.commit = log_.committed();
  s.applied = log_.applied();
  s.first_index = log_.FirstIndex();
  s.last_index = log_.LastIndex();
  s.conf_state = conf_;
  s.removed = removed();
  s.lead_transferee = lead_transferee_;
  return s;
}

std::vector<PeerProgress> Raft::progress() const {
  std::vector<PeerProgress> out;
  if (role_ != Role::kLeader) return out;
  for (const auto& [id, pr] : prs_) {
    if (id == id_) continue;
    PeerProgress p;
    p.id = id;
    p.match = pr.match;
    p.next = pr.next;
    p.snapshot = pr.state == ProgressState::kSnapshot;
    p.inactive_ticks = pr.inactive_ticks;
    out.push_back(p);
  }
  return out;
}

}  // namespace shoal::raft
