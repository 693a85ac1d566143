// Stack networks and host-mode ports with the docker executor: two services
// of a stack on one engine bridge network reach each other by service name,
// a host port answers from the host, and the network goes with its last task.

#include "docker_test_util.h"

namespace shoal::executor::dtest {
namespace {

v1::Task StackTask(const std::string& stack, const std::string& service, const std::string& id,
                   const std::string& script) {
  v1::Task t = ShellTask(id, script);
  t.set_stack(stack);
  t.set_service_name(stack + "_" + service);
  t.add_networks()->set_target(stack + "_default");
  return t;
}

TEST_CASE("docker: a stack network joins services by name; host ports publish", "[docker]") {
  Env env("net");
  auto ex = env.Open();
  const std::string stack = "nt" + std::to_string(getpid());
  const std::string net = stack + "_default";
  const int port = 20000 + getpid() % 20000;
  v1::Task web = StackTask(stack, "web", "web1",
                           "trap 'exit 0' TERM; mkdir -p /www; echo hello from web > "
                           "/www/index.html; httpd -f -p 8080 -h /www & wait");
  auto* p = web.mutable_endpoint()->add_ports();
  p->set_target(8080);
  p->set_published(static_cast<uint32_t>(port));
  p->set_protocol("tcp");
  p->set_mode(v1::PortConfig::PUBLISH_HOST);
  web.mutable_networks(0)->add_aliases("www");
  web.set_service_id("web-svc");
  // And an ingress port: served by the executor's forwarding proxy.
  const int ingress_port = port + 1;
  p = web.mutable_endpoint()->add_ports();
  p->set_target(8080);
  p->set_published(static_cast<uint32_t>(ingress_port));
  p->set_protocol("tcp");
  p->set_mode(v1::PortConfig::PUBLISH_INGRESS);
  v1::Task cli = StackTask(stack, "cli", "cli1",
                           "for i in $(seq 1 100); do wget -qO- http://web:8080/ && "
                           "wget -qO- http://www:8080/ && exit 0; sleep 0.1; done; exit 1");
  REQUIRE(ex->Start(web, {}).ok());
  REQUIRE(ex->Start(cli, {}).ok());
  WaitState(*ex, "web1", v1::TASK_RUNNING);
  Observed c = WaitState(*ex, "cli1", v1::TASK_COMPLETE, 30s);
  CHECK(c.state == v1::TASK_COMPLETE);
  std::string log = WaitForLog(*ex, "cli1", "hello from web");
  // (after "can't connect" lines if it ran before httpd listened)
  CHECK(log.find("hello from web\nhello from web\n") != std::string::npos);
  CHECK(Eventually([&] { return HttpGet(port).find("hello from web") != std::string::npos; }, 10s));
  CHECK(HttpGet(ingress_port).find("hello from web") != std::string::npos);

  auto net_status = [&] {
    auto r = Client().Call("GET", "/networks/" + net);
    return r.ok() ? r->status : 0;
  };
  CHECK(net_status() == 200);
  // A new executor (the agent restarted) counts the adopted containers'
  // networks, so the last removal still takes the network away.
  ex.reset();
  ex = env.Open();
  WaitState(*ex, "cli1", v1::TASK_COMPLETE);
  // The ingress port went with the old executor; the agent's Start for the
  // adopted task publishes it again.
  REQUIRE(ex->Start(web, {}).ok());
  CHECK(HttpGet(ingress_port).find("hello from web") != std::string::npos);
  REQUIRE(ex->Remove("cli1").ok());
  CHECK(net_status() == 200);  // web still uses it
  StopAndRemove(*ex, "web1");
  CHECK(Eventually([&] { return net_status() == 404; }));
  CHECK(Eventually([&] { return HttpGet(ingress_port).empty(); }));  // no longer listening
  CHECK(Eventually([&] { return NodeContainers(env.node).empty(); }));
}

// The container's create runs beside the network's (the engine looks the
// network up only at the start): a network the engine refuses still rejects
// the task, and the container made meanwhile goes with its removal.
TEST_CASE("docker: a network the engine refuses rejects the task; no container stays", "[docker]") {
  Env env("netbad");
  auto ex = env.Open();
  const std::string stack = "nb" + std::to_string(getpid());
  v1::Task t = StackTask(stack, "web", "bad1", "sleep 30");
  t.mutable_networks(0)->set_subnet("10.300.0.0/24");  // refused by the engine
  REQUIRE(ex->Start(t, {}).ok());
  Observed o = WaitState(*ex, "bad1", v1::TASK_REJECTED, 20s);
  CHECK(o.state == v1::TASK_REJECTED);
  CHECK(o.error.find("creating network " + stack + "_default") != std::string::npos);
  REQUIRE(ex->Remove("bad1").ok());
  CHECK(Eventually([&] { return NodeContainers(env.node).empty(); }));
  auto r = Client().Call("GET", "/networks/" + stack + "_default");
  CHECK((r.ok() && r->status == 404));
}

}  // namespace
}  // namespace shoal::executor::dtest
