#pragma once

// A hand-built cluster for orchestrator tests: a store::State changed only
// through transactions (as the manager changes it), the Reconcile call with a
// deterministic IdSource, and the few things agents would report.

#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "shoal/orchestrator/load_index.h"
#include "shoal/orchestrator/orchestrator.h"
#include "shoal/store/state.h"
#include "shoal/store/txn.h"

namespace shoal::orchestrator::testing {

namespace v1 = shoal::v1;
using store::Kind;

// task-000001, task-000002, ...: ids that sort in creation order.
class SeqIds : public IdSource {
 public:
  std::string NewTaskId() override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "task-%06d", ++n_);
    return buf;
  }

 private:
  int n_ = 0;
};

inline v1::Node MakeNode(const std::string& id, std::map<std::string, std::string> labels = {}) {
  v1::Node n;
  n.mutable_meta()->set_id(id);
  n.mutable_description()->set_hostname("host-" + id);
  n.mutable_description()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->set_memory_bytes(8LL << 30);
  n.mutable_status()->set_state(v1::NodeStatus::STATE_READY);
  for (auto& [k, v] : labels) (*n.mutable_spec()->mutable_labels())[k] = v;
  return n;
}

inline v1::Service MakeService(const std::string& id, v1::ServiceMode mode, uint64_t replicas = 0) {
  v1::Service s;
  s.mutable_meta()->set_id(id);
  s.mutable_spec()->set_name("demo_" + id);
  s.mutable_spec()->set_stack("demo");
  s.mutable_spec()->set_short_name(id);
  s.mutable_spec()->set_mode(mode);
  s.mutable_spec()->set_replicas(replicas);
  s.mutable_spec()->mutable_container()->set_image("nginx:1");
  s.set_spec_version(1);
  return s;
}

// Outcomes compared whole: mutations, flags and counters.
inline std::string OutcomeKey(const Outcome& out) {
  std::string s;
  for (const auto& m : out.mutations) s += m.SerializeAsString() + "|";
  for (const auto& id : out.unfinished_services) s += id + ",";
  char buf[200];
  std::snprintf(buf, sizeof buf, "%d %lld %zu %zu %zu %zu %zu %zu %zu", out.more_work ? 1 : 0,
                static_cast<long long>(out.wake_at_ns), out.created, out.shut_down, out.deleted,
                out.assigned, out.pending, out.services_written, out.services_seen);
  return s + buf;
}

inline bool SameUsage(const scheduler::Usage& a, const scheduler::Usage& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [node, u] : a) {
    auto it = b.find(node);
    if (it == b.end()) return false;
    const scheduler::NodeUsage& v = it->second;
    if (u.total != v.total || u.nano_cpus != v.nano_cpus || u.memory_bytes != v.memory_bytes ||
        u.per_service != v.per_service || u.host_ports != v.host_ports) {
      return false;
    }
  }
  return true;
}

class TestCluster {
 public:
  store::State state;
  SeqIds ids;
  Options options;
  int64_t now = 1'000'000'000;
  // Kept from every commit's events, as the leader's control loops keep it:
  // Reconcile checks that a pass decides the same with it as without it
  // (and each commit that it equals one rebuilt), unless check_loads is off
  // (timings: the index is then only used).
  LoadIndex loads;
  bool check_loads = true;

  // Creates or replaces an object, as a control-API write would.
  template <class T>
  void Put(T object) {
    const v1::Mutation* cur = state.Get(store::KindTraits<T>::kKind, object.meta().id());
    object.mutable_meta()->set_version(cur ? store::MetaOf(*cur)->version() : 0);
    store::Txn txn;
    txn.Put(object);
    Commit(std::move(txn).Build("test", Tick()));
  }

  // Changes a stored object in place.
  template <class T>
  void Update(const std::string& id, const std::function<void(T&)>& change) {
    const T* cur = state.Get<T>(id);
    REQUIRE(cur != nullptr);
    T copy = *cur;
    change(copy);
    Put(copy);
  }

  template <class T>
  void Remove(const std::string& id) {
    const T* cur = state.Get<T>(id);
    REQUIRE(cur != nullptr);
    store::Txn txn;
    txn.Delete(*cur);
    Commit(std::move(txn).Build("test", Tick()));
  }

  Outcome Reconcile() { return Checked(state, Tick(), ids, options); }

  // orchestrator::Reconcile with the load index kept from the commits, and
  // without it on a copy of the id source: the same outcome, or the test
  // fails. Returns the outcome (and leaves `ids` advanced) as one call would.
  Outcome Checked(const store::State& s, int64_t at, SeqIds& id_source, const Options& o) {
    if (o.loads != nullptr || !loads.Matches(s))
      return orchestrator::Reconcile(s, at, id_source, o);
    if (!check_loads) {
      Options with = o;
      with.loads = &loads;
      return orchestrator::Reconcile(s, at, id_source, with);
    }
    SeqIds copy = id_source;
    Outcome without = orchestrator::Reconcile(s, at, copy, o);
    Options with = o;
    with.loads = &loads;
    Outcome out = orchestrator::Reconcile(s, at, id_source, with);
    CHECK(OutcomeKey(out) == OutcomeKey(without));
    return out;
  }

  // Applies an Outcome as the manager would: one transaction.
  void Apply(const Outcome& out) {
    v1::Command cmd;
    for (const auto& m : out.mutations) *cmd.mutable_transaction()->add_mutations() = m;
    cmd.set_proposer("orchestrator");
    cmd.set_proposed_at_ns(Tick());
    Commit(cmd);
  }

  // Reconcile and apply until a pass has nothing to do; returns the passes
  // that changed something.
  int Converge(int limit = 100) {
    for (int passes = 0; passes < limit; ++passes) {
      Outcome out = Reconcile();
      if (out.mutations.empty()) {
        REQUIRE_FALSE(out.more_work);
        return passes;
      }
      Apply(out);
    }
    FAIL("no fixpoint after " << limit << " passes");
    return limit;
  }

  // Agents: the assigned tasks start running.
  void RunAssigned() {
    SetStatusWhere([](const v1::Task& t) { return t.status().state() == v1::TASK_ASSIGNED; },
                   v1::TASK_RUNNING);
  }
  // Agents: tasks told to stop report SHUTDOWN (those on live nodes).
  void StopRetired() {
    SetStatusWhere(
        [&](const v1::Task& t) {
          const v1::Node* n = state.Get<v1::Node>(t.node_id());
          return t.desired_state() >= v1::TASK_SHUTDOWN && t.status().state() < v1::TASK_COMPLETE &&
                 t.status().state() >= v1::TASK_ASSIGNED && n &&
                 n->status().state() == v1::NodeStatus::STATE_READY;
        },
        v1::TASK_SHUTDOWN);
  }
  // Converges with agents that start what is assigned and stop what is
  // retired, until nothing changes.
  void Settle() {
    for (int i = 0; i < 20; ++i) {
      uint64_t before = state.applied_index();
      Converge();
      RunAssigned();
      StopRetired();
      Converge();
      if (state.applied_index() == before) return;
    }
    FAIL("the cluster did not settle");
  }

  void SetStatus(const std::string& task_id, v1::TaskState s) {
    Update<v1::Task>(task_id, [&](v1::Task& t) {
      t.mutable_status()->set_state(s);
      t.mutable_status()->set_timestamp_ns(now);
    });
  }

  void SetStatusWhere(const std::function<bool(const v1::Task&)>& pred, v1::TaskState s) {
    store::Txn txn;
    for (const v1::Task* t : Tasks()) {
      if (!pred(*t)) continue;
      v1::Task copy = *t;
      copy.mutable_status()->set_state(s);
      copy.mutable_status()->set_timestamp_ns(now);
      txn.Put(copy);
    }
    if (!txn.empty()) Commit(std::move(txn).Build("agent", Tick()));
  }

  std::vector<const v1::Task*> Tasks(const std::string& service_id = "") const {
    std::vector<const v1::Task*> out;
    for (const v1::Mutation* m : state.List(Kind::kTask)) {
      if (service_id.empty() || m->task().service_id() == service_id) out.push_back(&m->task());
    }
    return out;
  }
  std::vector<const v1::Task*> Live(const std::string& service_id) const {
    std::vector<const v1::Task*> out;
    for (const v1::Task* t : Tasks(service_id)) {
      if (t->desired_state() <= v1::TASK_COMPLETE) out.push_back(t);
    }
    return out;
  }
  // Live tasks per node.
  std::map<std::string, int> PerNode(const std::string& service_id) const {
    std::map<std::string, int> out;
    for (const v1::Task* t : Live(service_id)) out[t->node_id()]++;
    return out;
  }
  // slot -> the live task's id.
  std::map<uint64_t, std::string> Slots(const std::string& service_id) const {
    std::map<uint64_t, std::string> out;
    for (const v1::Task* t : Live(service_id)) {
      CHECK(out.count(t->slot()) == 0);
      out[t->slot()] = t->meta().id();
    }
    return out;
  }

 private:
  int64_t Tick() { return now += 1'000'000; }

  void Commit(const v1::Command& cmd) {
    std::vector<store::Event> events;
    Status s = state.Apply(state.applied_index() + 1, cmd, &events);
    INFO(s.ToString());
    REQUIRE(s.ok());
    std::vector<const store::Event*> refs;
    for (const store::Event& e : events) refs.push_back(&e);
    loads.Update(state, refs);  // the first commit builds it
    if (!check_loads) return;
    LoadIndex rebuilt;
    rebuilt.Rebuild(state);
    REQUIRE(SameUsage(loads.usage(), rebuilt.usage()));
    REQUIRE(loads.size() == rebuilt.size());
  }
};

}  // namespace shoal::orchestrator::testing
