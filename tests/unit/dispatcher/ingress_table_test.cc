// The routing mesh's table (ingress_table.h) and how the dispatcher sends it:
// built from the state, versioned, sent to every node when it changes and in
// full replies, and free while no service publishes an ingress port.

#include "shoal/dispatcher/ingress_table.h"

#include <catch2/catch.hpp>

#include "shoal/dispatcher/dispatcher.h"
#include "shoal/store/txn.h"

namespace shoal::dispatcher {
namespace {

using store::State;

struct Fixture {
  State state;
  uint64_t index = 0;

  std::vector<store::Event> Apply(std::vector<v1::Mutation> muts) {
    v1::Command c;
    for (auto& m : muts) *c.mutable_transaction()->add_mutations() = m;
    std::vector<store::Event> events;
    Status s = state.Apply(++index, c, &events);
    INFO(s.message());
    REQUIRE(s.ok());
    return events;
  }
  static v1::Mutation Put(const v1::Node& n) {
    v1::Mutation m;
    *m.mutable_node() = n;
    return m;
  }
  static v1::Mutation Put(const v1::Service& s) {
    v1::Mutation m;
    *m.mutable_service() = s;
    return m;
  }
  static v1::Mutation Put(const v1::Task& t) {
    v1::Mutation m;
    *m.mutable_task() = t;
    return m;
  }
  void AddNode(const std::string& id, const std::string& addr,
               v1::NodeStatus::State st = v1::NodeStatus::STATE_READY) {
    v1::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_description()->set_hostname(id);
    n.mutable_status()->set_state(st);
    n.mutable_status()->set_addr(addr);
    Apply({Put(n)});
  }
  // A service; `published` > 0 adds an ingress port published -> 80.
  std::vector<store::Event> AddService(const std::string& id, uint32_t published) {
    v1::Service s;
    s.mutable_meta()->set_id(id);
    s.mutable_spec()->set_name("st_" + id);
    if (published > 0) {
      auto* p = s.mutable_spec()->mutable_endpoint()->add_ports();
      p->set_target(80);
      p->set_published(published);
      p->set_protocol("tcp");
      p->set_mode(v1::PortConfig::PUBLISH_INGRESS);
      auto* h = s.mutable_spec()->mutable_endpoint()->add_ports();
      h->set_target(81);
      h->set_published(published + 1);
      h->set_mode(v1::PortConfig::PUBLISH_HOST);  // not the mesh's
    }
    return Apply({Put(s)});
  }
  void AddTask(const std::string& id, const std::string& service, const std::string& node,
               v1::TaskState st, v1::TaskState desired = v1::TASK_RUNNING) {
    v1::Task t;
    t.mutable_meta()->set_id(id);
    t.set_service_id(service);
    t.set_node_id(node);
    t.set_desired_state(desired);
    t.mutable_status()->set_state(st);
    Apply({Put(t)});
  }
  // The agent's report: RUNNING, with the host port its engine bound for 80.
  std::vector<store::Event> Running(const std::string& id, uint32_t host_port) {
    v1::Mutation m;
    m.set_op(v1::Mutation::OP_TASK_STATUS);
    m.mutable_task()->mutable_meta()->set_id(id);
    auto* st = m.mutable_task()->mutable_status();
    st->set_state(v1::TASK_RUNNING);
    st->set_timestamp_ns(static_cast<int64_t>(index));
    auto* p = st->add_ports();
    p->set_target(80);
    p->set_protocol("tcp");
    p->set_published(host_port);
    return Apply({m});
  }
};

// A session for `node` with its full set taken and a call parked; replies
// land in `got` and count in `calls`.
struct Agent {
  explicit Agent(std::string n) : node(std::move(n)) {}
  std::string node;
  std::string session;
  v1::AssignmentsReply got;
  int calls = 0;

  void Connect(Dispatcher& d, const State& state) {
    v1::HeartbeatRequest hb;
    hb.set_node_id(node);
    auto r = d.Heartbeat(state, hb, 0);
    REQUIRE(r.ok());
    session = r->session_id();
    Poll(d, state, 0);
  }
  void Poll(Dispatcher& d, const State& state, uint64_t known) {
    v1::AssignmentsRequest req;
    req.set_node_id(node);
    req.set_session_id(session);
    req.set_known_generation(known);
    d.Assignments(state, req, 0, [this](Status s, v1::AssignmentsReply r) {
      REQUIRE(s.ok());
      got = std::move(r);
      ++calls;
    });
  }
  void Park(Dispatcher& d, const State& state) { Poll(d, state, got.generation()); }
};

}  // namespace

TEST_CASE("ingress: node address hosts") {
  CHECK(AddrHost("10.0.0.1:7370") == "10.0.0.1");
  CHECK(AddrHost("[fd00::2]:7370") == "fd00::2");
  CHECK(AddrHost("fd00::2") == "fd00::2");
  CHECK(AddrHost("127.0.0.3") == "127.0.0.3");
  CHECK(AddrHost("") == "");
}

TEST_CASE("ingress: the table lists ingress services and their running tasks on live nodes") {
  Fixture f;
  f.AddNode("n1", "10.0.0.1:7370");
  f.AddNode("n2", "[fd00::2]:7370");
  f.AddNode("n3", "10.0.0.3:7370", v1::NodeStatus::STATE_DOWN);
  f.AddService("s1", 8080);
  f.AddService("s2", 0);  // no ports: not in the table
  f.AddTask("t1", "s1", "n1", v1::TASK_ASSIGNED);
  f.Running("t1", 32768);
  f.AddTask("t2", "s1", "n2", v1::TASK_RUNNING, v1::TASK_SHUTDOWN);  // being stopped
  f.AddTask("t3", "s1", "n3", v1::TASK_RUNNING);                     // its node is down
  f.AddTask("t4", "s1", "n2", v1::TASK_STARTING);                    // not running yet
  f.AddTask("t5", "s2", "n2", v1::TASK_RUNNING);
  f.AddTask("t6", "s1", "n2", v1::TASK_ASSIGNED);
  f.Running("t6", 32769);

  v1::IngressTable t = BuildIngressTable(f.state);
  REQUIRE(t.services_size() == 1);
  const v1::IngressService& s = t.services(0);
  CHECK(s.service_id() == "s1");
  CHECK(s.service_name() == "st_s1");
  REQUIRE(s.ports_size() == 1);  // the host-mode port is not the mesh's
  CHECK(s.ports(0).published() == 8080);
  CHECK(s.ports(0).target() == 80);
  REQUIRE(s.backends_size() == 2);
  CHECK(s.backends(0).task_id() == "t1");
  CHECK(s.backends(0).node_id() == "n1");
  CHECK(s.backends(0).node_addr() == "10.0.0.1");
  REQUIRE(s.backends(0).ports_size() == 1);
  CHECK(s.backends(0).ports(0).published() == 32768);
  CHECK(s.backends(1).task_id() == "t6");
  CHECK(s.backends(1).node_addr() == "fd00::2");
  CHECK(s.backends(1).ports(0).published() == 32769);
}

TEST_CASE("ingress: the tracker rebuilds only for events that may change the table") {
  Fixture f;
  f.AddNode("n1", "10.0.0.1:7370");
  IngressTracker tr;
  CHECK_FALSE(tr.Refresh(f.state));  // empty, as before: no version
  CHECK(tr.version() == 0);
  // Without any ingress service, nothing marks it: no rebuild at all.
  std::vector<store::Event> ev = f.AddService("plain", 0);
  f.AddTask("p1", "plain", "n1", v1::TASK_ASSIGNED);
  for (const auto& e : f.Running("p1", 0)) tr.Observe(e.mutation);
  for (const auto& e : ev) tr.Observe(e.mutation);
  CHECK_FALSE(tr.Refresh(f.state));
  CHECK(tr.version() == 0);

  for (const auto& e : f.AddService("web", 8080)) tr.Observe(e.mutation);
  CHECK(tr.Refresh(f.state));
  CHECK(tr.version() == 1);
  CHECK(tr.table().services_size() == 1);
  CHECK_FALSE(tr.Refresh(f.state));  // nothing since
  f.AddTask("w1", "web", "n1", v1::TASK_ASSIGNED);
  for (const auto& e : f.Running("w1", 40000)) tr.Observe(e.mutation);
  CHECK(tr.Refresh(f.state));
  CHECK(tr.version() == 2);
  REQUIRE(tr.table().services(0).backends_size() == 1);
  // A plain task's report does not even mark it.
  for (const auto& e : f.Running("p1", 1)) tr.Observe(e.mutation);
  CHECK_FALSE(tr.Refresh(f.state));
  CHECK(tr.version() == 2);
  // Rebuilt service by service, it is the table built from scratch.
  CHECK(tr.table().SerializeAsString() == BuildIngressTable(f.state).SerializeAsString());
  // A node's change rebuilds everything; a second service joins the table.
  for (const auto& e : f.AddService("api", 9090)) tr.Observe(e.mutation);
  tr.Invalidate();
  CHECK(tr.Refresh(f.state));
  CHECK(tr.version() == 3);
  CHECK(tr.table().services_size() == 2);
  CHECK(tr.table().SerializeAsString() == BuildIngressTable(f.state).SerializeAsString());
}

TEST_CASE("ingress: the dispatcher sends a new table to every node, once per change") {
  Fixture f;
  f.AddNode("n1", "127.0.0.1:7370");
  f.AddNode("n2", "127.0.0.1:7371");
  f.AddService("web", 8080);
  f.AddTask("w1", "web", "n1", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  Agent a("n1"), b("n2");
  a.Connect(d, f.state);
  b.Connect(d, f.state);
  REQUIRE(a.calls == 1);
  REQUIRE(b.calls == 1);
  // The full sets carry the table: the service, no backend running yet.
  REQUIRE(a.got.has_ingress());
  REQUIRE(b.got.ingress().services_size() == 1);
  CHECK(b.got.ingress().services(0).backends_size() == 0);
  a.Park(d, f.state);
  b.Park(d, f.state);
  CHECK(d.waiting() == 2);

  // w1 runs on n1: both nodes get the new table (n2 has no task of it).
  d.Changed(f.state, f.Running("w1", 40000));
  REQUIRE(a.calls == 2);
  REQUIRE(b.calls == 2);
  CHECK_FALSE(b.got.full());
  CHECK(b.got.tasks_size() == 0);
  REQUIRE(b.got.ingress().services(0).backends_size() == 1);
  CHECK(b.got.ingress().services(0).backends(0).node_addr() == "127.0.0.1");
  CHECK(b.got.ingress().services(0).backends(0).ports(0).published() == 40000);

  // An event that leaves the table as it is wakes nobody.
  a.Park(d, f.state);
  b.Park(d, f.state);
  std::vector<store::Event> same;
  {
    v1::Node n = *f.state.Get<v1::Node>("n2");
    n.mutable_description()->set_os("linux");
    v1::Mutation m = Fixture::Put(n);
    m.set_expected_version(n.meta().version());
    same = f.Apply({m});
  }
  d.Changed(f.state, same);
  CHECK(a.calls == 2);
  CHECK(b.calls == 2);

  // The service goes: an empty table, which is sent (has_ingress).
  v1::Mutation del;
  del.set_op(v1::Mutation::OP_DELETE);
  *del.mutable_service() = *f.state.Get<v1::Service>("web");
  d.Changed(f.state, f.Apply({del}));
  REQUIRE(b.calls == 3);
  CHECK(b.got.has_ingress());
  CHECK(b.got.ingress().services_size() == 0);
}

TEST_CASE("ingress: without ingress services replies carry no table") {
  Fixture f;
  f.AddNode("n1", "127.0.0.1:7370");
  f.AddService("plain", 0);
  f.AddTask("p1", "plain", "n1", v1::TASK_ASSIGNED);
  Dispatcher d({});
  d.BecomeLeader(f.state, 0);
  Agent a("n1");
  a.Connect(d, f.state);
  REQUIRE(a.calls == 1);
  CHECK(a.got.full());
  CHECK_FALSE(a.got.has_ingress());
  a.Park(d, f.state);
  d.Changed(f.state, f.Running("p1", 0));
  CHECK(a.calls == 1);  // a status report is no news, and no table either
}

}  // namespace shoal::dispatcher
