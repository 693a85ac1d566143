// Every corpus file is accounted for: it loads, validates and converts, or it is
// listed in expected_failures.txt with the reason and a phrase its error must
// contain. Every invalid file is refused with an error naming a line. The
// resolved stacks match what `docker stack config` printed for the same files.

#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "shoal/stack/emit.h"
#include "shoal/stack/loader.h"

namespace fs = std::filesystem;
using shoal::stack::Diagnostics;
using shoal::stack::LoadOptions;

namespace {

const fs::path kCorpus = SHOAL_CORPUS_DIR;

struct Expected {
  std::string category;  // needs-variable, needs-file, overlay, unsupported
  std::string phrase;    // must appear in the error text
};

std::map<std::string, Expected> ExpectedFailures() {
  std::map<std::string, Expected> out;
  std::ifstream in(SHOAL_EXPECTED_FAILURES);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> parts;
    std::stringstream ss(line);
    for (std::string p; std::getline(ss, p, '|');) {
      size_t a = p.find_first_not_of(' '), b = p.find_last_not_of(' ');
      parts.push_back(a == std::string::npos ? "" : p.substr(a, b - a + 1));
    }
    if (parts.size() >= 3) out[parts[0]] = {parts[1], parts[2]};
  }
  return out;
}

LoadOptions Options(std::vector<std::string> files, std::string name = "") {
  LoadOptions o;
  o.files = std::move(files);
  // docker stack config ran with an empty environment except HOME.
  o.environment = {{"HOME", "/home/user"}};
  o.read_file_contents = false;
  o.stack_name = std::move(name);
  return o;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<fs::path> Files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("every corpus file loads, or fails as expected_failures.txt says") {
  auto expected = ExpectedFailures();
  std::set<std::string> seen;
  int loaded = 0;
  for (const auto& path : Files(kCorpus / "files")) {
    std::string name = path.filename().string();
    seen.insert(name);
    auto r = shoal::stack::Load(Options({path.string()}));
    auto it = expected.find(name);
    INFO(name);
    if (it == expected.end()) {
      if (!r.ok()) FAIL_CHECK(r.error().ToString());
      loaded += r.ok();
      continue;
    }
    INFO("expected to fail (" << it->second.category << ") with \"" << it->second.phrase << "\"");
    REQUIRE_FALSE(r.ok());
    std::string text = r.error().ToString();
    CHECK_THAT(text, Catch::Matchers::Contains(it->second.phrase));
    for (const auto& d : r.error().Errors()) CHECK(d.mark.line > 0);
  }
  for (const auto& [name, e] : expected) {
    INFO(name);
    CHECK(seen.count(name));  // no stale entries
  }
  WARN("corpus files loaded and converted: " << loaded << " of " << seen.size());
  // Every other file is in expected_failures.txt, checked above.
  CHECK(loaded + expected.size() == seen.size());
}

TEST_CASE("overlay files load together with their base file") {
  const auto f = kCorpus / "files";
  std::vector<std::vector<std::string>> sets = {
      {"BretFisher__dogvscat__stack-elk.yml", "BretFisher__dogvscat__stack-elk.override.yml"},
      {"BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.yml",
       "BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.override.yml"},
      {"BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.yml",
       "BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.prod.yml"},
      {"BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.yml",
       "BretFisher__udemy-docker-mastery__swarm-stack-3__docker-compose.test.yml"},
      {"zammad__zammad-docker-compose__docker-compose.yml",
       "zammad__zammad-docker-compose__scenarios__apply-resource-limits.yml"},
  };
  for (const auto& set : sets) {
    std::vector<std::string> paths;
    for (const auto& s : set) paths.push_back((f / s).string());
    INFO(set.back());
    auto r = shoal::stack::Load(Options(paths));
    if (!r.ok()) FAIL_CHECK(r.error().ToString());
  }
}

TEST_CASE("every invalid corpus file is refused with an error that names a line") {
  // Valid under the Compose Specification, refused only by docker's v3.5 schema.
  const std::set<std::string> kAcceptedBySpec = {
      "docker__cli__cli__compose__loader__loader_test.go__"
      "TestLoadTmpfsVolumeAdditionalPropertyNotAllowed.yml",
  };
  for (const auto& path : Files(kCorpus / "invalid")) {
    std::string name = path.filename().string();
    INFO(name);
    auto r = shoal::stack::Load(Options({path.string()}));
    if (kAcceptedBySpec.count(name)) {
      CHECK(r.ok());
      continue;
    }
    REQUIRE_FALSE(r.ok());
    INFO(r.error().ToString());
    bool names_line = false;
    for (const auto& d : r.error().Errors()) names_line = names_line || d.mark.line > 0;
    CHECK(names_line);
  }
}

namespace {

// Loads `text` (an expected `docker stack config` output) as a stack file in a
// temporary directory, with <stackdir> pointing at the corpus files.
shoal::Result<shoal::stack::LoadedStack, Diagnostics> LoadExpected(const std::string& text,
                                                                   const std::string& name,
                                                                   bool interpolate) {
  std::string t = text;
  const std::string marker = "<stackdir>";
  for (size_t p; (p = t.find(marker)) != std::string::npos;)
    t.replace(p, marker.size(), (kCorpus / "files").string());
  fs::path dir = fs::temp_directory_path() / ("shoal-conformance-" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::path file = dir / "expected.yml";
  std::ofstream(file) << t;
  auto opts = Options({file.string()}, name);
  opts.interpolate = interpolate;
  auto r = shoal::stack::Load(opts);
  fs::remove_all(dir);
  return r;
}

std::string Differences(const shoal::v1::StackSpec& a, const shoal::v1::StackSpec& b) {
  std::string report;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&report);
  d.Compare(a, b);
  return report;
}

}  // namespace

// Where shoal follows the compose specification and docker does not: the file,
// a phrase of the one difference allowed, and why.
struct Deliberate {
  std::string phrase;
  std::string reason;
};

const std::map<std::string, Deliberate> kDeliberate = {
    // ${VAR:-default} whose default holds "$name": the compose specification
    // interpolates inside defaults (nested defaults); docker keeps them literal.
    {"BretFisher__dogvscat__stack-elk.yml",
     {"basicauth.users", "nested interpolation in defaults"}},
    {"BretFisher__dogvscat__stack-swarmprom.yml",
     {"basicauth.users", "nested interpolation in defaults"}},
    // The compose specification's host_ip ("127.0.0.1:8080:80") is kept; docker's v3
    // format has no such field and drops the address silently.
    {"jitsi__docker-jitsi-meet__docker-compose.yml", {"host_ip: \"127.0.0.1\"", "host_ip kept"}},
    // A quoted shell word keeps its newlines, as sh does; docker's shlex trims them.
    {"jpetazzo__container.training__stacks__elk.yml", {"command[1]", "POSIX shell quoting"}},
    // "../prom/prometheus.yml" leaves the stack directory, so docker's output names a
    // path on the machine where it ran.
    {"jpetazzo__container.training__stacks__prometheus+config.yml",
     {"configs[0].file", "path outside <stackdir>"}},
};

TEST_CASE("shoal config matches docker stack config on the corpus") {
  auto expected_failures = ExpectedFailures();
  int compared = 0;
  for (const auto& path : Files(kCorpus / "expected" / "docker-stack-config")) {
    // Docker's outputs are all named .yml; the corpus keeps .yaml where the source did.
    std::string name = path.filename().string();
    fs::path source = kCorpus / "files" / name;
    if (!fs::exists(source)) {
      source.replace_extension(".yaml");
      name = source.filename().string();
    }
    if (expected_failures.count(name)) continue;
    INFO(name);
    auto ours = shoal::stack::Load(Options({source.string()}, "corpus"));
    REQUIRE(ours.ok());
    auto theirs = LoadExpected(ReadFile(path), "corpus", /*interpolate=*/false);
    if (!theirs.ok()) {
      FAIL_CHECK("docker's output does not load: " << theirs.error().ToString());
      continue;
    }
    std::string diff = Differences(theirs->spec, ours->spec);
    if (auto d = kDeliberate.find(name); d != kDeliberate.end()) {
      INFO("deliberate difference: " << d->second.reason);
      CHECK_THAT(diff, Catch::Matchers::Contains(d->second.phrase));
    } else {
      CHECK(diff == "");
    }
    // And shoal's own `config` output loads back to the same spec.
    auto again = LoadExpected(shoal::stack::ToYaml(*ours->document), "corpus", true);
    REQUIRE(again.ok());
    CHECK(Differences(ours->spec, again->spec) == "");
    ++compared;
  }
  WARN("files compared with docker stack config: " << compared);
  CHECK(compared >= 60);
}

TEST_CASE("files that need variables load once the variables are given") {
  // The needs-variable entries of expected_failures.txt whose only missing input
  // is a handful of variables (getsentry and opentelemetry need their repos' .env).
  const std::vector<std::string> files = {
      "stefanprodan__swarmprom__docker-compose.traefik.yml",
      "tiangolo__dockerswarm.rocks__docs__portainer.yml",
      "tiangolo__dockerswarm.rocks__docs__swarmpit.yml",
      "tiangolo__dockerswarm.rocks__docs__swarmprom.yml",
      "tiangolo__dockerswarm.rocks__docs__thelounge.yml",
      "tiangolo__dockerswarm.rocks__docs__traefik-host-v1.yml",
      "tiangolo__dockerswarm.rocks__docs__traefik-v3.yml",
      "tiangolo__dockerswarm.rocks__docs__traefik.yml",
      "lucaslorentz__caddy-docker-proxy__tests__ingress-networks__compose.yaml",
      "vegasbrianc__prometheus__pwd-stack.yml",
      "docker__compose__pkg__e2e__testdata__TestSecretFromEnv__child__compose.yaml",
  };
  for (const auto& name : files) {
    INFO(name);
    auto o = Options({(kCorpus / "files" / name).string()});
    o.environment.insert({{"DOMAIN", "example.com"},
                          {"USERNAME", "admin"},
                          {"HASHED_PASSWORD", "$apr1$x"},
                          {"EMAIL", "ops@example.com"},
                          {"ADMIN_USER", "admin"},
                          {"HOSTNAME", "node1"},
                          {"DOCKER_SOCKET_TYPE", "bind"},
                          {"MY_SECRET", "s3cret"}});
    // Secrets from `environment:` are read and hashed even without file contents.
    auto r = shoal::stack::Load(o);
    if (!r.ok()) FAIL_CHECK(r.error().ToString());
  }
}
