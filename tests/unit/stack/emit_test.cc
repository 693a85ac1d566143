// ToYaml and ToJson: the printed stack loads back to the same document and spec.

#include "shoal/stack/emit.h"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include "shoal/stack/loader.h"
#include "stack_test_util.h"

namespace shoal::stack {
namespace {

using testing::At;
using testing::Options;
using testing::ServiceNode;
using testing::SpecEquals;
using testing::TempDir;

// Values that another printer could turn into another type or another string.
const std::vector<std::string> kTricky = {"true",
                                          "false",
                                          "True",
                                          "null",
                                          "~",
                                          "",
                                          "8080",
                                          "0440",
                                          "0x1F",
                                          "1.5",
                                          "1e3",
                                          ".inf",
                                          "-1",
                                          "+1",
                                          "yes",
                                          "no",
                                          "on",
                                          "multi\nline\n",
                                          "no trailing\nnewline",
                                          "  leading",
                                          "trailing ",
                                          "colon: inside",
                                          "ends with colon:",
                                          "# hash",
                                          "a #b",
                                          "- dash",
                                          "? q",
                                          "{{.Node.Hostname}}",
                                          "[x]",
                                          "{a: b}",
                                          "back\\slash",
                                          "quote \" and '",
                                          "tab\there",
                                          "caf\xC3\xA9",
                                          "@at",
                                          "%pct",
                                          "`tick",
                                          "!bang",
                                          "&amp",
                                          "*star",
                                          "|pipe",
                                          ">gt",
                                          ",comma",
                                          "a,b",
                                          "'single'",
                                          "\"double\"",
                                          "$",
                                          "$$",
                                          "a$b",
                                          "${X}",
                                          "$X",
                                          "${X:-d}",
                                          "\\$",
                                          "x\x01y",
                                          std::string(300, 'a')};

// YAML source for one string value, in double quotes, with "$" escaped as "$$".
std::string YamlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\x01':
        out += "\\x01";
        break;
      case '$':
        out += "$$";
        break;
      default:
        out.push_back(c);
    }
  }
  return out + "\"";
}

std::string TrickyStack() {
  std::string y =
      "name: tricky\n"
      "services:\n"
      "  web:\n"
      "    image: nginx:1.25\n"
      "    command: [sh, -c, 'echo $$HOME && exit 0']\n"
      "    hostname: '{{.Node.Hostname}}'\n"
      "    healthcheck:\n"
      "      test: |\n"
      "        curl -f http://localhost/ \\\n"
      "          || exit 1\n"
      "      interval: 30s\n"
      "    ports: ['8080:80', {target: 443, published: 8443, mode: host}]\n"
      "    volumes: ['/srv/data:/data:ro', 'cache:/cache']\n"
      "    deploy:\n"
      "      replicas: 0x2\n"
      "      resources: {limits: {cpus: '0.50', memory: 1g}}\n"
      "      labels:\n"
      "        '8080': port\n"
      "        'true': yes\n"
      "        'a: b': c\n"
      "    secrets: [{source: s, mode: 0440}]\n"
      "    environment:\n";
  for (size_t i = 0; i < kTricky.size(); ++i) {
    y += "      V" + std::to_string(i) + ": " + YamlString(kTricky[i]) + "\n";
  }
  y += "    labels:\n";
  for (size_t i = 0; i < kTricky.size(); ++i) {
    y += "      l" + std::to_string(i) + ": " + YamlString(kTricky[i]) + "\n";
  }
  y += "volumes:\n"
       "  cache: {driver_opts: {o: 'size=1g,uid=1000'}}\n"
       "secrets:\n"
       "  s: {file: ./s.txt}\n"
       "x-unused: {a: 1}\n";
  return y;
}

}  // namespace

TEST_CASE("emit: ToYaml of a resolved document loads back to an equal spec") {
  TempDir dir;
  dir.Write("s.txt", "secret");
  std::string f = dir.Write("stack.yml", TrickyStack());
  auto opts = Options({f});
  opts.stack_name.clear();
  auto first = Load(opts);
  INFO((first.ok() ? std::string() : first.error().ToString()));
  REQUIRE(first.ok());
  // The values are what the source said.
  const auto& env = first->spec.services(0).container().env();
  for (size_t i = 0; i < kTricky.size(); ++i) {
    INFO(i);
    CHECK(env.at("V" + std::to_string(i)) == kTricky[i]);
    CHECK(first->spec.services(0).container().labels().at("l" + std::to_string(i)) == kTricky[i]);
  }

  std::string yaml = ToYaml(*first->document);
  INFO(yaml);
  std::string g = dir.Write("printed/stack.yml", yaml);
  opts.files = {g};
  auto second = Load(opts);
  INFO((second.ok() ? std::string() : second.error().ToString()));
  REQUIRE(second.ok());
  CHECK(second->name == "tricky");
  CHECK(second->document->Equals(*first->document));
  CHECK(SpecEquals(first->spec, second->spec));
  CHECK(second->warnings.items().empty());
  // Printing is stable.
  CHECK(ToYaml(*second->document) == yaml);
}

TEST_CASE("emit: Resolve output round-trips with interpolated values") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx:${TAG:-latest}\n"
                            "    environment:\n"
                            "      PRICE: '$$5'\n"
                            "      PORT: ${PORT}\n"
                            "      FLAG: ${FLAG}\n");
  std::map<std::string, std::string> env = {{"PORT", "8080"}, {"FLAG", "true"}};
  auto first = Resolve(Options({f}, env));
  REQUIRE(first.ok());
  const Node* web = ServiceNode(*first, "web");
  CHECK(At(web, "environment.PRICE")->text == "$5");
  CHECK(At(web, "environment.PORT")->kind == Kind::kString);
  CHECK(At(web, "environment.PORT")->text == "8080");
  std::string yaml = ToYaml(*first->document);
  CHECK(yaml.find("\"8080\"") != std::string::npos);
  CHECK(yaml.find("\"true\"") != std::string::npos);
  CHECK(yaml.find("$$5") != std::string::npos);
  // Loaded back with a different environment: nothing is interpolated again.
  auto second = Resolve(Options({dir.Write("out.yml", yaml)}, {{"TAG", "other"}}));
  REQUIRE(second.ok());
  CHECK(second->document->Equals(*first->document));
}

TEST_CASE("emit: ToJson is valid JSON with the same values") {
  TempDir dir;
  dir.Write("s.txt", "secret");
  auto r = Load(Options({dir.Write("stack.yml", TrickyStack())}));
  REQUIRE(r.ok());
  std::string json = ToJson(*r->document);
  rapidjson::Document d;
  d.Parse(json.c_str(), json.size());
  REQUIRE_FALSE(d.HasParseError());
  const auto& env = d["services"]["web"]["environment"];
  for (size_t i = 0; i < kTricky.size(); ++i) {
    std::string key = "V" + std::to_string(i);
    REQUIRE(env.HasMember(key.c_str()));
    CHECK(std::string(env[key.c_str()].GetString(), env[key.c_str()].GetStringLength()) ==
          kTricky[i]);
  }
  CHECK(d["services"]["web"]["deploy"]["replicas"].GetInt() == 2);
  CHECK(d["services"]["web"]["ports"].IsArray());
}

TEST_CASE("emit: empty containers and a scalar root") {
  CHECK(ToYaml(*Node::MakeMap()) == "{}\n");
  CHECK(ToYaml(*Node::MakeSeq()) == "[]\n");
  auto root = Node::MakeMap();
  root->Set("a", Node::MakeSeq());
  root->Set("b", Node::MakeMap());
  auto seq = Node::MakeSeq();
  auto inner = Node::MakeSeq();
  inner->items.push_back(Node::MakeString("x"));
  seq->items.push_back(inner);
  seq->items.push_back(Node::MakeNull());
  root->Set("c", seq);
  CHECK(ToYaml(*root) == "a: []\nb: {}\nc:\n  - - x\n  - null\n");
  CHECK(
      ToJson(*root) ==
      "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    [\n      \"x\"\n    ],\n    null\n  ]\n}\n");
}

}  // namespace shoal::stack
