// Conversion into StackSpec: names and the stack label, defaults written out,
// order that does not matter, secret hashes, restart policies, service modes.

#include <catch2/catch.hpp>

#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::Options;
using testing::SpecEquals;
using testing::TempDir;

constexpr const char* kLabel = "com.docker.stack.namespace";
constexpr int64_t kSecond = 1'000'000'000;

LoadedStack LoadText(const TempDir& dir, const std::string& name, const std::string& yaml) {
  auto r = Load(Options({dir.Write(name, yaml)}));
  INFO((r.ok() ? std::string() : r.error().ToString()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace

TEST_CASE("convert: names are <stack>_<name> and every object has the stack label") {
  TempDir dir;
  dir.Write("s.txt", "secret");
  dir.Write("c.txt", "config");
  auto s = LoadText(dir, "stack.yml",
                    "services:\n"
                    "  web:\n"
                    "    image: nginx\n"
                    "    networks: [front]\n"
                    "    volumes: [data:/data]\n"
                    "    secrets: [s]\n"
                    "    configs: [c]\n"
                    "networks:\n"
                    "  front: {}\n"
                    "  outside: {external: true}\n"
                    "  named: {name: custom-net}\n"
                    "volumes:\n"
                    "  data: {}\n"
                    "secrets:\n"
                    "  s: {file: ./s.txt}\n"
                    "configs:\n"
                    "  c: {file: ./c.txt}\n");
  const auto& spec = s.spec;
  CHECK(spec.name() == "app");
  REQUIRE(spec.services_size() == 1);
  const auto& web = spec.services(0);
  CHECK(web.name() == "app_web");
  CHECK(web.short_name() == "web");
  CHECK(web.stack() == "app");
  CHECK(web.labels().at(kLabel) == "app");
  CHECK(web.container().labels().at(kLabel) == "app");
  REQUIRE(web.networks_size() == 1);
  CHECK(web.networks(0).target() == "app_front");
  CHECK(web.container().mounts(0).source() == "app_data");
  CHECK(web.container().secrets(0).name() == "app_s");
  CHECK(web.container().configs(0).name() == "app_c");
  CHECK(web.container().configs(0).target() == "/c");

  std::map<std::string, const v1::NetworkSpec*> nets;
  for (const auto& n : spec.networks()) nets[n.short_name()] = &n;
  REQUIRE(nets.size() == 3);
  CHECK(nets["front"]->name() == "app_front");
  CHECK(nets["front"]->driver() == "overlay");
  CHECK(nets["front"]->labels().at(kLabel) == "app");
  CHECK(nets["named"]->name() == "custom-net");
  CHECK(nets["named"]->labels().at(kLabel) == "app");
  CHECK(nets["outside"]->name() == "outside");
  CHECK(nets["outside"]->external());
  REQUIRE(spec.volumes_size() == 1);
  CHECK(spec.volumes(0).name() == "app_data");
  CHECK(spec.volumes(0).labels().at(kLabel) == "app");
  REQUIRE(spec.secrets_size() == 1);
  CHECK(spec.secrets(0).name() == "app_s");
  CHECK(spec.secrets(0).labels().at(kLabel) == "app");
  REQUIRE(spec.configs_size() == 1);
  CHECK(spec.configs(0).name() == "app_c");
  CHECK(spec.configs(0).labels().at(kLabel) == "app");
}

TEST_CASE("convert: a service without networks joins <stack>_default") {
  TempDir dir;
  auto s = LoadText(dir, "stack.yml", "services:\n  web: {image: nginx}\n  api: {image: x}\n");
  REQUIRE(s.spec.networks_size() == 1);
  CHECK(s.spec.networks(0).name() == "app_default");
  CHECK(s.spec.networks(0).labels().at(kLabel) == "app");
  for (const auto& svc : s.spec.services()) {
    REQUIRE(svc.networks_size() == 1);
    CHECK(svc.networks(0).target() == "app_default");
  }
}

TEST_CASE("convert: defaults written out equal defaults left out") {
  TempDir dir;
  auto bare = LoadText(dir, "bare.yml",
                       "services:\n"
                       "  web:\n"
                       "    image: nginx\n"
                       "    ports: ['80:8080']\n");
  auto spelled = LoadText(dir, "spelled.yml",
                          "services:\n"
                          "  web:\n"
                          "    image: nginx\n"
                          "    stop_grace_period: 10s\n"
                          "    ports:\n"
                          "      - target: 8080\n"
                          "        published: 80\n"
                          "        protocol: tcp\n"
                          "        mode: ingress\n"
                          "    deploy:\n"
                          "      mode: replicated\n"
                          "      replicas: 1\n"
                          "      endpoint_mode: vip\n"
                          "      update_config:\n"
                          "        parallelism: 1\n"
                          "        delay: 0s\n"
                          "        order: stop-first\n"
                          "        failure_action: pause\n"
                          "        monitor: 5s\n"
                          "        max_failure_ratio: 0\n"
                          "      rollback_config:\n"
                          "        parallelism: 1\n"
                          "        order: stop-first\n"
                          "        failure_action: pause\n"
                          "        monitor: 5s\n"
                          "      restart_policy:\n"
                          "        condition: any\n"
                          "        delay: 5s\n");
  CHECK(SpecEquals(bare.spec, spelled.spec));
  const auto& web = bare.spec.services(0);
  CHECK(web.mode() == v1::MODE_REPLICATED);
  CHECK(web.replicas() == 1);
  CHECK(web.update_config().parallelism() == 1);
  CHECK(web.update_config().order() == v1::UpdateConfig::ORDER_STOP_FIRST);
  CHECK(web.update_config().failure_action() == v1::UpdateConfig::FAILURE_PAUSE);
  CHECK(web.update_config().monitor_ns() == 5 * kSecond);
  CHECK(web.restart_policy().condition() == v1::RestartPolicy::CONDITION_ANY);
  CHECK(web.restart_policy().delay_ns() == 5 * kSecond);
  CHECK(web.container().stop_grace_period_ns() == 10 * kSecond);
  REQUIRE(web.endpoint().ports_size() == 1);
  CHECK(web.endpoint().ports(0).protocol() == "tcp");
  CHECK(web.endpoint().ports(0).mode() == v1::PortConfig::PUBLISH_INGRESS);
  SECTION("a changed value is a difference") {
    auto three = LoadText(dir, "three.yml",
                          "services:\n  web:\n    image: nginx\n    ports: ['80:8080']\n"
                          "    deploy: {replicas: 3}\n");
    CHECK_FALSE(SpecEquals(bare.spec, three.spec));
  }
}

TEST_CASE("convert: key order and the order of unordered lists do not matter") {
  TempDir dir;
  auto a = LoadText(dir, "a.yml",
                    "services:\n"
                    "  web:\n"
                    "    image: nginx\n"
                    "    cap_add: [NET_ADMIN, SYS_TIME, CHOWN]\n"
                    "    cap_drop: [ALL]\n"
                    "    extra_hosts: ['a:1.1.1.1', 'b:2.2.2.2']\n"
                    "    environment: {A: '1', B: '2'}\n"
                    "    ports: ['80:80', '443:443']\n"
                    "    volumes: ['/a:/a', '/b:/b']\n"
                    "    networks: [x, y]\n"
                    "    deploy:\n"
                    "      placement:\n"
                    "        constraints: [node.role == worker, node.labels.zone == eu]\n"
                    "  api: {image: api}\n"
                    "networks: {x: {}, y: {}}\n");
  auto b = LoadText(dir, "b.yml",
                    "networks: {y: {}, x: {}}\n"
                    "services:\n"
                    "  api: {image: api}\n"
                    "  web:\n"
                    "    deploy:\n"
                    "      placement:\n"
                    "        constraints: [node.labels.zone==eu, node.role==worker]\n"
                    "    networks: [y, x]\n"
                    "    volumes: ['/b:/b', '/a:/a']\n"
                    "    ports: ['443:443', '80:80']\n"
                    "    environment: [B=2, A=1]\n"
                    "    extra_hosts: {b: 2.2.2.2, a: 1.1.1.1}\n"
                    "    cap_drop: [ALL]\n"
                    "    cap_add: [CHOWN, SYS_TIME, NET_ADMIN]\n"
                    "    image: nginx\n");
  CHECK(SpecEquals(a.spec, b.spec));
  const auto& web = a.spec.services(1);
  REQUIRE(web.short_name() == "web");
  CHECK(web.container().cap_add(0) == "CHOWN");
  CHECK(web.placement().constraints(0) == "node.labels.zone == eu");
}

TEST_CASE("convert: secrets and configs read from files carry a sha256 and a version") {
  TempDir dir;
  dir.Write("pw.txt", "hello");
  dir.Write("app.conf", "");
  auto s = LoadText(dir, "stack.yml",
                    "services:\n"
                    "  web:\n"
                    "    image: nginx\n"
                    "    secrets:\n"
                    "      - source: pw\n"
                    "        target: db_password\n"
                    "        uid: '1000'\n"
                    "        mode: 0400\n"
                    "    configs: [conf]\n"
                    "secrets:\n"
                    "  pw: {file: ./pw.txt}\n"
                    "configs:\n"
                    "  conf: {file: ./app.conf}\n");
  REQUIRE(s.spec.secrets_size() == 1);
  const auto& secret = s.spec.secrets(0);
  CHECK(secret.data() == "hello");
  CHECK(secret.data_hash() == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  CHECK(secret.file() == dir.File("pw.txt"));
  const auto& ref = s.spec.services(0).container().secrets(0);
  CHECK(ref.name() == "app_pw");
  CHECK(ref.target() == "/run/secrets/db_password");
  CHECK(ref.uid() == "1000");
  CHECK(ref.gid() == "0");
  CHECK(ref.mode() == 0400);
  CHECK(ref.version() == "2cf24dba5fb0");
  REQUIRE(s.spec.configs_size() == 1);
  CHECK(s.spec.configs(0).data_hash() ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto& cref = s.spec.services(0).container().configs(0);
  CHECK(cref.version() == "e3b0c44298fc");
  CHECK(cref.mode() == 0444);
  CHECK(cref.target() == "/conf");

  SECTION("changed content changes the version") {
    dir.Write("pw.txt", "hello!");
    auto s2 = Load(Options({dir.File("stack.yml")}));
    REQUIRE(s2.ok());
    CHECK(s2->spec.services(0).container().secrets(0).version() != "2cf24dba5fb0");
  }
  SECTION("a missing secret file is an error naming it") {
    std::filesystem::remove(dir.File("pw.txt"));
    auto s2 = Load(Options({dir.File("stack.yml")}));
    REQUIRE_FALSE(s2.ok());
    auto errors = s2.error().Errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "secrets.pw.file");
    CHECK(errors[0].message.find(dir.File("pw.txt")) != std::string::npos);
    SECTION("Resolve does not read it") {
      auto r = Resolve(Options({dir.File("stack.yml")}));
      CHECK(r.ok());
    }
  }
  SECTION("secrets from the environment") {
    std::string f = dir.Write("env.yml",
                              "services:\n  web: {image: nginx, secrets: [tok]}\n"
                              "secrets:\n  tok: {environment: TOKEN}\n");
    auto s2 = Load(Options({f}, {{"TOKEN", "hello"}}));
    REQUIRE(s2.ok());
    CHECK(s2->spec.secrets(0).data_hash() == secret.data_hash());
    auto s3 = Load(Options({f}));
    REQUIRE_FALSE(s3.ok());
    CHECK(s3.error().Errors()[0].message == "variable TOKEN is not set");
  }
}

TEST_CASE("convert: restart: maps to the restart policy") {
  TempDir dir;
  auto policy = [&](const std::string& restart) {
    auto s = LoadText(dir, "stack.yml",
                      "services:\n  web:\n    image: nginx\n    restart: " + restart + "\n");
    return s.spec.services(0).restart_policy();
  };
  auto on_failure = policy("on-failure:3");
  CHECK(on_failure.condition() == v1::RestartPolicy::CONDITION_ON_FAILURE);
  CHECK(on_failure.max_attempts() == 3);
  CHECK(policy("on-failure").condition() == v1::RestartPolicy::CONDITION_ON_FAILURE);
  CHECK(policy("on-failure").max_attempts() == 0);
  CHECK(policy("'no'").condition() == v1::RestartPolicy::CONDITION_NONE);
  CHECK(policy("always").condition() == v1::RestartPolicy::CONDITION_ANY);
  CHECK(policy("unless-stopped").condition() == v1::RestartPolicy::CONDITION_ANY);
  SECTION("deploy.restart_policy wins") {
    auto s = LoadText(dir, "both.yml",
                      "services:\n  web:\n    image: nginx\n    restart: always\n"
                      "    deploy:\n      restart_policy: {condition: on-failure, max_attempts: 5, "
                      "delay: 1s, window: 2m}\n");
    const auto& rp = s.spec.services(0).restart_policy();
    CHECK(rp.condition() == v1::RestartPolicy::CONDITION_ON_FAILURE);
    CHECK(rp.max_attempts() == 5);
    CHECK(rp.delay_ns() == kSecond);
    CHECK(rp.window_ns() == 120 * kSecond);
  }
  SECTION("invalid values") {
    for (std::string bad : {"sometimes", "on-failure:x", "on-failure:-1"}) {
      INFO(bad);
      auto r = Load(Options({dir.Write("bad.yml",
                                       "services:\n  web:\n    image: nginx\n"
                                       "    restart: '" +
                                           bad + "'\n")}));
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().Errors()[0].path == "services.web.restart");
    }
  }
}

TEST_CASE("convert: service modes") {
  TempDir dir;
  auto mode = [&](const std::string& deploy) {
    return LoadText(dir, "stack.yml",
                    "services:\n  web:\n    image: nginx\n    deploy: " + deploy + "\n")
        .spec.services(0);
  };
  auto global = mode("{mode: global}");
  CHECK(global.mode() == v1::MODE_GLOBAL);
  CHECK(global.replicas() == 0);
  auto job = mode("{mode: replicated-job, replicas: 2}");
  CHECK(job.mode() == v1::MODE_REPLICATED_JOB);
  CHECK(job.replicas() == 2);
  CHECK(job.restart_policy().condition() == v1::RestartPolicy::CONDITION_ON_FAILURE);
  CHECK(mode("{mode: global-job}").mode() == v1::MODE_GLOBAL_JOB);
  SECTION("global refuses replicas") {
    auto r = Load(Options({dir.Write("g.yml",
                                     "services:\n  web:\n    image: nginx\n    deploy:\n"
                                     "      mode: global\n      replicas: 2\n")}));
    REQUIRE_FALSE(r.ok());
    auto errors = r.error().Errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.deploy.replicas");
    CHECK(errors[0].mark.line == 6);
    CHECK(errors[0].message == "replicas cannot be set for a global service");
  }
  SECTION("an unknown mode") {
    auto r = Load(Options({dir.Write("m.yml",
                                     "services:\n  web:\n    image: nginx\n    deploy: {mode: "
                                     "sometimes}\n")}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errors()[0].path == "services.web.deploy.mode");
  }
}

TEST_CASE("convert: the rest of a service") {
  TempDir dir;
  auto s = LoadText(dir, "stack.yml",
                    "services:\n"
                    "  web:\n"
                    "    image: nginx\n"
                    "    command: nginx -g 'daemon off;'\n"
                    "    entrypoint: []\n"
                    "    user: '101:101'\n"
                    "    working_dir: /srv\n"
                    "    hostname: '{{.Node.Hostname}}'\n"
                    "    init: true\n"
                    "    read_only: true\n"
                    "    stop_signal: SIGQUIT\n"
                    "    sysctls: [net.core.somaxconn=1024]\n"
                    "    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}\n"
                    "    tmpfs: ['/run:size=64m']\n"
                    "    healthcheck:\n"
                    "      test: curl -f http://localhost\n"
                    "      interval: 10s\n"
                    "      retries: 5\n"
                    "    logging: {driver: json-file, options: {max-size: 10m}}\n"
                    "    ports:\n"
                    "      - '8000-8001:9000-9001/udp'\n"
                    "      - {target: 22, published: 2222, mode: host}\n"
                    "    deploy:\n"
                    "      labels: [traefik.enable=true]\n"
                    "      endpoint_mode: dnsrr\n"
                    "      placement: {max_replicas_per_node: 2, preferences: [{spread: "
                    "node.labels.zone}]}\n"
                    "      update_config: {parallelism: 2, order: start-first, failure_action: "
                    "rollback}\n");
  const auto& web = s.spec.services(0);
  const auto& c = web.container();
  CHECK(std::vector<std::string>(c.command().begin(), c.command().end()) ==
        std::vector<std::string>{"nginx", "-g", "daemon off;"});
  CHECK(c.command_set());
  CHECK(c.entrypoint_set());
  CHECK(c.entrypoint_size() == 0);
  CHECK(c.user() == "101:101");
  CHECK(c.working_dir() == "/srv");
  CHECK(c.hostname() == "{{.Node.Hostname}}");
  CHECK(c.has_init());
  CHECK(c.init());
  CHECK(c.read_only());
  CHECK(c.stop_signal() == "SIGQUIT");
  CHECK(c.sysctls().at("net.core.somaxconn") == "1024");
  REQUIRE(c.ulimits_size() == 2);
  CHECK(c.ulimits(0).name() == "nofile");
  CHECK(c.ulimits(0).hard() == 2048);
  CHECK(c.ulimits(1).soft() == 512);
  CHECK(c.ulimits(1).hard() == 512);
  REQUIRE(c.mounts_size() == 1);
  CHECK(c.mounts(0).type() == v1::Mount::TYPE_TMPFS);
  CHECK(c.mounts(0).tmpfs_size_bytes() == 64 * 1024 * 1024);
  CHECK(std::vector<std::string>(c.healthcheck().test().begin(), c.healthcheck().test().end()) ==
        std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost"});
  CHECK(c.healthcheck().interval_ns() == 10 * kSecond);
  CHECK(c.healthcheck().timeout_ns() == 30 * kSecond);
  CHECK(c.healthcheck().retries() == 5);
  CHECK(c.logging().driver() == "json-file");
  CHECK(c.logging().options().at("max-size") == "10m");
  const auto& ports = web.endpoint().ports();
  REQUIRE(ports.size() == 3);
  CHECK(ports[0].published() == 2222);
  CHECK(ports[0].mode() == v1::PortConfig::PUBLISH_HOST);
  CHECK(ports[1].published() == 8000);
  CHECK(ports[1].target() == 9000);
  CHECK(ports[1].protocol() == "udp");
  CHECK(ports[2].published() == 8001);
  CHECK(ports[2].target() == 9001);
  CHECK(web.endpoint().mode() == v1::EndpointSpec::MODE_DNSRR);
  CHECK(web.labels().at("traefik.enable") == "true");
  CHECK(web.labels().at(kLabel) == "app");
  CHECK(web.placement().max_replicas_per_node() == 2);
  CHECK(web.placement().spread(0) == "node.labels.zone");
  CHECK(web.update_config().parallelism() == 2);
  CHECK(web.update_config().order() == v1::UpdateConfig::ORDER_START_FIRST);
  CHECK(web.update_config().failure_action() == v1::UpdateConfig::FAILURE_ROLLBACK);
  CHECK(web.update_config().monitor_ns() == 5 * kSecond);
}

}  // namespace shoal::stack
