#pragma once

// The managers, not each engine, choose every stack network's subnet, so
// that two stacks never collide and every node that runs a task of the
// network makes it with the same addresses. The engine refuses a second
// network with an overlapping subnet, which also keeps two nodes that share
// one engine from making the network twice.

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/store/state.h"

namespace shoal::manager {

// The pool subnets are cut from when a stack file names none and the
// cluster was made without --default-addr-pool: 10.208.0.0/12 in /24 steps
// (4,096 networks). Outside Docker's own default pools (172.17.0.0/16 to
// 172.31.0.0/16, 192.168.0.0/16).
inline constexpr const char* kDefaultAddressPool = "10.208.0.0/12";
inline constexpr int kDefaultSubnetBits = 24;

struct Ipv4Prefix {
  uint32_t base = 0;  // host order, host bits zero
  int bits = 0;
  bool Overlaps(const Ipv4Prefix& o) const;
  std::string ToString() const;
};

// "a.b.c.d/n" -> prefix with the host bits cleared. InvalidArgument naming
// the text when it is not an IPv4 CIDR.
Result<Ipv4Prefix> ParseIpv4Prefix(const std::string& cidr);

// The pool of `cluster init --default-addr-pool A --default-addr-pool B
// --default-addr-pool-mask-length N`, checked: every CIDR an IPv4 prefix, no
// two overlapping, N between the longest pool prefix and 30 (0 = 24).
// InvalidArgument naming the flag and the value otherwise. Empty `cidrs`
// gives the default pool.
Result<v1::AddressPool> MakeAddressPool(const std::vector<std::string>& cidrs,
                                        uint32_t mask_length);

// Gives every network that `out` creates or changes a subnet: the one its
// stack file declares (ipam.config[0].subnet) or, when none, a free subnet
// of the cluster's pool; a network that has one keeps it. The search starts
// at a place derived from the network's id, not at the pool's start, so that
// a subnet just freed is not handed out again at once: an engine sometimes
// keeps a removed network a while ("has active endpoints"), and a new
// network on its subnet would then be refused ("Pool overlaps"). InvalidArgument naming
// the network when a declared subnet overlaps another network's, or the
// pool is used up. Pure: reads `state`, edits `out`.
Status AllocateSubnets(const store::State& state, std::vector<v1::Mutation>* out);

}  // namespace shoal::manager
