#include "shoal/scheduler/scheduler.h"

#include <catch2/catch.hpp>
#include <map>

using shoal::scheduler::Decision;
using shoal::scheduler::Schedule;
namespace v1 = shoal::v1;

namespace {

v1::Node MakeNode(const std::string& id, std::map<std::string, std::string> labels = {},
                  int64_t memory = 8LL << 30) {
  v1::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname("host-" + id);
  n.mutable_description()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->set_memory_bytes(memory);
  n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
  for (auto& [k, v] : labels) (*n.mutable_spec()->mutable_labels())[k] = v;
  return n;
}

v1::Task MakeTask(const std::string& id, const std::string& service = "web") {
  v1::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id(service);
  t.set_desired_state(v1::TASK_RUNNING);
  return t;
}

std::map<std::string, int> PerNode(const Decision& d) {
  std::map<std::string, int> out;
  for (const auto& a : d.assigned) out[a.node_id]++;
  return out;
}

}  // namespace

TEST_CASE("replicas spread evenly over ready nodes, deterministically") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2"), MakeNode("n3")};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 6; ++i) pending.push_back(MakeTask("t" + std::to_string(i)));
  Decision d = Schedule(nodes, {}, pending);
  CHECK(d.unplaced.empty());
  CHECK(PerNode(d) == std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}});
  Decision again = Schedule(nodes, {}, pending);
  for (size_t i = 0; i < d.assigned.size(); ++i)
    CHECK(again.assigned[i].node_id == d.assigned[i].node_id);
}

TEST_CASE("existing tasks count: new tasks go where the service has fewest") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2")};
  v1::Task running = MakeTask("r1");
  running.set_node_id("n1");
  Decision d = Schedule(nodes, {running}, {MakeTask("t1")});
  REQUIRE(d.assigned.size() == 1);
  CHECK(d.assigned[0].node_id == "n2");
}

TEST_CASE("a task that fits nowhere says why, node by node") {
  std::vector<v1::Node> nodes = {MakeNode("n1", {{"zone", "us"}}), MakeNode("n2", {{"zone", "us"}}),
                                 MakeNode("n3", {{"zone", "us"}}),
                                 MakeNode("n4", {{"zone", "eu"}}, 1 << 20)};
  v1::Task t = MakeTask("t1");
  t.mutable_placement()->add_constraints("node.labels.zone == eu");
  t.mutable_resources()->mutable_reservations()->set_memory_bytes(512LL << 20);
  Decision d = Schedule(nodes, {}, {t});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].message ==
        "0/4 nodes: 3 constraint node.labels.zone == eu, 1 insufficient memory");
}

TEST_CASE("down, paused and drained nodes get no tasks") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2"), MakeNode("n3")};
  nodes[0].mutable_status()->set_state(v1::NodeStatus::STATE_DOWN);
  nodes[1].mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
  nodes[2].mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_PAUSE);
  Decision d = Schedule(nodes, {}, {MakeTask("t1")});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].message == "0/3 nodes: 1 drained, 1 not ready, 1 paused");
}

TEST_CASE("constraints with != and on node attributes") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2")};
  nodes[1].mutable_spec()->set_desired_role(v1::NodeSpec::ROLE_MANAGER);
  v1::Task t = MakeTask("t1");
  t.mutable_placement()->add_constraints("node.role != manager");
  Decision d = Schedule(nodes, {}, {t});
  REQUIRE(d.assigned.size() == 1);
  CHECK(d.assigned[0].node_id == "n1");
  v1::Task h = MakeTask("t2");
  h.mutable_placement()->add_constraints("node.hostname == host-n2");
  CHECK(Schedule(nodes, {}, {h}).assigned.at(0).node_id == "n2");
  v1::Task missing = MakeTask("t3");
  missing.mutable_placement()->add_constraints("node.labels.ssd != true");  // no label: passes
  CHECK(Schedule(nodes, {}, {missing}).assigned.size() == 1);
}

TEST_CASE("max replicas per node and host ports limit a node") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2")};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 3; ++i) {
    v1::Task t = MakeTask("t" + std::to_string(i));
    t.mutable_placement()->set_max_replicas_per_node(1);
    pending.push_back(t);
  }
  Decision d = Schedule(nodes, {}, pending);
  CHECK(d.assigned.size() == 2);
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].message == "0/2 nodes: 2 max replicas per node (1)");

  std::vector<v1::Task> ported;
  for (int i = 0; i < 3; ++i) {
    v1::Task t = MakeTask("p" + std::to_string(i), "api");
    auto* p = t.mutable_endpoint()->add_ports();
    p->set_mode(v1::PortConfig::PUBLISH_HOST);
    p->set_published(8080);
    p->set_target(80);
    p->set_protocol("tcp");
    ported.push_back(t);
  }
  Decision h = Schedule(nodes, {}, ported);
  CHECK(h.assigned.size() == 2);
  REQUIRE(h.unplaced.size() == 1);
  CHECK(h.unplaced[0].message == "0/2 nodes: 2 host port 8080/tcp in use");
}

TEST_CASE("spread preferences balance label groups before nodes") {
  // Two nodes in zone a, one in zone b: with spread over zones, b gets half.
  std::vector<v1::Node> nodes = {MakeNode("n1", {{"zone", "a"}}), MakeNode("n2", {{"zone", "a"}}),
                                 MakeNode("n3", {{"zone", "b"}})};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 4; ++i) {
    v1::Task t = MakeTask("t" + std::to_string(i));
    t.mutable_placement()->add_spread("node.labels.zone");
    pending.push_back(t);
  }
  Decision d = Schedule(nodes, {}, pending);
  auto per = PerNode(d);
  CHECK(per["n3"] == 2);
  CHECK(per["n1"] + per["n2"] == 2);
}

TEST_CASE("nodes without the spread label form a group of their own") {
  std::vector<v1::Node> nodes = {MakeNode("n1", {{"zone", "a"}}), MakeNode("n2", {{"zone", "a"}}),
                                 MakeNode("n3")};
  v1::Task placed = MakeTask("r1");
  placed.set_node_id("n1");
  std::vector<v1::Task> pending;
  for (int i = 0; i < 3; ++i) {
    v1::Task t = MakeTask("t" + std::to_string(i));
    t.mutable_placement()->add_spread("node.labels.zone");
    pending.push_back(t);
  }
  // Zone a already has one: the unlabelled group gets the first, then they alternate.
  Decision d = Schedule(nodes, {placed}, pending);
  REQUIRE(d.assigned.size() == 3);
  CHECK(d.assigned[0].node_id == "n3");
  CHECK(d.assigned[1].node_id == "n2");
  CHECK(d.assigned[2].node_id == "n3");
}

TEST_CASE("a global task is checked against its own node only") {
  std::vector<v1::Node> nodes = {MakeNode("n1"), MakeNode("n2")};
  v1::Task g = MakeTask("g1", "agent");
  g.set_node_id("n2");
  Decision d = Schedule(nodes, {}, {g});
  REQUIRE(d.assigned.size() == 1);
  CHECK(d.assigned[0].node_id == "n2");
  nodes[1].mutable_spec()->set_availability(v1::NodeSpec::AVAILABILITY_DRAIN);
  Decision none = Schedule(nodes, {}, {g});
  REQUIRE(none.unplaced.size() == 1);
  CHECK(none.unplaced[0].message == "0/1 nodes: 1 drained");
}

TEST_CASE("an empty cluster places nothing and says so") {
  Decision d = Schedule({}, {}, {MakeTask("t1")});
  REQUIRE(d.unplaced.size() == 1);
  CHECK(d.unplaced[0].message == "0/0 nodes: the cluster has no nodes");
}
