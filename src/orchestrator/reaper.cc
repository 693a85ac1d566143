// The task reaper: history retention, and the tasks of deleted services.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>

#include "pass.h"

namespace shoal::orchestrator::internal {

namespace {

// History is kept per slot for replicated services and jobs, per node for
// global ones.
std::string HistoryKey(const v1::Task& t, bool global) {
  return global ? t.node_id() : std::to_string(t.slot());
}

bool Older(const v1::Task* a, const v1::Task* b) {
  return std::make_tuple(a->meta().created_at_ns(), a->meta().id()) <
         std::make_tuple(b->meta().created_at_ns(), b->meta().id());
}

// The keys that still have a live task, without a string made per task
// (every task of a service is live or history, and most are live).
class LiveKeys {
 public:
  explicit LiveKeys(bool global) : global_(global) {}
  void Insert(const v1::Task& t) {
    if (global_) {
      nodes_.insert(t.node_id());
    } else {
      slots_.insert(t.slot());
    }
  }
  // Whether the key of `t` has a live task.
  bool Has(const v1::Task& t) const {
    return global_ ? nodes_.count(t.node_id()) > 0 : slots_.count(t.slot()) > 0;
  }

 private:
  bool global_;
  std::unordered_set<uint64_t> slots_;
  std::unordered_set<std::string_view> nodes_;  // the tasks' own strings
};

}  // namespace

void ReapHistory(Pass& p, const ServiceTasks& st) {
  const bool global = IsGlobal(st.service->spec().mode());
  LiveKeys live(global);
  // By key, in the order of the keys as text (the order of the deletions).
  std::map<std::string, std::vector<const v1::Task*>> history;
  for (const v1::Task* read : st.read) {
    // Judged as this pass leaves the task: one shut down a moment ago for a
    // failure already counts, so the next pass finds nothing more to reap.
    const v1::Task* t = p.changes.View(*read);
    if (t == nullptr) continue;
    if (IsLive(*t)) {
      live.Insert(*t);
    } else if (IsFinished(p, *t)) {
      history[HistoryKey(*t, global)].push_back(read);
    }
  }
  for (const v1::Task* t : st.created) live.Insert(*t);

  for (auto& [key, tasks] : history) {
    // A slot scaled away, or a node the service left, keeps no history: as
    // Swarm removes scaled-down tasks instead of keeping them. (Every task
    // of `tasks` has the same key; the view's is the read one's.)
    const v1::Task* first = p.changes.View(*tasks.front());
    const uint64_t keep = live.Has(*first) ? p.history_limit : 0;
    if (tasks.size() <= keep) continue;
    std::sort(tasks.begin(), tasks.end(), Older);
    for (size_t i = 0; i < tasks.size() - keep; ++i) {
      if (!p.changes.Reserve(p.changes.CostOf(*tasks[i]))) return;
      p.changes.Delete(*tasks[i]);
      p.counters.deleted++;
    }
  }
}

void ReconcileOrphans(Pass& p, const std::vector<const v1::Task*>& tasks) {
  // The service is gone: stop what runs, and delete each task once nothing
  // of it runs any more (its history went with the service).
  for (const v1::Task* t : tasks) {
    if (IsFinished(p, *t)) {
      if (!p.changes.Reserve(1)) return;
      p.changes.Delete(*t);
      p.counters.deleted++;
    } else if (t->desired_state() < v1::TASK_SHUTDOWN) {
      if (!RetireUnit(p, *t)) return;
    }
  }
}

}  // namespace shoal::orchestrator::internal
