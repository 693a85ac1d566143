#pragma once

// Rewrites a validated stack file tree into its canonical long form, so that
// files can be merged key by key and converted without caring which of the
// compose spellings a user chose:
//   command "a b"            -> [a, b]
//   environment [K=V]        -> {K: V}; env_file entries folded in
//   ports ["8080:80/udp"]    -> [{mode, target, published, protocol}]
//   volumes ["./d:/d:ro"]    -> [{type: bind, source: /abs/d, target: /d, read_only: true}]
//   networks [a]             -> {a: null}
//   depends_on [a]           -> {a: {condition: service_started, required: true}}
// Relative paths are made absolute against the directory of the file that
// wrote them, since after a merge that file is no longer known.

#include <string>

#include "dotenv.h"
#include "shoal/stack/document.h"

namespace shoal::stack {

struct NormalizeContext {
  std::string dir;        // directory of the file being normalised
  std::string home;       // for "~/" paths
  VariableLookup lookup;  // for bare environment keys and env_file expansion
};

void NormalizeFile(Node& root, const NormalizeContext& ctx, Diagnostics& diags);

// Splits a command line as a POSIX shell would (quotes and backslashes), as
// docker does for a string command. Returns false on an unterminated quote.
bool ShellSplit(std::string_view s, std::vector<std::string>* out);

// Joins dir and a relative path, resolving "." and ".." lexically.
std::string ResolvePath(const std::string& dir, const std::string& home, const std::string& p);

}  // namespace shoal::stack
