// libFuzzer target for Control.Deploy with a hostile request: whatever
// StackSpec a client sends (names empty, huge or with slashes, values out of
// range, unknown enum numbers, duplicate names, deep nesting), the manager
// must answer with a plan or an error, never crash, and:
//   - both renderings of the plan are produced, the JSON one parses;
//   - no secret value of the request appears in the plan (either rendering)
//     or in the summary;
//   - the transaction the deploy builds either applies to the store or is
//     refused with the state left exactly as it was.
//
// The request runs against a cluster state built in memory: two nodes and a
// stack "app" (services web and db, a network, a secret, a config) deployed
// once, so that requests may update, prune or collide with it.
//
// Input: a DeployRequest in protobuf text format, or else in binary.

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "shoal/manager/deploy.h"
#include "shoal/manager/limits.h"
#include "shoal/plan/render.h"

namespace {

using namespace shoal;

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "deploy_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

class Silent : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

v1::ServiceSpec Service(const std::string& name, uint64_t replicas) {
  v1::ServiceSpec s;
  s.set_name("app_" + name);
  s.set_short_name(name);
  s.set_stack("app");
  s.set_replicas(replicas);
  s.mutable_container()->set_image("img:1");
  s.add_networks()->set_target("app_net");
  return s;
}

void Apply(store::State& state, const std::vector<v1::Mutation>& muts) {
  v1::Command c;
  for (const auto& m : muts) *c.mutable_transaction()->add_mutations() = m;
  if (Status s = state.Apply(state.applied_index() + 1, c, nullptr); !s.ok()) {
    Die("building the base state", s.ToString());
  }
}

const store::State& BaseState() {
  static const store::State state = [] {
    store::State s;
    std::vector<v1::Mutation> nodes;
    for (const char* id : {"n1", "n2"}) {
      v1::Mutation m;
      m.mutable_node()->mutable_meta()->set_id(id);
      m.mutable_node()->mutable_description()->set_hostname(std::string("host-") + id);
      nodes.push_back(m);
    }
    Apply(s, nodes);
    v1::DeployRequest req;
    v1::StackSpec& spec = *req.mutable_spec();
    spec.set_name("app");
    *spec.add_services() = Service("db", 1);
    *spec.add_services() = Service("web", 2);
    v1::NetworkSpec* net = spec.add_networks();
    net->set_name("app_net");
    net->set_short_name("net");
    v1::SecretSpec* secret = spec.add_secrets();
    secret->set_name("app_key");
    secret->set_short_name("key");
    secret->set_data("base-secret-value-0123456789");
    v1::ConfigSpec* config = spec.add_configs();
    config->set_name("app_conf");
    config->set_short_name("conf");
    config->set_data("listen 80;\n");
    std::mt19937_64 rng(1);
    auto change = manager::BuildDeploy(s, req, rng);
    if (!change.ok()) Die("deploying the base stack", change.error().ToString());
    Apply(s, change->mutations);
    return s;
  }();
  return state;
}

std::string Canonical(const store::State& state) {
  v1::StoreSnapshot snap = state.ToSnapshot();
  snap.clear_applied_index();  // a refused command still uses up its index
  std::string out;
  snap.SerializeToString(&out);
  return out;
}

// Secret values long enough not to be found by chance and found nowhere else
// in the request (a value equal to an image name may show as the image).
std::vector<std::string> PlantedSecrets(const v1::DeployRequest& req) {
  v1::DeployRequest without = req;
  for (auto& s : *without.mutable_spec()->mutable_secrets()) s.clear_data();
  std::string rest;
  google::protobuf::TextFormat::PrintToString(without, &rest);
  std::vector<std::string> out;
  for (const auto& s : req.spec().secrets()) {
    if (s.data().size() >= 12 && rest.find(s.data()) == std::string::npos) out.push_back(s.data());
  }
  return out;
}

// The stack an existing object belongs to ("" for kinds outside stacks).
std::string StackOf(const v1::Mutation& m) {
  if (m.has_service()) return m.service().spec().stack();
  if (m.has_network()) return m.network().stack();
  if (m.has_volume()) return m.volume().stack();
  if (m.has_secret()) return m.secret().stack();
  if (m.has_config()) return m.config().stack();
  return "";
}

// A deploy of one stack that changes an object of another: the plan shows a
// create while the transaction overwrites the other stack's object
// (BuildDeploy refuses it since the seeds cross-stack.txtpb and
// prefix-clash.txtpb found it).
void CheckOwnStackOnly(const store::State& base, const v1::DeployRequest& req,
                       const std::vector<v1::Mutation>& muts) {
  for (const auto& m : muts) {
    auto kind = store::KindOf(m);
    if (!kind.ok() || !store::MetaOf(m)) continue;
    const v1::Mutation* cur = base.Get(*kind, store::MetaOf(m)->id());
    if (cur == nullptr || m.has_stack() || m.has_stack_revision()) continue;
    std::string owner = StackOf(*cur);
    if (!owner.empty() && owner != req.spec().name()) {
      Die("a deploy changes an object of another stack",
          "stack " + req.spec().name() + " writes " + store::KindName(*kind) + " " +
              store::MetaOf(m)->id() + " of stack " + owner);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string that is not UTF-8; the log costs more than
  // the parse.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size > (1 << 20)) return 0;
  const store::State& base = BaseState();
  std::string bytes(reinterpret_cast<const char*>(data), size);
  v1::DeployRequest req;
  google::protobuf::TextFormat::Parser parser;
  Silent silent;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(bytes, &req) && !req.ParseFromString(bytes)) return 0;

  // What Control.Deploy checks first; BuildDeploy runs on refused requests
  // too, since a stack rollback hands it stored specs without that check.
  Status valid = manager::ValidateDeployRequest(req);
  if (!valid.ok() && valid.message().empty()) Die("a refusal without a message", "");
  std::mt19937_64 rng(7);
  auto change = manager::BuildDeploy(base, req, rng);
  if (!change.ok()) {
    if (std::getenv("SHOAL_FUZZ_VERBOSE")) {
      std::fprintf(stderr, "refused: %s\n", change.error().ToString().c_str());
    }
    if (change.error().message().empty()) Die("BuildDeploy failed without a message", "");
    return 0;
  }
  plan::RenderOptions ro;
  ro.show_unchanged = size % 2 == 0;
  ro.color = size % 3 == 0;
  std::string text = plan::RenderText(change->plan, ro);
  std::string json = plan::RenderJson(change->plan);
  // SHOAL_FUZZ_VERBOSE=1 with the replay binary shows what a seed reaches.
  if (std::getenv("SHOAL_FUZZ_VERBOSE")) std::fprintf(stderr, "%s\n", text.c_str());
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError()) Die("RenderJson is not JSON", json);
  for (const std::string& secret : PlantedSecrets(req)) {
    auto shows = [&secret](const std::string& t, const std::string& j, const std::string& sum) {
      return t.find(secret) != std::string::npos || j.find(secret) != std::string::npos ||
             sum.find(secret) != std::string::npos;
    };
    if (!shows(text, json, change->summary)) continue;
    // Text the plan holds whatever the value (its own wording, say
    // "has_changes") is not a leak: the same request with other secret
    // values must not show it.
    v1::DeployRequest other = req;
    for (auto& s : *other.mutable_spec()->mutable_secrets()) {
      s.set_data(std::string(s.data().size(), '\x01'));
    }
    std::mt19937_64 rng2(7);
    auto alt = manager::BuildDeploy(base, other, rng2);
    if (alt.ok() &&
        shows(plan::RenderText(alt->plan, ro), plan::RenderJson(alt->plan), alt->summary)) {
      continue;
    }
    Die("a secret value shows in the plan", secret + "\n" + text);
  }
  (void)plan::PlanExitCode(change->plan);
  if (valid.ok()) CheckOwnStackOnly(base, req, change->mutations);

  // The transaction, applied as the store would: all of it, or nothing.
  if (change->mutations.empty()) return 0;
  store::State state = base;
  const std::string before = Canonical(state);
  v1::Command command;
  for (const auto& m : change->mutations) *command.mutable_transaction()->add_mutations() = m;
  std::vector<store::Event> events;
  Status applied = state.Apply(state.applied_index() + 1, command, &events);
  if (!applied.ok()) {
    if (Canonical(state) != before) Die("a refused deploy changed the state", applied.ToString());
    if (!events.empty()) Die("a refused deploy emitted events", applied.ToString());
  } else if (events.size() != change->mutations.size()) {
    Die("an applied deploy emitted the wrong number of events", applied.ToString());
  }
  return 0;
}
