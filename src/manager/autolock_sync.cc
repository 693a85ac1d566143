// Autolock as a cluster setting (issue 8, point 4; docs/security.md): the
// Cluster object holds the unlock key sealed with the cluster data key, and
// every manager seals its own data key file under it. A manager changes the
// setting through Raft, then follows it at once; the others follow it
// within one turn of the daemon's watchdog (200 ms).

#include <cstdio>

#include "daemon_internal.h"
#include "shoal/ca/keyring.h"

namespace shoal::manager {
namespace {

// The context the unlock key is sealed under in the Cluster object.
constexpr std::string_view kUnlockKeyContext = "shoal-unlock-key";

const v1::Cluster* TheCluster(const store::State& state) {
  auto clusters = state.List(store::Kind::kCluster);
  return clusters.empty() ? nullptr : &clusters.front()->cluster();
}

}  // namespace

void Daemon::Impl::ProposeAutolock(bool on, bool rotate,
                                   std::function<void(Result<AutolockChange>)> done) {
  Manager* m = manager();
  if (!m) return done(Status(Code::kFailedPrecondition, NotManager().error_message()));
  AtRest* at_rest = at_rest_.get();
  bool posted = m->Post([m, at_rest, on, rotate, done] {
    m->Read([m, at_rest, on, rotate, done](Status s, const store::State& state) {
      if (!s.ok()) return done(s);
      const v1::Cluster* c = TheCluster(state);
      if (!c) return done(Status(Code::kUnavailable, "cluster not set up"));
      bool enabled = c->autolock().enabled();
      if (rotate && !enabled) {
        return done(Status(Code::kFailedPrecondition,
                           "autolock is off: there is no unlock key to rotate (turn it on with "
                           "`shoal cluster update --autolock=true`)"));
      }
      if (on == enabled && !rotate) return done(AutolockChange{});
      v1::Cluster next = *c;
      std::string key;
      if (on) {
        key = ca::NewUnlockKey();
        auto sealed = at_rest->Seal(key, kUnlockKeyContext);
        if (!sealed.ok()) return done(sealed.error());
        next.mutable_autolock()->set_enabled(true);
        next.mutable_autolock()->set_sealed_unlock_key(*sealed);
      } else {
        next.clear_autolock();
      }
      v1::Mutation mut;
      mut.set_expected_version(c->meta().version());
      *mut.mutable_cluster() = std::move(next);
      m->Propose({std::move(mut)}, "autolock", [at_rest, key, done](Status s, uint64_t) {
        if (!s.ok()) return done(s);
        // This manager follows before it answers, so that its key file is
        // sealed under the key the operator is about to be shown.
        if (Status f = at_rest->FollowAutolock(key); !f.ok()) return done(f);
        done(AutolockChange{.changed = true, .unlock_key = key});
      });
    });
  });
  if (!posted) done(Status(Code::kUnavailable, "manager stopping"));
}

void Daemon::Impl::SyncAutolock() {
  Manager* m = manager();
  if (!m) return;
  v1::ClusterAutolock want;
  bool have = false;
  m->RunSync([&] {
    if (const v1::Cluster* c = TheCluster(m->store().state())) {
      want = c->autolock();
      have = true;
    }
  });
  if (!have) return;
  std::string key;
  Status s;
  if (want.enabled()) {
    auto opened = at_rest_->Unseal(want.sealed_unlock_key(), kUnlockKeyContext);
    if (opened.ok()) key = std::move(opened).value();
    s = opened.ok() ? Status::Ok() : opened.error();
  }
  if (s.ok()) s = at_rest_->FollowAutolock(key);
  // Said once per distinct failure: the watchdog retries every 200 ms.
  std::string said = s.ok() ? "" : s.ToString();
  if (said != autolock_error_ && !said.empty()) {
    std::fprintf(stderr, "shoal daemon: cannot follow the cluster's autolock setting: %s\n",
                 said.c_str());
  }
  autolock_error_ = said;
}

}  // namespace shoal::manager
