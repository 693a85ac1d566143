// Variable interpolation as the compose specification defines it, and the
// sources of variables: environment, --env-file, .env.

#include <catch2/catch.hpp>

#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::At;
using testing::Options;
using testing::ServiceNode;
using testing::TempDir;

// Loads a one-service stack whose label "v" is `value` (written in single
// quotes) and returns the resolved label text.
std::string Label(const std::string& value, const std::map<std::string, std::string>& env) {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n"
                            "      v: '" +
                                value + "'\n");
  auto r = Load(Options({f}, env));
  REQUIRE(r.ok());
  const Node* v = At(ServiceNode(*r, "web"), "labels.v");
  REQUIRE(v != nullptr);
  return v->text;
}

}  // namespace

TEST_CASE("interpolation: $VAR and ${VAR}") {
  std::map<std::string, std::string> env = {{"TAG", "1.25"}, {"NAME", "web"}};
  CHECK(Label("$TAG", env) == "1.25");
  CHECK(Label("${TAG}", env) == "1.25");
  CHECK(Label("nginx:${TAG}-alpine", env) == "nginx:1.25-alpine");
  CHECK(Label("$NAME.$TAG", env) == "web.1.25");
  // A name ends at the first character that cannot be in a name.
  CHECK(Label("$NAME-x", env) == "web-x");
}

TEST_CASE("interpolation: defaults with and without colon") {
  std::map<std::string, std::string> env = {{"SET", "value"}, {"EMPTY", ""}};
  CHECK(Label("${SET:-d}", env) == "value");
  CHECK(Label("${EMPTY:-d}", env) == "d");
  CHECK(Label("${UNSET:-d}", env) == "d");
  CHECK(Label("${SET-d}", env) == "value");
  CHECK(Label("${EMPTY-d}", env) == "");
  CHECK(Label("${UNSET-d}", env) == "d");
  CHECK(Label("${UNSET:-}", env) == "");
  CHECK(Label("${UNSET:-a b c}", env) == "a b c");
}

TEST_CASE("interpolation: alternatives ${VAR:+alt} and ${VAR+alt}") {
  std::map<std::string, std::string> env = {{"SET", "value"}, {"EMPTY", ""}};
  CHECK(Label("${SET:+alt}", env) == "alt");
  CHECK(Label("${EMPTY:+alt}", env) == "");
  CHECK(Label("${UNSET:+alt}", env) == "");
  CHECK(Label("${SET+alt}", env) == "alt");
  CHECK(Label("${EMPTY+alt}", env) == "alt");
  CHECK(Label("${UNSET+alt}", env) == "");
}

TEST_CASE("interpolation: nested defaults") {
  CHECK(Label("${A:-${B:-x}}", {}) == "x");
  CHECK(Label("${A:-${B:-x}}", {{"B", "b"}}) == "b");
  CHECK(Label("${A:-${B:-x}}", {{"A", "a"}, {"B", "b"}}) == "a");
  CHECK(Label("${A:-pre-${B}-post}", {{"B", "b"}}) == "pre-b-post");
  CHECK(Label("${A:+${B:-y}}", {{"A", "a"}}) == "y");
}

TEST_CASE("interpolation: $$ is a literal dollar, $1 and $ stay as written") {
  CHECK(Label("$$HOME", {{"HOME", "/root"}}) == "$HOME");
  CHECK(Label("a$$b", {}) == "a$b");
  CHECK(Label("$${X}", {{"X", "x"}}) == "${X}");
  CHECK(Label("$1", {}) == "$1");
  CHECK(Label("cost $ 5", {}) == "cost $ 5");
  CHECK(Label("ends with $", {}) == "ends with $");
}

TEST_CASE("interpolation: Swarm templates pass through untouched") {
  CHECK(Label("{{.Node.Hostname}}", {}) == "{{.Node.Hostname}}");
  CHECK(Label("{{.Service.Name}}-{{.Task.Slot}}", {}) == "{{.Service.Name}}-{{.Task.Slot}}");
  CHECK(Label("${H:-x}-{{.Node.ID}}", {}) == "x-{{.Node.ID}}");
}

TEST_CASE("interpolation: values that were not strings are left alone, keys too") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n"
                            "      $KEY: x\n");
  auto r = Load(Options({f}, {{"KEY", "k"}}));
  REQUIRE(r.ok());
  CHECK(At(ServiceNode(*r, "web"), "labels.$KEY") != nullptr);
  CHECK(At(ServiceNode(*r, "web"), "labels.k") == nullptr);
}

TEST_CASE("interpolation: ${VAR:?msg} and ${VAR?msg} refuse a missing value") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx:${TAG:?set TAG to the release}\n"
                            "    labels:\n"
                            "      a: ${OPT?OPT is required}\n");
  SECTION("both unset: two errors, each naming the variable and the place") {
    auto r = Load(Options({f}));
    REQUIRE_FALSE(r.ok());
    auto errors = r.error().Errors();
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].mark.line == 3);
    CHECK(errors[0].mark.column == 12);
    CHECK(errors[0].path == "services.web.image");
    CHECK(errors[0].message == "required variable TAG is missing a value: set TAG to the release");
    CHECK(errors[0].ToString() ==
          f + ":3:12: services.web.image: required variable TAG is missing a value: set TAG to "
              "the release");
    CHECK(errors[1].mark.line == 5);
    CHECK(errors[1].mark.column == 10);
    CHECK(errors[1].path == "services.web.labels.a");
    CHECK(errors[1].message == "required variable OPT is missing a value: OPT is required");
  }
  SECTION("set but empty: the colon form refuses, the plain form accepts") {
    auto r = Load(Options({f}, {{"TAG", ""}, {"OPT", ""}}));
    REQUIRE_FALSE(r.ok());
    auto errors = r.error().Errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "services.web.image");
    CHECK(errors[0].message.find("TAG") != std::string::npos);
  }
  SECTION("set: both expand") {
    auto r = Load(Options({f}, {{"TAG", "1"}, {"OPT", "o"}}));
    REQUIRE(r.ok());
    CHECK(At(ServiceNode(*r, "web"), "image")->text == "nginx:1");
    CHECK(At(ServiceNode(*r, "web"), "labels.a")->text == "o");
  }
}

TEST_CASE("interpolation: a required variable without a message") {
  TempDir dir;
  std::string f = dir.Write("stack.yml", "services:\n  web:\n    image: ${IMAGE:?}\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.error().Errors().size() == 1);
  CHECK(r.error().Errors()[0].message == "required variable IMAGE is missing a value");
}

TEST_CASE("interpolation: malformed expressions are errors with a place") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n"
                            "      a: '${UNCLOSED'\n"
                            "      b: '${1X}'\n"
                            "      c: '${X:x}'\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].mark.line == 5);
  CHECK(errors[0].message.find("not closed") != std::string::npos);
  CHECK(errors[1].mark.line == 6);
  CHECK(errors[1].message.find("does not start with a variable name") != std::string::npos);
  CHECK(errors[2].mark.line == 7);
  CHECK(errors[2].message.find("invalid interpolation format") != std::string::npos);
}

TEST_CASE("interpolation: an unset variable warns once per variable") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx:$TAG\n"
                            "    labels:\n"
                            "      a: $TAG\n"
                            "      b: ${TAG}\n"
                            "      c: ${OTHER}\n"
                            "      d: ${DEFAULTED:-x}\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  CHECK(At(ServiceNode(*r, "web"), "image")->text == "nginx:");
  std::vector<Diagnostic> unset;
  for (const auto& w : r->warnings.Warnings()) {
    if (w.message.find("is not set") != std::string::npos) unset.push_back(w);
  }
  REQUIRE(unset.size() == 2);
  CHECK(unset[0].message == "variable TAG is not set; substituting an empty string");
  CHECK(unset[0].mark.line == 3);
  CHECK(unset[0].path == "services.web.image");
  CHECK(unset[1].message == "variable OTHER is not set; substituting an empty string");
  CHECK(unset[1].mark.line == 7);
}

TEST_CASE("variables: environment > --env-file > .env beside the first file") {
  TempDir dir;
  dir.Write(".env",
            "# comment\n"
            "A=dotenv\n"
            "B=dotenv\n"
            "C=dotenv\n"
            "D=${A}-derived\n"
            "export E=\"quoted ${A}\"\n"
            "F='single ${A}'\n");
  std::string envfile = dir.Write("prod.env", "B=envfile\nC=envfile\n");
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n"
                            "      a: $A\n"
                            "      b: $B\n"
                            "      c: $C\n"
                            "      d: $D\n"
                            "      e: $E\n"
                            "      f: $F\n");
  auto opts = Options({f}, {{"C", "environment"}});
  opts.env_files = {envfile};
  auto r = Load(opts);
  REQUIRE(r.ok());
  const Node* web = ServiceNode(*r, "web");
  CHECK(At(web, "labels.a")->text == "dotenv");
  CHECK(At(web, "labels.b")->text == "envfile");
  CHECK(At(web, "labels.c")->text == "environment");
  CHECK(At(web, "labels.d")->text == "dotenv-derived");
  CHECK(At(web, "labels.e")->text == "quoted dotenv");
  CHECK(At(web, "labels.f")->text == "single ${A}");
  CHECK(r->warnings.Warnings().empty());

  SECTION("read_dotenv off ignores .env") {
    opts.read_dotenv = false;
    auto r2 = Load(opts);
    REQUIRE(r2.ok());
    CHECK(At(ServiceNode(*r2, "web"), "labels.a")->text == "");
    CHECK(At(ServiceNode(*r2, "web"), "labels.b")->text == "envfile");
  }
  SECTION("a missing --env-file is an error naming it") {
    opts.env_files = {dir.File("missing.env")};
    auto r2 = Load(opts);
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().ToString().find("missing.env") != std::string::npos);
  }
}

TEST_CASE("variables: .env of the first file only, not of later files") {
  TempDir dir;
  dir.Write("base/.env", "X=base\n");
  dir.Write("over/.env", "X=over\nY=over\n");
  std::string a = dir.Write("base/stack.yml", "services:\n  web:\n    image: nginx:$X\n");
  std::string b = dir.Write("over/stack.yml", "services:\n  web:\n    labels: {y: '${Y:-none}'}\n");
  auto r = Load(Options({a, b}));
  REQUIRE(r.ok());
  CHECK(At(ServiceNode(*r, "web"), "image")->text == "nginx:base");
  CHECK(At(ServiceNode(*r, "web"), "labels.y")->text == "none");
}

TEST_CASE("interpolation: interpolate off keeps $ as written") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n  web:\n    image: nginx\n    labels: {a: '${X:-d} $$'}\n");
  auto opts = Options({f}, {{"X", "x"}});
  opts.interpolate = false;
  auto r = Resolve(opts);
  REQUIRE(r.ok());
  CHECK(At(ServiceNode(*r, "web"), "labels.a")->text == "${X:-d} $$");
}

}  // namespace shoal::stack
