#include "shoal/store/replicated_store.h"

#include <google/protobuf/io/coded_stream.h>

#include <cstdio>
#include <utility>

namespace shoal::store {

namespace {

Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }

// The bytes of state.ToSnapshot().SerializeAsString() (a v1::StoreSnapshot:
// field 1 the applied index, field 2 every object in (kind, id) order),
// written straight from the state's objects into a buffer of the exact size.
// ToSnapshot would first copy every object into a new message, then free
// them all: for a large state most of a snapshot's cost.
std::string SerializeSnapshot(const State& state) {
  using google::protobuf::io::CodedOutputStream;
  constexpr uint8_t kAppliedTag = (1 << 3) | 0;  // varint
  constexpr uint8_t kObjectTag = (2 << 3) | 2;   // length-delimited
  std::vector<const v1::Mutation*> objects;
  for (int k = 0; k < kKindCount; ++k) {
    std::vector<const v1::Mutation*> of_kind = state.List(static_cast<Kind>(k));
    objects.insert(objects.end(), of_kind.begin(), of_kind.end());
  }
  uint64_t applied = state.applied_index();
  size_t size = applied == 0 ? 0 : 1 + CodedOutputStream::VarintSize64(applied);
  std::vector<uint32_t> sizes;
  sizes.reserve(objects.size());
  for (const v1::Mutation* m : objects) {
    // Also caches the sizes that SerializeWithCachedSizesToArray uses below.
    size_t n = m->ByteSizeLong();
    sizes.push_back(static_cast<uint32_t>(n));
    size += 1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(n)) + n;
  }
  std::string out(size, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  if (applied != 0) {
    *p++ = kAppliedTag;
    p = CodedOutputStream::WriteVarint64ToArray(applied, p);
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    *p++ = kObjectTag;
    p = CodedOutputStream::WriteVarint32ToArray(sizes[i], p);
    p = objects[i]->SerializeWithCachedSizesToArray(p);
  }
  return out;
}

}  // namespace

ReplicatedStore::ReplicatedStore(const ReplicatedStoreOptions& options,
                                 const ReplicatedStoreDeps& deps)
    : options_(options), deps_(deps), watch_(options.watch_capacity, options.watch_keep) {
  int timeout = options_.request_timeout_ticks;
  if (timeout <= 0) timeout = 3 * options_.raft.election_ticks;
  request_timeout_ = static_cast<uint64_t>(timeout);
  auto tick = options_.raft.tick_interval.count() > 0 ? options_.raft.tick_interval
                                                      : std::chrono::milliseconds(1);
  flush_ticks_ = static_cast<uint64_t>(options_.flush_interval / tick);
}

ReplicatedStore::~ReplicatedStore() {
  FailAll(Unavailable("the store stopped"));
  RunCompletions();
  // A clean stop leaves the applied state current, so the next start replays
  // nothing.
  if (fatal_.ok() && node_ != nullptr) {
    if (Status s = FlushApplied(true); !s.ok()) {
      fprintf(stderr, "shoal store: member %llu: writing the applied state at stop: %s\n",
              static_cast<unsigned long long>(options_.raft.id), s.ToString().c_str());
    }
  }
}

Result<std::unique_ptr<ReplicatedStore>> ReplicatedStore::Open(
    const ReplicatedStoreOptions& options, const ReplicatedStoreDeps& deps) {
  if (deps.raft_storage == nullptr || deps.transport == nullptr || deps.random == nullptr) {
    return InvalidArgument("store: raft storage, transport and random source are required");
  }
  if (options.snapshot_every == 0) return InvalidArgument("store: snapshot_every must be > 0");
  std::unique_ptr<ReplicatedStore> store(new ReplicatedStore(options, deps));
  auto raft_state = deps.raft_storage->Load();
  if (!raft_state.ok()) return raft_state.error();
  if (Status s = store->Load(&raft_state.value()); !s.ok()) return s;

  raft::Config config = options.raft;
  config.applied = store->state_.applied_index();
  auto node = raft::RaftNode::Create(config, std::move(raft_state).value(), deps.random);
  if (!node.ok()) return node.error();
  store->node_ = std::move(node).value();

  char nonce[24];
  std::snprintf(nonce, sizeof nonce, "%016llx",
                static_cast<unsigned long long>(deps.random->Uniform(UINT64_MAX)));
  store->id_prefix_ = std::to_string(config.id) + "-" + nonce + "-";
  raft::NodeStatus st = store->node_->status();
  store->last_term_ = st.term;
  store->last_leader_ = st.leader;
  store->MaybeCampaignAlone();
  return store;
}

Status ReplicatedStore::Load(raft::PersistentState* raft_state) {
  if (deps_.applied != nullptr) {
    if (Status s = deps_.applied->Load(&state_); !s.ok()) return s;
  }
  // Raft's snapshot is newer than the applied state when the applied batch was
  // lost (it is not synced) or a crash fell between installing a received
  // snapshot in Raft's storage and in ours: rebuild from the snapshot, since
  // Raft will not replay the entries it covers.
  const raft::Snapshot& snap = *raft_state->snapshot;
  snapshot_index_ = snap.metadata().index();
  snapshot_bytes_ = snap.data().size();
  if (snapshot_index_ > state_.applied_index()) {
    if (Status s = InstallSnapshot(snap); !s.ok()) return s;
  }
  flushed_index_ = state_.applied_index();
  watch_.Reset(state_.applied_index());
  return Status::Ok();
}

void ReplicatedStore::Tick() {
  if (!fatal_.ok()) return;
  ++ticks_;
  node_->Tick();
  // Scanning for expired requests every tick would cost O(pending) per tick.
  if (ticks_ % 10 == 0) ExpireRequests();
}

Status ReplicatedStore::Step(const v1::Message& message) {
  if (!fatal_.ok()) return fatal_;
  return node_->Step(message);
}

Status ReplicatedStore::Refusal() const {
  if (!fatal_.ok()) return fatal_;
  if (node_->removed()) {
    return {Code::kFailedPrecondition,
            "member " + std::to_string(options_.raft.id) + " was removed from the group"};
  }
  return Status::Ok();
}

void ReplicatedStore::Read(ReadCallback done) {
  // Proposals made before the read reach Raft before it, as they did before
  // batching.
  FlushProposals();
  if (Status s = Refusal(); !s.ok()) {
    completions_.push_back({std::move(done), std::move(s), 0});
    return;
  }
  uint64_t seq = 0;
  std::string ctx = NextRequestId(&seq);
  Status s = node_->ReadIndex(ctx);
  if (!s.ok()) {
    completions_.push_back({std::move(done), std::move(s), 0});
    return;
  }
  reads_[ctx] = PendingRead{std::move(done), ticks_ + request_timeout_, 0, false};
}

void ReplicatedStore::ReportUnreachable(uint64_t peer) {
  if (fatal_.ok()) node_->ReportUnreachable(peer);
}

void ReplicatedStore::ReportSnapshot(uint64_t peer, bool ok) {
  if (fatal_.ok()) node_->ReportSnapshot(peer, ok);
}

Status ReplicatedStore::TransferLeadership(uint64_t peer) {
  if (!fatal_.ok()) return fatal_;
  FlushProposals();
  return node_->TransferLeadership(peer);
}

Status ReplicatedStore::StepDown() {
  if (!fatal_.ok()) return fatal_;
  if (!is_leader()) return {Code::kFailedPrecondition, "not the leader"};
  std::vector<raft::PeerProgress> peers = node_->Peers();
  if (peers.empty()) return {Code::kFailedPrecondition, "the only voter: nobody to hand over to"};
  FlushProposals();
  // The most up-to-date voter needs the fewest entries before it can take
  // over; one that has not answered lately would only stall the transfer.
  const raft::PeerProgress* best = nullptr;
  for (const auto& p : peers) {
    if (p.inactive_ticks >= options_.raft.election_ticks) continue;
    if (best == nullptr || p.match > best->match) best = &p;
  }
  if (best == nullptr) return Unavailable("no other voter answered within an election timeout");
  return node_->TransferLeadership(best->id);
}

void ReplicatedStore::ProposeConfChange(const raft::ConfChange& change, ProposeCallback done) {
  FlushProposals();
  if (Status s = Refusal(); !s.ok()) {
    completions_.push_back({std::move(done), std::move(s), 0});
    return;
  }
  raft::NodeStatus st = node_->status();
  if (st.role != raft::Role::kLeader) {
    // Raft forwards commands but not configuration changes: the caller must
    // find the leader, which also is the only member that can vouch for the
    // outcome.
    completions_.push_back(
        {std::move(done), Unavailable("not the leader (leader: " + std::to_string(st.leader) + ")"),
         0});
    return;
  }
  if (Status s = node_->ProposeConfChange(change); !s.ok()) {
    completions_.push_back({std::move(done), std::move(s), 0});
    return;
  }
  // Raft appended the entry at once: it is the last one.
  uint64_t index = node_->status().last_index;
  conf_changes_[index] = PendingConfChange{std::move(done), st.term, ticks_ + request_timeout_};
}

std::vector<uint64_t> ReplicatedStore::voters() const {
  raft::NodeStatus st = node_->status();
  return {st.conf_state.voters().begin(), st.conf_state.voters().end()};
}

bool ReplicatedStore::removed() const { return node_->removed(); }

std::vector<VoterStatus> ReplicatedStore::voter_status() const {
  using Reach = VoterStatus::Reachability;
  raft::NodeStatus st = node_->status();
  bool leading = st.role == raft::Role::kLeader;
  std::map<uint64_t, raft::PeerProgress> progress;
  for (const auto& p : node_->Peers()) progress[p.id] = p;
  std::vector<VoterStatus> out;
  for (uint64_t id : st.conf_state.voters()) {
    VoterStatus v;
    v.id = id;
    v.leader = id == st.leader;
    if (id == st.id) {
      v.reachability = Reach::kReachable;
      if (leading) v.match = st.last_index;
    } else if (auto it = progress.find(id); leading && it != progress.end()) {
      v.reachability = it->second.inactive_ticks < options_.raft.election_ticks
                           ? Reach::kReachable
                           : Reach::kUnreachable;
      v.match = it->second.match;
    } else if (v.leader) {
      // A follower keeps its leader only while it hears from it (pre-vote
      // clears it after an election timeout of silence).
      v.reachability = Reach::kReachable;
    }
    out.push_back(v);
  }
  return out;
}

Status ReplicatedStore::Process() {
  // A callback that calls Process() again: the outer call keeps going.
  if (processing_) return fatal_;
  processing_ = true;
  // Callbacks may propose again: go on until nothing is left to hand over.
  do {
    FlushProposals();
    while (fatal_.ok() && node_->HasReady()) {
      raft::Ready rd = node_->GetReady();
      bool deferred = false;
      if (Status s = ProcessReady(rd, &deferred); !s.ok()) {
        fprintf(stderr, "shoal store: stopping member %llu: %s\n",
                static_cast<unsigned long long>(options_.raft.id), s.ToString().c_str());
        fatal_ = s;
        FailAll(s);
      }
      RunCompletions();
      if (deferred && fatal_.ok()) {
        // Before the next Ready, so each peer still gets the messages in order.
        for (const auto& m : rd.messages) Send(m);
        ReportSendFailures();
      }
      FlushProposals();
    }
    RunCompletions();
  } while (fatal_.ok() && !batch_.seqs.empty());
  // Changes pending longer than flush_interval, now that ticks moved on.
  if (fatal_.ok()) {
    if (Status s = FlushApplied(false); !s.ok()) {
      fprintf(stderr, "shoal store: stopping member %llu: %s\n",
              static_cast<unsigned long long>(options_.raft.id), s.ToString().c_str());
      fatal_ = s;
      FailAll(s);
      RunCompletions();
    }
  }
  processing_ = false;
  return fatal_;
}

void ReplicatedStore::Send(const v1::Message& m) {
  // Raft tolerates loss, so a failed send is only feedback.
  if (deps_.transport->Send(m).ok()) return;
  unreachable_.push_back(m.to());
  if (m.type() == v1::MSG_SNAP) failed_snapshots_.push_back(m.to());
}

void ReplicatedStore::ReportSendFailures() {
  for (uint64_t id : unreachable_) node_->ReportUnreachable(id);
  unreachable_.clear();
  for (uint64_t id : failed_snapshots_) node_->ReportSnapshot(id, false);
  failed_snapshots_.clear();
}

Status ReplicatedStore::ProcessReady(raft::Ready& rd, bool* sends_deferred) {
  // A leader's Ready that persists nothing durably and applies entries (their
  // commit index moved): no fsync to overlap, so its messages (the commit
  // index for the followers, heartbeats) wait until the entries are applied
  // and their callbacks have run, and clients hear back first. Process()
  // sends them before the next Ready.
  *sends_deferred = rd.leader_appends_early && !rd.must_sync && rd.entries.empty() &&
                    !rd.committed_entries.empty();
  auto send = [&](const v1::Message& m) {
    if (!*sends_deferred) Send(m);
  };
  // A leader's appends go out first, so the followers' fsyncs overlap its own:
  // the leader counts itself toward the commit only after Advance below.
  bool early = options_.leader_appends_before_persist && rd.leader_appends_early;
  if (early) {
    for (const auto& m : rd.messages) {
      if (rd.MaySendBeforePersist(m)) send(m);
    }
  }
  // 1. Persist before sending the rest: an acknowledgement or a vote is a
  // promise that must survive a crash.
  if (Status s = deps_.raft_storage->Save(rd.ToWrite()); !s.ok()) return s;
  // 2. Send.
  for (const auto& m : rd.messages) {
    if (!early || !rd.MaySendBeforePersist(m)) send(m);
  }
  // 3. A snapshot from the leader replaces the state before later entries apply.
  if (rd.snapshot) {
    if (Status s = InstallSnapshot(*rd.snapshot); !s.ok()) return s;
  }
  // 4-5. Apply, and note what changed for the next write of the applied state.
  std::vector<Event> events;
  uint64_t before = state_.applied_index();
  for (const auto& e : rd.committed_entries) ApplyEntry(e, &events);
  if (deps_.applied != nullptr && state_.applied_index() != before) {
    if (WritesEveryReady() && dirty_.empty()) {
      // Nothing waits to be coalesced: the objects just applied go out as
      // their events hold them, while they are still in the cache (looking
      // them up again later cost 10% of the store bench's CPU).
      uint64_t applied = state_.applied_index();
      if (Status s = deps_.applied->Commit(applied, events, options_.sync_applied); !s.ok()) {
        return s;
      }
      flushed_index_ = applied;
    } else {
      if (before == flushed_index_) pending_since_ = ticks_;
      for (const Event& e : events) {
        auto kind = KindOf(e.mutation);
        if (kind.ok()) dirty_.Mark(*kind, MetaOf(e.mutation)->id());
      }
      if (Status s = FlushApplied(false); !s.ok()) return s;
    }
  }
  watch_.Append(std::move(events));
  for (const auto& rs : rd.read_states) {
    auto it = reads_.find(rs.context);
    if (it == reads_.end()) continue;  // timed out, or from before a restart
    it->second.index = rs.index;
    it->second.has_index = true;
  }
  // 6. Advance; feedback to Raft only after it, so the Ready stays consistent.
  node_->Advance(rd);
  ReportSendFailures();
  ServeReads();
  CheckLeadership();
  MaybeCampaignAlone();
  return MaybeSnapshot();
}

Status ReplicatedStore::InstallSnapshot(const raft::Snapshot& snapshot) {
  uint64_t index = snapshot.metadata().index();
  v1::StoreSnapshot data;
  if (!data.ParseFromString(snapshot.data())) {
    return {Code::kCorruption, "store: the raft snapshot at index " + std::to_string(index) +
                                   " does not hold a store snapshot"};
  }
  if (data.applied_index() != index) {
    return {Code::kCorruption, "store: the raft snapshot at index " + std::to_string(index) +
                                   " holds the state at " + std::to_string(data.applied_index())};
  }
  if (Status s = state_.Restore(data); !s.ok()) return s;
  if (deps_.applied != nullptr) {
    if (Status s = deps_.applied->Reset(data); !s.ok()) return s;
  }
  // The snapshot replaced every object, those changed before it included.
  dirty_.Clear();
  flushed_index_ = index;
  // Watchers cannot be told what changed; they must reload.
  watch_.Reset(index);
  kept_.clear();
  snapshot_index_ = index;
  snapshot_bytes_ = snapshot.data().size();
  applied_since_bytes_ = 0;
  return Status::Ok();
}

void ReplicatedStore::ApplyConfChangeEntry(const raft::Entry& entry) {
  auto it = conf_changes_.find(entry.index());
  if (it == conf_changes_.end()) return;  // proposed by another member, or timed out
  // The completion runs after Advance, when voters() shows the change.
  Status s = it->second.term == entry.term()
                 ? Status::Ok()
                 : Unavailable("the configuration change was replaced by another leader's entry");
  completions_.push_back({std::move(it->second.done), std::move(s), entry.index()});
  conf_changes_.erase(it);
}

void ReplicatedStore::ServeReads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (!it->second.has_index || it->second.index > state_.applied_index()) {
      ++it;
      continue;
    }
    completions_.push_back({std::move(it->second.done), Status::Ok(), it->second.index});
    it = reads_.erase(it);
  }
}

void ReplicatedStore::CheckLeadership() {
  raft::NodeStatus st = node_->status();
  bool changed = st.term != last_term_ || st.leader != last_leader_;
  if (changed) kept_.clear();  // this member's entries may be overwritten
  if (changed && last_leader_ != 0) {
    // An entry proposed through the old leader may still commit, or be
    // overwritten: the caller must treat the outcome as unknown.
    FailAll(Unavailable("leadership changed (leader " + std::to_string(last_leader_) + " of term " +
                        std::to_string(last_term_) + " is gone); the outcome is unknown"));
  }
  last_term_ = st.term;
  last_leader_ = st.leader;
}

void ReplicatedStore::MaybeCampaignAlone() {
  // A group of one needs no election timeout: the dev cluster is usable at once.
  raft::NodeStatus st = node_->status();
  if (st.role == raft::Role::kLeader || st.leader != 0) return;
  if (st.conf_state.voters_size() == 1 && st.conf_state.voters(0) == st.id) node_->Campaign();
}

Status ReplicatedStore::MaybeSnapshot() {
  uint64_t applied = state_.applied_index();
  if (applied < snapshot_index_ + options_.snapshot_every) return Status::Ok();
  if (options_.snapshot_log_ratio > 0 &&
      static_cast<double>(applied_since_bytes_) <
          options_.snapshot_log_ratio * static_cast<double>(snapshot_bytes_)) {
    return Status::Ok();
  }
  if (node_->status().applied != applied) return Status::Ok();
  // The log below `compact` goes: write the applied state first, so that a
  // restart replays from the log rather than installing the snapshot (which
  // would also be correct, only slower).
  if (Status s = FlushApplied(true); !s.ok()) return s;
  uint64_t compact = applied > options_.snapshot_keep ? applied - options_.snapshot_keep : 0;
  std::string data = SerializeSnapshot(state_);
  uint64_t bytes = data.size();
  auto snap = node_->CreateSnapshot(std::move(data), compact);
  if (!snap.ok()) {
    // Not yet possible (entries not stable, a received snapshot pending): retry later.
    if (snap.error().code() == Code::kFailedPrecondition) return Status::Ok();
    return snap.error();
  }
  if (Status s = deps_.raft_storage->SaveSnapshot(**snap, compact); !s.ok()) return s;
  snapshot_index_ = applied;
  snapshot_bytes_ = bytes;
  applied_since_bytes_ = 0;
  return Status::Ok();
}

uint64_t ReplicatedStore::flushed_index() const {
  return deps_.applied != nullptr ? flushed_index_ : state_.applied_index();
}

void ReplicatedStore::DiscardUnwritten() {
  dirty_.Clear();
  deps_.applied = nullptr;  // nothing more reaches the disk, as after a crash
}

Status ReplicatedStore::FlushApplied(bool force) {
  if (deps_.applied == nullptr) return Status::Ok();
  uint64_t applied = state_.applied_index();
  if (applied == flushed_index_) return Status::Ok();
  bool due = force || WritesEveryReady() || dirty_.size() >= options_.flush_objects ||
             applied - flushed_index_ >= options_.flush_entries ||
             ticks_ - pending_since_ >= flush_ticks_;
  if (!due) return Status::Ok();
  if (Status s = deps_.applied->Flush(state_, dirty_, options_.sync_applied); !s.ok()) return s;
  dirty_.Clear();
  flushed_index_ = applied;
  return Status::Ok();
}

void ReplicatedStore::FailAll(const Status& status) {
  // Commands not yet handed to Raft are failed below with the rest; they
  // must not reach it afterwards.
  batch_.Clear();
  for (auto& [id, p] : proposals_) completions_.push_back({std::move(p.done), status, 0});
  proposals_.clear();
  for (auto& [ctx, r] : reads_) completions_.push_back({std::move(r.done), status, 0});
  reads_.clear();
  for (auto& [index, c] : conf_changes_) completions_.push_back({std::move(c.done), status, 0});
  conf_changes_.clear();
}

void ReplicatedStore::ExpireRequests() {
  Status timeout = Unavailable("no answer within " + std::to_string(request_timeout_) +
                               " ticks; the outcome is unknown");
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    if (it->second.deadline > ticks_) {
      ++it;
      continue;
    }
    completions_.push_back({std::move(it->second.done), timeout, 0});
    it = proposals_.erase(it);
  }
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.deadline > ticks_) {
      ++it;
      continue;
    }
    completions_.push_back({std::move(it->second.done), timeout, 0});
    it = reads_.erase(it);
  }
  for (auto it = conf_changes_.begin(); it != conf_changes_.end();) {
    if (it->second.deadline > ticks_) {
      ++it;
      continue;
    }
    completions_.push_back({std::move(it->second.done), timeout, 0});
    it = conf_changes_.erase(it);
  }
}

void ReplicatedStore::RunCompletions() {
  // Callbacks may propose again, adding completions: drain until none is left.
  while (!completions_.empty()) {
    std::vector<Completion> batch;
    batch.swap(completions_);
    for (auto& c : batch) {
      if (c.done) c.done(std::move(c.status), c.index);
    }
  }
}

}  // namespace shoal::store
