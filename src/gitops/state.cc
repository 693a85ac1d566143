#include "shoal/gitops/state.h"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace shoal::gitops {

const char* SyncStateName(SyncState s) {
  switch (s) {
    case SyncState::kInSync:
      return "in sync";
    case SyncState::kOutOfSync:
      return "out of sync";
    case SyncState::kFailed:
      return "failed";
  }
  return "?";
}

namespace {

std::string Str(const rapidjson::Value& o, const char* key) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

uint64_t U64(const rapidjson::Value& o, const char* key) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsUint64() ? it->value.GetUint64() : 0;
}

int64_t I64(const rapidjson::Value& o, const char* key) {
  auto it = o.FindMember(key);
  return it != o.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
}

SyncState StateFromName(const std::string& s) {
  if (s == "out of sync") return SyncState::kOutOfSync;
  if (s == "failed") return SyncState::kFailed;
  return SyncState::kInSync;
}

}  // namespace

Result<WatchState> LoadWatchState(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return WatchState{};
  std::ifstream in(path);
  if (!in) return IoError(path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  doc.Parse(text.str().c_str());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Status(Code::kCorruption, path + ": not a watch state file (invalid JSON at byte " +
                                         std::to_string(doc.GetErrorOffset()) + ")");
  }
  WatchState state;
  state.source = Str(doc, "source");
  state.last_revision = Str(doc, "last_revision");
  if (auto it = doc.FindMember("stacks"); it != doc.MemberEnd() && it->value.IsObject()) {
    for (const auto& m : it->value.GetObject()) {
      if (!m.value.IsObject()) continue;
      StackStatus st;
      st.state = StateFromName(Str(m.value, "state"));
      st.content_hash = Str(m.value, "content_hash");
      st.commit = Str(m.value, "commit");
      st.revision = U64(m.value, "revision");
      st.last_error = Str(m.value, "last_error");
      st.time_ns = I64(m.value, "time_ns");
      state.stacks[m.name.GetString()] = std::move(st);
    }
  }
  return state;
}

Status SaveWatchState(const std::string& path, const WatchState& state) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("source");
  w.String(state.source.c_str());
  w.Key("last_revision");
  w.String(state.last_revision.c_str());
  w.Key("stacks");
  w.StartObject();
  for (const auto& [name, st] : state.stacks) {
    w.Key(name.c_str());
    w.StartObject();
    w.Key("state");
    w.String(SyncStateName(st.state));
    w.Key("content_hash");
    w.String(st.content_hash.c_str());
    w.Key("commit");
    w.String(st.commit.c_str());
    w.Key("revision");
    w.Uint64(st.revision);
    w.Key("last_error");
    w.String(st.last_error.c_str());
    w.Key("time_ns");
    w.Int64(st.time_ns);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError(tmp + ": " + std::strerror(errno));
  const char* p = buf.GetString();
  size_t left = buf.GetSize();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = IoError(tmp + ": " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return IoError(tmp + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return IoError(path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace shoal::gitops
