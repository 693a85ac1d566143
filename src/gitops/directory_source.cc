// A local directory as a source: inotify tells when to look again, and the
// revision is a hash of the files, so that a save that changes nothing makes
// no deploy.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "hash_tree.h"
#include "shoal/gitops/source.h"

namespace shoal::gitops {
namespace fs = std::filesystem;
namespace {

constexpr uint32_t kEvents = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                             IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB;

class DirectorySource final : public Source {
 public:
  DirectorySource(DirectoryOptions options, int inotify_fd, int wake_fd)
      : options_(std::move(options)), inotify_(inotify_fd), wake_(wake_fd) {}
  ~DirectorySource() override {
    ::close(inotify_);
    ::close(wake_);
  }

  std::string Describe() const override { return "directory " + options_.path; }

  Result<Snapshot> Fetch() override {
    WatchTree();  // directories made since the last look get their watch
    auto hash = internal::HashTree(options_.path);
    if (!hash.ok()) return hash.error();
    Snapshot snap;
    snap.dir = options_.path;
    snap.revision = *hash;
    snap.source.set_kind(v1::Source::KIND_DIRECTORY);
    snap.source.set_url(options_.path);
    snap.source.set_commit(*hash);
    return snap;
  }

  bool WaitForChange(std::chrono::milliseconds timeout) override {
    if (!WaitReadable(timeout)) return false;
    // Then quiet for `debounce`: an editor's save, a `git pull` or an rsync
    // is a burst of events, and one deploy should follow the whole burst.
    while (WaitReadable(options_.debounce)) {
    }
    return true;
  }

  void Interrupt() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
  }

  // Adds a watch on every directory under the root (inotify is not
  // recursive). Re-adding an existing watch is harmless.
  void WatchTree() {
    std::error_code ec;
    ::inotify_add_watch(inotify_, options_.path.c_str(), kEvents);
    for (fs::recursive_directory_iterator it(options_.path, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (!it->is_directory(ec)) continue;
      if (it->path().filename() == ".git") {
        it.disable_recursion_pending();
        continue;
      }
      ::inotify_add_watch(inotify_, it->path().c_str(), kEvents);
    }
  }

 private:
  // True when file events arrived (drained) within `timeout`; false on
  // timeout or on Interrupt (the wake is drained too).
  bool WaitReadable(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}};
    int n;
    do {
      n = ::poll(fds, 2, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    if (fds[1].revents & POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = ::read(wake_, &v, sizeof v);
      return false;
    }
    alignas(inotify_event) char buf[16384];
    while (::read(inotify_, buf, sizeof buf) > 0) {
    }
    return true;
  }

  DirectoryOptions options_;
  int inotify_;
  int wake_;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenDirectory(const DirectoryOptions& options) {
  std::error_code ec;
  DirectoryOptions o = options;
  o.path = fs::absolute(options.path, ec).lexically_normal().string();
  if (!o.path.empty() && o.path.size() > 1 && o.path.back() == '/') o.path.pop_back();
  if (!fs::is_directory(o.path, ec)) return NotFound(options.path + ": not a directory");
  int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in < 0) return IoError(std::string("inotify: ") + std::strerror(errno));
  int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    ::close(in);
    return IoError(std::string("eventfd: ") + std::strerror(errno));
  }
  auto source = std::make_unique<DirectorySource>(o, in, wake);
  source->WatchTree();
  return std::unique_ptr<Source>(std::move(source));
}

}  // namespace shoal::gitops
