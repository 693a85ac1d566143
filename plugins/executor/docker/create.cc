#include "create.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "shoal/executor/signals.h"

namespace shoal::executor::docker {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, const std::string& s) { w.String(s.data(), static_cast<unsigned>(s.size())); }
void Key(Writer& w, const char* k) { w.Key(k); }

template <class Range>
void StrArray(Writer& w, const char* key, const Range& items) {
  Key(w, key);
  w.StartArray();
  for (const auto& s : items) Str(w, s);
  w.EndArray();
}

template <class Map>
void StrMap(Writer& w, const char* key, const Map& m) {
  Key(w, key);
  w.StartObject();
  for (const auto& [k, v] : m) {
    Str(w, k);
    Str(w, v);
  }
  w.EndObject();
}

bool ValidNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string PortKey(const v1::PortConfig& p) {
  return std::to_string(p.target()) + "/" + (p.protocol().empty() ? "tcp" : p.protocol());
}

void WriteHealthcheck(Writer& w, const v1::HealthCheck& h) {
  Key(w, "Healthcheck");
  w.StartObject();
  StrArray(w, "Test", h.test());
  // Zero means the engine's default (30 s, 30 s, 0, 3), which are also
  // shoal's; the converter already writes them out.
  Key(w, "Interval");
  w.Int64(h.interval_ns());
  Key(w, "Timeout");
  w.Int64(h.timeout_ns());
  Key(w, "StartPeriod");
  w.Int64(h.start_period_ns());
  Key(w, "Retries");
  w.Uint64(h.retries());
  w.EndObject();
}

void WriteMount(Writer& w, const v1::Mount& m, const v1::Task& task) {
  w.StartObject();
  Key(w, "Target");
  Str(w, m.target());
  Key(w, "ReadOnly");
  w.Bool(m.read_only());
  if (!m.consistency().empty()) {
    Key(w, "Consistency");
    Str(w, m.consistency());
  }
  switch (m.type()) {
    case v1::Mount::TYPE_VOLUME:
      Key(w, "Type");
      w.String("volume");
      // An empty source is an anonymous volume the engine names itself.
      if (!m.source().empty()) {
        Key(w, "Source");
        Str(w, m.source());
      }
      Key(w, "VolumeOptions");
      w.StartObject();
      Key(w, "NoCopy");
      w.Bool(m.volume_nocopy());
      // Created on first use by the engine with these labels, so the
      // volumes of a stack can be found (and kept or removed) later.
      Key(w, "Labels");
      w.StartObject();
      Key(w, kLabelStack);
      Str(w, task.stack());
      w.EndObject();
      w.EndObject();
      break;
    case v1::Mount::TYPE_BIND:
      Key(w, "Type");
      w.String("bind");
      Key(w, "Source");
      Str(w, m.source());
      if (!m.bind_propagation().empty()) {
        Key(w, "BindOptions");
        w.StartObject();
        Key(w, "Propagation");
        Str(w, m.bind_propagation());
        w.EndObject();
      }
      break;
    case v1::Mount::TYPE_TMPFS:
      Key(w, "Type");
      w.String("tmpfs");
      Key(w, "TmpfsOptions");
      w.StartObject();
      if (m.tmpfs_size_bytes() > 0) {
        Key(w, "SizeBytes");
        w.Int64(m.tmpfs_size_bytes());
      }
      if (m.tmpfs_mode() != 0) {
        Key(w, "Mode");
        w.Uint(m.tmpfs_mode());
      }
      w.EndObject();
      break;
    default:
      break;  // refused by ValidateSpec
  }
  w.EndObject();
}

}  // namespace

std::string ContainerName(const v1::Task& task) {
  std::string middle = task.slot() > 0 ? std::to_string(task.slot()) : task.node_id();
  std::string name = task.service_name() + "." + middle + "." + task.meta().id();
  for (char& c : name) {
    if (!ValidNameChar(c)) c = '_';
  }
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name[0]))) name = "t" + name;
  return name;
}

std::map<std::string, std::string> TaskLabels(const v1::Task& task, const std::string& node_id) {
  std::map<std::string, std::string> labels(task.spec().labels().begin(),
                                            task.spec().labels().end());
  labels[kLabelNode] = node_id;
  labels[kLabelTask] = task.meta().id();
  labels[kLabelService] = task.service_id();
  labels[kLabelServiceName] = task.service_name();
  labels[kLabelStack] = task.stack();
  labels[kLabelSlot] = std::to_string(task.slot());
  return labels;
}

Status ValidateSpec(const v1::Task& task) {
  const v1::ContainerSpec& spec = task.spec();
  if (spec.image().empty()) return InvalidArgument("no image: the docker executor needs one");
  if (!spec.stop_signal().empty()) {
    Result<int> sig = ParseSignal(spec.stop_signal());
    if (!sig.ok()) return InvalidArgument("stop_signal: " + sig.error().message());
  }
  if (spec.healthcheck().test_size() > 0) {
    const std::string& kind = spec.healthcheck().test(0);
    if (kind != "CMD" && kind != "CMD-SHELL" && kind != "NONE") {
      return InvalidArgument("healthcheck: unknown test kind \"" + kind +
                             "\" (use CMD, CMD-SHELL or NONE)");
    }
    if (kind != "NONE" && spec.healthcheck().test_size() < 2) {
      return InvalidArgument("healthcheck: " + kind + " without a command");
    }
  }
  for (const v1::Mount& m : spec.mounts()) {
    if (m.target().empty() || m.target()[0] != '/') {
      return InvalidArgument("mount target \"" + m.target() + "\" is not an absolute path");
    }
    switch (m.type()) {
      case v1::Mount::TYPE_VOLUME:
      case v1::Mount::TYPE_TMPFS:
        break;
      case v1::Mount::TYPE_BIND:
        if (m.source().empty() || m.source()[0] != '/') {
          return InvalidArgument("bind mount source \"" + m.source() +
                                 "\" is not an absolute path on this node");
        }
        break;
      default:
        return InvalidArgument("mount at " + m.target() +
                               ": npipe and cluster mounts are not supported by the docker "
                               "executor");
    }
  }
  for (const v1::PortConfig& p : task.endpoint().ports()) {
    const std::string& proto = p.protocol();
    if (!proto.empty() && proto != "tcp" && proto != "udp" && proto != "sctp") {
      return InvalidArgument("port " + std::to_string(p.target()) + ": unknown protocol \"" +
                             proto + "\"");
    }
  }
  return Status::Ok();
}

std::string CreateBody(const v1::Task& task, const std::string& node_id,
                       const std::vector<FileBind>& files,
                       const std::vector<NetworkJoin>& networks) {
  const v1::ContainerSpec& spec = task.spec();
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  Key(w, "Image");
  Str(w, spec.image());
  // An explicitly empty entrypoint clears the image's; an empty command
  // cannot clear the image's CMD through the API and is left out.
  if (spec.entrypoint_size() > 0) {
    StrArray(w, "Entrypoint", spec.entrypoint());
  } else if (spec.entrypoint_set()) {
    StrArray(w, "Entrypoint", std::vector<std::string>{""});
  }
  if (spec.command_size() > 0) StrArray(w, "Cmd", spec.command());
  std::vector<std::string> env;
  for (const auto& [k, v] : spec.env()) env.push_back(k + "=" + v);
  std::sort(env.begin(), env.end());
  StrArray(w, "Env", env);
  StrMap(w, "Labels", TaskLabels(task, node_id));
  if (!spec.user().empty()) {
    Key(w, "User");
    Str(w, spec.user());
  }
  if (!spec.working_dir().empty()) {
    Key(w, "WorkingDir");
    Str(w, spec.working_dir());
  }
  if (!spec.hostname().empty()) {
    Key(w, "Hostname");
    Str(w, spec.hostname());
  }
  Key(w, "Tty");
  w.Bool(spec.tty());
  Key(w, "OpenStdin");
  w.Bool(spec.stdin_open());
  if (!spec.stop_signal().empty()) {
    Key(w, "StopSignal");
    Str(w, spec.stop_signal());
  }
  if (spec.stop_grace_period_ns() > 0) {
    Key(w, "StopTimeout");
    w.Int64(std::max<int64_t>(1, spec.stop_grace_period_ns() / 1'000'000'000));
  }
  if (spec.healthcheck().test_size() > 0) WriteHealthcheck(w, spec.healthcheck());

  std::vector<const v1::PortConfig*> host_ports;
  std::set<std::string> bound;  // one binding per target: JSON keys are unique
  for (const v1::PortConfig& p : task.endpoint().ports()) {
    if (p.mode() == v1::PortConfig::PUBLISH_HOST && bound.insert(PortKey(p)).second) {
      host_ports.push_back(&p);
    }
  }
  // An ingress target gets a host port the engine picks (published 0 here),
  // through which other nodes' ingress proxies reach the task (the mesh).
  std::vector<v1::PortConfig> mesh;
  for (const v1::PortConfig& p : task.endpoint().ports()) {
    if (p.mode() != v1::PortConfig::PUBLISH_INGRESS || p.published() == 0) continue;
    if (!p.protocol().empty() && p.protocol() != "tcp") continue;
    if (!bound.insert(PortKey(p)).second) continue;
    mesh.push_back(p);
    mesh.back().set_published(0);
    mesh.back().clear_host_ip();
  }
  for (const v1::PortConfig& p : mesh) host_ports.push_back(&p);
  if (!host_ports.empty()) {
    Key(w, "ExposedPorts");
    w.StartObject();
    for (const auto* p : host_ports) {
      Str(w, PortKey(*p));
      w.StartObject();
      w.EndObject();
    }
    w.EndObject();
  }

  Key(w, "HostConfig");
  w.StartObject();
  if (spec.groups_size() > 0) StrArray(w, "GroupAdd", spec.groups());
  if (spec.dns().nameservers_size() > 0) StrArray(w, "Dns", spec.dns().nameservers());
  if (spec.dns().search_size() > 0) StrArray(w, "DnsSearch", spec.dns().search());
  if (spec.dns().options_size() > 0) StrArray(w, "DnsOptions", spec.dns().options());
  if (spec.extra_hosts_size() > 0) StrArray(w, "ExtraHosts", spec.extra_hosts());
  if (spec.cap_add_size() > 0) StrArray(w, "CapAdd", spec.cap_add());
  if (spec.cap_drop_size() > 0) StrArray(w, "CapDrop", spec.cap_drop());
  if (!spec.sysctls().empty()) {
    StrMap(w, "Sysctls",
           std::map<std::string, std::string>(spec.sysctls().begin(), spec.sysctls().end()));
  }
  if (spec.ulimits_size() > 0) {
    Key(w, "Ulimits");
    w.StartArray();
    for (const v1::Ulimit& u : spec.ulimits()) {
      w.StartObject();
      Key(w, "Name");
      Str(w, u.name());
      Key(w, "Soft");
      w.Int64(u.soft());
      Key(w, "Hard");
      w.Int64(u.hard());
      w.EndObject();
    }
    w.EndArray();
  }
  if (spec.has_init()) {
    Key(w, "Init");
    w.Bool(spec.init());
  }
  Key(w, "ReadonlyRootfs");
  w.Bool(spec.read_only());
  const v1::ResourceSet& lim = task.resources().limits();
  if (lim.nano_cpus() > 0) {
    Key(w, "NanoCpus");
    w.Int64(lim.nano_cpus());
  }
  if (lim.memory_bytes() > 0) {
    Key(w, "Memory");
    w.Int64(lim.memory_bytes());
  }
  if (lim.pids() > 0) {
    Key(w, "PidsLimit");
    w.Int64(lim.pids());
  }
  if (task.resources().reservations().memory_bytes() > 0) {
    Key(w, "MemoryReservation");
    w.Int64(task.resources().reservations().memory_bytes());
  }
  if (!spec.logging().driver().empty()) {
    Key(w, "LogConfig");
    w.StartObject();
    Key(w, "Type");
    Str(w, spec.logging().driver());
    StrMap(w, "Config",
           std::map<std::string, std::string>(spec.logging().options().begin(),
                                              spec.logging().options().end()));
    w.EndObject();
  }
  if (!host_ports.empty()) {
    Key(w, "PortBindings");
    w.StartObject();
    for (const auto* p : host_ports) {
      Str(w, PortKey(*p));
      w.StartArray();
      w.StartObject();
      Key(w, "HostIp");
      Str(w, p->host_ip());
      Key(w, "HostPort");
      Str(w, p->published() > 0 ? std::to_string(p->published()) : std::string());
      w.EndObject();
      w.EndArray();
    }
    w.EndObject();
  }
  if (!networks.empty()) {
    Key(w, "NetworkMode");
    Str(w, networks.front().Ref());
  }
  Key(w, "Mounts");
  w.StartArray();
  for (const v1::Mount& m : spec.mounts()) WriteMount(w, m, task);
  for (const FileBind& f : files) {
    w.StartObject();
    Key(w, "Type");
    w.String("bind");
    Key(w, "Source");
    Str(w, f.host_path);
    Key(w, "Target");
    Str(w, f.target);
    Key(w, "ReadOnly");
    w.Bool(true);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();  // HostConfig

  if (!networks.empty()) {
    Key(w, "NetworkingConfig");
    w.StartObject();
    Key(w, "EndpointsConfig");
    w.StartObject();
    Str(w, networks.front().Ref());
    w.StartObject();
    StrArray(w, "Aliases", networks.front().aliases);
    w.EndObject();
    w.EndObject();
    w.EndObject();
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace shoal::executor::docker
