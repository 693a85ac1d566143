// The manager's limits on hostile or runaway peers: message sizes, join
// request rates per peer address (injected clock), open streams per node.

#include "shoal/manager/limits.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "shoal/v1/control.pb.h"

namespace shoal::manager {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

struct FakeClock {
  TimePoint now{};
  RateLimiter::Clock fn() {
    return [this] { return now; };
  }
};

}  // namespace

TEST_CASE("limits: a message over its size limit is refused with both sizes") {
  v1::DeployRequest req;
  req.mutable_spec()->set_name("app");
  CHECK(CheckMessageSize(req, kMaxControlRequestBytes, "a Deploy request").ok());
  req.mutable_spec()->add_secrets()->set_data(std::string((20 << 20) + 5, 'x'));
  Status s = CheckMessageSize(req, kMaxControlRequestBytes, "a Deploy request");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "a Deploy request is 20.0 MiB; the limit is 16 MiB");
  CHECK(CheckMessageSize(req, size_t{64} << 10, "x").message().find("64 KiB") != std::string::npos);
}

TEST_CASE("limits: the size constants keep their order") {
  CHECK(kMaxJoinRequestBytes < kMaxDispatcherRequestBytes);
  CHECK(kMaxDispatcherRequestBytes < kMaxControlRequestBytes);
  CHECK(kMaxControlRequestBytes <= kMaxServerReceiveBytes);
}

TEST_CASE("limits: PeerAddress drops the port and keeps the address") {
  CHECK(PeerAddress("ipv4:10.0.0.5:41234") == "10.0.0.5");
  CHECK(PeerAddress("ipv6:[::1]:41234") == "::1");
  CHECK(PeerAddress("ipv6:[fe80::1%25eth0]:5") == "fe80::1%25eth0");
  CHECK(PeerAddress("unix:/run/shoal/shoal.sock") == "unix");
  CHECK(PeerAddress("unix-abstract:x") == "unix-abstract:x");
  CHECK(PeerAddress("") == "");
}

TEST_CASE("limits: a peer gets its burst at once, then the rate") {
  FakeClock clock;
  RateLimiter limiter({.rate_per_second = 1.0, .burst = 3, .what = "join requests"}, clock.fn());
  for (int i = 0; i < 3; ++i) CHECK(limiter.Admit("10.0.0.5").ok());
  Status refused = limiter.Admit("10.0.0.5");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.code() == Code::kUnavailable);
  CHECK(refused.message() ==
        "too many join requests from 10.0.0.5 (at most 3 at once, then 1 per second): "
        "retry in 1.0 s");
  // Another address has its own bucket.
  CHECK(limiter.Admit("10.0.0.6").ok());
  clock.now += 400ms;
  CHECK(limiter.Admit("10.0.0.5").message().find("retry in 0.6 s") != std::string::npos);
  clock.now += 600ms;
  CHECK(limiter.Admit("10.0.0.5").ok());
  CHECK_FALSE(limiter.Admit("10.0.0.5").ok());
  // Refused requests cost nothing: after a long wait the burst is back, no more.
  clock.now += 1h;
  for (int i = 0; i < 3; ++i) CHECK(limiter.Admit("10.0.0.5").ok());
  CHECK_FALSE(limiter.Admit("10.0.0.5").ok());
}

TEST_CASE("limits: slow rates read as one every N seconds") {
  FakeClock clock;
  RateLimiter limiter({.rate_per_second = 0.1, .burst = 1}, clock.fn());
  CHECK(limiter.Admit("p").ok());
  Status s = limiter.Admit("p");
  CHECK(s.message() ==
        "too many requests from p (at most 1 at once, then 1 every 10 s): retry in 10.0 s");
}

TEST_CASE("limits: the rate limiter remembers a bounded number of peers") {
  FakeClock clock;
  RateLimiter limiter({.rate_per_second = 1.0, .burst = 2, .max_peers = 100}, clock.fn());
  for (int i = 0; i < 1000; ++i) {
    clock.now += 1ms;
    CHECK(limiter.Admit("peer-" + std::to_string(i)).ok());
    CHECK(limiter.peers() <= 100);
  }
  // A peer that is still limited is not forgotten while idle ones are.
  RateLimiter strict({.rate_per_second = 0.001, .burst = 1, .max_peers = 10}, clock.fn());
  REQUIRE(strict.Admit("attacker").ok());
  for (int i = 0; i < 50; ++i) {
    clock.now += 1ms;
    (void)strict.Admit("other-" + std::to_string(i));
  }
  CHECK(strict.peers() <= 10);
}

TEST_CASE("limits: streams per node are capped and released with their slot") {
  StreamLimiter limiter(2);
  auto a = limiter.Open("n1", "dispatcher streams");
  auto b = limiter.Open("n1", "dispatcher streams");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto c = limiter.Open("n1", "dispatcher streams");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == Code::kUnavailable);
  CHECK(c.error().message() ==
        "node n1 already has 2 dispatcher streams open (the limit per node is 2): close one first");
  CHECK(limiter.Open("n2").ok());  // another node is not affected (its slot is dropped at once)
  CHECK(limiter.open("n2") == 0);
  CHECK(limiter.open("n1") == 2);
  a->Release();
  CHECK(limiter.open("n1") == 1);
  {
    auto d = limiter.Open("n1");
    REQUIRE(d.ok());
    StreamLimiter::Slot moved = std::move(*d);
    CHECK(moved.held());
    CHECK_FALSE(d->held());
    CHECK(limiter.open("n1") == 2);
  }
  CHECK(limiter.open("n1") == 1);
}

TEST_CASE("limits: a slot may outlive its limiter") {
  StreamLimiter::Slot slot;
  {
    StreamLimiter limiter(1);
    auto s = limiter.Open("n1");
    REQUIRE(s.ok());
    slot = std::move(*s);
  }
  CHECK(slot.held());
  slot.Release();
  CHECK_FALSE(slot.held());
}

TEST_CASE("limits: concurrent opens never exceed the cap") {
  StreamLimiter limiter(8);
  std::atomic<int> admitted{0};
  std::atomic<int> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto s = limiter.Open("n1");
        if (!s.ok()) continue;
        ++admitted;
        int now = static_cast<int>(limiter.open("n1"));
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(admitted > 0);
  CHECK(peak <= 8);
  CHECK(limiter.open("n1") == 0);
}

namespace {

v1::DeployRequest Request() {
  v1::DeployRequest req;
  v1::StackSpec* spec = req.mutable_spec();
  spec->set_name("app");
  v1::ServiceSpec* web = spec->add_services();
  web->set_name("app_web");
  web->set_short_name("web");
  web->set_stack("app");
  web->mutable_container()->set_image("nginx");
  spec->add_networks()->set_name("app_net");
  spec->add_networks()->set_name("traefik-public");  // external: any name
  spec->add_secrets()->set_name("app_key");
  return req;
}

std::string Refusal(const v1::DeployRequest& req) {
  Status s = ValidateDeployRequest(req);
  return s.ok() ? "ok" : s.message();
}

}  // namespace

TEST_CASE("limits: what the stack loader makes passes ValidateDeployRequest") {
  CHECK(Refusal(Request()) == "ok");
  v1::DeployRequest req = Request();
  req.mutable_spec()->set_name("my-app.v2_x");
  req.mutable_spec()->mutable_services(0)->set_name("my-app.v2_x_web");
  req.mutable_spec()->mutable_services(0)->set_stack("my-app.v2_x");
  CHECK(Refusal(req) == "ok");
}

TEST_CASE("limits: ValidateDeployRequest refuses hostile stack specs with the field named") {
  v1::DeployRequest req = Request();
  req.mutable_spec()->set_name("");
  CHECK(Refusal(req).find("stack name \"\"") == 0);
  req.mutable_spec()->set_name("../../etc");
  CHECK(Refusal(req).find("stack name \"../../etc\": a stack name is 1 to 255") == 0);
  req.mutable_spec()->set_name(std::string(300, 'a'));
  CHECK(Refusal(req).find("...\"") != std::string::npos);  // shown cut short

  req = Request();
  req.mutable_spec()->mutable_services(0)->set_name("other_web");
  CHECK(Refusal(req) == "service other_web: a service of stack app is named app_<name>");
  req.mutable_spec()->mutable_services(0)->set_name("app_");
  CHECK(Refusal(req) == "service app_: a service of stack app is named app_<name>");
  req = Request();
  req.mutable_spec()->mutable_services(0)->set_stack("other");
  CHECK(Refusal(req) == "service app_web says it belongs to stack other, not app");

  req = Request();
  req.mutable_spec()->mutable_networks(0)->set_name("a/b");
  CHECK(Refusal(req) == "networks[0]: the name holds a '/'");
  req.mutable_spec()->mutable_networks(0)->set_name(std::string("a\nb"));
  CHECK(Refusal(req) == "networks[0]: the name holds a control character");
  req.mutable_spec()->mutable_networks(0)->set_name("");
  CHECK(Refusal(req) == "networks[0]: the name is empty");
  req.mutable_spec()->mutable_networks(0)->set_name(std::string(256, 'n'));
  CHECK(Refusal(req) == "networks[0]: the name is 256 bytes long; the limit is 255");

  req = Request();
  for (int i = 0; i <= kMaxStackObjects; ++i) {
    req.mutable_spec()->add_secrets()->set_name("app_s" + std::to_string(i));
  }
  CHECK(Refusal(req) == "the stack has 1002 secrets; the limit is 1000");
}

TEST_CASE("limits: ValidateDeployRequest refuses enum numbers the enum does not define") {
  v1::DeployRequest req = Request();
  req.mutable_spec()->mutable_services(0)->set_mode(static_cast<v1::ServiceMode>(77));
  CHECK(Refusal(req) == "the Deploy request's spec.services[0].mode: 77 is not a known value");
  req = Request();
  req.mutable_spec()->mutable_services(0)->mutable_update_config()->set_order(
      static_cast<v1::UpdateConfig::Order>(5));
  CHECK(Refusal(req) ==
        "the Deploy request's spec.services[0].update_config.order: 5 is not a known value");
}

TEST_CASE("limits: ValidateDeployRequest refuses a request over the control limit") {
  v1::DeployRequest req = Request();
  req.mutable_spec()->mutable_secrets(0)->set_data(std::string(kMaxControlRequestBytes, 's'));
  std::string r = Refusal(req);
  CHECK(r.find("the Deploy request is 16.0 MiB; the limit is 16 MiB") == 0);
  CHECK(r.find("sss") == std::string::npos);
}

}  // namespace shoal::manager
