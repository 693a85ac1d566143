// libFuzzer target for the store's apply step: whatever Command a Raft entry
// holds (a corrupt or hostile entry, a bug in a proposer), State::Apply must
// return a status, never crash or assert, and:
//   - a refused plain command leaves the state exactly as it was, with no
//     events;
//   - a batch reports one result per command;
//   - ApplyConsuming (the store's fast path) ends in the same state with the
//     same status as Apply;
//   - the state's snapshot restores to the same state.
//
// The base state holds two nodes, a stack with a revision, a service, a
// network and two tasks, so that commands may update, delete or collide.
//
// Input: a Command in protobuf text format, or else in binary.

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "shoal/store/state.h"

namespace {

using namespace shoal;

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "store_apply_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

class Silent : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

const store::State& BaseState() {
  static const store::State state = [] {
    const char* text = R"pb(
      transaction {
        mutations {
          node {
            meta { id: "n1" }
            description { hostname: "host-1" }
          }
        }
        mutations {
          node {
            meta { id: "n2" }
            description { hostname: "host-2" }
          }
        }
        mutations {
          stack {
            meta { id: "s1" }
            name: "app"
            current_revision: 1
          }
        }
        mutations {
          stack_revision {
            meta { id: "r1" }
            stack: "app"
            number: 1
            spec { name: "app" }
          }
        }
        mutations {
          service {
            meta { id: "sv1" }
            spec {
              name: "app_web"
              stack: "app"
              replicas: 2
              container { image: "img:1" }
            }
            spec_version: 1
          }
        }
        mutations {
          network {
            meta { id: "net1" }
            spec { name: "app_net" }
          }
        }
        mutations {
          task {
            meta { id: "t1" }
            service_id: "sv1"
            slot: 1
            node_id: "n1"
            desired_state: TASK_RUNNING
            status { state: TASK_RUNNING }
          }
        }
        mutations {
          task {
            meta { id: "t2" }
            service_id: "sv1"
            slot: 2
            node_id: "n2"
            desired_state: TASK_RUNNING
            status { state: TASK_ASSIGNED }
          }
        }
      }
    )pb";
    v1::Command c;
    if (!google::protobuf::TextFormat::ParseFromString(text, &c)) Die("base command", text);
    store::State s;
    if (Status st = s.Apply(1, c, nullptr); !st.ok()) Die("building the base state", st.ToString());
    return s;
  }();
  return state;
}

std::string Canonical(const store::State& state, bool with_index = false) {
  v1::StoreSnapshot snap = state.ToSnapshot();
  if (!with_index) snap.clear_applied_index();  // a refused command still uses up its index
  std::string out;
  if (!snap.SerializeToString(&out)) Die("a snapshot does not serialize", "");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string that is not UTF-8; the log costs more than
  // the parse.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size > (1 << 20)) return 0;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  v1::Command command;
  google::protobuf::TextFormat::Parser parser;
  Silent silent;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(bytes, &command) && !command.ParseFromString(bytes)) return 0;

  const store::State& base = BaseState();
  const std::string before = Canonical(base);
  const uint64_t index = base.applied_index() + 1;

  store::State state = base;
  std::vector<store::Event> events;
  std::vector<Status> results;
  Status s = state.Apply(index, command, &events, &results);
  if (!s.ok() && s.message().empty()) Die("Apply failed without a message", "");
  if (command.has_batch()) {
    if (s.ok() && results.size() != static_cast<size_t>(command.batch().commands_size())) {
      Die("a batch reported the wrong number of results", std::to_string(results.size()));
    }
  } else if (!s.ok()) {
    if (Canonical(state) != before) Die("a refused command changed the state", s.ToString());
    if (!events.empty()) Die("a refused command emitted events", s.ToString());
  }

  // The store's fast path agrees with the plain one.
  store::State fast = base;
  v1::Command consumed = command;
  std::vector<Status> fast_results;
  Status fs = fast.ApplyConsuming(index, &consumed, nullptr, &fast_results);
  if (fs.code() != s.code())
    Die("ApplyConsuming and Apply disagree", fs.ToString() + " vs " + s.ToString());
  if (Canonical(fast, true) != Canonical(state, true)) {
    Die("ApplyConsuming and Apply end in different states", s.ToString());
  }
  if (fast_results.size() != results.size()) Die("ApplyConsuming results differ", "");
  for (size_t i = 0; i < results.size(); ++i) {
    if (fast_results[i].code() != results[i].code()) Die("ApplyConsuming result differs", "");
  }

  // A snapshot of whatever state came out restores to the same state.
  store::State restored;
  if (Status r = restored.Restore(state.ToSnapshot()); !r.ok()) {
    Die("a snapshot of the state does not restore", r.ToString());
  }
  if (Canonical(restored, true) != Canonical(state, true)) {
    Die("a restored snapshot differs from the state", "");
  }
  return 0;
}
