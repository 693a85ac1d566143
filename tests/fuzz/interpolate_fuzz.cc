// libFuzzer target for variable interpolation alone: any text, with any
// environment, must interpolate or fail with a message, never crash or hang,
// and obey what the compose specification promises:
//   - text without '$' comes back unchanged;
//   - text whose every '$' is written "$$" comes back as the original text;
//   - a variable reported unset is not set;
//   - the output is at most as long as the input times the longest value.
//
// Input: "NAME=VALUE" lines, a line "%%", then the text. Without "%%" the
// whole input is the text and a fixed environment applies.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "interpolate.h"

namespace {

using Env = std::map<std::string, std::string, std::less<>>;

[[noreturn]] void Die(const char* what, std::string_view in, const std::string& detail) {
  std::fprintf(stderr, "interpolate_fuzz: %s\ninput: %.*s\n%s\n", what,
               static_cast<int>(std::min<size_t>(in.size(), 2000)), in.data(), detail.c_str());
  std::abort();
}

Env ParseEnv(std::string_view block) {
  Env env;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block = nl == std::string_view::npos ? std::string_view() : block.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return env;
}

struct Outcome {
  bool ok = false;
  std::string out;
  std::vector<std::string> unset;
  std::string error;
};

Outcome Run(std::string_view text, const Env& env) {
  shoal::stack::VariableLookup lookup =
      [&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  Outcome o;
  o.ok = shoal::stack::InterpolateString(text, lookup, &o.out, &o.unset, &o.error);
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Env env = {
      {"HOME", "/home/u"}, {"TAG", "1.25"}, {"EMPTY", ""}, {"DOLLAR", "$X"}, {"BRACE", "${TAG}"}};
  std::string_view text = input;
  if (size_t sep = input.find("\n%%\n"); sep != std::string_view::npos) {
    env = ParseEnv(input.substr(0, sep));
    text = input.substr(sep + 4);
  }

  Outcome o = Run(text, env);
  if (o.ok != o.error.empty()) Die("ok and error disagree", text, o.error);
  std::string escaped;
  for (char c : text) {
    escaped += c;
    if (c == '$') escaped += '$';
  }
  Outcome lit = Run(escaped, env);
  if (!lit.ok || lit.out != text || !lit.unset.empty()) {
    Die("$$-escaped text does not come back as written", escaped, lit.out + "\n" + lit.error);
  }
  if (!o.ok) return 0;

  if (text.find('$') == std::string_view::npos && o.out != text) {
    Die("text without $ changed", text, o.out);
  }
  for (const auto& name : o.unset) {
    if (env.count(name)) Die("a set variable was reported unset", text, name);
  }
  size_t longest = 1;
  for (const auto& [k, v] : env) longest = std::max(longest, v.size());
  if (o.out.size() > text.size() * longest) {
    Die("the output is longer than any substitution can make it", text,
        std::to_string(o.out.size()));
  }
  // Values are never interpolated again: a value holding "${TAG}" stays so.
  Outcome again = Run(text, env);
  if (again.out != o.out || again.unset != o.unset) Die("not deterministic", text, again.out);

  return 0;
}
