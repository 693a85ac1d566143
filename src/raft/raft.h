#pragma once

// The Raft protocol proper. RaftNode is its public face; this class is split
// over raft.cc (roles, Step dispatch, ticks), election.cc (pre-vote and vote),
// replication.cc (append, commit, snapshots) and membership.cc (configuration,
// ReadIndex, leadership transfer). Semantics follow Ongaro's dissertation and
// etcd's raft package.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "log.h"
#include "progress.h"
#include "shoal/raft/config.h"
#include "shoal/raft/node.h"
#include "shoal/v1/raft.pb.h"

namespace shoal::raft {

using shoal::v1::ConfState;
using shoal::v1::HardState;
using shoal::v1::MessageType;

// Marks the votes of a leadership transfer, which bypass the leader lease.
inline constexpr char kCampaignTransfer[] = "CampaignTransfer";
// Marks a vote refusal sent to a member that campaigns although a committed
// configuration change removed it: it stops campaigning (ids are never reused,
// so the fact is final whatever the terms).
inline constexpr char kRemovedNotice[] = "Removed";

class Raft {
 public:
  Raft(const Config& config, RaftLog log, const HardState& hard_state, RandomSource* random);

  // Adds the founding configuration to an empty log (Config::peers).
  void Bootstrap(const std::vector<uint64_t>& peers);
  // Replays configuration changes the application already applied.
  void ReplayConfChanges(uint64_t from, uint64_t to);

  void Tick();
  void Campaign() { Hup(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection); }
  Status Step(const Message& m);
  Status Propose(std::vector<Entry> entries);
  Status ReadIndex(uint64_t from, std::string context);
  Status TransferLeadership(uint64_t to);
  void ReportUnreachable(uint64_t id);
  void ReportSnapshot(uint64_t id, bool ok);

  bool HasReady() const;
  Ready MakeReady();
  void Advance(const Ready& rd);
  Result<std::shared_ptr<const Snapshot>> CreateSnapshot(std::string data, uint64_t compact_index);

  NodeStatus status() const;
  std::vector<PeerProgress> progress() const;
  bool removed() const { return removed_notice_ || IsRemoved(id_); }
  uint64_t id() const { return id_; }
  Role role() const { return role_; }
  const RaftLog& log() const { return log_; }

 private:
  // raft.cc
  void BecomeFollower(uint64_t term, uint64_t lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(uint64_t term);
  void ResetRandomizedElectionTimeout();
  void TickElection();
  void TickHeartbeat();
  bool Promotable() const;
  bool IsVoter(uint64_t id) const;
  bool IsRemoved(uint64_t id) const;
  size_t Quorum() const;
  void Send(Message m);
  Status StepLeader(const Message& m);
  Status StepCandidate(const Message& m);
  Status StepFollower(const Message& m);
  HardState CurrentHardState() const;

  // election.cc
  enum class CampaignType { kPreElection, kElection, kTransfer };
  void Hup(CampaignType type);
  void Campaign(CampaignType type);
  void HandleVoteRequest(const Message& m);
  // Records a vote; returns granted-quorum (1), rejected-quorum (-1) or pending (0).
  int Poll(uint64_t id, bool granted);
  bool CheckQuorumActive();

  // replication.cc
  void AppendEntries(std::vector<Entry> entries);
  bool MaybeSendAppend(uint64_t to, bool send_if_empty);
  void SendAppend(uint64_t to) { MaybeSendAppend(to, true); }
  void BroadcastAppend();
  void SendHeartbeat(uint64_t to, const std::string& context);
  void BroadcastHeartbeat(const std::string& context);
  bool MaybeCommit();
  void HandleAppendResponse(const Message& m);
  void HandleHeartbeatResponse(const Message& m);
  void HandleAppendEntries(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  bool Restore(const Snapshot& snapshot);
  void OnLeaderCommitted();

  // membership.cc
  Status CheckConfChange(const Entry& e) const;
  void ApplyConfChange(const Entry& e);
  void SetConfState(const ConfState& cs);
  bool HasUnappliedConfChange() const;
  Status HandleReadIndex(uint64_t from, const std::string& context);
  void ReleaseReads(const std::vector<ReadOnly::Request>& done);
  bool CommittedInCurrentTerm() const;
  void HandleTransferLeader(uint64_t to);
  void SendTimeoutNow(uint64_t to);
  void AbortLeaderTransfer() { lead_transferee_ = 0; }
  void HandOverAfterRemoval();
  void NoticeRemoved();

  const uint64_t id_;
  Config cfg_;
  RandomSource* random_;
  RaftLog log_;

  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t lead_ = 0;
  Role role_ = Role::kFollower;
  ConfState conf_;
  std::map<uint64_t, Progress> prs_;  // leader only; ordered for determinism
  std::map<uint64_t, bool> votes_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;

  uint64_t lead_transferee_ = 0;
  // A MSG_TIMEOUT_NOW arrived while a committed configuration change was not
  // yet applied: campaign as soon as it is (Advance), not with a stale quorum.
  bool transfer_campaign_pending_ = false;
  // A peer told us a committed change removed us (kRemovedNotice); not
  // persisted: after a restart the first pre-vote round tells us again.
  bool removed_notice_ = false;
  // A configuration change may be proposed only once this index is applied.
  uint64_t pending_conf_index_ = 0;
  // Batching: proposals since the last Ready go out in one AppendEntries.
  bool append_pending_ = false;

  ReadOnly read_only_;
  // ReadIndex requests that arrived before this leader committed its no-op.
  std::vector<std::pair<uint64_t, std::string>> pending_reads_;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  HardState prev_hard_state_;
  bool ready_outstanding_ = false;
};

}  // namespace shoal::raft
