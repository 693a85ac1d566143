#include "shoal/gitops/sync.h"

#include <catch2/catch.hpp>

#include "fixtures.h"
#include "shoal/gitops/discover.h"
#include "shoal/gitops/state.h"
#include "shoal/stack/loader.h"

using namespace shoal;
using namespace shoal::gitops;
using namespace shoal::gitops::testing;

namespace {

Snapshot Snap(const TempDir& dir, const std::string& revision) {
  Snapshot s;
  s.dir = dir.path();
  s.revision = revision;
  s.source.set_kind(v1::Source::KIND_GIT);
  s.source.set_url("https://example.test/stacks.git");
  s.source.set_commit(revision);
  return s;
}

const StackReport& Report(const SyncReport& r, const std::string& name) {
  for (const StackReport& s : r.stacks) {
    if (s.name == name) return s;
  }
  FAIL("no report for " << name);
  return r.stacks.front();
}

}  // namespace

TEST_CASE("discover: stacks/<name>/stack.yml with its override, sorted by name") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  WriteFile(d / "stacks/web/stack.override.yml", "services: {}\n");
  WriteFile(d / "stacks/db/stack.yml", StackFile("db:1"));
  WriteFile(d / "stacks/notes/README.md", "not a stack\n");
  auto found = Discover(d.path());
  REQUIRE(found.ok());
  REQUIRE(found->size() == 2);
  CHECK((*found)[0].name == "db");
  CHECK((*found)[1].name == "web");
  CHECK((*found)[1].files ==
        std::vector<std::string>{d / "stacks/web/stack.yml", d / "stacks/web/stack.override.yml"});
}

TEST_CASE("discover: an index file names stacks and their files in merge order") {
  TempDir d;
  WriteFile(d / "apps/a.yml", StackFile("a:1"));
  WriteFile(d / "apps/a-prod.yml", "services: {}\n");
  WriteFile(d / "b.yml", StackFile("b:1"));
  WriteFile(d / "shoal-stacks.yml",
            "stacks:\n  alpha: [apps/a.yml, apps/a-prod.yml]\n  beta: b.yml\n");
  auto found = Discover(d.path());
  REQUIRE(found.ok());
  REQUIRE(found->size() == 2);
  CHECK((*found)[0].files == std::vector<std::string>{d / "apps/a.yml", d / "apps/a-prod.yml"});
  CHECK((*found)[1].files == std::vector<std::string>{d / "b.yml"});
}

TEST_CASE("discover: a bad index names the file, line, column and key") {
  TempDir d;
  SECTION("a missing file") {
    WriteFile(d / "shoal-stacks.yml", "stacks:\n  web: nowhere.yml\n");
    auto r = Discover(d.path());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message(),
               Catch::Contains("shoal-stacks.yml:2:8: stacks.web: no such file: nowhere.yml"));
  }
  SECTION("a path out of the repository") {
    WriteFile(d / "shoal-stacks.yml", "stacks:\n  web: ../../etc/passwd\n");
    auto r = Discover(d.path());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message(), Catch::Contains("leaves the repository root"));
  }
  SECTION("an invalid name") {
    WriteFile(d / "b.yml", StackFile("b:1"));
    WriteFile(d / "shoal-stacks.yml", "stacks:\n  Web: b.yml\n");
    auto r = Discover(d.path());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message(), Catch::Contains(":2:3: stacks.Web: invalid stack name"));
  }
  SECTION("an unknown key") {
    WriteFile(d / "shoal-stacks.yml", "stacks: {}\nstack: {}\n");
    auto r = Discover(d.path());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message(), Catch::Contains(":2:1: stack: unknown key"));
  }
  SECTION("YAML that does not parse") {
    WriteFile(d / "shoal-stacks.yml", "stacks: [\n");
    auto r = Discover(d.path());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message(), Catch::Contains("shoal-stacks.yml:"));
  }
}

TEST_CASE("sync deploys what changed, once, recording the source") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  WriteFile(d / "stacks/db/stack.yml", StackFile("db:1"));
  FakeDeployer cluster;
  WatchState state;

  SyncReport first = Sync(Snap(d, "c1"), cluster, {}, state);
  INFO(first.error);
  CHECK(first.ExitCode() == 0);
  CHECK(cluster.deployed == std::vector<std::string>{"db", "web"});
  CHECK(Report(first, "web").outcome == Outcome::kDeployed);
  CHECK(cluster.live["web"].source.commit() == "c1");
  CHECK(state.stacks["web"].commit == "c1");
  CHECK(state.stacks["web"].state == SyncState::kInSync);

  SyncReport again = Sync(Snap(d, "c1"), cluster, {}, state);
  CHECK(cluster.deployed.size() == 2);
  CHECK(Report(again, "web").outcome == Outcome::kInSync);

  WriteFile(d / "stacks/web/stack.yml", StackFile("web:2"));
  SyncReport second = Sync(Snap(d, "c2"), cluster, {}, state);
  CHECK(cluster.deployed == std::vector<std::string>{"db", "web", "web"});
  CHECK(Report(second, "db").outcome == Outcome::kInSync);
  CHECK(Report(second, "web").outcome == Outcome::kDeployed);
  CHECK(cluster.live["web"].revision == 2);
  CHECK(state.stacks["db"].commit == "c2");  // still in sync at the new commit
}

TEST_CASE("drift from a manual change is reported, and corrected only with self-heal") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  FakeDeployer cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);
  cluster.live["web"].spec.mutable_services(0)->set_replicas(7);  // `service scale`
  cluster.live["web"].revision++;

  SyncReport seen = Sync(Snap(d, "c1"), cluster, {}, state);
  CHECK(Report(seen, "web").outcome == Outcome::kDrift);
  CHECK(seen.ExitCode() == 2);
  CHECK(cluster.deployed.size() == 1);
  CHECK(state.stacks["web"].state == SyncState::kOutOfSync);

  SyncOptions heal;
  heal.self_heal = true;
  SyncReport healed = Sync(Snap(d, "c1"), cluster, heal, state);
  CHECK(Report(healed, "web").outcome == Outcome::kDeployed);
  CHECK(cluster.deployed.size() == 2);
  CHECK(healed.ExitCode() == 0);
  CHECK(state.stacks["web"].state == SyncState::kInSync);
}

TEST_CASE("dry run: exit 0 without drift, 2 with drift, 1 on an error; nothing deployed") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  FakeDeployer cluster;
  WatchState state;
  SyncOptions dry;
  dry.dry_run = true;
  SyncReport drift = Sync(Snap(d, "c1"), cluster, dry, state);
  CHECK(drift.ExitCode() == 2);
  CHECK(Report(drift, "web").plan_text == "~ stack web");
  CHECK(cluster.deployed.empty());

  (void)Sync(Snap(d, "c1"), cluster, {}, state);
  CHECK(Sync(Snap(d, "c1"), cluster, dry, state).ExitCode() == 0);

  WriteFile(d / "stacks/bad/stack.yml", "services:\n  web:\n    image: [\n");
  SyncReport bad = Sync(Snap(d, "c2"), cluster, dry, state);
  CHECK(bad.ExitCode() == 1);
  CHECK_THAT(Report(bad, "bad").error, Catch::Contains("stacks/bad/stack.yml:"));

  cluster.unreachable = true;
  SyncReport down = Sync(Snap(d, "c2"), cluster, dry, state);
  CHECK(down.ExitCode() == 1);
  CHECK_THAT(down.error, Catch::Contains("no manager answers"));
}

TEST_CASE("a broken stack fails alone: the others still deploy, the running one is untouched") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  WriteFile(d / "stacks/api/stack.yml", StackFile("api:1"));
  FakeDeployer cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);

  WriteFile(d / "stacks/web/stack.yml", "services:\n  web:\n    image: web:2\n    replicas: 2\n");
  WriteFile(d / "stacks/api/stack.yml", StackFile("api:2"));
  SyncReport r = Sync(Snap(d, "c2"), cluster, {}, state);
  CHECK(Report(r, "web").outcome == Outcome::kFailed);
  CHECK_THAT(Report(r, "web").error, Catch::Contains("stack.yml:4:5"));
  CHECK(Report(r, "api").outcome == Outcome::kDeployed);
  CHECK(cluster.live["web"].revision == 1);
  CHECK(state.stacks["web"].state == SyncState::kFailed);
  CHECK_FALSE(state.stacks["web"].last_error.empty());
}

TEST_CASE("unplaceable tasks refuse the deploy; a failed rollout is rolled back") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  FakeDeployer cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);

  WriteFile(d / "stacks/web/stack.yml", StackFile("web:2"));
  cluster.unplaced["web"] = {"web slot 1: 0/1 nodes: 1 insufficient memory"};
  SyncReport unplaced = Sync(Snap(d, "c2"), cluster, {}, state);
  CHECK(Report(unplaced, "web").outcome == Outcome::kFailed);
  CHECK_THAT(Report(unplaced, "web").error, Catch::Contains("insufficient memory"));
  CHECK(cluster.live["web"].revision == 1);

  cluster.unplaced.clear();
  cluster.fail_wait["web"] = "task web.1 failed: exit 3";
  SyncReport failed = Sync(Snap(d, "c3"), cluster, {}, state);
  CHECK(Report(failed, "web").outcome == Outcome::kFailed);
  CHECK_THAT(Report(failed, "web").error, Catch::Contains("exit 3"));
  CHECK_THAT(Report(failed, "web").error, Catch::Contains("rolled back to revision 1"));
  REQUIRE(cluster.rollbacks.size() == 1);
  CHECK(cluster.rollbacks[0].second == 1);

  // The same content is not retried on every poll; the next commit is.
  cluster.fail_wait.clear();
  SyncReport same = Sync(Snap(d, "c3"), cluster, {}, state);
  CHECK(Report(same, "web").outcome == Outcome::kDrift);
}

TEST_CASE("stacks gone from the source are pruned only with --prune, and only our own") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  WriteFile(d / "stacks/old/stack.yml", StackFile("old:1"));
  FakeDeployer cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);
  cluster.live["manual"].revision = 1;  // deployed by hand: KIND_FILES
  std::filesystem::remove_all(d / "stacks/old");

  SyncReport kept = Sync(Snap(d, "c2"), cluster, {}, state);
  CHECK(Report(kept, "old").outcome == Outcome::kWouldRemove);
  CHECK(kept.ExitCode() == 2);
  CHECK(cluster.removed.empty());

  SyncOptions prune;
  prune.prune = true;
  prune.dry_run = true;
  CHECK(Report(Sync(Snap(d, "c2"), cluster, prune, state), "old").outcome == Outcome::kWouldRemove);
  CHECK(cluster.removed.empty());

  prune.dry_run = false;
  SyncReport pruned = Sync(Snap(d, "c2"), cluster, prune, state);
  CHECK(Report(pruned, "old").outcome == Outcome::kRemoved);
  CHECK(cluster.removed == std::vector<std::string>{"old"});
  CHECK(cluster.live.count("manual") == 1);
  CHECK(state.stacks.count("old") == 0);
}

TEST_CASE("another deploy in between is refused by the version check, not overwritten") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:1"));
  struct Racing : FakeDeployer {
    Result<uint64_t> Deploy(const v1::StackSpec& spec, const v1::Source& source,
                            uint64_t check_version) override {
      live[spec.name()].revision += 1;  // someone else deployed after our plan
      return FakeDeployer::Deploy(spec, source, check_version);
    }
  } cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);  // new stack: no check
  WriteFile(d / "stacks/web/stack.yml", StackFile("web:2"));
  SyncReport r = Sync(Snap(d, "c2"), cluster, {}, state);
  CHECK(Report(r, "web").outcome == Outcome::kFailed);
  CHECK_THAT(Report(r, "web").error, Catch::Contains("changed since"));
}

TEST_CASE("the watch state survives a restart; a corrupt file is named") {
  TempDir d;
  WatchState s;
  s.source = "git https://example.test/x.git@main";
  s.last_revision = "abc";
  s.stacks["web"] = {SyncState::kFailed, "h1", "abc", 4, "exit 3", 123};
  REQUIRE(SaveWatchState(d / "watch-state.json", s).ok());
  auto back = LoadWatchState(d / "watch-state.json");
  REQUIRE(back.ok());
  CHECK(back->source == s.source);
  CHECK(back->last_revision == "abc");
  CHECK(back->stacks["web"].state == SyncState::kFailed);
  CHECK(back->stacks["web"].revision == 4);
  CHECK(back->stacks["web"].last_error == "exit 3");
  CHECK(back->stacks["web"].time_ns == 123);

  CHECK(LoadWatchState(d / "missing.json").ok());
  WriteFile(d / "bad.json", "{\"stacks\": ");
  auto bad = LoadWatchState(d / "bad.json");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == Code::kCorruption);
  CHECK_THAT(bad.error().message(), Catch::Contains("bad.json"));
}

TEST_CASE("the example repository under stacks/gitops-example is found and loads") {
  auto found = Discover(std::string(SHOAL_SOURCE_DIR) + "/stacks/gitops-example");
  REQUIRE(found.ok());
  REQUIRE(found->size() == 2);
  CHECK((*found)[0].name == "reports");
  CHECK((*found)[1].name == "shop");
  CHECK((*found)[1].files.size() == 2);  // stack.yml and its override
  for (const StackEntry& e : *found) {
    shoal::stack::LoadOptions o;
    o.files = e.files;
    o.stack_name = e.name;
    auto loaded = shoal::stack::Load(o);
    INFO(e.name << ": " << (loaded.ok() ? "" : loaded.error().ToString()));
    REQUIRE(loaded.ok());
    if (e.name == "shop") {
      for (const auto& svc : loaded->spec.services()) {
        if (svc.name() == "front") {
          CHECK(svc.replicas() == 3);  // the override
          std::string command;
          for (const std::string& a : svc.container().command()) command += a + " ";
          CHECK_THAT(command, Catch::Contains("front blue"));  // .env
        }
      }
    }
  }
}

TEST_CASE("changed stacks sync first; a new trigger cuts the drift checks of the others short") {
  TempDir d;
  for (const char* name : {"a", "b", "c"}) {
    WriteFile(d / (std::string("stacks/") + name + "/stack.yml"),
              StackFile(std::string(name) + ":1"));
  }
  FakeDeployer cluster;
  WatchState state;
  (void)Sync(Snap(d, "c1"), cluster, {}, state);
  cluster.deployed.clear();

  WriteFile(d / "stacks/c/stack.yml", StackFile("c:2"));
  int plans = 0;
  SyncOptions o;
  o.interrupted = [&] { return true; };  // a webhook came in meanwhile
  o.log = [&](const std::string& line) { plans += line.find("deploying") != std::string::npos; };
  SyncReport r = Sync(Snap(d, "c2"), cluster, o, state);
  CHECK(r.interrupted);
  CHECK(cluster.deployed == std::vector<std::string>{"c"});  // before a and b, and alone
  REQUIRE(r.stacks.size() == 1);
  CHECK(r.stacks[0].name == "c");
  CHECK(r.ExitCode() == 0);
  CHECK(plans == 1);
}
