// The docker executor's parts that need no engine: the create body made from
// a spec, names and labels, file targets, the log framing, and the errors
// for an engine that is absent or too old (a fake one on a unix socket).

#include <rapidjson/document.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "create.h"
#include "engine.h"
#include "files.h"
#include "shoal/executor/docker.h"

namespace shoal::executor {
namespace {

namespace fs = std::filesystem;

v1::Task FullTask() {
  v1::Task t;
  t.mutable_meta()->set_id("task1");
  t.set_service_name("shop_web");
  t.set_service_id("svc1");
  t.set_stack("shop");
  t.set_slot(2);
  auto* s = t.mutable_spec();
  s->set_image("nginx:1");
  s->add_entrypoint("/docker-entrypoint.sh");
  s->add_command("nginx");
  (*s->mutable_env())["B"] = "2";
  (*s->mutable_env())["A"] = "1";
  (*s->mutable_labels())["team"] = "x";
  (*s->mutable_labels())["shoal.task.id"] = "forged";
  s->set_user("101:101");
  s->add_groups("audio");
  s->set_working_dir("/srv");
  s->set_hostname("web1");
  s->mutable_dns()->add_nameservers("1.1.1.1");
  s->mutable_dns()->add_search("corp");
  s->add_extra_hosts("db:10.0.0.5");
  s->add_cap_add("NET_ADMIN");
  s->add_cap_drop("MKNOD");
  (*s->mutable_sysctls())["net.core.somaxconn"] = "1024";
  auto* u = s->add_ulimits();
  u->set_name("nofile");
  u->set_soft(1000);
  u->set_hard(2000);
  s->set_init(true);
  s->set_tty(true);
  s->set_read_only(true);
  s->set_stop_signal("SIGQUIT");
  s->set_stop_grace_period_ns(5'000'000'000);
  s->mutable_healthcheck()->add_test("CMD-SHELL");
  s->mutable_healthcheck()->add_test("true");
  s->mutable_healthcheck()->set_interval_ns(1'000'000'000);
  s->mutable_healthcheck()->set_retries(2);
  auto* m = s->add_mounts();
  m->set_type(v1::Mount::TYPE_VOLUME);
  m->set_source("shop_data");
  m->set_target("/data");
  m = s->add_mounts();
  m->set_type(v1::Mount::TYPE_BIND);
  m->set_source("/etc/hosts");
  m->set_target("/h");
  m->set_read_only(true);
  m = s->add_mounts();
  m->set_type(v1::Mount::TYPE_TMPFS);
  m->set_target("/tmp");
  m->set_tmpfs_size_bytes(1 << 20);
  s->mutable_logging()->set_driver("json-file");
  (*s->mutable_logging()->mutable_options())["max-size"] = "1m";
  t.mutable_resources()->mutable_limits()->set_nano_cpus(500'000'000);
  t.mutable_resources()->mutable_limits()->set_memory_bytes(64 << 20);
  t.mutable_resources()->mutable_limits()->set_pids(100);
  auto* p = t.mutable_endpoint()->add_ports();
  p->set_target(80);
  p->set_published(8080);
  p->set_protocol("tcp");
  p->set_mode(v1::PortConfig::PUBLISH_HOST);
  p = t.mutable_endpoint()->add_ports();
  p->set_target(443);
  p->set_published(8443);
  p->set_mode(v1::PortConfig::PUBLISH_INGRESS);
  return t;
}

TEST_CASE("docker: the create body carries every field of the spec", "[docker]") {
  v1::Task t = FullTask();
  REQUIRE(docker::ValidateSpec(t).ok());
  std::string body =
      docker::CreateBody(t, "node1", {{"/dev/shm/x/0", "/run/secrets/db"}},
                         {{"shop_default", {"web"}, "", ""}, {"shop_back", {"web"}, "", ""}});
  rapidjson::Document d;
  d.Parse(body.c_str());
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["Image"].GetString()) == "nginx:1");
  CHECK(std::string(d["Entrypoint"][0].GetString()) == "/docker-entrypoint.sh");
  CHECK(std::string(d["Cmd"][0].GetString()) == "nginx");
  CHECK(std::string(d["Env"][0].GetString()) == "A=1");
  CHECK(std::string(d["Env"][1].GetString()) == "B=2");
  CHECK(std::string(d["Labels"]["team"].GetString()) == "x");
  // shoal's own labels win over the spec's.
  CHECK(std::string(d["Labels"]["shoal.task.id"].GetString()) == "task1");
  CHECK(std::string(d["Labels"]["shoal.node.id"].GetString()) == "node1");
  CHECK(std::string(d["Labels"]["shoal.stack"].GetString()) == "shop");
  CHECK(std::string(d["Labels"]["shoal.service.id"].GetString()) == "svc1");
  CHECK(std::string(d["User"].GetString()) == "101:101");
  CHECK(std::string(d["WorkingDir"].GetString()) == "/srv");
  CHECK(std::string(d["Hostname"].GetString()) == "web1");
  CHECK(d["Tty"].GetBool());
  CHECK(std::string(d["StopSignal"].GetString()) == "SIGQUIT");
  CHECK(d["StopTimeout"].GetInt() == 5);
  CHECK(std::string(d["Healthcheck"]["Test"][0].GetString()) == "CMD-SHELL");
  CHECK(d["Healthcheck"]["Interval"].GetInt64() == 1'000'000'000);
  CHECK(d["Healthcheck"]["Retries"].GetInt() == 2);
  CHECK(d["ExposedPorts"].HasMember("80/tcp"));
  // An ingress target gets a host port the engine picks, for the mesh.
  CHECK(d["ExposedPorts"].HasMember("443/tcp"));
  const auto& h = d["HostConfig"];
  CHECK(std::string(h["GroupAdd"][0].GetString()) == "audio");
  CHECK(std::string(h["Dns"][0].GetString()) == "1.1.1.1");
  CHECK(std::string(h["DnsSearch"][0].GetString()) == "corp");
  CHECK(std::string(h["ExtraHosts"][0].GetString()) == "db:10.0.0.5");
  CHECK(std::string(h["CapAdd"][0].GetString()) == "NET_ADMIN");
  CHECK(std::string(h["CapDrop"][0].GetString()) == "MKNOD");
  CHECK(std::string(h["Sysctls"]["net.core.somaxconn"].GetString()) == "1024");
  CHECK(std::string(h["Ulimits"][0]["Name"].GetString()) == "nofile");
  CHECK(h["Ulimits"][0]["Hard"].GetInt() == 2000);
  CHECK(h["Init"].GetBool());
  CHECK(h["ReadonlyRootfs"].GetBool());
  CHECK(h["NanoCpus"].GetInt64() == 500'000'000);
  CHECK(h["Memory"].GetInt64() == 64 << 20);
  CHECK(h["PidsLimit"].GetInt() == 100);
  CHECK(std::string(h["LogConfig"]["Type"].GetString()) == "json-file");
  CHECK(std::string(h["LogConfig"]["Config"]["max-size"].GetString()) == "1m");
  CHECK(std::string(h["PortBindings"]["80/tcp"][0]["HostPort"].GetString()) == "8080");
  CHECK(std::string(h["PortBindings"]["443/tcp"][0]["HostPort"].GetString()).empty());
  CHECK(std::string(h["NetworkMode"].GetString()) == "shop_default");
  REQUIRE(h["Mounts"].Size() == 4);
  CHECK(std::string(h["Mounts"][0]["Type"].GetString()) == "volume");
  CHECK(std::string(h["Mounts"][0]["VolumeOptions"]["Labels"]["shoal.stack"].GetString()) ==
        "shop");
  CHECK(std::string(h["Mounts"][1]["Type"].GetString()) == "bind");
  CHECK(h["Mounts"][1]["ReadOnly"].GetBool());
  CHECK(std::string(h["Mounts"][2]["Type"].GetString()) == "tmpfs");
  CHECK(h["Mounts"][2]["TmpfsOptions"]["SizeBytes"].GetInt() == 1 << 20);
  CHECK(std::string(h["Mounts"][3]["Target"].GetString()) == "/run/secrets/db");
  CHECK(h["Mounts"][3]["ReadOnly"].GetBool());
  // The engine takes one network at create; the rest are connected later.
  const auto& eps = d["NetworkingConfig"]["EndpointsConfig"];
  CHECK(eps.MemberCount() == 1);
  CHECK(std::string(eps["shop_default"]["Aliases"][0].GetString()) == "web");
}

TEST_CASE("docker: names, empty entrypoint, and what the spec check refuses", "[docker]") {
  v1::Task t = FullTask();
  CHECK(docker::ContainerName(t) == "shop_web.2.task1");
  t.set_slot(0);
  t.set_node_id("n1");
  CHECK(docker::ContainerName(t) == "shop_web.n1.task1");  // global tasks

  v1::Task e;
  e.mutable_meta()->set_id("t");
  e.mutable_spec()->set_image("x");
  e.mutable_spec()->set_entrypoint_set(true);
  rapidjson::Document d;
  d.Parse(docker::CreateBody(e, "n", {}, {}).c_str());
  CHECK(std::string(d["Entrypoint"][0].GetString()).empty());  // clears the image's
  CHECK_FALSE(d.HasMember("Cmd"));
  CHECK_FALSE(d.HasMember("Healthcheck"));  // inherits the image's

  v1::Task bad = FullTask();
  bad.mutable_spec()->set_image("");
  CHECK(docker::ValidateSpec(bad).message().find("no image") != std::string::npos);
  bad = FullTask();
  bad.mutable_spec()->set_stop_signal("SIGNOPE");
  CHECK(docker::ValidateSpec(bad).message().find("stop_signal") != std::string::npos);
  bad = FullTask();
  bad.mutable_spec()->mutable_healthcheck()->set_test(0, "HTTP");
  CHECK(docker::ValidateSpec(bad).message().find("unknown test kind") != std::string::npos);
  bad = FullTask();
  bad.mutable_spec()->mutable_mounts(1)->set_source("relative/dir");
  CHECK(docker::ValidateSpec(bad).message().find("not an absolute path") != std::string::npos);
  bad = FullTask();
  bad.mutable_spec()->mutable_mounts(0)->set_type(v1::Mount::TYPE_NPIPE);
  CHECK_FALSE(docker::ValidateSpec(bad).ok());
}

TEST_CASE("docker: file targets and the tmpfs rule for secrets", "[docker]") {
  TaskFile f;
  f.target = "db";
  f.secret = true;
  CHECK(*docker::ContainerTarget(f) == "/run/secrets/db");
  f.secret = false;
  CHECK(*docker::ContainerTarget(f) == "/db");
  f.target = "/etc/app/conf.yml";
  CHECK(*docker::ContainerTarget(f) == "/etc/app/conf.yml");
  f.target = "/etc/../x";
  CHECK_FALSE(docker::ContainerTarget(f).ok());

  TaskFile s;
  s.target = "/run/secrets/pw";
  s.secret = true;
  s.data = "hunter2";
  // A directory on a disk is refused for secrets; a config may go there.
  const fs::path disk = fs::temp_directory_path();
  Status st = docker::CheckFiles({s}, disk);
  if (!st.ok()) CHECK(st.message().find("tmpfs") != std::string::npos);
  TaskFile c;
  c.target = "/app.conf";
  c.data = "x";
  CHECK(docker::CheckFiles({c}, "").ok());
}

TEST_CASE("docker: the log stream's frames are taken apart", "[docker]") {
  std::string raw;
  auto frame = [&](char stream, const std::string& s) {
    raw += stream;
    raw += std::string("\0\0\0", 3);
    raw += static_cast<char>((s.size() >> 24) & 255);
    raw += static_cast<char>((s.size() >> 16) & 255);
    raw += static_cast<char>((s.size() >> 8) & 255);
    raw += static_cast<char>(s.size() & 255);
    raw += s;
  };
  frame(1, "out\n");
  frame(2, "err\n");
  std::string big(300, 'x');
  frame(1, big);
  CHECK(docker::DemuxLogStream(raw) == "out\nerr\n" + big);
  CHECK(docker::DemuxLogStream(raw.substr(0, raw.size() - 1)) == "out\nerr\n");
  CHECK(docker::UrlEncode("{\"a\":[\"b=c\"]}") == "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D");
}

// A fake engine: answers every request on `path` with `reply`.
class FakeEngine {
 public:
  FakeEngine(const std::string& path, std::string reply) : path_(path), reply_(std::move(reply)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    unlink(path.c_str());
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_, 4) == 0);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        std::string req;
        while (req.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = read(c, buf, sizeof buf);
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
        (void)!write(c, reply_.data(), reply_.size());
        close(c);
      }
    });
  }
  ~FakeEngine() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    unlink(path_.c_str());
  }

 private:
  std::string path_, reply_;
  int fd_ = -1;
  std::thread thread_;
};

std::string JsonReply(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

TEST_CASE("docker: clear errors for an engine that is absent, too old, or not one", "[docker]") {
  const std::string sock = "/tmp/shoal-fake-engine-" + std::to_string(getpid()) + ".sock";
  std::string what;
  Status s = ProbeDockerEngine("unix://" + sock, &what);
  CHECK(s.code() == Code::kUnavailable);
  CHECK(s.message().find("no Docker Engine at unix://" + sock) != std::string::npos);

  s = ProbeDockerEngine("tcp://127.0.0.1:2375");
  CHECK(s.code() == Code::kInvalidArgument);

  {
    FakeEngine old(sock, JsonReply(R"({"Version":"18.09.1","ApiVersion":"1.39"})"));
    s = ProbeDockerEngine("unix://" + sock);
    CHECK(s.code() == Code::kFailedPrecondition);
    CHECK(s.message().find("speaks API 1.39; shoal needs 1.41 or later") != std::string::npos);
  }
  {
    FakeEngine ok(sock, JsonReply(R"({"Version":"20.10.24","ApiVersion":"1.41"})"));
    s = ProbeDockerEngine(sock, &what);
    CHECK(s.ok());
    CHECK(what == "Docker Engine 20.10.24 (API 1.41)");
  }
  {
    FakeEngine web(sock, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    s = ProbeDockerEngine(sock);
    CHECK(s.code() == Code::kUnavailable);
    CHECK(s.message().find("refused GET /version: HTTP 404: not found") != std::string::npos);
  }
  // Open refuses the same way before it makes anything.
  DockerOptions o;
  o.host = "unix://" + sock;
  o.node_id = "n1";
  o.state_dir = fs::temp_directory_path() / ("shoal-docker-unit-" + std::to_string(getpid()));
  auto ex = DockerExecutor::Open(o);
  REQUIRE_FALSE(ex.ok());
  CHECK(ex.error().code() == Code::kUnavailable);
  fs::remove_all(o.state_dir);
}

}  // namespace
}  // namespace shoal::executor
