// libFuzzer target for the stack loader: any bytes, as a stack file, must give
// a stack or diagnostics, never a crash, a hang or unbounded memory. On success
// the printed YAML and JSON are produced too, and the YAML must load back to
// the same document.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_workdir.h"
#include "shoal/stack/emit.h"
#include "shoal/stack/loader.h"

namespace {

namespace fs = std::filesystem;

const fs::path& WorkDir() { return shoal::fuzz::WorkDir("shoal-stack-fuzz"); }

void WriteFile(const fs::path& p, const uint8_t* data, size_t size) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

shoal::stack::LoadOptions Options(const std::string& file) {
  shoal::stack::LoadOptions o;
  o.files = {file};
  // Fixed, so that a finding reproduces: never the environment of the fuzzer.
  o.environment = {{"HOME", "/nonexistent"}, {"TAG", "1.25"}, {"EMPTY", ""}, {"PORT", "8080"}};
  o.read_dotenv = false;
  o.stack_name = "fuzz";
  // Secret and config files named by the input are not read: the fuzzer must
  // not depend on (or wander through) the machine's files.
  o.read_file_contents = false;
  return o;
}

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "stack_loader_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fs::path file = WorkDir() / "stack.yml";
  WriteFile(file, data, size);
  auto options = Options(file.string());

  auto resolved = shoal::stack::Resolve(options);
  auto loaded = shoal::stack::Load(options);
  if (!resolved.ok()) {
    if (resolved.error().ErrorCount() == 0) Die("Resolve failed without an error", "");
    if (loaded.ok()) Die("Load accepted what Resolve refused", resolved.error().ToString());
    return 0;
  }
  std::string yaml = shoal::stack::ToYaml(*resolved->document);
  std::string json = shoal::stack::ToJson(*resolved->document);
  if (yaml.empty() || json.empty()) Die("empty output", "");
  if (!loaded.ok()) {
    if (loaded.error().ErrorCount() == 0) Die("Load failed without an error", "");
    return 0;
  }

  // The printed stack reads back as the same document.
  fs::path printed = WorkDir() / "printed.yml";
  WriteFile(printed, reinterpret_cast<const uint8_t*>(yaml.data()), yaml.size());
  auto again = shoal::stack::Resolve(Options(printed.string()));
  if (!again.ok()) Die("the printed stack does not load", yaml + "\n" + again.error().ToString());
  if (!again->document->Equals(*resolved->document)) {
    Die("the printed stack loads as another document",
        yaml + "\n---- loads back as ----\n" + shoal::stack::ToYaml(*again->document));
  }
  return 0;
}
