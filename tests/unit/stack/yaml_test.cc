// Reading YAML: anchors, aliases and merge keys, extension fields, encodings
// and line ends, duplicate and non-string keys, YAML 1.1 octal integers.

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

std::string Utf16(std::string_view ascii, bool little, bool bom = true) {
  std::string out;
  if (bom) out += little ? "\xFF\xFE" : "\xFE\xFF";
  for (char c : ascii) {
    if (little) {
      out.push_back(c);
      out.push_back('\0');
    } else {
      out.push_back('\0');
      out.push_back(c);
    }
  }
  return out;
}

constexpr const char* kSimple =
    "services:\n"
    "  web:\n"
    "    image: nginx:1.25\n"
    "    deploy:\n"
    "      replicas: 3\n";

}  // namespace

TEST_CASE("yaml: anchors and aliases copy values") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "x-image: &img nginx:1.25\n"
                            "x-deploy: &deploy\n"
                            "  replicas: 2\n"
                            "services:\n"
                            "  web:\n"
                            "    image: *img\n"
                            "    deploy: *deploy\n"
                            "  api:\n"
                            "    image: *img\n"
                            "    deploy: *deploy\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  REQUIRE(r->spec.services_size() == 2);
  for (const auto& s : r->spec.services()) {
    CHECK(s.container().image() == "nginx:1.25");
    CHECK(s.replicas() == 2);
  }
  CHECK(r->warnings.Warnings().empty());
}

TEST_CASE("yaml: merge keys, explicit keys win and the first merged map wins") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "x-a: &a\n"
                            "  image: from-a\n"
                            "  user: a\n"
                            "  hostname: a\n"
                            "x-b: &b\n"
                            "  image: from-b\n"
                            "  user: b\n"
                            "  working_dir: /b\n"
                            "services:\n"
                            "  one:\n"
                            "    <<: *a\n"
                            "    hostname: explicit\n"
                            "  two:\n"
                            "    <<: [*a, *b]\n"
                            "    user: explicit\n"
                            "  three:\n"
                            "    user: explicit\n"
                            "    <<: [*b, *a]\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  const Node* one = ServiceNode(*r, "one");
  CHECK(At(one, "image")->text == "from-a");
  CHECK(At(one, "user")->text == "a");
  CHECK(At(one, "hostname")->text == "explicit");
  CHECK(At(one, "<<") == nullptr);
  const Node* two = ServiceNode(*r, "two");
  CHECK(At(two, "image")->text == "from-a");
  CHECK(At(two, "user")->text == "explicit");
  CHECK(At(two, "hostname")->text == "a");
  CHECK(At(two, "working_dir")->text == "/b");
  const Node* three = ServiceNode(*r, "three");
  CHECK(At(three, "image")->text == "from-b");
  CHECK(At(three, "user")->text == "explicit");
}

TEST_CASE("yaml: a merge key that is not a mapping is an error") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "x-s: &s nginx\n"
                            "services:\n"
                            "  web:\n"
                            "    <<: *s\n"
                            "    image: nginx\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "a merge key (<<) takes a mapping or a list of mappings");
  // At the merge key, not at the anchor the alias points to.
  CHECK(errors[0].mark.line == 4);
  CHECK(errors[0].path == "services.web.<<");
}

TEST_CASE("yaml: x- extension fields are ignored at every level") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "x-top: {anything: [1, 2]}\n"
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    x-custom: whatever\n"
                            "    deploy:\n"
                            "      x-note: 1\n"
                            "networks:\n"
                            "  front:\n"
                            "    x-owner: me\n");
  auto with = Load(Options({f}));
  REQUIRE(with.ok());
  CHECK(with->warnings.items().empty());
  std::string g = dir.Write("plain.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    deploy: {}\n"
                            "networks:\n"
                            "  front: {}\n");
  auto without = Load(Options({g}));
  REQUIRE(without.ok());
  CHECK(SpecEquals(with->spec, without->spec));
}

TEST_CASE("yaml: version and top-level name are optional") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "version: \"3.8\"\n"
                            "name: shop\n"
                            "services:\n  web:\n    image: nginx\n");
  auto opts = Options({f});
  opts.stack_name.clear();
  auto r = Load(opts);
  REQUIRE(r.ok());
  CHECK(r->name == "shop");
  CHECK(r->spec.services(0).name() == "shop_web");
  SECTION("without a name, the directory names the stack") {
    std::string g = dir.Write("My Stack.dir/stack.yml", "services:\n  web:\n    image: nginx\n");
    opts.files = {g};
    auto r2 = Load(opts);
    REQUIRE(r2.ok());
    CHECK(r2->name == "mystackdir");
  }
  SECTION("version 2 is refused") {
    std::string g = dir.Write("v2.yml", "version: '2.4'\nservices:\n  web:\n    image: nginx\n");
    auto r2 = Load(Options({g}));
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().Errors()[0].message.find("unsupported Compose file version: 2.4") == 0);
  }
}

TEST_CASE("yaml: UTF-8 with BOM, UTF-16 LE and BE with BOM, CRLF all load the same") {
  TempDir dir;
  auto reference = Load(Options({dir.Write("plain.yml", kSimple)}));
  REQUIRE(reference.ok());
  std::string crlf;
  for (char c : std::string(kSimple)) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  std::vector<std::pair<std::string, std::string>> variants = {
      {"utf8-bom.yml", "\xEF\xBB\xBF" + std::string(kSimple)},
      {"utf16le.yml", Utf16(kSimple, true)},
      {"utf16be.yml", Utf16(kSimple, false)},
      {"crlf.yml", crlf},
      {"utf16le-crlf.yml", Utf16(crlf, true)},
      {"cr.yml",
       [] {
         std::string s = kSimple;
         for (char& c : s)
           if (c == '\n') c = '\r';
         return s;
       }()},
  };
  for (const auto& [name, bytes] : variants) {
    INFO(name);
    auto r = Load(Options({dir.Write(name, bytes)}));
    REQUIRE(r.ok());
    CHECK(SpecEquals(r->spec, reference->spec));
  }
}

TEST_CASE("yaml: line numbers stay right with CRLF, BOM and UTF-16") {
  std::string text =
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    deploy:\n"
      "      replicas: three\n";
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  TempDir dir;
  for (const auto& bytes : {crlf, "\xEF\xBB\xBF" + crlf, Utf16(crlf, true), Utf16(text, false)}) {
    auto r = Load(Options({dir.Write("stack.yml", bytes)}));
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.error().Errors().size() == 1);
    auto errors = r.error().Errors();
    const auto& e = errors[0];
    CHECK(e.mark.line == 5);
    CHECK(e.mark.column == 17);
    CHECK(e.path == "services.web.deploy.replicas");
  }
}

TEST_CASE("yaml: malformed UTF-16 is an error") {
  TempDir dir;
  SECTION("odd length") {
    std::string bytes = Utf16(kSimple, true) + "x";
    auto r = Load(Options({dir.Write("stack.yml", bytes)}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errors()[0].message.find("odd number of bytes") != std::string::npos);
  }
  SECTION("unpaired surrogate") {
    std::string bytes =
        Utf16("services:", true) + std::string("\x00\xD8", 2) + Utf16("\n", true, false);
    auto r = Load(Options({dir.Write("stack.yml", bytes)}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errors()[0].message.find("unpaired surrogate") != std::string::npos);
  }
}

TEST_CASE("yaml: UTF-16 text outside ASCII decodes to UTF-8") {
  TempDir dir;
  // "café" and U+1F600 (a surrogate pair) in a label, UTF-16LE.
  std::string le = "\xFF\xFE";
  auto put = [&](uint16_t u) {
    le.push_back(static_cast<char>(u & 0xFF));
    le.push_back(static_cast<char>(u >> 8));
  };
  for (char c : std::string("services:\n  web:\n    image: nginx\n    labels:\n      a: caf"))
    put(static_cast<uint16_t>(c));
  put(0x00E9);
  put(0xD83D);
  put(0xDE00);
  put('\n');
  auto r = Load(Options({dir.Write("stack.yml", le)}));
  REQUIRE(r.ok());
  CHECK(At(ServiceNode(*r, "web"), "labels.a")->text == "caf\xC3\xA9\xF0\x9F\x98\x80");
}

TEST_CASE("yaml: a duplicate key is an error naming both lines") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    user: root\n"
                            "    image: httpd\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].mark.line == 5);
  CHECK(errors[0].mark.column == 5);
  CHECK(errors[0].path == "services.web.image");
  CHECK(errors[0].message == "duplicate key \"image\" (first defined at line 3)");
}

TEST_CASE("yaml: a non-string key is an error") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n"
                            "      123: x\n");
  auto r = Load(Options({f}));
  REQUIRE_FALSE(r.ok());
  auto errors = r.error().Errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].mark.line == 5);
  CHECK(errors[0].mark.column == 7);
  CHECK(errors[0].message.find("non-string key 123") == 0);
  SECTION("quoted, it is a name") {
    std::string g =
        dir.Write("ok.yml", "services:\n  web:\n    image: nginx\n    labels:\n      '123': x\n");
    auto r2 = Load(Options({g}));
    REQUIRE(r2.ok());
    CHECK(r2->spec.services(0).container().labels().at("123") == "x");
  }
}

TEST_CASE("yaml: integers with a leading 0 are octal") {
  TempDir dir;
  dir.Write("secret.txt", "s3cr3t");
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    secrets:\n"
                            "      - source: s\n"
                            "        mode: 0440\n"
                            "      - source: t\n"
                            "        target: /t\n"
                            "        mode: 0o600\n"
                            "      - source: u\n"
                            "        target: /u\n"
                            "        mode: 420\n"
                            "secrets:\n"
                            "  s: {file: ./secret.txt}\n"
                            "  t: {file: ./secret.txt}\n"
                            "  u: {file: ./secret.txt}\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  const auto& secrets = r->spec.services(0).container().secrets();
  REQUIRE(secrets.size() == 3);
  CHECK(secrets[0].target() == "/run/secrets/s");
  CHECK(secrets[0].mode() == 288);
  CHECK(secrets[1].target() == "/t");
  CHECK(secrets[1].mode() == 0600);
  CHECK(secrets[2].target() == "/u");
  CHECK(secrets[2].mode() == 420);
}

TEST_CASE("yaml: quoted scalars keep their type as strings") {
  TempDir dir;
  std::string f = dir.Write("stack.yml",
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    environment:\n"
                            "      A: 'true'\n"
                            "      B: true\n"
                            "      C: \"0440\"\n"
                            "      D: 0440\n"
                            "      E: 1.50\n"
                            "      F:\n"
                            "      G: ''\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  const auto& env = r->spec.services(0).container().env();
  CHECK(env.at("A") == "true");
  CHECK(env.at("B") == "true");
  CHECK(env.at("C") == "0440");
  CHECK(env.at("D") == "0440");  // environment values keep their spelling
  CHECK(env.at("E") == "1.50");
  CHECK(env.count("F") == 0);  // unset in the environment: left out
  CHECK(env.at("G") == "");
}

}  // namespace shoal::stack

namespace shoal::stack {

TEST_CASE("yaml: merge keys and duplicate keys in large mappings") {
  TempDir dir;
  std::string labels;
  for (int i = 0; i < 40; ++i) labels += "      k" + std::to_string(i) + ": explicit\n";
  std::string f = dir.Write("stack.yml",
                            "x-a: &a {k0: merged, k39: merged, extra: merged}\n"
                            "services:\n"
                            "  web:\n"
                            "    image: nginx\n"
                            "    labels:\n" +
                                labels + "      <<: *a\n");
  auto r = Load(Options({f}));
  REQUIRE(r.ok());
  const auto& l = r->spec.services(0).container().labels();
  CHECK(l.at("k0") == "explicit");
  CHECK(l.at("k39") == "explicit");
  CHECK(l.at("extra") == "merged");
  const Node* doc_labels = At(ServiceNode(*r, "web"), "labels");
  REQUIRE(doc_labels != nullptr);
  CHECK(doc_labels->entries.size() == 41);

  std::string g = dir.Write("dup.yml", "services:\n  web:\n    image: nginx\n    labels:\n" +
                                           labels + "      k35: again\n");
  auto d = Load(Options({g}));
  REQUIRE_FALSE(d.ok());
  auto errors = d.error().Errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message == "duplicate key \"k35\" (first defined at line 40)");
  CHECK(errors[0].mark.line == 45);
}

}  // namespace shoal::stack
