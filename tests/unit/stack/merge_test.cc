// Several -c files merged with the compose rules, !reset and !override,
// env_file, extends (same file and other file) and include.

#include <catch2/catch.hpp>

#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::At;
using testing::Options;
using testing::ServiceNode;
using testing::TempDir;

LoadedStack LoadAll(const std::vector<std::string>& files,
                    const std::map<std::string, std::string>& env = {}) {
  auto r = Load(Options(files, env));
  INFO((r.ok() ? std::string() : r.error().ToString()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

const v1::ServiceSpec& Service(const LoadedStack& s, const std::string& short_name) {
  for (const auto& svc : s.spec.services())
    if (svc.short_name() == short_name) return svc;
  FAIL("no service " << short_name);
  return s.spec.services(0);
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

}  // namespace

TEST_CASE("merge: mappings merge key by key, scalars are replaced") {
  TempDir dir;
  std::string base = dir.Write("base.yml",
                               "services:\n"
                               "  web:\n"
                               "    image: nginx:1\n"
                               "    environment: {A: base, B: base}\n"
                               "    labels: [x=1, y=2]\n"
                               "    deploy:\n"
                               "      replicas: 2\n"
                               "      resources: {limits: {memory: 64M}}\n"
                               "  db:\n"
                               "    image: postgres\n");
  std::string over = dir.Write("over.yml",
                               "services:\n"
                               "  web:\n"
                               "    image: nginx:2\n"
                               "    environment: [B=over, C=over]\n"
                               "    labels: {y: '3'}\n"
                               "    deploy:\n"
                               "      resources: {limits: {cpus: '0.5'}}\n"
                               "  cache:\n"
                               "    image: redis\n");
  auto s = LoadAll({base, over});
  REQUIRE(s.spec.services_size() == 3);
  const auto& web = Service(s, "web");
  CHECK(web.container().image() == "nginx:2");
  CHECK(web.container().env().size() == 3);
  CHECK(web.container().env().at("A") == "base");
  CHECK(web.container().env().at("B") == "over");
  CHECK(web.container().env().at("C") == "over");
  CHECK(web.container().labels().at("x") == "1");
  CHECK(web.container().labels().at("y") == "3");
  CHECK(web.replicas() == 2);
  CHECK(web.resources().limits().memory_bytes() == 64 * 1024 * 1024);
  CHECK(web.resources().limits().nano_cpus() == 500'000'000);
  CHECK(Service(s, "db").container().image() == "postgres");
  CHECK(Service(s, "cache").container().image() == "redis");
}

TEST_CASE("merge: ports, volumes, secrets and configs merge by their identity") {
  TempDir dir;
  dir.Write("a.txt", "a");
  dir.Write("b.txt", "b");
  std::string base = dir.Write("base.yml",
                               "services:\n"
                               "  web:\n"
                               "    image: nginx\n"
                               "    ports: ['80:80', '443:443']\n"
                               "    volumes: ['data:/data', '/etc/a:/etc/a:ro']\n"
                               "    secrets:\n"
                               "      - s1\n"
                               "      - {source: s2, target: /run/x}\n"
                               "    configs: [{source: c1, target: /etc/c}]\n"
                               "volumes: {data: {}, other: {}}\n"
                               "secrets:\n"
                               "  s1: {file: ./a.txt}\n"
                               "  s2: {file: ./a.txt}\n"
                               "  s3: {file: ./b.txt}\n"
                               "configs:\n"
                               "  c1: {file: ./a.txt}\n"
                               "  c2: {file: ./b.txt}\n");
  std::string over = dir.Write("over.yml",
                               "services:\n"
                               "  web:\n"
                               "    ports: ['80:80', '8080:8080']\n"
                               "    volumes: ['other:/data', '/etc/b:/etc/b']\n"
                               "    secrets:\n"
                               "      - {source: s1, mode: 0400}\n"
                               "      - {source: s3, target: /run/x}\n"
                               "    configs: [{source: c2, target: /etc/c}]\n");
  auto s = LoadAll({base, over});
  const auto& c = Service(s, "web").container();
  const auto& ports = Service(s, "web").endpoint().ports();
  REQUIRE(ports.size() == 3);
  CHECK(ports[0].published() == 80);
  CHECK(ports[1].published() == 443);
  CHECK(ports[2].published() == 8080);
  REQUIRE(c.mounts_size() == 3);
  CHECK(c.mounts(0).target() == "/data");
  CHECK(c.mounts(0).source() == "app_other");
  CHECK(c.mounts(1).target() == "/etc/a");
  CHECK(c.mounts(1).read_only());
  CHECK(c.mounts(2).target() == "/etc/b");
  REQUIRE(c.secrets_size() == 2);
  CHECK(c.secrets(0).target() == "/run/secrets/s1");
  CHECK(c.secrets(0).mode() == 0400);
  CHECK(c.secrets(1).target() == "/run/x");
  CHECK(c.secrets(1).source() == "s3");
  REQUIRE(c.configs_size() == 1);
  CHECK(c.configs(0).source() == "c2");
}

TEST_CASE("merge: command and entrypoint are replaced, other lists appended") {
  TempDir dir;
  std::string base = dir.Write("base.yml",
                               "services:\n"
                               "  web:\n"
                               "    image: nginx\n"
                               "    command: [nginx, -g, daemon off;]\n"
                               "    entrypoint: /docker-entrypoint.sh --verbose\n"
                               "    cap_add: [NET_ADMIN]\n"
                               "    dns: [1.1.1.1]\n");
  std::string over = dir.Write("over.yml",
                               "services:\n"
                               "  web:\n"
                               "    command: nginx-debug\n"
                               "    entrypoint: [/bin/sh, -c]\n"
                               "    cap_add: [SYS_TIME, NET_ADMIN]\n"
                               "    dns: 8.8.8.8\n");
  auto s = LoadAll({base, over});
  const auto& c = Service(s, "web").container();
  CHECK(Strings(c.command()) == std::vector<std::string>{"nginx-debug"});
  CHECK(Strings(c.entrypoint()) == std::vector<std::string>{"/bin/sh", "-c"});
  CHECK(Strings(c.cap_add()) == std::vector<std::string>{"NET_ADMIN", "SYS_TIME"});
  CHECK(Strings(c.dns().nameservers()) == std::vector<std::string>{"1.1.1.1", "8.8.8.8"});
}

TEST_CASE("merge: !reset removes and !override replaces") {
  TempDir dir;
  std::string base = dir.Write("base.yml",
                               "services:\n"
                               "  web:\n"
                               "    image: nginx\n"
                               "    ports: ['80:80']\n"
                               "    environment: {A: a, B: b}\n"
                               "    user: root\n"
                               "    labels: {x: '1'}\n");
  std::string over = dir.Write("over.yml",
                               "services:\n"
                               "  web:\n"
                               "    ports: !reset []\n"
                               "    user: !reset null\n"
                               "    environment: !override {C: c}\n"
                               "    labels: !override [y=2]\n");
  auto s = LoadAll({base, over});
  const auto& web = Service(s, "web");
  CHECK(web.endpoint().ports_size() == 0);
  CHECK(web.container().user() == "");
  CHECK(web.container().env().size() == 1);
  CHECK(web.container().env().at("C") == "c");
  CHECK(web.container().labels().count("x") == 0);
  CHECK(web.container().labels().at("y") == "2");
  const Node* doc_web = ServiceNode(s, "web");
  CHECK(At(doc_web, "ports") == nullptr);
  CHECK(At(doc_web, "user") == nullptr);
}

TEST_CASE("merge: a later file can remove a whole service with !reset") {
  TempDir dir;
  std::string base =
      dir.Write("base.yml", "services:\n  web: {image: nginx}\n  debug: {image: busybox}\n");
  for (std::string reset : {"!reset {}", "!reset null", "!reset"}) {
    INFO(reset);
    std::string over = dir.Write("over.yml", "services:\n  debug: " + reset + "\n");
    auto s = LoadAll({base, over});
    REQUIRE(s.spec.services_size() == 1);
    CHECK(s.spec.services(0).short_name() == "web");
  }
}

TEST_CASE("env_file is read, environment wins over it") {
  TempDir dir;
  dir.Write("web.env", "# defaults\nA=from-file\nB=from-file\nC=\"multi word\"\nD\n");
  dir.Write("extra.env", "E=extra\n");
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    env_file: [web.env, ./extra.env]\n"
                            "    environment:\n"
                            "      B: inline\n");
  auto s = LoadAll({f}, {{"D", "from-env"}});
  const auto& env = Service(s, "web").container().env();
  CHECK(env.at("A") == "from-file");
  CHECK(env.at("B") == "inline");
  CHECK(env.at("C") == "multi word");
  CHECK(env.at("D") == "from-env");
  CHECK(env.at("E") == "extra");
  CHECK(At(ServiceNode(s, "web"), "env_file") == nullptr);
  SECTION("a single string") {
    std::string g =
        dir.Write("one.yml", "services:\n  web:\n    image: nginx\n    env_file: web.env\n");
    auto s2 = LoadAll({g});
    CHECK(Service(s2, "web").container().env().at("A") == "from-file");
  }
}

TEST_CASE("env_file: a missing file is an error naming the path, unless not required") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    env_file:\n"
                            "      - ./missing.env\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].path == "services.web.env_file[0]");
  CHECK(errors[0].mark.line == 5);
  CHECK(errors[0].message.find(dir.File("missing.env")) != std::string::npos);
  SECTION("required: false") {
    std::string g = dir.Write("opt.yml",
                              "services:\n"
                              "  web:\n"
                              "    image: nginx\n"
                              "    env_file:\n"
                              "      - path: ./missing.env\n"
                              "        required: false\n");
    auto s = LoadAll({g});
    CHECK(Service(s, "web").container().env().empty());
  }
}

TEST_CASE("extends: a service of the same file") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  base:\n"
                            "    image: app:1\n"
                            "    environment: {LEVEL: info, MODE: base}\n"
                            "    command: [serve]\n"
                            "    ports: ['8000:8000']\n"
                            "  worker:\n"
                            "    extends: base\n"
                            "    environment: {MODE: worker}\n"
                            "    command: [work, --fast]\n"
                            "    ports: !reset []\n"
                            "  chained:\n"
                            "    extends: {service: worker}\n"
                            "    user: nobody\n");
  auto s = LoadAll({f});
  const auto& w = Service(s, "worker");
  CHECK(w.container().image() == "app:1");
  CHECK(w.container().env().at("LEVEL") == "info");
  CHECK(w.container().env().at("MODE") == "worker");
  CHECK(Strings(w.container().command()) == std::vector<std::string>{"work", "--fast"});
  CHECK(w.endpoint().ports_size() == 0);
  const auto& c = Service(s, "chained");
  CHECK(c.container().image() == "app:1");
  CHECK(c.container().env().at("MODE") == "worker");
  CHECK(c.container().user() == "nobody");
  CHECK(At(ServiceNode(s, "worker"), "extends") == nullptr);
}

TEST_CASE("extends: a service of another file, with paths relative to that file") {
  TempDir dir;
  dir.Write("common/app.env", "FROM_COMMON=1\n");
  dir.Write("common/services.yml",
            "services:\n"
            "  app:\n"
            "    image: app:2\n"
            "    env_file: app.env\n"
            "    volumes: ['./conf:/conf']\n"
            "    deploy: {replicas: 4}\n");
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    extends:\n"
                            "      file: common/services.yml\n"
                            "      service: app\n"
                            "    deploy: {resources: {limits: {memory: 1G}}}\n");
  auto s = LoadAll({f});
  const auto& web = Service(s, "web");
  CHECK(web.container().image() == "app:2");
  CHECK(web.container().env().at("FROM_COMMON") == "1");
  CHECK(web.replicas() == 4);
  CHECK(web.resources().limits().memory_bytes() == 1024 * 1024 * 1024);
  REQUIRE(web.container().mounts_size() == 1);
  CHECK(web.container().mounts(0).source() == (dir.path() / "common/conf").string());
}

TEST_CASE("extends: cycles and missing bases are refused") {
  TempDir dir;
  SECTION("a cycle in one file") {
    std::string f = dir.Write("stack.yml",
                              "services:\n"
                              "  a: {image: x, extends: b}\n"
                              "  b: {image: x, extends: c}\n"
                              "  c: {image: x, extends: a}\n");
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("extends forms a cycle") != std::string::npos);
  }
  SECTION("a service extending itself") {
    std::string f = dir.Write("stack.yml", "services:\n  a: {image: x, extends: a}\n");
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("cycle") != std::string::npos);
  }
  SECTION("a cycle across files") {
    std::string f = dir.Write(
        "one.yml", "services:\n  a:\n    image: x\n    extends: {file: two.yml, service: b}\n");
    dir.Write("two.yml",
              "services:\n  b:\n    image: x\n    extends: {file: one.yml, service: a}\n");
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("extends itself") != std::string::npos);
  }
  SECTION("an undefined base") {
    std::string f = dir.Write("stack.yml", "services:\n  a:\n    image: x\n    extends: nope\n");
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    auto errors = r.error().Errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "extends an undefined service \"nope\"");
    CHECK(errors[0].mark.line == 4);
  }
  SECTION("a missing file") {
    std::string f = dir.Write(
        "stack.yml", "services:\n  a:\n    image: x\n    extends: {file: gone.yml, service: a}\n");
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("gone.yml") != std::string::npos);
  }
}

TEST_CASE("include: the included files' objects, the including file merged over them") {
  TempDir dir;
  dir.Write("db/compose.yml", "services:\n  db: {image: postgres, environment: {PGDATA: /data}}\n");
  std::string f = dir.Write("stack.yml",
                            "include:\n"
                            "  - db/compose.yml\n"
                            "services:\n"
                            "  web: {image: nginx, depends_on: [db]}\n");
  auto s = LoadAll({f});
  REQUIRE(s.spec.services_size() == 2);
  CHECK(Service(s, "db").container().env().at("PGDATA") == "/data");
  SECTION("a file including itself") {
    std::string g = dir.Write("self.yml", "include: [self.yml]\nservices:\n  a: {image: x}\n");
    auto r = Load(Options({g}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().ToString().find("includes or extends itself") != std::string::npos);
  }
}

}  // namespace shoal::stack
