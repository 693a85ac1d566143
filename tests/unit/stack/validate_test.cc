// Errors and warnings: schema errors with file:line:column and key path, all
// errors of a file at once, semantic checks, keys shoal does not apply.

#include <catch2/catch.hpp>

#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::Options;
using testing::ScopedCwd;
using testing::TempDir;

// Loads `yaml` as stack.yml and returns its errors (REQUIREs that it fails).
std::vector<Diagnostic> Errors(const std::string& yaml) {
  TempDir dir;
  std::string f = dir.Write("stack.yml", yaml);
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  return r.error().Errors();
}

// Loads `yaml` as stack.yml and returns the stack (REQUIREs that it loads).
LoadedStack Loads(const std::string& yaml) {
  TempDir dir;
  std::string f = dir.Write("stack.yml", yaml);
  auto r = Load(Options({f}));
  INFO((r.ok() ? std::string() : r.error().ToString()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::string Svc(const std::string& body) { return "services:\n  web:\n    image: nginx\n" + body; }

}  // namespace

TEST_CASE("errors: a wrong type names file:line:column, key path and value") {
  TempDir dir;
  dir.Write("stack.yml",
            "services:\n"
            "  web:\n"
            "    image: nginx\n"
            "    deploy: {replicas: three}\n");
  ScopedCwd cwd(dir.path());
  auto r = Load(Options({"stack.yml"}));
  REQUIRE_FALSE(r.ok());
  const Diagnostics& d = r.error();
  REQUIRE(d.ErrorCount() == 1);
  auto errors = d.Errors();
  const Diagnostic& e = errors[0];
  CHECK(e.severity == Severity::kError);
  REQUIRE(e.mark.file != nullptr);
  CHECK(*e.mark.file == "stack.yml");
  CHECK(e.mark.line == 4);
  CHECK(e.mark.column == 24);
  CHECK(e.path == "services.web.deploy.replicas");
  CHECK(e.message == "expected an integer, got \"three\"");
  CHECK(e.ToString() ==
        "stack.yml:4:24: services.web.deploy.replicas: expected an integer, got \"three\"");
  CHECK(d.ToString() ==
        "error: stack.yml:4:24: services.web.deploy.replicas: expected an integer, got "
        "\"three\"\n");
}

TEST_CASE("errors: the same in block style") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    deploy:\n"
      "      replicas: three\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].mark.line == 5);
  CHECK(errors[0].mark.column == 17);
  CHECK(errors[0].path == "services.web.deploy.replicas");
  CHECK(errors[0].message == "expected an integer, got \"three\"");
}

TEST_CASE("errors: an unknown key suggests the nearest known one") {
  // Whatever its value: a mapping, a scalar, a list or an empty mapping.
  auto errors = Errors(Svc("    enviroment:\n      A: b\n"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].mark.line == 4);
  CHECK(errors[0].mark.column == 5);
  CHECK(errors[0].path == "services.web.enviroment");
  CHECK(errors[0].message == "unknown key \"enviroment\" (did you mean \"environment\"?)");
  for (std::string value : {"x", "[a]", "{}"}) {
    auto e2 = Errors(Svc("    enviroment: " + value + "\n"));
    REQUIRE(e2.size() == 1);
    CHECK(e2[0].path == "services.web.enviroment");
    CHECK(e2[0].message == "unknown key \"enviroment\" (did you mean \"environment\"?)");
  }
  SECTION("several unknown keys in one mapping are each reported") {
    auto e2 = Errors(Svc("    imgae: x\n    enviroment: {}\n"));
    REQUIRE(e2.size() == 2);
    CHECK(e2[0].message == "unknown key \"imgae\" (did you mean \"image\"?)");
    CHECK(e2[1].message == "unknown key \"enviroment\" (did you mean \"environment\"?)");
  }
  SECTION("nested, in deploy") {
    auto e2 = Errors(Svc("    deploy:\n      replica: 2\n"));
    REQUIRE(e2.size() == 1);
    CHECK(e2[0].path == "services.web.deploy.replica");
    CHECK(e2[0].message == "unknown key \"replica\" (did you mean \"replicas\"?)");
    CHECK(e2[0].mark.line == 5);
  }
  SECTION("no suggestion when nothing is close") {
    auto e2 = Errors(Svc("    frobnicate: 1\n"));
    REQUIRE(e2.size() == 1);
    CHECK(e2[0].message == "unknown key \"frobnicate\"");
  }
  SECTION("at the top level") {
    auto e2 = Errors("servics:\n  web:\n    image: nginx\n");
    REQUIRE(e2.size() >= 1);
    CHECK(e2[0].message == "unknown key \"servics\" (did you mean \"services\"?)");
    CHECK(e2[0].mark.line == 1);
  }
}

TEST_CASE("errors: every schema error of a file is reported at once") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    enviroment: {A: b}\n"
      "    ports: 80\n"
      "  api:\n"
      "    image: [not, a, string]\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].mark.line == 4);
  CHECK(errors[0].path == "services.web.enviroment");
  CHECK(errors[0].message == "unknown key \"enviroment\" (did you mean \"environment\"?)");
  CHECK(errors[1].mark.line == 5);
  CHECK(errors[1].mark.column == 12);
  CHECK(errors[1].path == "services.web.ports");
  CHECK(errors[1].message == "expected a list, got an integer (80)");
  CHECK(errors[2].mark.line == 7);
  CHECK(errors[2].path == "services.api.image");
  CHECK(errors[2].message == "expected a string, got a list");
}

TEST_CASE("errors: every semantic error of a file is reported at once") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    stop_grace_period: 1x\n"
      "    networks: [nowhere]\n"
      "    deploy:\n"
      "      placement:\n"
      "        constraints: [node.labels.zone = eu]\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].mark.line == 4);
  CHECK(errors[0].path == "services.web.stop_grace_period");
  CHECK(errors[1].mark.line == 5);
  CHECK(errors[1].path == "services.web.networks.nowhere");
  CHECK(errors[2].mark.line == 8);
  CHECK(errors[2].path == "services.web.deploy.placement.constraints[0]");
}

TEST_CASE("errors: undefined networks, secrets, configs and volumes") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    networks: [front]\n"
      "    secrets: [db_password]\n"
      "    configs: [nginx_conf]\n"
      "    volumes: [data:/var/lib/data]\n");
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].path == "services.web.networks.front");
  CHECK(errors[0].message == "refers to undefined network \"front\"");
  CHECK(errors[0].mark.line == 4);
  CHECK(errors[1].path == "services.web.secrets[0]");
  CHECK(errors[1].message == "refers to undefined secret \"db_password\"");
  CHECK(errors[1].mark.line == 5);
  CHECK(errors[2].path == "services.web.configs[0]");
  CHECK(errors[2].message == "refers to undefined config \"nginx_conf\"");
  CHECK(errors[2].mark.line == 6);
  CHECK(errors[3].path == "services.web.volumes[0]");
  CHECK(errors[3].message == "refers to undefined volume \"data\"");
  CHECK(errors[3].mark.line == 7);
  SECTION("the default network, bind mounts and anonymous volumes need no declaration") {
    Loads(
        "services:\n"
        "  web:\n"
        "    image: nginx\n"
        "    networks: [default]\n"
        "    volumes: [/srv:/srv, ./conf:/conf, /anonymous]\n");
  }
}

TEST_CASE("errors: a port published twice") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    ports: ['80:80']\n"
      "  api:\n"
      "    image: nginx\n"
      "    ports: ['443:443', '80:8080']\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].mark.line == 7);
  CHECK(errors[0].path == "services.api.ports[1]");
  CHECK(errors[0].message == "port 80/tcp is already published by service \"web\"");
  SECTION("the same number over another protocol is another port") {
    Loads(
        "services:\n"
        "  web: {image: nginx, ports: ['53:53/tcp']}\n"
        "  dns: {image: nginx, ports: ['53:53/udp']}\n");
  }
}

TEST_CASE("errors: bad durations, sizes and cpus") {
  SECTION("duration") {
    auto errors = Errors(Svc("    stop_grace_period: 1x\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].mark.line == 4);
    CHECK(errors[0].mark.column == 24);
    CHECK(errors[0].path == "services.web.stop_grace_period");
    CHECK(errors[0].message.find("1x") != std::string::npos);
  }
  SECTION("duration inside healthcheck and update_config") {
    auto errors =
        Errors(Svc("    healthcheck:\n      interval: 10 seconds\n"
                   "    deploy:\n      update_config:\n        delay: -5s\n"));
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].path == "services.web.healthcheck.interval");
    CHECK(errors[1].path == "services.web.deploy.update_config.delay");
  }
  SECTION("size") {
    auto errors =
        Errors(Svc("    deploy:\n      resources:\n        limits:\n          memory: 12QB\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].mark.line == 7);
    CHECK(errors[0].path == "services.web.deploy.resources.limits.memory");
    CHECK(errors[0].message.find("12QB") != std::string::npos);
  }
  SECTION("negative cpus") {
    auto errors = Errors(
        Svc("    deploy:\n      resources:\n        reservations:\n          cpus: '-0.5'\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].mark.line == 7);
    CHECK(errors[0].path == "services.web.deploy.resources.reservations.cpus");
  }
  SECTION("negative cpus as a number") {
    auto errors =
        Errors(Svc("    deploy:\n      resources:\n        limits:\n          cpus: -1\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.deploy.resources.limits.cpus");
  }
  SECTION("good values") {
    auto s =
        Loads(Svc("    stop_grace_period: 1m30s\n"
                  "    deploy:\n"
                  "      resources:\n"
                  "        limits: {cpus: '0.5', memory: 512M}\n"
                  "        reservations: {cpus: 0.25, memory: 1gb}\n"));
    const auto& svc = s.spec.services(0);
    CHECK(svc.container().stop_grace_period_ns() == 90'000'000'000);
    CHECK(svc.resources().limits().nano_cpus() == 500'000'000);
    CHECK(svc.resources().limits().memory_bytes() == 512 * 1024 * 1024);
    CHECK(svc.resources().reservations().nano_cpus() == 250'000'000);
    CHECK(svc.resources().reservations().memory_bytes() == 1024 * 1024 * 1024);
  }
}

TEST_CASE("errors: placement constraint syntax") {
  auto with = [](const std::string& c) {
    return Svc("    deploy:\n      placement:\n        constraints: ['" + c + "']\n");
  };
  for (std::string ok : {"node.labels.zone == eu", "node.labels.zone!=eu", "node.role == manager",
                         "node.hostname != db1", "engine.labels.os == linux",
                         "node.platform.arch == x86_64", "node.id==abc"}) {
    INFO(ok);
    auto s = Loads(with(ok));
    REQUIRE(s.spec.services(0).placement().constraints_size() == 1);
  }
  for (std::string bad : {"node.labels.zone = eu", "foo.bar == x", "node.labels.zone", "== eu",
                          "node.labels.zone == ", "node.role == boss", "node.labels. == x",
                          "node.labels.a == b == c"}) {
    INFO(bad);
    auto errors = Errors(with(bad));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.deploy.placement.constraints[0]");
    CHECK(errors[0].mark.line == 6);
  }
  SECTION("spacing is normalised") {
    auto s = Loads(with("node.labels.zone==eu"));
    CHECK(s.spec.services(0).placement().constraints(0) == "node.labels.zone == eu");
  }
}

TEST_CASE("errors: depends_on cycles and self-dependency") {
  SECTION("self") {
    auto errors = Errors(Svc("    depends_on: [web]\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.depends_on");
    CHECK(errors[0].message == "dependency cycle: web -> web");
    CHECK(errors[0].mark.line == 4);
  }
  SECTION("a cycle of three is reported once") {
    auto errors = Errors(
        "services:\n"
        "  a: {image: x, depends_on: [b]}\n"
        "  b: {image: x, depends_on: [c]}\n"
        "  c: {image: x, depends_on: [a]}\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "dependency cycle: a -> b -> c -> a");
    CHECK(errors[0].mark.line == 4);
  }
  SECTION("an undefined dependency") {
    auto errors = Errors(Svc("    depends_on:\n      db: {condition: service_healthy}\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "depends on an undefined service \"db\"");
    CHECK(errors[0].path == "services.web.depends_on.db");
  }
  SECTION("a diamond is not a cycle") {
    auto s = Loads(
        "services:\n"
        "  a: {image: x, depends_on: [b, c]}\n"
        "  b: {image: x, depends_on: [d]}\n"
        "  c: {image: x, depends_on: {d: {condition: service_healthy}}}\n"
        "  d: {image: x}\n");
    REQUIRE(s.spec.services_size() == 4);
    CHECK(s.spec.services(0).depends_on_size() == 2);
    CHECK(s.spec.services(2).depends_on(0).condition() == v1::Dependency::SERVICE_HEALTHY);
  }
}

TEST_CASE("warnings: keys shoal does not apply warn once each, never fail") {
  auto s = Loads(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    build: .\n"
      "    container_name: web1\n"
      "    privileged: true\n"
      "    network_mode: host\n"
      "    links: [db]\n"
      "    devices: ['/dev/fuse:/dev/fuse']\n"
      "    security_opt: ['no-new-privileges']\n"
      "  db:\n"
      "    image: postgres\n");
  auto warnings = s.warnings.Warnings();
  std::vector<std::string> paths;
  for (const auto& w : warnings) {
    CHECK(w.message.rfind("ignored: ", 0) == 0);
    paths.push_back(w.path);
  }
  CHECK(paths == std::vector<std::string>{"services.web.build", "services.web.container_name",
                                          "services.web.privileged", "services.web.network_mode",
                                          "services.web.links", "services.web.devices",
                                          "services.web.security_opt"});
  CHECK(warnings[0].mark.line == 4);
  CHECK(warnings[6].mark.line == 10);
  CHECK(s.spec.services_size() == 2);
}

TEST_CASE("warnings: keys shoal does not apply also warn under Resolve") {
  TempDir dir;
  std::string f = dir.Write("stack.yml", Svc("    container_name: web1\n"));
  auto r = Resolve(Options({f}));
  REQUIRE(r.ok());
  REQUIRE(r->warnings.Warnings().size() == 1);
  CHECK(r->warnings.Warnings()[0].path == "services.web.container_name");
}

TEST_CASE("errors: network_mode together with networks") {
  auto errors = Errors(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    network_mode: host\n"
      "    networks: [front]\n"
      "networks:\n"
      "  front: {}\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].path == "services.web.network_mode");
  CHECK(errors[0].message == "network_mode and networks cannot be combined");
  CHECK(errors[0].mark.line == 4);
}

TEST_CASE("errors: other semantic refusals") {
  SECTION("external with driver") {
    auto errors = Errors(Svc("networks:\n  n: {external: true, driver: overlay}\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "networks.n");
  }
  SECTION("an invalid service name") {
    auto errors = Errors("services:\n  'we b': {image: nginx}\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message.find("invalid name \"we b\"") == 0);
  }
  SECTION("an invalid port") {
    auto errors = Errors(Svc("    ports: ['80:99999']\n"));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.ports[0]");
  }
  SECTION("a service without an image") {
    auto errors = Errors("services:\n  web:\n    user: root\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web");
    CHECK(errors[0].message.find("has no image") == 0);
  }
  SECTION("an empty file") {
    auto errors = Errors("");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "empty compose file: it defines no services");
  }
  SECTION("a top level that is not a mapping") {
    auto errors = Errors("- a\n- b\n");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "top-level object must be a mapping, got a list");
  }
  SECTION("no file") {
    auto r = Load(LoadOptions{});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errors()[0].message == "no stack file given (use -c FILE)");
  }
  SECTION("a missing file names its path") {
    auto r = Load(Options({"/nonexistent/dir/stack.yml"}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("/nonexistent/dir/stack.yml") != std::string::npos);
  }
}

}  // namespace shoal::stack
