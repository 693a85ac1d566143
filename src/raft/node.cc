#include "shoal/raft/node.h"

#include "raft.h"

namespace shoal::raft {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

Status Config::Validate() const {
  if (id == 0) return InvalidArgument("raft: id must be non-zero");
  if (heartbeat_ticks <= 0) return InvalidArgument("raft: heartbeat_ticks must be positive");
  if (election_ticks <= heartbeat_ticks) {
    return InvalidArgument("raft: election_ticks must exceed heartbeat_ticks");
  }
  if (max_inflight_msgs == 0) return InvalidArgument("raft: max_inflight_msgs must be positive");
  if (tick_interval.count() <= 0) return InvalidArgument("raft: tick_interval must be positive");
  return Status::Ok();
}

StorageWrite Ready::ToWrite() const {
  StorageWrite w;
  w.snapshot = snapshot.get();
  w.hard_state = hard_state ? &*hard_state : nullptr;
  w.entries = entries;
  w.sync = must_sync;
  return w;
}

namespace {

Status CheckPersistentState(const PersistentState& s) {
  const auto& meta = s.snapshot->metadata();
  const auto& ents = s.entries;
  for (size_t i = 1; i < ents.size(); ++i) {
    if (ents[i].index() != ents[i - 1].index() + 1 || ents[i].term() < ents[i - 1].term()) {
      return {Code::kCorruption,
              "raft: persisted log is not contiguous at index " + std::to_string(ents[i].index())};
    }
  }
  if (!ents.empty()) {
    if (ents.front().index() > meta.index() + 1) {
      return {Code::kCorruption, "raft: persisted log starts at " +
                                     std::to_string(ents.front().index()) + " after snapshot " +
                                     std::to_string(meta.index())};
    }
    if (ents.back().index() < meta.index()) {
      return {Code::kCorruption, "raft: persisted log ends before the snapshot"};
    }
  }
  uint64_t last = ents.empty() ? meta.index() : ents.back().index();
  if (s.hard_state.commit() > last) {
    return {Code::kCorruption, "raft: commit index " + std::to_string(s.hard_state.commit()) +
                                   " is beyond the persisted log (" + std::to_string(last) + ")"};
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<RaftNode>> RaftNode::Create(const Config& config, PersistentState state,
                                                   RandomSource* random) {
  Status s = config.Validate();
  if (!s.ok()) return s;
  if (random == nullptr) return InvalidArgument("raft: a random source is required");
  s = CheckPersistentState(state);
  if (!s.ok()) return s;
  bool empty = state.empty();
  uint64_t last =
      state.entries.empty() ? state.snapshot->metadata().index() : state.entries.back().index();
  if (config.applied > last) {
    return Status(Code::kCorruption, "raft: the state machine applied " +
                                         std::to_string(config.applied) + " but the log ends at " +
                                         std::to_string(last));
  }
  uint64_t snap_index = state.snapshot->metadata().index();
  RaftLog log(state.snapshot, std::move(state.entries), state.hard_state.commit(), config.applied);
  uint64_t applied = log.applied();
  auto raft = std::make_unique<Raft>(config, std::move(log), state.hard_state, random);
  if (empty && !config.peers.empty()) raft->Bootstrap(config.peers);
  raft->ReplayConfChanges(snap_index, applied);
  return std::unique_ptr<RaftNode>(new RaftNode(std::move(raft)));
}

RaftNode::RaftNode(std::unique_ptr<Raft> raft) : raft_(std::move(raft)) {}
RaftNode::~RaftNode() = default;

void RaftNode::Tick() { raft_->Tick(); }
void RaftNode::Campaign() { raft_->Campaign(); }

Status RaftNode::Step(const Message& message) {
  if (message.to() != raft_->id()) {
    return InvalidArgument("raft: message addressed to " + std::to_string(message.to()));
  }
  if (message.from() == 0 || message.type() == shoal::v1::MSG_UNKNOWN) {
    return InvalidArgument("raft: message without sender or type");
  }
  return raft_->Step(message);
}

Status RaftNode::Propose(std::string data) {
  Entry e;
  e.set_data(std::move(data));
  return raft_->Propose({std::move(e)});
}

Status RaftNode::ProposeConfChange(const ConfChange& change) {
  if (raft_->role() != Role::kLeader) {
    return {Code::kFailedPrecondition, "raft: configuration changes go to the leader"};
  }
  Entry e;
  e.set_type(shoal::v1::ENTRY_CONF_CHANGE);
  e.set_data(change.SerializeAsString());
  return raft_->Propose({std::move(e)});
}

Status RaftNode::ReadIndex(std::string context) {
  return raft_->ReadIndex(raft_->id(), std::move(context));
}

Status RaftNode::TransferLeadership(uint64_t to) { return raft_->TransferLeadership(to); }
void RaftNode::ReportUnreachable(uint64_t id) { raft_->ReportUnreachable(id); }
void RaftNode::ReportSnapshot(uint64_t id, bool ok) { raft_->ReportSnapshot(id, ok); }
bool RaftNode::HasReady() const { return raft_->HasReady(); }
Ready RaftNode::GetReady() { return raft_->MakeReady(); }
void RaftNode::Advance(const Ready& ready) { raft_->Advance(ready); }

Result<std::shared_ptr<const Snapshot>> RaftNode::CreateSnapshot(std::string data,
                                                                 uint64_t compact_index) {
  return raft_->CreateSnapshot(std::move(data), compact_index);
}

NodeStatus RaftNode::status() const { return raft_->status(); }
std::vector<PeerProgress> RaftNode::Peers() const { return raft_->progress(); }
bool RaftNode::removed() const { return raft_->removed(); }

std::vector<Entry> RaftNode::EntriesForTest(uint64_t lo, uint64_t hi) const {
  return raft_->log().Slice(lo, hi, UINT64_MAX);
}

}  // namespace shoal::raft
