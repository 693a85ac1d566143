#include "shoal/manager/subnets.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>

namespace shoal::manager {

namespace {

uint32_t Mask(int bits) { return bits == 0 ? 0 : ~uint32_t{0} << (32 - bits); }

// The subnet a network asks for in its stack file, or empty.
const std::string& DeclaredSubnet(const v1::Network& n) {
  static const std::string kNone;
  const auto& configs = n.spec().ipam().config();
  return configs.empty() ? kNone : configs[0].subnet();
}

// FNV-1a: a stable spread of ids over the pool, the same on every manager.
uint64_t Spread(const std::string& id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h;
}

// The cluster's pool, parsed: the default when the cluster has none.
struct Pool {
  std::vector<Ipv4Prefix> prefixes;
  int bits = kDefaultSubnetBits;
  std::string text;  // for messages
  uint64_t Count() const {
    uint64_t n = 0;
    for (const auto& p : prefixes) n += uint64_t{1} << (bits - p.bits);
    return n;
  }
  Ipv4Prefix At(uint64_t i) const {
    for (const auto& p : prefixes) {
      const uint64_t n = uint64_t{1} << (bits - p.bits);
      if (i < n) return {p.base + static_cast<uint32_t>(i << (32 - bits)), bits};
      i -= n;
    }
    return {};
  }
};

Pool ClusterPool(const store::State& state) {
  Pool pool;
  for (const v1::Mutation* m : state.List(store::Kind::kCluster)) {
    const v1::AddressPool& ap = m->cluster().address_pool();
    for (const std::string& cidr : ap.cidrs()) {
      if (auto p = ParseIpv4Prefix(cidr); p.ok()) pool.prefixes.push_back(*p);
    }
    if (!pool.prefixes.empty() && ap.subnet_bits() != 0)
      pool.bits = static_cast<int>(ap.subnet_bits());
  }
  if (pool.prefixes.empty()) {
    pool.prefixes.push_back(*ParseIpv4Prefix(kDefaultAddressPool));
    pool.bits = kDefaultSubnetBits;
  }
  for (const auto& p : pool.prefixes) pool.text += (pool.text.empty() ? "" : ", ") + p.ToString();
  return pool;
}

}  // namespace

Result<v1::AddressPool> MakeAddressPool(const std::vector<std::string>& cidrs,
                                        uint32_t mask_length) {
  v1::AddressPool out;
  if (cidrs.empty()) {
    if (mask_length != 0) {
      return Status(Code::kInvalidArgument,
                    "--default-addr-pool-mask-length needs --default-addr-pool");
    }
    return out;
  }
  const uint32_t bits = mask_length == 0 ? kDefaultSubnetBits : mask_length;
  std::vector<Ipv4Prefix> seen;
  for (const std::string& cidr : cidrs) {
    auto p = ParseIpv4Prefix(cidr);
    if (!p.ok())
      return Status(Code::kInvalidArgument, "--default-addr-pool: " + p.error().message());
    for (const Ipv4Prefix& other : seen) {
      if (other.Overlaps(*p)) {
        return Status(Code::kInvalidArgument,
                      "--default-addr-pool: " + p->ToString() + " overlaps " + other.ToString());
      }
    }
    if (bits > 30 || static_cast<int>(bits) < p->bits) {
      return Status(Code::kInvalidArgument,
                    "--default-addr-pool-mask-length " + std::to_string(bits) +
                        ": must be between the pool's prefix length (" + std::to_string(p->bits) +
                        " for " + p->ToString() + ") and 30");
    }
    seen.push_back(*p);
    out.add_cidrs(p->ToString());
  }
  out.set_subnet_bits(bits);
  return out;
}

bool Ipv4Prefix::Overlaps(const Ipv4Prefix& o) const {
  const uint32_t m = Mask(std::min(bits, o.bits));
  return (base & m) == (o.base & m);
}

std::string Ipv4Prefix::ToString() const {
  in_addr a{htonl(base)};
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(bits);
}

Result<Ipv4Prefix> ParseIpv4Prefix(const std::string& cidr) {
  const auto slash = cidr.find('/');
  const auto bad = [&] {
    return Status(Code::kInvalidArgument, "\"" + cidr + "\" is not an IPv4 subnet (a.b.c.d/n)");
  };
  if (slash == std::string::npos || slash + 1 == cidr.size() || cidr.size() - slash > 3) {
    return bad();
  }
  in_addr a{};
  if (inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) != 1) return bad();
  int bits = 0;
  for (char c : cidr.substr(slash + 1)) {
    if (c < '0' || c > '9') return bad();
    bits = bits * 10 + (c - '0');
  }
  if (bits > 32) return bad();
  return Ipv4Prefix{ntohl(a.s_addr) & Mask(bits), bits};
}

Status AllocateSubnets(const store::State& state, std::vector<v1::Mutation>* out) {
  // Every subnet in use, by network id: the state's, overlaid with this
  // transaction's (which may move or delete a network).
  std::map<std::string, std::pair<std::string, Ipv4Prefix>> used;
  const auto note = [&](const v1::Network& n) {
    auto p = ParseIpv4Prefix(n.subnet());
    if (p.ok()) used[n.meta().id()] = {n.spec().name(), *p};
  };
  for (const v1::Mutation* m : state.List(store::Kind::kNetwork)) note(m->network());
  // A network this transaction deletes keeps its subnet until the next one:
  // the store checks uniqueness against the state before the transaction.
  for (const v1::Mutation& m : *out) {
    if (!m.has_network() || m.op() != v1::Mutation::OP_PUT) continue;
    used.erase(m.network().meta().id());
    note(m.network());
  }
  const auto overlapping = [&](const std::string& id, const Ipv4Prefix& p) -> const std::string* {
    for (const auto& [other, named] : used) {
      if (other != id && named.second.Overlaps(p)) return &named.first;
    }
    return nullptr;
  };
  const Pool pool = ClusterPool(state);
  for (v1::Mutation& m : *out) {
    if (!m.has_network() || m.op() != v1::Mutation::OP_PUT) continue;
    v1::Network* n = m.mutable_network();
    const std::string& name = n->spec().name();
    if (const std::string& declared = DeclaredSubnet(*n); !declared.empty()) {
      auto p = ParseIpv4Prefix(declared);
      if (!p.ok())
        return Status(Code::kInvalidArgument,
                      "network " + name + ": ipam subnet " + p.error().message());
      if (const std::string* other = overlapping(n->meta().id(), *p)) {
        return Status(Code::kInvalidArgument, "network " + name + ": subnet " + declared +
                                                  " overlaps network " + *other +
                                                  "'s; choose another one or leave it out");
      }
      n->set_subnet(p->ToString());
      used[n->meta().id()] = {name, *p};
      continue;
    }
    if (!n->subnet().empty()) continue;  // allocated by an earlier deploy
    const uint64_t count = pool.Count();
    const uint64_t start = Spread(n->meta().id()) % count;
    bool found = false;
    for (uint64_t i = 0; i < count && !found; ++i) {
      const Ipv4Prefix p = pool.At((start + i) % count);
      if (overlapping(n->meta().id(), p)) continue;
      n->set_subnet(p.ToString());
      used[n->meta().id()] = {name, p};
      found = true;
    }
    if (!found) {
      return Status(Code::kFailedPrecondition, "network " + name + ": all " +
                                                   std::to_string(count) + " subnets of " +
                                                   pool.text + " are in use");
    }
  }
  return Status::Ok();
}

}  // namespace shoal::manager
