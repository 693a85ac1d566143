// Secret values enter the state sealed (issue 8, point 4), and the plan and a
// redeploy still see them for what they are.

#include "shoal/manager/secrets.h"

#include <catch2/catch.hpp>

#include "shoal/manager/deploy.h"
#include "shoal/plan/render.h"

namespace shoal::manager {
namespace {

using store::Kind;

constexpr const char* kPlanted = "planted-secret-7f3a9c";

struct Cluster {
  store::State state;
  uint64_t index = 0;
  std::mt19937_64 rng{42};
  SecretCodec codec{ca::NewDataKey()};

  Result<DeployChange> Deploy(const v1::StackSpec& spec, uint64_t restores = 0) {
    v1::DeployRequest req;
    *req.mutable_spec() = spec;
    req.set_prune(restores != 0);
    auto change = BuildDeploy(state, req, rng, restores, &codec);
    if (change.ok() && !change->mutations.empty()) Apply(change->mutations);
    return change;
  }
  void Apply(const std::vector<v1::Mutation>& muts) {
    v1::Command c;
    for (const auto& m : muts) *c.mutable_transaction()->add_mutations() = m;
    REQUIRE(state.Apply(++index, c, nullptr).ok());
  }
  const v1::Secret* Secret(const std::string& name) {
    auto found = state.Find(Kind::kSecret, "name", name);
    return found.empty() ? nullptr : &found.front()->secret();
  }
  // Every byte the state holds, as a Raft snapshot would.
  std::string AllBytes() {
    std::string out;
    for (Kind k : {Kind::kSecret, Kind::kStackRevision, Kind::kStack, Kind::kService}) {
      for (const v1::Mutation* m : state.List(k)) out += m->SerializeAsString();
    }
    return out;
  }
};

v1::StackSpec Stack(const std::string& value) {
  v1::StackSpec s;
  s.set_name("app");
  v1::SecretSpec* sec = s.add_secrets();
  sec->set_name("app_db_password");
  sec->set_short_name("db_password");
  sec->set_data(value);
  sec->set_data_hash(std::to_string(std::hash<std::string>{}(value)));
  v1::ServiceSpec* sv = s.add_services();
  sv->set_name("app_web");
  sv->set_short_name("web");
  sv->set_stack("app");
  sv->set_replicas(1);
  sv->mutable_container()->set_image("img:1");
  v1::FileReference* ref = sv->mutable_container()->add_secrets();
  ref->set_source("db_password");
  ref->set_name("app_db_password");
  ref->set_target("/run/secrets/db_password");
  return s;
}

}  // namespace

TEST_CASE("secrets: the state holds the value sealed, bound to the secret's name") {
  Cluster c;
  auto d = c.Deploy(Stack(kPlanted));
  REQUIRE(d.ok());
  const v1::Secret* s = c.Secret("app_db_password");
  REQUIRE(s);
  CHECK(ca::IsSealed(s->spec().data()));
  CHECK(c.AllBytes().find(kPlanted) == std::string::npos);
  CHECK(c.AllBytes().find("app_db_password") != std::string::npos);  // the search works
  CHECK(*c.codec.Open(s->spec()) == kPlanted);
  // Moved to another secret's name, the value does not open.
  v1::SecretSpec moved = s->spec();
  moved.set_name("app_other");
  auto r = c.codec.Open(moved);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kCorruption);
  CHECK(r.error().message().find("app_other") != std::string::npos);
  // The plan never prints the value.
  CHECK(plan::RenderText(d->plan, {}).find(kPlanted) == std::string::npos);
  CHECK(plan::RenderJson(d->plan).find(kPlanted) == std::string::npos);
}

TEST_CASE("secrets: an unchanged redeploy writes nothing; a changed value is an update") {
  Cluster c;
  REQUIRE(c.Deploy(Stack(kPlanted)).ok());
  auto again = c.Deploy(Stack(kPlanted));
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
  CHECK(!again->plan.HasChanges());
  auto changed = c.Deploy(Stack("another value"));
  REQUIRE(changed.ok());
  // The secret, and the service whose reference names its new version.
  CHECK(changed->plan.Summarize().update == 2);
  std::string text = plan::RenderText(changed->plan, {});
  CHECK(text.find("another value") == std::string::npos);
  CHECK(text.find(kPlanted) == std::string::npos);
  CHECK(*c.codec.Open(c.Secret("app_db_password")->spec()) == "another value");
}

TEST_CASE("secrets: versions are keyed under the data key, not a plain hash of the value") {
  Cluster c;
  REQUIRE(c.Deploy(Stack(kPlanted)).ok());
  const v1::SecretSpec& stored = c.Secret("app_db_password")->spec();
  // The loader's hash is replaced; the keyed one is 64 hex digits.
  CHECK(stored.data_hash() != Stack(kPlanted).secrets(0).data_hash());
  REQUIRE(stored.data_hash().size() == 64);
  const v1::Service* web = FindService(c.state, "app_web");
  REQUIRE(web);
  CHECK(web->spec().container().secrets(0).version() == stored.data_hash().substr(0, 12));
  // Stable under one key, bound to the name, different under another key.
  v1::SecretSpec plain = Stack(kPlanted).secrets(0);
  CHECK(c.codec.Version(plain) == stored.data_hash());
  v1::SecretSpec renamed = plain;
  renamed.set_name("app_other");
  CHECK(c.codec.Version(renamed) != stored.data_hash());
  SecretCodec other{ca::NewDataKey()};
  CHECK(other.Version(plain) != stored.data_hash());
  // The same value deployed again under the same key changes nothing.
  auto again = c.Deploy(Stack(kPlanted));
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
}

TEST_CASE("secrets: a rollback restores the sealed value of a stored revision") {
  Cluster c;
  REQUIRE(c.Deploy(Stack(kPlanted)).ok());
  REQUIRE(c.Deploy(Stack("second")).ok());
  const v1::StackRevision* first = FindRevision(c.state, "app", 1);
  REQUIRE(first);
  CHECK(ca::IsSealed(first->spec().secrets(0).data()));
  auto back = c.Deploy(first->spec(), /*restores=*/1);
  REQUIRE(back.ok());
  CHECK(back->plan.Summarize().update == 2);
  CHECK(*c.codec.Open(c.Secret("app_db_password")->spec()) == kPlanted);
  CHECK(c.AllBytes().find(kPlanted) == std::string::npos);
}

TEST_CASE("secrets: a state written before encryption at rest still reads and gets sealed") {
  Cluster c;
  v1::DeployRequest req;
  *req.mutable_spec() = Stack(kPlanted);
  auto plain = BuildDeploy(c.state, req, c.rng);  // no codec: the old behaviour
  REQUIRE(plain.ok());
  c.Apply(plain->mutations);
  CHECK(c.Secret("app_db_password")->spec().data() == kPlanted);
  // The first deploy with a key moves the plain-hash version to the keyed
  // one (one roll of the tasks that use the secret), and the value goes in
  // sealed; after that the same value is no change.
  auto rekeyed = c.Deploy(Stack(kPlanted));
  REQUIRE(rekeyed.ok());
  CHECK(!rekeyed->mutations.empty());
  CHECK(ca::IsSealed(c.Secret("app_db_password")->spec().data()));
  auto again = c.Deploy(Stack(kPlanted));
  REQUIRE(again.ok());
  CHECK(again->mutations.empty());
}

TEST_CASE("secrets: a value sealed under another key fails the deploy without the value") {
  Cluster c;
  REQUIRE(c.Deploy(Stack(kPlanted)).ok());
  Cluster other;
  other.state = c.state;
  other.index = c.index;
  auto d = other.Deploy(Stack(kPlanted));
  REQUIRE(!d.ok());
  CHECK(d.error().code() == Code::kCorruption);
  CHECK(d.error().message().find("app_db_password") != std::string::npos);
  CHECK(d.error().message().find(kPlanted) == std::string::npos);
}

}  // namespace shoal::manager
