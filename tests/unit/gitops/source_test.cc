#include "shoal/gitops/source.h"

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "fixtures.h"

using namespace shoal;
using namespace shoal::gitops;
using namespace shoal::gitops::testing;
using namespace std::chrono_literals;

namespace {

// Runs git in `dir` (the test builds its repositories with the git CLI).
void Git(const std::string& dir, const std::string& args) {
  std::string cmd = "cd '" + dir +
                    "' && git -c user.name=Tester -c user.email=t@example.test "
                    "-c init.defaultBranch=main -c commit.gpgsign=false " +
                    args + " >/dev/null 2>&1";
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::string Commit(const std::string& repo, const std::string& file, const std::string& text,
                   const std::string& message) {
  WriteFile(repo + "/" + file, text);
  Git(repo, "add -A");
  Git(repo, "commit -q -m '" + message + "'");
  std::string cmd = "cd '" + repo + "' && git rev-parse HEAD";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[64] = {};
  REQUIRE(std::fgets(buf, sizeof buf, p) != nullptr);
  ::pclose(p);
  std::string head(buf);
  while (!head.empty() && std::isspace(static_cast<unsigned char>(head.back()))) head.pop_back();
  return head;
}

}  // namespace

TEST_CASE("directory source: the revision follows the content, not the events") {
  TempDir d;
  WriteFile(d / "stacks/web/stack.yml", "a\n");
  auto src = OpenDirectory({d.path(), 50ms});
  REQUIRE(src.ok());
  auto a = (*src)->Fetch();
  REQUIRE(a.ok());
  CHECK(a->source.kind() == v1::Source::KIND_DIRECTORY);
  CHECK(a->source.url() == d.path());

  WriteFile(d / "stacks/web/stack.yml", "a\n");  // saved, unchanged
  CHECK((*src)->WaitForChange(2s));
  CHECK((*src)->Fetch()->revision == a->revision);

  WriteFile(d / "stacks/web/stack.yml", "b\n");
  CHECK((*src)->WaitForChange(2s));
  CHECK((*src)->Fetch()->revision != a->revision);
}

TEST_CASE("directory source: a burst of writes is one change; quiet times out; interrupt wakes") {
  TempDir d;
  auto src = OpenDirectory({d.path(), 200ms});
  REQUIRE(src.ok());
  CHECK_FALSE((*src)->WaitForChange(50ms));

  std::thread writer([&] {
    for (int i = 0; i < 5; ++i) {
      WriteFile(d / ("stacks/s" + std::to_string(i) + "/stack.yml"), "x\n");
      std::this_thread::sleep_for(20ms);
    }
  });
  CHECK((*src)->WaitForChange(2s));
  writer.join();
  (void)(*src)->Fetch();                      // watches the new directories
  CHECK_FALSE((*src)->WaitForChange(100ms));  // the burst was consumed whole

  WriteFile(d / "stacks/s1/stack.yml", "y\n");  // inside a directory made during the burst
  CHECK((*src)->WaitForChange(2s));

  std::thread waker([&] {
    std::this_thread::sleep_for(50ms);
    (*src)->Interrupt();
  });
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE((*src)->WaitForChange(5s));
  CHECK(std::chrono::steady_clock::now() - start < 4s);
  waker.join();
}

TEST_CASE("directory source: a missing path is refused") {
  auto src = OpenDirectory({"/nonexistent/shoal", 10ms});
  REQUIRE_FALSE(src.ok());
  CHECK_THAT(src.error().message(), Catch::Contains("/nonexistent/shoal: not a directory"));
}

TEST_CASE("git source: clone, follow a branch, a tag, a fixed commit, and a force push") {
  TempDir d;
  const std::string repo = d / "origin";
  std::filesystem::create_directories(repo);
  Git(repo, "init -q");
  const std::string c1 = Commit(repo, "stacks/web/stack.yml", "v1\n", "first");
  Git(repo, "tag v1");
  const std::string c2 = Commit(repo, "stacks/web/stack.yml", "v2\n", "second: web v2");

  auto src = OpenGit({repo, "", d / "cache"});
  REQUIRE(src.ok());
  auto s = (*src)->Fetch();
  REQUIRE(s.ok());
  CHECK(s->revision == c2);
  CHECK(s->source.kind() == v1::Source::KIND_GIT);
  CHECK(s->source.commit() == c2);
  CHECK(s->source.message() == "second: web v2");
  CHECK(s->source.author() == "Tester <t@example.test>");
  std::ifstream in(s->dir + "/stacks/web/stack.yml");
  std::string text;
  in >> text;
  CHECK(text == "v2");

  const std::string c3 = Commit(repo, "stacks/web/stack.yml", "v3\n", "third");
  CHECK((*src)->Fetch()->revision == c3);

  // Force push: main moves back to c1 and gets a different commit.
  Git(repo, "reset -q --hard " + c1);
  const std::string c4 = Commit(repo, "stacks/api/stack.yml", "api\n", "rewritten");
  auto forced = (*src)->Fetch();
  REQUIRE(forced.ok());
  CHECK(forced->revision == c4);
  CHECK(std::filesystem::exists(forced->dir + "/stacks/api/stack.yml"));

  auto tag = OpenGit({repo, "v1", d / "cache-tag"});
  CHECK((*tag)->Fetch()->revision == c1);
  auto fixed = OpenGit({repo, c2.substr(0, 12), d / "cache-fixed"});
  CHECK((*fixed)->Fetch()->revision == c2);
  auto branch = OpenGit({repo, "main", d / "cache-branch"});
  CHECK((*branch)->Fetch()->revision == c4);
}

TEST_CASE("git source: a bad ref, an unreachable remote and a corrupt clone") {
  TempDir d;
  const std::string repo = d / "origin";
  std::filesystem::create_directories(repo);
  Git(repo, "init -q");
  const std::string c1 = Commit(repo, "stacks/web/stack.yml", "v1\n", "first");

  auto bad_ref = OpenGit({repo, "nope", d / "c1"});
  auto r = (*bad_ref)->Fetch();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Code::kNotFound);
  CHECK_THAT(r.error().message(), Catch::Contains("no branch, tag or commit named \"nope\""));

  auto gone = OpenGit({d / "no-such-repo", "", d / "c2"});
  auto g = (*gone)->Fetch();
  REQUIRE_FALSE(g.ok());
  CHECK(g.error().code() == Code::kUnavailable);
  CHECK_THAT(g.error().message(), Catch::Contains("cannot clone"));

  auto src = OpenGit({repo, "", d / "c3"});
  REQUIRE((*src)->Fetch().ok());
  // The remote goes away: the fetch fails, saying so, and the checkout stays.
  std::filesystem::rename(repo, d / "moved");
  auto down = (*src)->Fetch();
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().code() == Code::kUnavailable);
  CHECK(std::filesystem::exists(d / "c3/checkout/stacks/web/stack.yml"));
  std::filesystem::rename(d / "moved", repo);

  // A clone broken by a crash is made again, with a warning.
  std::filesystem::remove_all(d / "c3/checkout/.git/objects");
  std::filesystem::remove(d / "c3/checkout/.git/HEAD");
  auto again = (*src)->Fetch();
  REQUIRE(again.ok());
  CHECK(again->revision == c1);
  REQUIRE(again->warnings.size() == 1);
  CHECK_THAT(again->warnings[0], Catch::Contains("cloning again"));
}
