#include "files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shoal/executor/task_util.h"

namespace shoal::executor::process {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what, const fs::path& path) {
  return IoError(what + " " + path.string() + ": " + std::strerror(errno));
}

// Makes every directory from `base` (which exists) down to `dir`.
Status MakeDirs(const fs::path& base, const fs::path& rel_dir, mode_t mode) {
  fs::path cur = base;
  for (const fs::path& part : rel_dir) {
    cur /= part;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return Errno("mkdir", cur);
    if (chmod(cur.c_str(), mode) != 0) return Errno("chmod", cur);
  }
  return Status::Ok();
}

Status WriteFile(const fs::path& path, const TaskFile& file, bool chown_file) {
  // Made 0600 and only then given its mode, so no other user can open it in
  // between; O_NOFOLLOW so a planted symlink is not followed.
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", path);
  size_t done = 0;
  while (done < file.data.size()) {
    ssize_t n = write(fd, file.data.data() + done, file.data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("write", path);
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (chown_file && fchown(fd, file.uid, file.gid) != 0) {
    Status s = Errno("chown", path);
    close(fd);
    return s;
  }
  if (fchmod(fd, file.mode & 07777) != 0) {
    Status s = Errno("chmod", path);
    close(fd);
    return s;
  }
  if (close(fd) != 0) return Errno("close", path);
  return Status::Ok();
}

}  // namespace

Status MakePrivateDir(const fs::path& dir, gid_t gid) {
  if (mkdir(dir.c_str(), 0700) != 0) {
    if (errno != EEXIST) return Errno("mkdir", dir);
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0) return Errno("stat", dir);
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
      return IoError(dir.string() + " exists and is not a directory owned by the agent");
    }
  }
  if (chown(dir.c_str(), geteuid(), gid) != 0) return Errno("chown", dir);
  if (chmod(dir.c_str(), 0750) != 0) return Errno("chmod", dir);
  return Status::Ok();
}

Status WriteTaskFiles(const fs::path& files_dir, const fs::path& secrets_dir,
                      const std::vector<TaskFile>& files, bool chown_files) {
  for (const TaskFile& file : files) {
    Result<std::string> rel = FileTargetRelativePath(file.target);
    if (!rel.ok()) return rel.error();
    fs::path rel_path(*rel);
    if (Status s = MakeDirs(files_dir, rel_path.parent_path(), 0755); !s.ok()) return s;
    fs::path visible = files_dir / rel_path;
    if (file.secret && !secrets_dir.empty()) {
      if (Status s = MakeDirs(secrets_dir, rel_path.parent_path(), 0711); !s.ok()) return s;
      fs::path real = secrets_dir / rel_path;
      if (Status s = WriteFile(real, file, chown_files); !s.ok()) return s;
      unlink(visible.c_str());
      if (symlink(real.c_str(), visible.c_str()) != 0) return Errno("symlink", visible);
    } else {
      if (Status s = WriteFile(visible, file, chown_files); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace shoal::executor::process
