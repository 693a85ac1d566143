// A git repository as a source, through libgit2: one clone in the cache dir,
// a fetch per look, and a detached checkout of the resolved commit. Branches
// are read from the remote-tracking refs, fetched with forced refspecs, so a
// force-pushed branch is followed rather than refused.

#include <git2.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "shoal/gitops/source.h"

namespace shoal::gitops {
namespace fs = std::filesystem;
namespace {

std::string LastError(const std::string& what) {
  const git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <class T, void (*Free)(T*)>
struct Owned {
  T* p = nullptr;
  ~Owned() {
    if (p) Free(p);
  }
  T** out() { return &p; }
};
using Repo = Owned<git_repository, git_repository_free>;
using Remote = Owned<git_remote, git_remote_free>;
using Object = Owned<git_object, git_object_free>;

// Credentials without prompting: ssh through the agent, https from
// SHOAL_GIT_USERNAME / SHOAL_GIT_PASSWORD when set. Each kind is offered once
// so that a refusal ends the fetch instead of looping.
struct CredentialState {
  bool tried_agent = false;
  bool tried_userpass = false;
};

int AcquireCredential(git_credential** out, const char* /*url*/, const char* user_from_url,
                      unsigned int allowed, void* payload) {
  auto* st = static_cast<CredentialState*>(payload);
  if ((allowed & GIT_CREDENTIAL_SSH_KEY) && !st->tried_agent) {
    st->tried_agent = true;
    return git_credential_ssh_key_from_agent(out, user_from_url ? user_from_url : "git");
  }
  if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && !st->tried_userpass) {
    st->tried_userpass = true;
    const char* user = std::getenv("SHOAL_GIT_USERNAME");
    const char* pass = std::getenv("SHOAL_GIT_PASSWORD");
    if (user && pass) return git_credential_userpass_plaintext_new(out, user, pass);
  }
  return GIT_PASSTHROUGH;
}

bool LooksLikeCommit(const std::string& ref) {
  if (ref.size() < 7 || ref.size() > 40) return false;
  return ref.find_first_not_of("0123456789abcdef") == std::string::npos;
}

class GitSource final : public Source {
 public:
  explicit GitSource(GitOptions options) : options_(std::move(options)) { git_libgit2_init(); }
  ~GitSource() override { git_libgit2_shutdown(); }

  std::string Describe() const override {
    return "git " + options_.url + (options_.ref.empty() ? "" : "@" + options_.ref);
  }

  Result<Snapshot> Fetch() override {
    Repo repo;
    if (Status s = OpenOrClone(repo); !s.ok()) return s;
    if (!fresh_clone_) {
      if (Status s = FetchRemote(repo.p); !s.ok()) return s;
    }
    fresh_clone_ = false;
    Object commit;
    if (Status s = Resolve(repo.p, commit); !s.ok()) return s;
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
    const git_oid* oid = git_object_id(commit.p);
    if (git_checkout_tree(repo.p, commit.p, &co) != 0 ||
        git_repository_set_head_detached(repo.p, oid) != 0) {
      return IoError(
          LastError("checkout of " + std::string(git_oid_tostr_s(oid)) + " in " + Workdir()));
    }
    auto* c = reinterpret_cast<git_commit*>(commit.p);
    Snapshot snap;
    snap.dir = Workdir();
    snap.revision = git_oid_tostr_s(oid);
    snap.source.set_kind(v1::Source::KIND_GIT);
    snap.source.set_url(options_.url);
    snap.source.set_ref(options_.ref);
    snap.source.set_commit(snap.revision);
    if (const git_signature* a = git_commit_author(c)) {
      snap.source.set_author(std::string(a->name ? a->name : "") + " <" +
                             (a->email ? a->email : "") + ">");
    }
    if (const char* summary = git_commit_summary(c)) snap.source.set_message(summary);
    if (!last_warning_.empty()) snap.warnings.push_back(std::move(last_warning_));
    last_warning_.clear();
    return snap;
  }

  bool WaitForChange(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    bool woken = cv_.wait_for(lock, timeout, [&] { return interrupted_; });
    interrupted_ = false;
    return woken;
  }

  void Interrupt() override {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    cv_.notify_all();
  }

 private:
  std::string Workdir() const { return (fs::path(options_.cache_dir) / "checkout").string(); }

  git_fetch_options FetchOptions(CredentialState* creds) {
    git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
    fo.callbacks.credentials = AcquireCredential;
    fo.callbacks.payload = creds;
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;  // the refspecs below fetch them, forced
    return fo;
  }

  // Opens the clone, or makes it: a clone that does not open, or that points
  // at another URL, is removed first (a crash during a clone leaves one).
  Status OpenOrClone(Repo& repo) {
    const std::string path = Workdir();
    std::error_code ec;
    if (fs::exists(path, ec)) {
      if (git_repository_open(repo.out(), path.c_str()) == 0) {
        Remote remote;
        if (git_remote_lookup(remote.out(), repo.p, "origin") == 0 &&
            options_.url == git_remote_url(remote.p)) {
          return Status::Ok();
        }
      }
      last_warning_ = LastError("the clone in " + path + " is unusable; cloning again");
      if (repo.p) {
        git_repository_free(repo.p);
        repo.p = nullptr;
      }
      fs::remove_all(path, ec);
    }
    fs::create_directories(options_.cache_dir, ec);
    CredentialState creds;
    git_clone_options co = GIT_CLONE_OPTIONS_INIT;
    co.fetch_opts = FetchOptions(&creds);
    co.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
    if (git_clone(repo.out(), options_.url.c_str(), path.c_str(), &co) != 0) {
      std::string why = LastError("cannot clone " + options_.url);
      fs::remove_all(path, ec);
      return Status(Code::kUnavailable, why);
    }
    // Tags too, forced, as every later fetch does.
    if (Status s = FetchRemote(repo.p); !s.ok()) return s;
    fresh_clone_ = true;
    return Status::Ok();
  }

  Status FetchRemote(git_repository* repo) {
    Remote remote;
    if (git_remote_lookup(remote.out(), repo, "origin") != 0) {
      return Status(Code::kCorruption, LastError("the clone has no remote origin"));
    }
    char heads[] = "+refs/heads/*:refs/remotes/origin/*";
    char tags[] = "+refs/tags/*:refs/tags/*";
    char* specs[] = {heads, tags};
    git_strarray refspecs = {specs, 2};
    CredentialState creds;
    git_fetch_options fo = FetchOptions(&creds);
    if (git_remote_fetch(remote.p, &refspecs, &fo, "shoal watch: fetch") != 0) {
      return Status(Code::kUnavailable, LastError("cannot fetch from " + options_.url));
    }
    return Status::Ok();
  }

  // A fixed commit, a branch (remote-tracking), a tag, or the default branch.
  Status Resolve(git_repository* repo, Object& commit) {
    std::vector<std::string> candidates;
    if (options_.ref.empty()) {
      candidates = {"refs/remotes/origin/HEAD", "refs/remotes/origin/main",
                    "refs/remotes/origin/master"};
    } else {
      candidates = {"refs/remotes/origin/" + options_.ref, "refs/tags/" + options_.ref};
      if (LooksLikeCommit(options_.ref)) candidates.push_back(options_.ref);
    }
    for (const std::string& spec : candidates) {
      Object obj;
      if (git_revparse_single(obj.out(), repo, spec.c_str()) != 0) continue;
      if (git_object_peel(commit.out(), obj.p, GIT_OBJECT_COMMIT) == 0) return Status::Ok();
    }
    return NotFound(options_.ref.empty()
                        ? options_.url + ": no default branch (origin/HEAD, main, master)"
                        : options_.url + ": no branch, tag or commit named \"" + options_.ref +
                              "\"");
  }

  GitOptions options_;
  bool fresh_clone_ = false;
  std::string last_warning_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool interrupted_ = false;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenGit(const GitOptions& options) {
  if (options.url.empty()) return InvalidArgument("git source: empty URL");
  if (options.cache_dir.empty()) return InvalidArgument("git source: no cache directory");
  GitOptions o = options;
  // A local repository named by a relative path is cloned by its absolute
  // path, so the clone's origin stays valid whatever the working directory.
  std::error_code ec;
  if (o.url.find("://") == std::string::npos && fs::exists(o.url, ec)) {
    o.url = fs::absolute(o.url, ec).lexically_normal().string();
    if (o.url.size() > 1 && o.url.back() == '/') o.url.pop_back();
  }
  return std::unique_ptr<Source>(std::make_unique<GitSource>(o));
}

}  // namespace shoal::gitops
