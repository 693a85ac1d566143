#include "shoal/gitops/discover.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

namespace shoal::gitops {
namespace fs = std::filesystem;
namespace {

// Compose project names: they become object names and DNS labels.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::string Where(const std::string& file, const YAML::Mark& m) {
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

Status Bad(const std::string& file, const YAML::Node& n, const std::string& path,
           const std::string& message) {
  return InvalidArgument(Where(file, n.Mark()) + ": " + path + ": " + message);
}

// A file named by the index: relative to the root, and inside it (a source
// must not make the watcher read /etc/shadow into a config).
Result<std::string> IndexedFile(const fs::path& root, const std::string& index, const YAML::Node& n,
                                const std::string& path) {
  if (!n.IsScalar()) return Bad(index, n, path, "expected a file path");
  fs::path rel(n.Scalar());
  if (rel.is_absolute()) return Bad(index, n, path, "must be relative to the repository root");
  fs::path full = (root / rel).lexically_normal();
  auto [r, f] = std::mismatch(root.begin(), root.end(), full.begin(), full.end());
  if (r != root.end()) return Bad(index, n, path, "leaves the repository root");
  std::error_code ec;
  if (!fs::is_regular_file(full, ec)) return Bad(index, n, path, "no such file: " + n.Scalar());
  return full.string();
}

Result<std::vector<StackEntry>> FromIndex(const fs::path& root, const fs::path& index_path) {
  const std::string index = index_path.string();
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(index);
  } catch (const YAML::ParserException& e) {
    return InvalidArgument(Where(index, e.mark) + ": " + e.msg);
  } catch (const YAML::Exception& e) {
    return IoError(index + ": " + e.what());
  }
  if (!doc.IsMap() || !doc["stacks"] || !doc["stacks"].IsMap()) {
    return InvalidArgument(Where(index, doc.Mark()) +
                           ": stacks: expected a map of stack names to files");
  }
  for (const auto& kv : doc) {
    if (kv.first.Scalar() != "stacks") {
      return Bad(index, kv.first, kv.first.Scalar(), "unknown key (the index has only `stacks`)");
    }
  }
  std::vector<StackEntry> out;
  for (const auto& kv : doc["stacks"]) {
    StackEntry e;
    e.name = kv.first.Scalar();
    const std::string path = "stacks." + e.name;
    if (!ValidName(e.name)) {
      return Bad(index, kv.first, path,
                 "invalid stack name (lowercase letters, digits, '-' and '_', at most 63)");
    }
    if (kv.second.IsSequence()) {
      if (kv.second.size() == 0) return Bad(index, kv.second, path, "no files");
      for (size_t i = 0; i < kv.second.size(); ++i) {
        auto f = IndexedFile(root, index, kv.second[i], path + "[" + std::to_string(i) + "]");
        if (!f.ok()) return f.error();
        e.files.push_back(*f);
      }
    } else {
      auto f = IndexedFile(root, index, kv.second, path);
      if (!f.ok()) return f.error();
      e.files.push_back(*f);
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<std::vector<StackEntry>> Discover(const std::string& root_dir) {
  std::error_code ec;
  fs::path root = fs::absolute(root_dir, ec).lexically_normal();
  if (!fs::is_directory(root, ec)) return NotFound(root_dir + ": not a directory");
  std::vector<StackEntry> out;
  if (fs::path index = root / kIndexFile; fs::exists(index, ec)) {
    auto r = FromIndex(root, index);
    if (!r.ok()) return r.error();
    out = std::move(*r);
  } else if (fs::path stacks = root / "stacks"; fs::is_directory(stacks, ec)) {
    std::error_code iter_ec;  // only the listing's own failure counts
    for (const fs::directory_entry& d : fs::directory_iterator(stacks, iter_ec)) {
      fs::path file = d.path() / "stack.yml";
      if (!d.is_directory(ec) || !fs::is_regular_file(file, ec)) continue;
      StackEntry e;
      e.name = d.path().filename().string();
      if (!ValidName(e.name)) {
        return InvalidArgument(d.path().string() +
                               ": invalid stack name (lowercase letters, digits, '-' and '_')");
      }
      e.files.push_back(file.string());
      if (fs::path o = d.path() / "stack.override.yml"; fs::is_regular_file(o, ec)) {
        e.files.push_back(o.string());
      }
      out.push_back(std::move(e));
    }
    if (iter_ec) return IoError(stacks.string() + ": " + iter_ec.message());
  }
  std::sort(out.begin(), out.end(),
            [](const StackEntry& a, const StackEntry& b) { return a.name < b.name; });
  return out;
}

}  // namespace shoal::gitops
