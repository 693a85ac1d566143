#pragma once

// The simulation's replicated state machine: a small key-value map whose
// every command is "put <key> <write-id>". It also remembers every applied
// write id, so the final check can ask "is every acknowledged write here?",
// and a hash chained over every applied entry, so two replicas at the same
// index can be compared in O(1).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "shoal/v1/raft.pb.h"

namespace shoal::sim {

class KvMachine {
 public:
  struct Put {
    std::string key;
    std::string write_id;
  };
  static std::string EncodePut(const std::string& key, const std::string& write_id);
  static std::optional<Put> DecodePut(const std::string& data);

  // Applies one committed entry; no-ops and configuration changes only move
  // the applied index and the hash.
  void Apply(const shoal::v1::Entry& entry);

  std::string Serialize() const;
  // nullopt if `data` is not a Serialize() output.
  static std::optional<KvMachine> Parse(const std::string& data);

  uint64_t applied() const { return applied_; }
  uint64_t hash() const { return hash_; }
  const std::map<std::string, std::string>& data() const { return data_; }
  bool HasWrite(const std::string& id) const { return writes_.count(id) > 0; }
  bool operator==(const KvMachine& o) const {
    return applied_ == o.applied_ && hash_ == o.hash_ && data_ == o.data_ && writes_ == o.writes_;
  }

 private:
  uint64_t applied_ = 0;
  uint64_t hash_ = 0;
  std::map<std::string, std::string> data_;
  std::set<std::string> writes_;
};

}  // namespace shoal::sim
