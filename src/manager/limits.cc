#include "shoal/manager/limits.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace shoal::manager {

namespace {

// "20.0 MiB", "512 KiB", "100 bytes": sizes in messages.
std::string Size(size_t bytes) {
  char buf[32];
  if (bytes >= (size_t{1} << 20)) {
    double mib = static_cast<double>(bytes) / (1 << 20);
    if (bytes % (size_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    std::snprintf(buf, sizeof buf, "%.1f MiB", mib);
    return buf;
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

// "1 per second", "2 per second", "1 every 10 s".
std::string Rate(double per_second) {
  char buf[48];
  if (per_second >= 1.0) {
    std::snprintf(buf, sizeof buf, "%g per second", per_second);
  } else {
    std::snprintf(buf, sizeof buf, "1 every %g s", 1.0 / per_second);
  }
  return buf;
}

}  // namespace

Status CheckMessageSize(const google::protobuf::Message& message, size_t limit,
                        std::string_view what) {
  size_t size = message.ByteSizeLong();
  if (size <= limit) return Status::Ok();
  return Status(Code::kInvalidArgument,
                std::string(what) + " is " + Size(size) + "; the limit is " + Size(limit));
}

std::string PeerAddress(std::string_view peer) {
  if (peer.starts_with("unix:")) return "unix";
  if (peer.starts_with("ipv4:")) {
    peer.remove_prefix(5);
    size_t colon = peer.rfind(':');
    return std::string(peer.substr(0, colon));
  }
  if (peer.starts_with("ipv6:")) {
    peer.remove_prefix(5);
    // "[::1]:41234" (percent-encoded zones stay as they are).
    if (peer.starts_with("[")) {
      size_t close = peer.find(']');
      if (close != std::string_view::npos) return std::string(peer.substr(1, close - 1));
    }
    return std::string(peer);
  }
  return std::string(peer);
}

namespace {

bool ValidStackName(const std::string& n) {
  if (n.empty() || n.size() > kMaxNameBytes || !std::isalnum(static_cast<unsigned char>(n[0]))) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// Why `name` cannot name an object, or "" when it can.
std::string NameProblem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameBytes) {
    return "is " + std::to_string(name.size()) + " bytes long; the limit is " +
           std::to_string(kMaxNameBytes);
  }
  for (char c : name) {
    if (c == '/') return "holds a '/'";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "holds a control character";
  }
  return "";
}

// The first enum field under `m` (at `path`) whose number its enum does not
// define, as "services[0].mode: 77 is not a known value"; "" when none.
std::string UnknownEnum(const google::protobuf::Message& m, const std::string& path) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    std::string here = path.empty() ? f->name() : path + "." + f->name();
    if (f->type() == FieldDescriptor::TYPE_ENUM) {
      int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        int v = f->is_repeated() ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
        if (f->enum_type()->FindValueByNumber(v) == nullptr) {
          return here + ": " + std::to_string(v) + " is not a known value";
        }
      }
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (f->is_map()) continue;  // maps here are string to string
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) {
          std::string bad =
              UnknownEnum(r->GetRepeatedMessage(m, f, i), here + "[" + std::to_string(i) + "]");
          if (!bad.empty()) return bad;
        }
      } else {
        std::string bad = UnknownEnum(r->GetMessage(m, f), here);
        if (!bad.empty()) return bad;
      }
    }
  }
  return "";
}

template <class List>
Status CheckNames(const List& list, const char* kind) {
  if (list.size() > kMaxStackObjects) {
    return InvalidArgument("the stack has " + std::to_string(list.size()) + " " + kind +
                           "; the limit is " + std::to_string(kMaxStackObjects));
  }
  for (int i = 0; i < list.size(); ++i) {
    std::string problem = NameProblem(list.Get(i).name());
    if (!problem.empty()) {
      return InvalidArgument(std::string(kind) + "[" + std::to_string(i) + "]: the name " +
                             problem);
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateDeployRequest(const v1::DeployRequest& request) {
  if (Status s = CheckMessageSize(request, kMaxControlRequestBytes, "the Deploy request");
      !s.ok()) {
    return s;
  }
  const v1::StackSpec& spec = request.spec();
  const std::string& stack = spec.name();
  if (!ValidStackName(stack)) {
    std::string shown = stack.size() > 64 ? stack.substr(0, 64) + "..." : stack;
    return InvalidArgument("stack name \"" + shown +
                           "\": a stack name is 1 to 255 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit");
  }
  for (Status s : {CheckNames(spec.services(), "services"), CheckNames(spec.networks(), "networks"),
                   CheckNames(spec.volumes(), "volumes"), CheckNames(spec.secrets(), "secrets"),
                   CheckNames(spec.configs(), "configs")}) {
    if (!s.ok()) return s;
  }
  for (const v1::ServiceSpec& s : spec.services()) {
    if (!s.name().starts_with(stack + "_") || s.name().size() == stack.size() + 1) {
      return InvalidArgument("service " + s.name() + ": a service of stack " + stack +
                             " is named " + stack + "_<name>");
    }
    if (!s.stack().empty() && s.stack() != stack) {
      return InvalidArgument("service " + s.name() + " says it belongs to stack " + s.stack() +
                             ", not " + stack);
    }
  }
  if (std::string bad = UnknownEnum(request, ""); !bad.empty()) {
    return InvalidArgument("the Deploy request's " + bad);
  }
  return Status::Ok();
}

RateLimiter::RateLimiter(Options options, Clock clock)
    : options_(std::move(options)), clock_(std::move(clock)) {}

void RateLimiter::Refill(Bucket& b, std::chrono::steady_clock::time_point now) const {
  if (now <= b.last) return;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.rate_per_second);
  b.last = now;
}

void RateLimiter::Forget(std::chrono::steady_clock::time_point now) {
  // Full buckets first: forgetting them changes nothing.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Refill(it->second, now);
    it = it->second.tokens >= options_.burst ? buckets_.erase(it) : std::next(it);
  }
  while (buckets_.size() >= options_.max_peers && !buckets_.empty()) {
    auto oldest = std::min_element(buckets_.begin(), buckets_.end(),
                                   [](auto& a, auto& b) { return a.second.last < b.second.last; });
    buckets_.erase(oldest);
  }
}

Status RateLimiter::Admit(std::string_view peer) {
  auto now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_peers) Forget(now);
    it = buckets_.emplace(std::string(peer), Bucket{options_.burst, now}).first;
  }
  Bucket& b = it->second;
  Refill(b, now);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return Status::Ok();
  }
  double wait = (1.0 - b.tokens) / options_.rate_per_second;
  char retry[32];
  std::snprintf(retry, sizeof retry, "%.1f s", std::max(0.1, std::ceil(wait * 10) / 10));
  char burst[32];
  std::snprintf(burst, sizeof burst, "%g", options_.burst);
  return Status(Code::kUnavailable, "too many " + options_.what + " from " + std::string(peer) +
                                        " (at most " + burst + " at once, then " +
                                        Rate(options_.rate_per_second) + "): retry in " + retry);
}

size_t RateLimiter::peers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buckets_.size();
}

struct StreamLimiter::Slot::Counts {
  std::mutex mu;
  std::map<std::string, size_t, std::less<>> open;
};

StreamLimiter::Slot::Slot(Slot&& other) noexcept
    : counts_(std::move(other.counts_)), node_(std::move(other.node_)) {
  other.counts_ = nullptr;
}

StreamLimiter::Slot& StreamLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    counts_ = std::move(other.counts_);
    node_ = std::move(other.node_);
    other.counts_ = nullptr;
  }
  return *this;
}

void StreamLimiter::Slot::Release() {
  if (!counts_) return;
  {
    std::lock_guard<std::mutex> lock(counts_->mu);
    auto it = counts_->open.find(node_);
    if (it != counts_->open.end() && --it->second == 0) counts_->open.erase(it);
  }
  counts_ = nullptr;
}

StreamLimiter::StreamLimiter(size_t max_per_node)
    : max_per_node_(std::max<size_t>(1, max_per_node)), counts_(std::make_shared<Slot::Counts>()) {}

Result<StreamLimiter::Slot> StreamLimiter::Open(std::string_view node, std::string_view what) {
  std::lock_guard<std::mutex> lock(counts_->mu);
  auto it = counts_->open.find(node);
  size_t n = it == counts_->open.end() ? 0 : it->second;
  if (n >= max_per_node_) {
    return Status(Code::kUnavailable, "node " + std::string(node) + " already has " +
                                          std::to_string(n) + " " + std::string(what) +
                                          " open (the limit per node is " +
                                          std::to_string(max_per_node_) + "): close one first");
  }
  if (it == counts_->open.end()) it = counts_->open.emplace(std::string(node), 0).first;
  ++it->second;
  return Slot(counts_, std::string(node));
}

size_t StreamLimiter::open(std::string_view node) const {
  std::lock_guard<std::mutex> lock(counts_->mu);
  auto it = counts_->open.find(node);
  return it == counts_->open.end() ? 0 : it->second;
}

}  // namespace shoal::manager
