// Hostile and broken input: malformed YAML, deep nesting, alias bombs, binary
// data, huge files. Each gives an error with a line (or loads), quickly, and
// never crashes.

#include <catch2/catch.hpp>
#include <chrono>
#include <random>

#include "shoal/stack/emit.h"
#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::Options;
using testing::TempDir;

using Clock = std::chrono::steady_clock;

// A guard against hangs and blow-ups, not a benchmark: each hostile input takes
// well under a second in an optimised build (docs/performance.md), and the limit
// leaves room for a busy CI machine; unoptimised or sanitized builds get more.
#ifdef NDEBUG
constexpr double kLimitSeconds = 5.0;
#else
constexpr double kLimitSeconds = 10.0;
#endif

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Loads `bytes`, REQUIREs an error within a second, and returns the errors.
std::vector<Diagnostic> Refused(const std::string& bytes) {
  TempDir dir;
  std::string f = dir.Write("stack.yml", bytes);
  auto start = Clock::now();
  auto r = Load(Options({f}));
  double took = Seconds(start);
  CHECK(took < kLimitSeconds);
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE_FALSE(errors.empty());
  for (const auto& e : errors) {
    REQUIRE(e.mark.file != nullptr);
    CHECK(*e.mark.file == f);
  }
  return errors;
}

std::string BillionLaughs(int levels, int fanout) {
  std::string y = "x-l0: &l0 [lol]\n";
  for (int i = 1; i < levels; ++i) {
    y += "x-l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < fanout; ++j) y += (j ? ", *l" : "*l") + std::to_string(i - 1);
    y += "]\n";
  }
  y += "x-use: *l" + std::to_string(levels - 1) + "\nservices:\n  web:\n    image: nginx\n";
  return y;
}

}  // namespace

TEST_CASE("robustness: malformed YAML is an error with a line") {
  struct Case {
    std::string name, text;
    int line;
  };
  std::vector<Case> cases = {
      {"unclosed bracket", "services:\n  web:\n    image: nginx\n    ports: [80, 443\n", 5},
      {"unclosed brace", "services: {web: {image: nginx}\n", 2},
      {"bad indentation", "services:\n  web:\n    image: nginx\n   user: root\n", 4},
      {"tab indentation", "services:\n\tweb:\n\t\timage: nginx\n", 2},
      {"unclosed quote",
       "services:\n  web:\n    image: \"nginx\n    user: x\n  db: {image: \"a\"}\n[", 6},
      {"mapping in a scalar", "services:\n  web:\n    image: a: b\n", 3},
      {"unknown alias", "services:\n  web: *nothing\n", 2},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto errors = Refused(c.text);
    CHECK(errors[0].mark.line > 0);
    CHECK(errors[0].mark.line <= c.line);
  }
}

TEST_CASE("robustness: deep nesting is refused quickly") {
  SECTION("10,000 nested flow sequences") {
    auto errors = Refused("services: " + std::string(10000, '['));
    CHECK(errors[0].mark.line == 1);
  }
  SECTION("10,000 nested flow sequences, closed") {
    auto errors = Refused("x-deep: " + std::string(10000, '[') + std::string(10000, ']') +
                          "\nservices:\n  web: {image: nginx}\n");
    CHECK(errors[0].mark.line == 1);
  }
  SECTION("10,000 nested flow mappings") {
    std::string s = "x-deep: ";
    for (int i = 0; i < 10000; ++i) s += "{a: ";
    Refused(s);
  }
  SECTION("2,000 nested block mappings") {
    std::string s = "services:\n";
    for (int i = 0; i < 2000; ++i) s += std::string(2 * i + 2, ' ') + "k:\n";
    Refused(s);
  }
  SECTION("nesting that compose files use is fine") {
    TempDir dir;
    std::string s = "services:\n  web:\n    image: nginx\nx-deep: " + std::string(50, '[') +
                    std::string(50, ']') + "\n";
    auto r = Load(Options({dir.Write("stack.yml", s)}));
    CHECK(r.ok());
  }
}

TEST_CASE("robustness: an alias bomb is refused without expanding it") {
  auto errors = Refused(BillionLaughs(9, 10));
  CHECK(errors[0].message.find("expands to more than") != std::string::npos);
  CHECK(errors[0].mark.line > 0);
  SECTION("an alias bomb inside a key") {
    std::string y = BillionLaughs(9, 10);
    y += "x-key:\n  ? *l8\n  : x\n";
    Refused(y);
  }
  SECTION("a small fan-out of aliases is fine") {
    TempDir dir;
    auto r = Load(Options({dir.Write("stack.yml", BillionLaughs(3, 10))}));
    REQUIRE(r.ok());
    const Node* use = r->document->Get("x-use");
    REQUIRE(use != nullptr);
    REQUIRE(use->items.size() == 10);
    CHECK(use->items[9]->items.size() == 10);
    CHECK(use->items[9]->items[9]->items[0]->text == "lol");
  }
}

TEST_CASE("robustness: binary data and NUL bytes are errors") {
  SECTION("a NUL byte names its line") {
    auto errors = Refused("services:\n  web:\n    image: ngi" + std::string(1, '\0') + "nx\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].mark.line == 3);
    CHECK(errors[0].message == "file contains a NUL byte: this is not a YAML text file");
  }
  SECTION("random bytes, many seeds") {
    std::mt19937 rng(42);
    for (int seed = 0; seed < 50; ++seed) {
      std::string bytes(1 + rng() % 4096, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      TempDir dir;
      auto start = Clock::now();
      auto r = Load(Options({dir.Write("stack.yml", bytes)}));
      CHECK(Seconds(start) < kLimitSeconds);
      CHECK_FALSE(r.ok());
    }
  }
  SECTION("random bytes without NUL") {
    std::mt19937 rng(7);
    for (int seed = 0; seed < 50; ++seed) {
      std::string bytes(1 + rng() % 4096, 'x');
      for (char& c : bytes) c = static_cast<char>(1 + rng() % 255);
      TempDir dir;
      auto r = Load(Options({dir.Write("stack.yml", bytes)}));
      CHECK_FALSE(r.ok());
    }
  }
  SECTION("random printable text with YAML punctuation") {
    std::mt19937 rng(11);
    const std::string alphabet = "ab:- \n[]{},&*!|>'\"%@`#?$\t";
    for (int seed = 0; seed < 200; ++seed) {
      std::string text(1 + rng() % 512, ' ');
      for (char& c : text) c = alphabet[rng() % alphabet.size()];
      TempDir dir;
      auto r = Load(Options({dir.Write("stack.yml", text)}));
      if (r.ok()) {
        CHECK_FALSE(ToYaml(*r->document).empty());
      } else {
        CHECK(r.error().ErrorCount() > 0);
      }
    }
  }
  SECTION("a directory is not a stack file") {
    TempDir dir;
    auto r = Load(Options({dir.path().string()}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errors()[0].message.find("is a directory") != std::string::npos);
  }
}

TEST_CASE("robustness: a 5 MB file of 5000 services loads within a second") {
  std::string y = "services:\n";
  for (int i = 0; i < 5000; ++i) {
    std::string n = std::to_string(i);
    y += "  svc" + n +
         ":\n"
         "    image: registry.example.com/team/service-" +
         n +
         ":1.2.3\n"
         "    command: [\"/bin/server\", \"--port\", \"8080\", \"--name\", \"svc" +
         n +
         "\"]\n"
         "    environment:\n"
         "      SERVICE_NAME: svc" +
         n +
         "\n"
         "      LOG_LEVEL: info\n"
         "      DATABASE_URL: postgres://user:password@db.example.com:5432/database_" +
         n +
         "\n"
         "      CACHE_URL: redis://cache.example.com:6379/0\n"
         "      FEATURE_FLAGS: alpha,beta,gamma,delta,epsilon,zeta,eta,theta,iota,kappa\n"
         "    labels:\n"
         "      com.example.team: platform\n"
         "      com.example.service: svc" +
         n +
         "\n"
         "      com.example.description: a generated service used to test that big files load\n"
         "    deploy:\n"
         "      replicas: 2\n"
         "      resources:\n"
         "        limits: {cpus: '0.5', memory: 256M}\n"
         "        reservations: {cpus: '0.1', memory: 64M}\n"
         "      update_config: {parallelism: 1, delay: 10s, order: start-first}\n"
         "      restart_policy: {condition: on-failure, max_attempts: 3}\n"
         "      placement:\n"
         "        constraints: [node.role == worker, node.labels.zone == eu-west-1]\n"
         "    healthcheck:\n"
         "      test: [CMD, curl, -f, http://localhost:8080/health]\n"
         "      interval: 30s\n"
         "      timeout: 5s\n";
  }
  REQUIRE(y.size() > 5'000'000);
  TempDir dir;
  std::string f = dir.Write("stack.yml", y);
  auto start = Clock::now();
  auto r = Load(Options({f}));
  double took = Seconds(start);
  REQUIRE(r.ok());
  CHECK(r->spec.services_size() == 5000);
  CHECK(took < kLimitSeconds);
}

}  // namespace shoal::stack

namespace shoal::stack {

TEST_CASE("robustness: an endless file named by the stack is refused, not read forever") {
  if (!std::filesystem::exists("/dev/zero")) return;
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> cases = {
      {"env_file", "services:\n  web:\n    image: nginx\n    env_file: /dev/zero\n"},
      {"secret file",
       "services:\n  web: {image: nginx, secrets: [s]}\nsecrets:\n  s: {file: /dev/zero}\n"},
      {"config file",
       "services:\n  web: {image: nginx, configs: [c]}\nconfigs:\n  c: {file: /dev/zero}\n"},
      {"extends file",
       "services:\n  web:\n    image: nginx\n    extends: {file: /dev/zero, service: x}\n"},
      {"include", "include: [/dev/zero]\nservices:\n  web: {image: nginx}\n"},
  };
  for (const auto& [name, yaml] : cases) {
    INFO(name);
    auto start = Clock::now();
    auto r = Load(Options({dir.Write("stack.yml", yaml)}));
    CHECK(Seconds(start) < kLimitSeconds);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("/dev/zero is larger than 64 MiB") != std::string::npos);
  }
  SECTION("as the stack file itself") {
    auto r = Load(Options({"/dev/zero"}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("/dev/zero is larger than 64 MiB") != std::string::npos);
  }
}

}  // namespace shoal::stack
