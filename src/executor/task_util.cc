#include "shoal/executor/task_util.h"

namespace shoal::executor {

Status ValidateTaskId(std::string_view id) {
  const auto invalid = [&](const char* why) {
    return InvalidArgument("invalid task id \"" + std::string(id) + "\": " + why);
  };
  if (id.empty()) return invalid("empty");
  if (id.size() > 128) return invalid("longer than 128 characters");
  if (id[0] == '.') return invalid("starts with '.'");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return invalid("only letters, digits, '_', '-' and '.' are allowed");
  }
  return Status::Ok();
}

std::vector<std::string> TaskArgv(const v1::ContainerSpec& spec) {
  std::vector<std::string> argv(spec.entrypoint().begin(), spec.entrypoint().end());
  argv.insert(argv.end(), spec.command().begin(), spec.command().end());
  return argv;
}

bool IsTerminal(v1::TaskState state) { return state >= v1::TASK_COMPLETE; }

std::string ExitMessage(int code) { return "exit " + std::to_string(code); }

std::string SignalMessage(int signal) { return "killed by signal " + std::to_string(signal); }

Result<std::string> FileTargetRelativePath(std::string_view target) {
  const auto invalid = [&](const char* why) {
    return InvalidArgument("invalid file target \"" + std::string(target) + "\": " + why);
  };
  std::string out;
  size_t pos = 0;
  while (pos <= target.size()) {
    size_t end = target.find('/', pos);
    if (end == std::string_view::npos) end = target.size();
    std::string_view part = target.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return invalid("'..' is not allowed");
    if (part.find('\0') != std::string_view::npos) return invalid("contains a NUL byte");
    if (!out.empty()) out += '/';
    out += part;
  }
  if (out.empty()) return invalid("names no file");
  if (!target.empty() && target.back() == '/') return invalid("names a directory");
  return out;
}

}  // namespace shoal::executor
