// The dispatcher tests' fixture: a State written through transactions, as
// the store applies them, with the events each write produced.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "shoal/dispatcher/dispatcher.h"
#include "shoal/store/txn.h"

namespace shoal::dispatcher::testing {

constexpr int64_t kSec = 1'000'000'000;

struct Fixture {
  store::State state;
  uint64_t index = 0;

  std::vector<store::Event> Apply(store::Txn txn) {
    std::vector<store::Event> events;
    REQUIRE(state.Apply(++index, std::move(txn).Build("test", 1), &events).ok());
    return events;
  }
  std::vector<store::Event> Apply(const std::vector<v1::Mutation>& muts) {
    v1::Command c;
    for (const auto& m : muts) *c.mutable_transaction()->add_mutations() = m;
    std::vector<store::Event> events;
    REQUIRE(state.Apply(++index, c, &events).ok());
    return events;
  }
  std::vector<store::Event> AddNode(const std::string& id) {
    v1::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_description()->set_hostname(id);
    store::Txn t;
    t.Put(n);
    return Apply(std::move(t));
  }
  std::vector<store::Event> AddTask(const std::string& id, const std::string& node,
                                    v1::TaskState state_now) {
    v1::Task t;
    t.mutable_meta()->set_id(id);
    t.set_node_id(node);
    t.set_desired_state(v1::TASK_RUNNING);
    t.mutable_status()->set_state(state_now);
    store::Txn txn;
    txn.Put(t);
    return Apply(std::move(txn));
  }
};

inline v1::HeartbeatRequest Beat(const std::string& node, const std::string& session = "") {
  v1::HeartbeatRequest r;
  r.set_node_id(node);
  r.set_session_id(session);
  return r;
}

}  // namespace shoal::dispatcher::testing
