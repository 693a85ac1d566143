// ReplicatedStore's proposals: batch entries (the commands proposed in one
// turn packed into one Raft entry, a v1::CommandBatch), applying entries
// command by command, and completing each proposer's callback.

#include <google/protobuf/io/coded_stream.h>

#include <cstdio>
#include <utility>

#include "shoal/store/replicated_store.h"

namespace shoal::store {

void ReplicatedStore::Propose(v1::Command command, ProposeCallback done) {
  if (Status s = Refusal(); !s.ok()) {
    completions_.push_back({std::move(done), std::move(s), 0});
    return;
  }
  if (command.kind_case() == v1::Command::kBatch) {
    completions_.push_back(
        {std::move(done),
         InvalidArgument("a command batch cannot be proposed: propose its commands"), 0});
    return;
  }
  uint64_t seq = 0;
  command.set_request_id(NextRequestId(&seq));
  if (options_.batch_max_bytes == 0) {
    Status s = node_->Propose(command.SerializeAsString());
    if (!s.ok()) {
      completions_.push_back({std::move(done), std::move(s), 0});
      return;
    }
  } else {
    AddToBatch(std::move(command), seq);
  }
  proposals_.emplace(seq, PendingProposal{std::move(done), ticks_ + request_timeout_});
  if (options_.batch_max_bytes != 0 && batch_.body.size() >= options_.batch_max_bytes) {
    FlushProposals();
  }
}

void ReplicatedStore::AddToBatch(v1::Command command, uint64_t seq) {
  using google::protobuf::io::CodedOutputStream;
  // Two commands of one entry that change the same object would stamp it
  // with the same version twice; such a command starts the next entry. A
  // hash collision only starts one needlessly.
  uint64_t hashes[8];
  std::vector<uint64_t> more;
  size_t count = 0;
  bool clash = false;
  if (command.kind_case() == v1::Command::kTransaction) {
    for (const auto& m : command.transaction().mutations()) {
      const v1::Meta* meta = MetaOf(m);
      uint64_t h = std::hash<std::string>{}(meta != nullptr ? meta->id() : std::string()) ^
                   (static_cast<uint64_t>(m.object_case()) * 0x9e3779b97f4a7c15ULL);
      clash = clash || batch_.objects.count(h) > 0;
      if (count < 8) {
        hashes[count] = h;
      } else {
        more.push_back(h);
      }
      ++count;
    }
  }
  if (clash) FlushProposals();
  for (size_t i = 0; i < count && i < 8; ++i) batch_.objects.insert(hashes[i]);
  for (uint64_t h : more) batch_.objects.insert(h);
  // CommandBatch field 1 (length-delimited): tag, length, the command.
  constexpr uint8_t kCommandTag = (1 << 3) | 2;
  size_t n = command.ByteSizeLong();
  size_t header = 1 + CodedOutputStream::VarintSize64(n);
  size_t at = batch_.body.size();
  batch_.body.resize(at + header + n);
  auto* p = reinterpret_cast<uint8_t*>(batch_.body.data() + at);
  *p++ = kCommandTag;
  p = CodedOutputStream::WriteVarint64ToArray(n, p);
  command.SerializeWithCachedSizesToArray(p);
  if (batch_.seqs.empty()) batch_.first_header = header;
  batch_.seqs.push_back(seq);
  batch_.commands.push_back(std::move(command));
}

void ReplicatedStore::FlushProposals() {
  using google::protobuf::io::CodedOutputStream;
  if (batch_.seqs.empty()) return;
  std::string data;
  if (batch_.seqs.size() == 1) {
    // Alone: the plain Command, as every entry was before batching.
    data.assign(batch_.body, batch_.first_header, std::string::npos);
  } else {
    // Command field 2 (the batch), length-delimited, around the body.
    constexpr uint8_t kBatchTag = (2 << 3) | 2;
    size_t n = batch_.body.size();
    data.resize(1 + CodedOutputStream::VarintSize64(n));
    auto* p = reinterpret_cast<uint8_t*>(data.data());
    *p++ = kBatchTag;
    CodedOutputStream::WriteVarint64ToArray(n, p);
    data.append(batch_.body);
  }
  raft::NodeStatus before = node_->status();
  size_t bytes = data.size();
  Status s = node_->Propose(std::move(data));
  raft::NodeStatus st = node_->status();
  if (s.ok() && before.role == raft::Role::kLeader && st.role == raft::Role::kLeader &&
      st.term == before.term && st.last_index == before.last_index + 1) {
    // A leader appends at once: the entry is its last. (A follower forwards
    // it; it parses the entry when it applies it, like everyone else's.)
    Kept k;
    k.index = st.last_index;
    k.term = st.term;
    k.bytes = bytes;
    if (batch_.commands.size() == 1) {
      k.command = std::move(batch_.commands[0]);
    } else {
      auto* commands = k.command.mutable_batch()->mutable_commands();
      commands->Reserve(static_cast<int>(batch_.commands.size()));
      for (auto& c : batch_.commands) *commands->Add() = std::move(c);
    }
    kept_.push_back(std::move(k));
  }
  if (!s.ok()) {
    for (uint64_t seq : batch_.seqs) {
      auto it = proposals_.find(seq);
      if (it == proposals_.end()) continue;
      completions_.push_back({std::move(it->second.done), s, 0});
      proposals_.erase(it);
    }
  }
  batch_.Clear();
  // Keep no copy of an unusually large batch.
  if (batch_.body.capacity() > 4 * options_.batch_max_bytes + (1 << 20)) {
    std::string().swap(batch_.body);
  }
}

void ReplicatedStore::ApplyEntry(const raft::Entry& entry, std::vector<Event>* events) {
  if (entry.index() <= state_.applied_index()) return;  // covered by a snapshot
  applied_since_bytes_ += entry.data().size();
  // Parsed on the heap, not in an arena, so that State can move the objects
  // into its tables instead of copying them; a leader's own entry is not
  // parsed at all.
  v1::Command command;
  bool is_command = entry.type() == v1::ENTRY_NORMAL && !entry.data().empty();
  while (!kept_.empty() && kept_.front().index < entry.index()) kept_.pop_front();
  bool kept = is_command && !kept_.empty() && kept_.front().index == entry.index() &&
              kept_.front().term == entry.term() && kept_.front().bytes == entry.data().size();
  if (kept) {
    command = std::move(kept_.front().command);
    kept_.pop_front();
  } else if (is_command && !command.ParseFromString(entry.data())) {
    // Every member holds the same bytes and skips them alike, so the states
    // stay identical; the proposer times out.
    fprintf(stderr, "shoal store: entry %llu is not a command; skipped\n",
            static_cast<unsigned long long>(entry.index()));
    command.Clear();
    is_command = false;
  }
  if (!is_command) {
    // A leader's no-op or a membership change: only the applied index moves
    // (Raft applies the change itself in Advance, and keeps the configuration
    // in its snapshots and log, so the applied state needs no copy).
    (void)state_.Apply(entry.index(), v1::Command(), nullptr);
    if (entry.type() == v1::ENTRY_CONF_CHANGE) ApplyConfChangeEntry(entry);
    return;
  }
  results_.clear();
  (void)state_.ApplyConsuming(entry.index(), &command, events, &results_);
  if (command.kind_case() != v1::Command::kBatch) {
    if (!results_.empty()) {
      CompleteProposal(command.request_id(), std::move(results_[0]), entry.index());
    }
    return;
  }
  const auto& commands = command.batch().commands();
  for (int i = 0; i < commands.size() && static_cast<size_t>(i) < results_.size(); ++i) {
    CompleteProposal(commands[i].request_id(), std::move(results_[i]), entry.index());
  }
}

void ReplicatedStore::CompleteProposal(const std::string& request_id, Status status,
                                       uint64_t index) {
  uint64_t seq = OwnSequence(request_id);
  if (seq == 0) return;  // proposed elsewhere
  auto it = proposals_.find(seq);
  if (it == proposals_.end()) return;  // timed out
  completions_.push_back({std::move(it->second.done), std::move(status), index});
  proposals_.erase(it);
}

std::string ReplicatedStore::NextRequestId(uint64_t* seq) {
  *seq = ++next_request_;
  return id_prefix_ + std::to_string(*seq);
}

uint64_t ReplicatedStore::OwnSequence(const std::string& request_id) const {
  if (request_id.size() <= id_prefix_.size() ||
      request_id.compare(0, id_prefix_.size(), id_prefix_) != 0) {
    return 0;
  }
  uint64_t seq = 0;
  for (size_t i = id_prefix_.size(); i < request_id.size(); ++i) {
    char c = request_id[i];
    if (c < '0' || c > '9') return 0;
    seq = seq * 10 + static_cast<uint64_t>(c - '0');
  }
  return seq;
}

}  // namespace shoal::store
