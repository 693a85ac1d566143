// Log replication: the leader's pipelined AppendEntries with flow control,
// commit by counting, snapshots for followers behind the compacted log, and
// the follower side of each message (dissertation chapter 3 and 5).

#include <algorithm>

#include "raft.h"

namespace shoal::raft {

void Raft::AppendEntries(std::vector<Entry> entries) {
  uint64_t last = log_.LastIndex();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].set_term(term_);
    entries[i].set_index(last + 1 + i);
  }
  log_.Append(entries);
  // Sent at the next Ready, so proposals made in between travel together.
  append_pending_ = true;
}

bool Raft::MaybeSendAppend(uint64_t to, bool send_if_empty) {
  auto it = prs_.find(to);
  if (it == prs_.end()) return false;
  Progress& pr = it->second;
  if (pr.IsPaused()) return false;
  Message m;
  m.set_to(to);
  std::optional<uint64_t> prev_term = log_.Term(pr.next - 1);
  if (!prev_term) {
    // The entries this follower needs are compacted: send the snapshot. Not to
    // a member we have not heard from lately; it would likely be wasted.
    if (!pr.recent_active) return false;
    const auto& snap = log_.snapshot();
    m.set_type(shoal::v1::MSG_SNAP);
    *m.mutable_snapshot() = *snap;
    pr.BecomeSnapshot(snap->metadata().index());
    Send(std::move(m));
    return true;
  }
  std::vector<Entry> entries = log_.Slice(pr.next, log_.LastIndex() + 1, cfg_.max_size_per_msg);
  if (entries.empty() && !send_if_empty) return false;
  m.set_type(shoal::v1::MSG_APP);
  m.set_index(pr.next - 1);
  m.set_log_term(*prev_term);
  m.set_commit(log_.committed());
  if (!entries.empty()) {
    uint64_t last = entries.back().index();
    if (pr.state == ProgressState::kReplicate) {
      // Pipelining: assume delivery and keep streaming until the window fills.
      pr.OptimisticUpdate(last);
      pr.inflights.Add(last);
    } else {
      pr.probe_sent = true;
    }
    for (auto& e : entries) *m.add_entries() = std::move(e);
  }
  Send(std::move(m));
  return true;
}

void Raft::BroadcastAppend() {
  for (auto& [id, pr] : prs_) {
    if (id != id_) SendAppend(id);
  }
}

void Raft::SendHeartbeat(uint64_t to, const std::string& context) {
  const Progress& pr = prs_.at(to);
  Message m;
  m.set_type(shoal::v1::MSG_HEARTBEAT);
  m.set_to(to);
  // Only as far as the follower is known to match: it may not hold the rest.
  m.set_commit(std::min(pr.match, log_.committed()));
  m.set_context(context);
  Send(std::move(m));
}

void Raft::BroadcastHeartbeat(const std::string& context) {
  for (auto& [id, pr] : prs_) {
    if (id != id_) SendHeartbeat(id, context);
  }
}

bool Raft::MaybeCommit() {
  std::vector<uint64_t> matches;
  for (uint64_t v : conf_.voters()) {
    auto it = prs_.find(v);
    matches.push_back(it == prs_.end() ? 0 : it->second.match);
  }
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<>());
  // Only an entry of the current term is committed by counting replicas; the
  // earlier ones follow from Log Matching (paper 5.4.2, figure 8).
  return log_.MaybeCommit(matches[Quorum() - 1], term_);
}

void Raft::OnLeaderCommitted() {
  append_pending_ = true;  // tell followers the new commit index
  if (CommittedInCurrentTerm() && !pending_reads_.empty()) {
    auto reads = std::move(pending_reads_);
    pending_reads_.clear();
    for (auto& [from, ctx] : reads) (void)HandleReadIndex(from, ctx);
  }
}

void Raft::HandleAppendResponse(const Message& m) {
  Progress& pr = prs_.at(m.from());
  pr.recent_active = true;
  pr.inactive_ticks = 0;
  if (m.reject()) {
    uint64_t next_probe = m.reject_hint();
    if (m.log_term() > 0) next_probe = log_.FindConflictByTerm(m.reject_hint(), m.log_term());
    if (pr.MaybeDecrTo(m.index(), next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      SendAppend(m.from());
    }
    return;
  }
  bool old_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(m.index()) && !(pr.match == m.index() && pr.state == ProgressState::kProbe)) {
    return;
  }
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match + 1 >= log_.FirstIndex()) {
        pr.BecomeProbe();
        pr.BecomeReplicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.FreeLE(m.index());
      break;
  }
  if (MaybeCommit()) {
    OnLeaderCommitted();
  } else if (old_paused) {
    SendAppend(m.from());
  }
  while (MaybeSendAppend(m.from(), false)) {
  }
  if (m.from() == lead_transferee_ && pr.match == log_.LastIndex()) {
    SendTimeoutNow(m.from());
    // A removed leader has nothing left to do once its successor has the log.
    if (!IsVoter(id_)) BecomeFollower(term_, 0);
  }
}

void Raft::HandleHeartbeatResponse(const Message& m) {
  Progress& pr = prs_.at(m.from());
  pr.recent_active = true;
  pr.inactive_ticks = 0;
  pr.probe_sent = false;
  if (pr.state == ProgressState::kReplicate && pr.inflights.Full()) pr.inflights.FreeFirstOne();
  if (pr.match < log_.LastIndex()) SendAppend(m.from());
  // The transferee may have dropped MSG_TIMEOUT_NOW (lost, or it arrived
  // before the log did): repeat it. A copy that arrives after the transferee
  // campaigned carries an older term and is dropped.
  if (m.from() == lead_transferee_ && pr.match == log_.LastIndex()) SendTimeoutNow(m.from());
  if (m.context().empty()) return;
  if (read_only_.Ack(m.from(), m.context()) < Quorum()) return;
  ReleaseReads(read_only_.Advance(m.context()));
}

void Raft::HandleAppendEntries(const Message& m) {
  Message resp;
  resp.set_type(shoal::v1::MSG_APP_RESP);
  resp.set_to(m.from());
  if (m.index() < log_.committed()) {
    // Everything up to our commit index already matches the leader's log;
    // never let a delayed message rewrite it.
    resp.set_index(log_.committed());
    Send(std::move(resp));
    return;
  }
  std::vector<Entry> entries(m.entries().begin(), m.entries().end());
  if (auto last = log_.MaybeAppend(m.index(), m.log_term(), m.commit(), entries)) {
    resp.set_index(*last);
  } else {
    // Tell the leader where to look next: the last index at or below the
    // probe whose term is no greater than the leader's term there.
    uint64_t hint = std::min(m.index(), log_.LastIndex());
    hint = log_.FindConflictByTerm(hint, m.log_term());
    resp.set_index(m.index());
    resp.set_reject(true);
    resp.set_reject_hint(hint);
    resp.set_log_term(log_.Term(hint).value_or(0));
  }
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  log_.CommitTo(m.commit());
  Message resp;
  resp.set_type(shoal::v1::MSG_HEARTBEAT_RESP);
  resp.set_to(m.from());
  resp.set_context(m.context());
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.set_type(shoal::v1::MSG_APP_RESP);
  resp.set_to(m.from());
  if (Restore(m.snapshot())) {
    resp.set_index(log_.LastIndex());
  } else {
    resp.set_index(log_.committed());
  }
  Send(std::move(resp));
}

bool Raft::Restore(const Snapshot& snapshot) {
  const auto& meta = snapshot.metadata();
  if (meta.index() <= log_.committed()) return false;
  if (log_.MatchTerm(meta.index(), meta.term())) {
    // We already hold that prefix; just learn that it is committed.
    log_.CommitTo(meta.index());
    return false;
  }
  log_.Restore(std::make_shared<Snapshot>(snapshot));
  SetConfState(meta.conf_state());
  return true;
}

void Raft::ReportUnreachable(uint64_t id) {
  if (role_ != Role::kLeader) return;
  auto it = prs_.find(id);
  if (it != prs_.end() && it->second.state == ProgressState::kReplicate) it->second.BecomeProbe();
}

void Raft::ReportSnapshot(uint64_t id, bool ok) {
  if (role_ != Role::kLeader) return;
  auto it = prs_.find(id);
  if (it == prs_.end() || it->second.state != ProgressState::kSnapshot) return;
  if (!ok) it->second.pending_snapshot = 0;
  it->second.BecomeProbe();
  // Wait for the follower's next heartbeat reply before probing again.
  it->second.probe_sent = true;
}

}  // namespace shoal::raft
