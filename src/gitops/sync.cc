#include "shoal/gitops/sync.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include "hash_tree.h"
#include "shoal/gitops/discover.h"
#include "shoal/stack/loader.h"

namespace shoal::gitops {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The same source for a stack revision: a watcher prunes only what it (or an
// earlier run of it) deployed, never a stack a user deployed by hand or
// another watcher deployed from elsewhere.
bool SameOrigin(const v1::Source& a, const v1::Source& b) {
  return a.kind() == b.kind() && a.url() == b.url();
}

class Syncer {
 public:
  Syncer(const Snapshot& snapshot, Deployer& deployer, const SyncOptions& options,
         WatchState& state)
      : snapshot_(snapshot), deployer_(deployer), options_(options), state_(state) {}

  SyncReport Run(const std::vector<StackEntry>& entries,
                 const std::map<std::string, LiveStack>& live) {
    SyncReport report;
    std::set<std::string> declared;
    // Every stack is loaded first, then those whose content changed are
    // synced before the others: a commit's stacks are deployed without
    // waiting for the drift checks of a large repository's unchanged ones.
    std::vector<Loaded> loaded;
    for (const StackEntry& entry : entries) {
      declared.insert(entry.name);
      loaded.push_back(Load(entry));
    }
    std::stable_partition(loaded.begin(), loaded.end(), [&](const Loaded& l) {
      auto it = state_.stacks.find(l.entry->name);
      return it == state_.stacks.end() || it->second.content_hash != l.hash;
    });
    for (const Loaded& l : loaded) {
      auto st = state_.stacks.find(l.entry->name);
      const bool unchanged = st != state_.stacks.end() && st->second.content_hash == l.hash;
      if (unchanged && options_.interrupted && options_.interrupted()) {
        Log("sync interrupted by a new trigger; the remaining drift checks wait for the next one");
        report.interrupted = true;
        break;
      }
      auto it = live.find(l.entry->name);
      report.stacks.push_back(SyncOne(l, it == live.end() ? nullptr : &it->second));
    }
    for (const auto& [name, stack] : live) {
      if (declared.count(name) || !SameOrigin(stack.source, snapshot_.source)) continue;
      report.stacks.push_back(Prune(name));
    }
    std::sort(report.stacks.begin(), report.stacks.end(),
              [](const StackReport& a, const StackReport& b) { return a.name < b.name; });
    return report;
  }

 private:
  void Log(const std::string& line) {
    if (options_.log) options_.log(line);
  }

  StackReport Fail(StackReport r, std::string error) {
    Log("stack " + r.name + ": failed: " + error);
    r.outcome = Outcome::kFailed;
    r.error = std::move(error);
    StackStatus& st = state_.stacks[r.name];
    st.state = SyncState::kFailed;
    st.last_error = r.error;
    st.time_ns = NowNs();
    return r;
  }

  // A stack of the source, loaded; `hash` is "" when it did not load.
  struct Loaded {
    const StackEntry* entry = nullptr;
    std::optional<v1::StackSpec> spec;
    std::string error;
    std::string hash;
  };

  Loaded Load(const StackEntry& entry) {
    Loaded l;
    l.entry = &entry;
    stack::LoadOptions load;
    load.files = entry.files;
    load.environment = options_.environment;
    load.stack_name = entry.name;
    auto loaded = stack::Load(load);
    if (!loaded.ok()) {
      l.error = loaded.error().ToString();
      return l;
    }
    l.hash = SpecHash(loaded->spec);
    l.spec = std::move(loaded->spec);
    return l;
  }

  StackReport SyncOne(const Loaded& l, const LiveStack* live) {
    const StackEntry& entry = *l.entry;
    StackReport r;
    r.name = entry.name;
    if (!l.spec) return Fail(std::move(r), l.error);

    const v1::StackSpec& spec = *l.spec;
    const std::string& hash = l.hash;
    auto plan = deployer_.Plan(spec);
    if (!plan.ok()) return Fail(std::move(r), "plan refused: " + plan.error().message());
    r.plan_text = plan->plan_text;

    StackStatus& st = state_.stacks[entry.name];
    const bool source_changed = st.content_hash != hash;
    if (!plan->changed) {
      r.outcome = Outcome::kInSync;
      st = StackStatus{SyncState::kInSync,
                       hash,
                       snapshot_.revision,
                       live ? live->revision : st.revision,
                       "",
                       NowNs()};
      return r;
    }
    if (options_.dry_run || (!source_changed && !options_.self_heal)) {
      Log("stack " + entry.name + ": " +
          (source_changed ? "differs from the source" : "drifted from the source") +
          (options_.dry_run ? "" : " (not corrected without --self-heal)"));
      r.outcome = Outcome::kDrift;
      if (!options_.dry_run) {
        st.state = SyncState::kOutOfSync;
        st.time_ns = NowNs();
      }
      return r;
    }
    if (!plan->unplaced.empty()) {
      std::string why = std::to_string(plan->unplaced.size()) + " task(s) cannot be placed";
      for (const std::string& u : plan->unplaced) why += "\n  " + u;
      return Fail(std::move(r), why + "\nthe running stack was left as it was");
    }

    v1::Source source = snapshot_.source;
    const uint64_t before = live ? live->revision : 0;
    Log("stack " + entry.name + ": deploying " +
        (source_changed ? "the source's change" : "to heal drift"));
    auto revision = deployer_.Deploy(spec, source, before);
    if (!revision.ok()) return Fail(std::move(r), "deploy refused: " + revision.error().message());
    r.revision = *revision;
    if (Status s = deployer_.WaitConverged(entry.name, *revision); !s.ok()) {
      std::string why =
          "revision " + std::to_string(*revision) + " did not converge: " + s.message();
      if (before != 0) {
        Status back = deployer_.Rollback(entry.name, before);
        why += back.ok() ? "; rolled back to revision " + std::to_string(before)
                         : "; rollback to revision " + std::to_string(before) +
                               " failed too: " + back.message();
      }
      StackReport failed = Fail(std::move(r), why);
      // The next sync must try this content again only once it changes.
      state_.stacks[entry.name].content_hash = hash;
      state_.stacks[entry.name].commit = snapshot_.revision;
      return failed;
    }
    Log("stack " + entry.name + ": revision " + std::to_string(*revision) + " runs");
    r.outcome = Outcome::kDeployed;
    st = StackStatus{SyncState::kInSync, hash, snapshot_.revision, *revision, "", NowNs()};
    return r;
  }

  StackReport Prune(const std::string& name) {
    StackReport r;
    r.name = name;
    if (!options_.prune || options_.dry_run) {
      Log("stack " + name + ": no longer in the source" +
          (options_.prune ? "" : " (kept: --prune not set)"));
      r.outcome = Outcome::kWouldRemove;
      return r;
    }
    if (Status s = deployer_.Remove(name); !s.ok())
      return Fail(std::move(r), "remove: " + s.message());
    Log("stack " + name + ": removed (gone from the source)");
    r.outcome = Outcome::kRemoved;
    state_.stacks.erase(name);
    return r;
  }

  const Snapshot& snapshot_;
  Deployer& deployer_;
  const SyncOptions& options_;
  WatchState& state_;
};

}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kInSync:
      return "in sync";
    case Outcome::kDeployed:
      return "deployed";
    case Outcome::kDrift:
      return "drift";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kRemoved:
      return "removed";
    case Outcome::kWouldRemove:
      return "not in source";
  }
  return "?";
}

bool SyncReport::Failed() const {
  if (!error.empty()) return true;
  return std::any_of(stacks.begin(), stacks.end(),
                     [](const StackReport& s) { return s.outcome == Outcome::kFailed; });
}

bool SyncReport::Drifted() const {
  return std::any_of(stacks.begin(), stacks.end(), [](const StackReport& s) {
    return s.outcome == Outcome::kDrift || s.outcome == Outcome::kWouldRemove;
  });
}

int SyncReport::ExitCode() const { return Failed() ? 1 : Drifted() ? 2 : 0; }

std::string SpecHash(const v1::StackSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return internal::Sha256Hex(bytes);
}

SyncReport Sync(const Snapshot& snapshot, Deployer& deployer, const SyncOptions& options,
                WatchState& state) {
  SyncReport report;
  auto entries = Discover(snapshot.dir);
  if (!entries.ok()) {
    report.error = entries.error().message();
    return report;
  }
  auto live = deployer.ListStacks();
  if (!live.ok()) {
    report.error = "cannot list the cluster's stacks: " + live.error().message();
    return report;
  }
  std::map<std::string, LiveStack> by_name;
  for (LiveStack& s : *live) by_name.emplace(s.name, std::move(s));
  report = Syncer(snapshot, deployer, options, state).Run(*entries, by_name);
  state.last_revision = snapshot.revision;
  return report;
}

}  // namespace shoal::gitops
