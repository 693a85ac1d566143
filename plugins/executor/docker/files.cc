#include "files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shoal/executor/task_util.h"

namespace shoal::executor::docker {
namespace {

namespace fs = std::filesystem;

bool IsWritableTmpfs(const fs::path& dir) {
  struct statfs st {};
  if (statfs(dir.c_str(), &st) != 0) return false;
  return st.f_type == TMPFS_MAGIC && access(dir.c_str(), W_OK) == 0;
}

Status WriteOne(const fs::path& path, const TaskFile& f) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return IoError("create " + path.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < f.data.size()) {
    ssize_t n = write(fd, f.data.data() + done, f.data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = IoError("write " + path.string() + ": " + std::strerror(errno));
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  // Owner first: chown clears set-id bits, so the mode comes after it.
  if (geteuid() == 0 && fchown(fd, f.uid, f.gid) != 0) {
    Status s = IoError("chown " + path.string() + ": " + std::strerror(errno));
    close(fd);
    return s;
  }
  if (fchmod(fd, f.mode & 07777) != 0) {
    Status s = IoError("chmod " + path.string() + ": " + std::strerror(errno));
    close(fd);
    return s;
  }
  close(fd);
  return Status::Ok();
}

}  // namespace

Result<std::string> ContainerTarget(const TaskFile& file) {
  Result<std::string> rel = FileTargetRelativePath(file.target);
  if (!rel.ok()) return rel.error();
  if (!file.target.empty() && file.target[0] == '/') return "/" + *rel;
  return (file.secret ? "/run/secrets/" : "/") + *rel;
}

Status CheckFiles(const std::vector<TaskFile>& files, const fs::path& secrets_tmpfs) {
  bool any_secret = false;
  for (const TaskFile& f : files) {
    if (Result<std::string> t = ContainerTarget(f); !t.ok()) return t.error();
    any_secret = any_secret || f.secret;
  }
  if (any_secret && (secrets_tmpfs.empty() || !IsWritableTmpfs(secrets_tmpfs))) {
    return Status(Code::kFailedPrecondition, "secrets need a writable tmpfs on this node (\"" +
                                                 secrets_tmpfs.string() +
                                                 "\" is not one), so that they never reach a disk");
  }
  return Status::Ok();
}

Result<std::vector<FileBind>> WriteFiles(const std::vector<TaskFile>& files,
                                         const fs::path& secrets_dir, const fs::path& configs_dir) {
  std::vector<FileBind> binds;
  std::error_code ec;
  auto cleanup = [&] {
    fs::remove_all(secrets_dir, ec);
    fs::remove_all(configs_dir, ec);
  };
  bool made_secrets = false, made_configs = false;
  for (size_t i = 0; i < files.size(); ++i) {
    const TaskFile& f = files[i];
    const fs::path& dir = f.secret ? secrets_dir : configs_dir;
    bool& made = f.secret ? made_secrets : made_configs;
    if (!made) {
      fs::remove_all(dir, ec);  // a leftover of an unrecorded earlier start
      fs::create_directories(dir.parent_path(), ec);
      if (mkdir(dir.c_str(), 0700) != 0) {
        Status s = IoError("mkdir " + dir.string() + ": " + std::strerror(errno));
        cleanup();
        return s;
      }
      made = true;
    }
    Result<std::string> target = ContainerTarget(f);
    if (!target.ok()) {
      cleanup();
      return target.error();
    }
    fs::path path = dir / std::to_string(i);
    if (Status s = WriteOne(path, f); !s.ok()) {
      cleanup();
      return s;
    }
    binds.push_back(FileBind{path.string(), *target});
  }
  return binds;
}

}  // namespace shoal::executor::docker
