// libFuzzer target for several stack files merged (-c a.yml -c b.yml -c
// c.yml): overrides, !reset and !override, extends between the files, and
// interpolation in each. The input holds up to three files separated by
// lines "#####". Whatever they hold, the loader must give a stack or
// diagnostics, never a crash, a hang or unbounded memory; a resolved stack
// prints as YAML that loads back (alone) to the same document; and merging
// a file with an empty override changes nothing.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_workdir.h"
#include "shoal/stack/emit.h"
#include "shoal/stack/loader.h"

namespace {

namespace fs = std::filesystem;

const fs::path& WorkDir() { return shoal::fuzz::WorkDir("shoal-merge-fuzz"); }

void WriteFile(const fs::path& p, std::string_view bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

shoal::stack::LoadOptions Options(std::vector<std::string> files) {
  shoal::stack::LoadOptions o;
  o.files = std::move(files);
  o.environment = {{"HOME", "/nonexistent"}, {"TAG", "1.25"}, {"EMPTY", ""}, {"PORT", "8080"}};
  o.read_dotenv = false;
  o.stack_name = "fuzz";
  o.read_file_contents = false;
  return o;
}

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "stack_merge_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> files;
  static const char* kNames[] = {"a.yml", "b.yml", "c.yml"};
  // Files named by extends but absent from this input must not be left over
  // from the one before.
  for (const char* n : kNames) fs::remove(WorkDir() / n);
  for (const char* n : kNames) {
    size_t sep = input.find("\n#####\n");
    std::string_view part = input.substr(0, sep);
    if (files.size() == 2) part = input;  // the last file takes the rest
    fs::path p = WorkDir() / n;
    WriteFile(p, part);
    files.push_back(p.string());
    if (sep == std::string_view::npos || files.size() == 3) break;
    input.remove_prefix(sep + 7);
  }

  auto resolved = shoal::stack::Resolve(Options(files));
  auto loaded = shoal::stack::Load(Options(files));
  if (!resolved.ok()) {
    if (resolved.error().ErrorCount() == 0) Die("Resolve failed without an error", "");
    if (loaded.ok()) Die("Load accepted what Resolve refused", resolved.error().ToString());
    return 0;
  }
  if (!loaded.ok() && loaded.error().ErrorCount() == 0) Die("Load failed without an error", "");
  std::string yaml = shoal::stack::ToYaml(*resolved->document);
  if (yaml.empty() || shoal::stack::ToJson(*resolved->document).empty()) Die("empty output", "");

  // The merged result, printed, is one file that loads back as the same
  // document.
  fs::path printed = WorkDir() / "printed.yml";
  WriteFile(printed, yaml);
  auto again = shoal::stack::Resolve(Options({printed.string()}));
  if (!again.ok()) Die("the printed stack does not load", yaml + "\n" + again.error().ToString());
  if (!again->document->Equals(*resolved->document)) {
    Die("the printed stack loads as another document",
        yaml + "\n---- loads back as ----\n" + shoal::stack::ToYaml(*again->document));
  }

  // An override that says nothing changes nothing (a stack without
  // services, which `shoal config` accepts, would gain the empty key).
  if (resolved->document->Get("services") == nullptr) return 0;
  fs::path empty = WorkDir() / "empty.yml";
  WriteFile(empty, "services: {}\n");
  std::vector<std::string> with_empty = files;
  with_empty.push_back(empty.string());
  auto same = shoal::stack::Resolve(Options(with_empty));
  if (!same.ok()) Die("an empty override broke the stack", same.error().ToString());
  if (!same->document->Equals(*resolved->document)) {
    Die("an empty override changed the stack",
        yaml + "\n---- became ----\n" + shoal::stack::ToYaml(*same->document));
  }
  return 0;
}
