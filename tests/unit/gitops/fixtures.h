#pragma once

// Temporary directories, file writing and a fake cluster for the gitops tests.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "shoal/gitops/deployer.h"
#include "shoal/gitops/sync.h"

namespace shoal::gitops::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "shoal-gitops-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

inline std::string StackFile(const std::string& image, int replicas = 1) {
  return "services:\n  web:\n    image: " + image + "\n    command: [\"sleep\", \"1000\"]\n" +
         "    deploy:\n      replicas: " + std::to_string(replicas) + "\n";
}

// A cluster in a map: plans compare spec hashes, deploys bump revisions.
class FakeDeployer : public Deployer {
 public:
  struct Live {
    v1::StackSpec spec;
    uint64_t revision = 0;
    v1::Source source;
  };
  std::map<std::string, Live> live;
  std::vector<std::string> deployed;  // stack names, in order
  std::vector<std::string> removed;
  std::vector<std::pair<std::string, uint64_t>> rollbacks;
  std::map<std::string, std::vector<std::string>> unplaced;
  std::map<std::string, std::string> fail_wait;  // stack -> cause
  bool unreachable = false;

  Result<std::vector<LiveStack>> ListStacks() override {
    if (unreachable) return Status(Code::kUnavailable, "no manager answers");
    std::vector<LiveStack> out;
    for (const auto& [name, l] : live) out.push_back({name, l.revision, l.source});
    return out;
  }
  Result<PlanResult> Plan(const v1::StackSpec& spec) override {
    PlanResult p;
    auto it = live.find(spec.name());
    p.changed = it == live.end() || SpecHash(it->second.spec) != SpecHash(spec);
    if (p.changed) p.plan_text = "~ stack " + spec.name();
    if (auto u = unplaced.find(spec.name()); u != unplaced.end()) p.unplaced = u->second;
    return p;
  }
  Result<uint64_t> Deploy(const v1::StackSpec& spec, const v1::Source& source,
                          uint64_t check_version) override {
    Live& l = live[spec.name()];
    if (check_version != 0 && l.revision != check_version) {
      return Status(Code::kFailedPrecondition, "the stack changed since");
    }
    history[spec.name()].push_back(l);
    l.spec = spec;
    l.source = source;
    l.revision++;
    deployed.push_back(spec.name());
    return l.revision;
  }
  Status WaitConverged(const std::string& stack, uint64_t) override {
    if (auto it = fail_wait.find(stack); it != fail_wait.end()) {
      return Status(Code::kFailedPrecondition, it->second);
    }
    return Status::Ok();
  }
  Status Rollback(const std::string& stack, uint64_t to) override {
    rollbacks.emplace_back(stack, to);
    for (const Live& old : history[stack]) {
      if (old.revision == to) {
        Live& l = live[stack];
        l.spec = old.spec;
        l.source = old.source;
        l.revision++;
      }
    }
    return Status::Ok();
  }
  Status Remove(const std::string& stack) override {
    live.erase(stack);
    removed.push_back(stack);
    return Status::Ok();
  }

 private:
  std::map<std::string, std::vector<Live>> history;
};

}  // namespace shoal::gitops::testing
