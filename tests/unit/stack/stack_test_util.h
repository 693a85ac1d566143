#pragma once

// Helpers for the stack loader tests: a temporary directory per test that is
// removed afterwards, and loading with an explicit environment so that no test
// depends on the environment it runs in.

#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/stack/loader.h"

namespace shoal::stack::testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("shoal-stack-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  // Writes `content` (bytes, as is) to `name` inside the directory; returns the full path.
  std::string Write(const std::string& name, std::string_view content) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    return p.string();
  }

  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Changes the working directory for the lifetime of the object, so that a
// stack file can be named by a relative path ("stack.yml") in messages.
class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() {
    std::error_code ec;
    fs::current_path(old_, ec);
  }
  ScopedCwd(const ScopedCwd&) = delete;
  ScopedCwd& operator=(const ScopedCwd&) = delete;

 private:
  fs::path old_;
};

inline LoadOptions Options(std::vector<std::string> files,
                           std::map<std::string, std::string> env = {}) {
  LoadOptions o;
  o.files = std::move(files);
  o.environment = std::move(env);
  o.stack_name = "app";
  return o;
}

// Semantic equality of two specs (map fields compare by key, not by order).
inline bool SpecEquals(const shoal::v1::StackSpec& a, const shoal::v1::StackSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

// The messages of the errors (or warnings) of a diagnostics list.
inline std::vector<std::string> Messages(const std::vector<Diagnostic>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.ToString());
  return out;
}

// services.<svc> of a resolved document; nullptr when absent.
inline const Node* ServiceNode(const LoadedStack& s, std::string_view svc) {
  const Node* services = s.document ? s.document->Get("services") : nullptr;
  return services ? services->Get(svc) : nullptr;
}

// The value at a dotted path inside a node ("labels.x"); nullptr when absent.
inline const Node* At(const Node* n, std::string_view path) {
  while (n && !path.empty()) {
    size_t dot = path.find('.');
    n = n->Get(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  return n;
}

}  // namespace shoal::stack::testing
