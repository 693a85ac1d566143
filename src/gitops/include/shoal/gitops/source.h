#pragma once

// Where `shoal watch` reads stacks from (design.md section 7): a local
// directory, or a git repository by URL or path. A source hands out
// snapshots: a directory holding one revision of the content, and what that
// revision is, so that a sync can record it in the stack revisions it makes.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::gitops {

struct Snapshot {
  // A directory holding this revision's files; valid until the next Fetch.
  std::string dir;
  // Identifies the content: the commit id for git, a SHA-256 over every
  // file's path and bytes for a directory. Equal revisions, equal content.
  std::string revision;
  // What a stack revision records (kind, url, ref, commit, author, message).
  v1::Source source;
  // What the source repaired on its own on the way (a corrupt clone made
  // again), for the log.
  std::vector<std::string> warnings;
};

class Source {
 public:
  virtual ~Source() = default;

  // "git https://host/repo.git@main", "directory /srv/stacks": for logs.
  virtual std::string Describe() const = 0;

  // The latest revision. For git this fetches from the remote first; when the
  // remote cannot be reached it fails with kUnavailable naming the remote and
  // the cause, and the previous snapshot's directory stays as it was. A ref
  // that does not exist is kNotFound. Called from one thread at a time.
  virtual Result<Snapshot> Fetch() = 0;

  // Blocks until the source may have changed (a directory: a burst of file
  // events followed by `debounce` of quiet) or until `timeout` passed, or
  // until Interrupt(). True when a change was seen. Sources that cannot be
  // watched (git) just wait out the timeout. Same thread as Fetch.
  virtual bool WaitForChange(std::chrono::milliseconds timeout) = 0;

  // Wakes a WaitForChange in progress (webhook trigger, shutdown). Any thread.
  virtual void Interrupt() = 0;
};

struct DirectoryOptions {
  std::string path;
  // Quiet time after the last file event before a change counts: an editor's
  // save is several events; one deploy follows them.
  std::chrono::milliseconds debounce{500};
};

// A local directory watched with inotify. Fails when the path is not a
// readable directory or inotify cannot be set up.
Result<std::unique_ptr<Source>> OpenDirectory(const DirectoryOptions& options);

struct GitOptions {
  // A URL (https://, ssh://, user@host:path) or a local path to a repository.
  std::string url;
  // A branch, a tag, or a commit id; "" for the remote's default branch.
  std::string ref;
  // The clone lives here (created when missing); a clone that cannot be
  // opened (corrupt, half-written) is removed and made again.
  std::string cache_dir;
};

// A short stable name (hex) for a source's own directory under a state dir,
// from Source::Describe(): different sources never share one.
std::string SourceKey(const std::string& describe);

// A git repository through libgit2. Clones on the first Fetch, not here;
// fails only for a bad option (empty url or cache dir).
Result<std::unique_ptr<Source>> OpenGit(const GitOptions& options);

}  // namespace shoal::gitops
