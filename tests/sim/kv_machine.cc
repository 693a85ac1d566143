#include "kv_machine.h"

#include <sstream>

namespace shoal::sim {

namespace {

// FNV-1a then a splitmix finaliser: deterministic across runs and platforms,
// unlike std::hash.
uint64_t Mix(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace

std::string KvMachine::EncodePut(const std::string& key, const std::string& write_id) {
  return "put " + key + " " + write_id;
}

std::optional<KvMachine::Put> KvMachine::DecodePut(const std::string& data) {
  std::istringstream in(data);
  std::string op;
  Put p;
  if (!(in >> op >> p.key >> p.write_id) || op != "put") return std::nullopt;
  return p;
}

void KvMachine::Apply(const shoal::v1::Entry& entry) {
  applied_ = entry.index();
  hash_ = Mix(hash_ ^ entry.index(), std::to_string(entry.type()) + ":" + entry.data());
  if (entry.type() != shoal::v1::ENTRY_NORMAL) return;
  if (auto put = DecodePut(entry.data())) {
    data_[put->key] = put->write_id;
    writes_.insert(put->write_id);
  }
}

std::string KvMachine::Serialize() const {
  std::ostringstream out;
  out << applied_ << ' ' << hash_ << ' ' << data_.size() << ' ' << writes_.size() << '\n';
  for (const auto& [k, v] : data_) out << k << ' ' << v << '\n';
  for (const auto& w : writes_) out << w << '\n';
  return out.str();
}

std::optional<KvMachine> KvMachine::Parse(const std::string& data) {
  if (data.empty()) return KvMachine();  // the empty snapshot of a new group
  std::istringstream in(data);
  KvMachine m;
  size_t n_data = 0;
  size_t n_writes = 0;
  if (!(in >> m.applied_ >> m.hash_ >> n_data >> n_writes)) return std::nullopt;
  for (size_t i = 0; i < n_data; ++i) {
    std::string k, v;
    if (!(in >> k >> v)) return std::nullopt;
    m.data_[k] = v;
  }
  for (size_t i = 0; i < n_writes; ++i) {
    std::string w;
    if (!(in >> w)) return std::nullopt;
    m.writes_.insert(w);
  }
  return m;
}

}  // namespace shoal::sim
