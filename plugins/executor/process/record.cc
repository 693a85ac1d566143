#include "record.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace shoal::executor::process {
namespace {

constexpr const char* kFormat = "shoal-process-task-1";

// Values are single lines: newlines and backslashes are escaped so that a
// message or image name can never break the key=value framing.
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      out += s[i] == 'n' ? '\n' : s[i];
    } else {
      out += s[i];
    }
  }
  return out;
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size()) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Status WriteRecord(const std::filesystem::path& file, const TaskRecord& r) {
  std::ostringstream out;
  out << "format=" << kFormat << "\n"
      << "id=" << Escape(r.id) << "\n"
      << "image=" << Escape(r.image) << "\n"
      << "pid=" << r.pid << "\n"
      << "start_ticks=" << r.start_ticks << "\n"
      << "boot_id=" << Escape(r.boot_id) << "\n"
      << "stop_signal=" << r.stop_signal << "\n"
      << "stop_requested=" << (r.stop_requested ? 1 : 0) << "\n"
      << "kill_at_unix_ns=" << r.kill_at_unix_ns << "\n"
      << "started_unix_ns=" << r.started_unix_ns << "\n"
      << "secrets_dir=" << Escape(r.secrets_dir) << "\n"
      << "health=" << r.health << "\n"
      << "health_message=" << Escape(r.health_message) << "\n"
      << "finished=" << (r.finished ? 1 : 0) << "\n"
      << "state=" << r.state << "\n"
      << "exit_code=" << r.exit_code << "\n"
      << "message=" << Escape(r.message) << "\n"
      << "error=" << Escape(r.error) << "\n";
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << out.str();
    f.flush();
    if (!f) return IoError("cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return IoError("cannot rename " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

Result<TaskRecord> ReadRecord(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return NotFound("no state file " + file.string());
  std::map<std::string, std::string> kv;
  std::string line;
  while (std::getline(f, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    kv[line.substr(0, eq)] = Unescape(line.substr(eq + 1));
  }
  const auto corrupt = [&](const std::string& why) {
    return Status(Code::kCorruption, "state file " + file.string() + ": " + why);
  };
  if (kv["format"] != kFormat) return corrupt("unknown format \"" + kv["format"] + "\"");
  TaskRecord r;
  r.id = kv["id"];
  r.image = kv["image"];
  r.boot_id = kv["boot_id"];
  r.secrets_dir = kv["secrets_dir"];
  r.message = kv["message"];
  r.error = kv["error"];
  r.health_message = kv["health_message"];
  int64_t v = 0;
  const auto num = [&](const char* key, int64_t* out) {
    if (!ParseInt(kv[key], out)) return false;
    return true;
  };
  if (!num("pid", &v) || v < 0) return corrupt("bad pid");
  r.pid = static_cast<pid_t>(v);
  if (!num("start_ticks", &v) || v < 0) return corrupt("bad start_ticks");
  r.start_ticks = static_cast<uint64_t>(v);
  if (!num("stop_signal", &v)) return corrupt("bad stop_signal");
  r.stop_signal = static_cast<int>(v);
  if (!num("stop_requested", &v)) return corrupt("bad stop_requested");
  r.stop_requested = v != 0;
  if (!num("kill_at_unix_ns", &r.kill_at_unix_ns)) return corrupt("bad kill_at_unix_ns");
  if (!num("started_unix_ns", &r.started_unix_ns)) return corrupt("bad started_unix_ns");
  if (!num("finished", &v)) return corrupt("bad finished");
  r.finished = v != 0;
  if (!num("state", &v)) return corrupt("bad state");
  r.state = static_cast<int>(v);
  if (!num("exit_code", &v)) return corrupt("bad exit_code");
  r.exit_code = static_cast<int32_t>(v);
  // Absent in records of executors before healthchecks: no health known.
  if (kv.count("health") && num("health", &v)) r.health = static_cast<int>(v);
  return r;
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses; everything
  // after its last ')' is space-separated, starting with field 3 (state).
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  ProcStat st;
  std::string field;
  for (int n = 3; n <= 22 && (rest >> field); ++n) {
    if (n == 3) st.state = field.empty() ? '?' : field[0];
    if (n == 22) {
      int64_t v = 0;
      if (!ParseInt(field, &v)) return std::nullopt;
      st.start_ticks = static_cast<uint64_t>(v);
      return st;
    }
  }
  return std::nullopt;
}

std::string BootId() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id;
}

}  // namespace shoal::executor::process
